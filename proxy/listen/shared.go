package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/postern/postern/policy"
)

// The ALPN protocol IDs the shared listener serves besides ALPNSMTP.
const (
	alpnH2     = "h2"
	alpnHTTP11 = "http/1.1"
	alpnACME   = "acme-tls/1" // RFC 8737; certs.Manager answers the validation
)

// SharedConfig configures the ModeShared listener.
type SharedConfig struct {
	// SMTPNames are TLS server names (SNI) that choose SMTP for a client
	// that offers no ALPN; SharedServer.Hostname is one without being listed.
	SMTPNames []string
	// FirstBytesWait is how long a client that offers no ALPN and no SMTP
	// name is given to send first: an HTTP client speaks first, an SMTP
	// client waits for the banner. Zero: DefaultSharedFirstBytesWait.
	FirstBytesWait time.Duration
	// HandshakeTimeout bounds the time from accept to the end of the TLS
	// handshake (PROXY header included). Zero: DefaultSharedHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Pending counts a connection from accept until it is known to be
	// SMTP, and an HTTP connection until it closes: cmd/postern passes the
	// HTTP listeners' budget, so a flood of handshakes that never finish
	// spends HTTP's budget, never the SMTP listeners' (--max-connections);
	// a connection becomes SMTP's only once it has chosen SMTP. Required
	// with a ModeShared listener.
	Pending *ConnBudget
	// Refused, if set, is told of every connection Pending refused (closed
	// at accept, before any read).
	Refused func(reason string, client netip.Addr)
}

// SharedServer is what the shared listener takes from the SMTP server it
// hands connections to (proxy.Server): the settings it shares with the
// other listeners and the hooks of its side. Every field is required but
// ProxyProtocolFrom.
type SharedServer struct {
	// Hostname is a TLS server name that chooses SMTP, as if it were one
	// of SharedConfig.SMTPNames.
	Hostname string
	// TLSConfig is the SMTP server's; the listener serves it with strict
	// ALPN (smtp, h2, http/1.1).
	TLSConfig *tls.Config
	// ProxyProtocolFrom lists the load balancers whose connections start
	// with a PROXY protocol header.
	ProxyProtocolFrom []netip.Prefix
	Log               *slog.Logger
	// HandshakeFailed is told of every TLS handshake that failed, with
	// the listener's name (a metric).
	HandshakeFailed func(listener string)
	// Adopt takes a connection that chose SMTP: under is the accepted
	// connection (below its PROXY header reader, if any), peer its TCP
	// peer, accepted the time of its accept. It returns the connection
	// the TLS session runs over from then on, counted by the SMTP side
	// (Unwrap finds it again under the *tls.Conn its SMTP listener
	// accepts).
	Adopt func(under net.Conn, peer, listener string, accepted time.Time) net.Conn
}

// Shared demultiplexes one ModeShared socket: it accepts, counts the
// connection in Pending, shakes hands, decides, and hands the *tls.Conn to
// go-smtp (SMTP) or to the HTTP server (HTTP).
type Shared struct {
	srv     SharedServer
	ln      net.Listener
	name    string // "tls+https:PORT"
	tlsConf *tls.Config
	cfg     SharedConfig
	names   map[string]bool // SNI names that choose SMTP
	smtp    *connQueue
	http    *connQueue
	closed  atomic.Bool
}

// NewShared serves ln as the ModeShared listener configured by cfg for the
// SMTP server srv. Nothing is accepted until Run.
func NewShared(ln net.Listener, cfg SharedConfig, srv SharedServer) *Shared {
	if cfg.FirstBytesWait <= 0 {
		cfg.FirstBytesWait = DefaultSharedFirstBytesWait
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultSharedHandshakeTimeout
	}
	names := map[string]bool{normalizeServerName(srv.Hostname): true}
	for _, n := range cfg.SMTPNames {
		names[normalizeServerName(n)] = true
	}
	l := &Shared{srv: srv, ln: ln, name: Name(ModeShared, ln.Addr()), cfg: cfg, names: names,
		// Strict ALPN (RFC 9325 §3.8): SMTP first, so a client offering
		// smtp among others gets it.
		tlsConf: StrictALPN(srv.TLSConfig, ALPNSMTP, alpnH2, alpnHTTP11)}
	l.smtp = newConnQueue(ln.Addr(), func() { l.closed.Store(true); ln.Close() })
	l.http = newConnQueue(ln.Addr(), nil)
	return l
}

// Name is the listener's name in logs and metrics, "tls+https:PORT".
func (l *Shared) Name() string { return l.name }

// SMTP is the SMTP side of the listener: the connections that chose SMTP,
// their TLS handshake done, for go-smtp's Serve. Closing it closes the
// socket too.
func (l *Shared) SMTP() net.Listener { return l.smtp }

// HTTP is the HTTP side of the listener: the connections that chose HTTP,
// their TLS handshake done (ALPN h2 or http/1.1, or none), for an
// http.Server's Serve.
func (l *Shared) HTTP() net.Listener { return l.http }

func normalizeServerName(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }

// Run accepts until the listener is closed (nil) or fails (the error).
// A connection over Pending's caps is closed at once, before any goroutine,
// read or buffer is spent on it.
func (l *Shared) Run(ctx context.Context) error {
	var tempDelay time.Duration
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				l.srv.Log.Warn("accept error", "listener", l.name, "err", err, "retry_in", tempDelay.String())
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		accepted := time.Now()
		client := tcpPeerIP(raw)
		var release func()
		var reason string
		if l.fromBalancer(client) {
			release, reason = l.cfg.Pending.admitTotal()
		} else {
			release, reason = l.cfg.Pending.Admit(client)
		}
		if reason != "" {
			_ = raw.Close()
			if l.cfg.Refused != nil {
				l.cfg.Refused(reason, client)
			}
			continue
		}
		go l.handle(ctx, raw, release, accepted)
	}
}

// fromBalancer reports whether peer is a load balancer of
// --proxy-protocol-from: its connections start with a PROXY header.
func (l *Shared) fromBalancer(peer netip.Addr) bool {
	from := l.srv.ProxyProtocolFrom
	return len(from) > 0 && policy.InNetworks(from, peer)
}

// isTemporary reports an accept error that passes (EMFILE, ECONNABORTED):
// net.Error.Temporary is deprecated but still what the standard library's
// own servers use for this.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func tcpPeerIP(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// handle shakes hands with one connection and hands it on. Every step
// until the decision is bounded by HandshakeTimeout from accept, and by
// the server's shutdown.
func (l *Shared) handle(ctx context.Context, raw net.Conn, release func(), accepted time.Time) {
	peer := raw.RemoteAddr().String()
	// A panic in the handshake (GetCertificate, say) ends this connection,
	// not the process, as go-smtp and net/http recover theirs.
	defer func() {
		if p := recover(); p != nil {
			l.srv.Log.Error("shared listener: panic", "listener", l.name, "peer", peer, "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
			_ = raw.Close()
			release()
		}
	}()
	var under net.Conn = raw
	if l.fromBalancer(tcpPeerIP(raw)) {
		under = proxyproto.NewConn(raw, proxyproto.WithPolicy(proxyproto.USE),
			proxyproto.SetReadHeaderTimeout(l.cfg.HandshakeTimeout))
	}
	sc := &sharedConn{release: release}
	sc.target.Store(&under)
	deadline := accepted.Add(l.cfg.HandshakeTimeout)
	_ = sc.SetDeadline(deadline)
	tc := tls.Server(sc, l.tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		l.srv.HandshakeFailed(l.name)
		l.srv.Log.Debug("shared listener: TLS handshake failed", "listener", l.name, "peer", peer, "err", err)
		_ = tc.Close()
		return
	}
	// The server's shutdown ends the wait for the first bytes too (the
	// handshake's end with ctx is HandshakeContext's).
	stopWatch := context.AfterFunc(ctx, func() { _ = sc.SetReadDeadline(aLongTimeAgo) })
	toSMTP, httpConn, ok := l.decide(tc, deadline)
	if !stopWatch() { // shutting down: whatever decide saw
		ok = false
	}
	if !ok {
		_ = tc.Close()
		return
	}
	_ = sc.SetDeadline(time.Time{}) // the server it goes to sets its own
	if !toSMTP {
		if !l.http.deliver(httpConn) {
			_ = tc.Close()
		}
		return
	}
	// SMTP: from here on it is counted as the SMTP listeners count theirs
	// (Adopt: the total at once, the client's network at go-smtp's
	// Connect), and is given back to Pending.
	sc.handTo(l.srv.Adopt(under, peer, l.name, accepted))
	release()
	if !l.smtp.deliver(tc) {
		_ = tc.Close()
	}
}

// decide returns whether the connection is SMTP (true) or HTTP (false,
// with the connection to give the HTTP server), or ok false for one to
// close: an ACME TLS-ALPN-01 validation (the handshake was all of it, RFC
// 8737 §3), or a client that left or failed.
func (l *Shared) decide(tc *tls.Conn, deadline time.Time) (smtp bool, httpConn net.Conn, ok bool) {
	st := tc.ConnectionState()
	switch st.NegotiatedProtocol {
	case ALPNSMTP:
		return true, nil, true
	case alpnH2, alpnHTTP11:
		return false, tc, true
	case alpnACME:
		return false, nil, false
	}
	if l.names[normalizeServerName(st.ServerName)] {
		return true, nil, true
	}
	// Who speaks first. The wait reads through TLS: the client's first
	// record may already sit in tc's buffer, read with its Finished.
	// A read that times out leaves tc usable (only a write timeout
	// corrupts a tls.Conn).
	wait := time.Now().Add(l.cfg.FirstBytesWait)
	if deadline.Before(wait) {
		wait = deadline
	}
	if err := tc.SetReadDeadline(wait); err != nil {
		return false, nil, false
	}
	var b [1]byte
	n, err := tc.Read(b[:])
	switch {
	case n > 0:
		return false, &firstByteConn{Conn: tc, first: b[:n]}, true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return true, nil, true
	}
	return false, nil, false
}

// firstByteConn is a TLS connection of which the shared listener read the
// first byte of plaintext, to see that the client spoke first: HTTP/1.x
// without ALPN. net/http serves it as HTTP/1.x (it is no *tls.Conn) and
// takes Request.TLS from ConnectionState.
type firstByteConn struct {
	*tls.Conn
	first []byte // not yet returned
}

func (c *firstByteConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// sharedConn is the connection under the shared listener's TLS: the
// accepted connection during the handshake and the wait for the first
// bytes, then, for SMTP, the connection SharedServer.Adopt wrapped it in
// (the *tls.Conn cannot be rebuilt over another connection once its
// handshake is done).
type sharedConn struct {
	target  atomic.Pointer[net.Conn] // the accepted connection, or the one Adopt wrapped it in
	release func()                   // the Pending slot; idempotent
}

func (c *sharedConn) conn() net.Conn { return *c.target.Load() }

// handTo makes n the connection every later call goes to. Call it between
// the wait and the hand-off, when nothing reads or writes c.
func (c *sharedConn) handTo(n net.Conn) { c.target.Store(&n) }

// Unwrap returns the connection under c if c is a shared listener's
// connection (after SMTP's hand-off, the one SharedServer.Adopt returned),
// or c itself.
func Unwrap(c net.Conn) net.Conn {
	if sc, ok := c.(*sharedConn); ok {
		return sc.conn()
	}
	return c
}

func (c *sharedConn) Read(b []byte) (int, error) { return c.conn().Read(b) }

func (c *sharedConn) Write(b []byte) (int, error) { return c.conn().Write(b) }

func (c *sharedConn) Close() error {
	err := c.conn().Close()
	c.release()
	return err
}

// CloseWrite passes a half-close on (go-smtp's lingering close, net/http's
// after an error reply).
func (c *sharedConn) CloseWrite() error {
	conn := c.conn()
	if pc, ok := conn.(*proxyproto.Conn); ok {
		conn = pc.Raw()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *sharedConn) LocalAddr() net.Addr                { return c.conn().LocalAddr() }
func (c *sharedConn) RemoteAddr() net.Addr               { return c.conn().RemoteAddr() }
func (c *sharedConn) SetDeadline(t time.Time) error      { return c.conn().SetDeadline(t) }
func (c *sharedConn) SetReadDeadline(t time.Time) error  { return c.conn().SetReadDeadline(t) }
func (c *sharedConn) SetWriteDeadline(t time.Time) error { return c.conn().SetWriteDeadline(t) }

// connQueue is a net.Listener whose connections are handed to it (by the
// shared listener), for go-smtp's and net/http's Serve.
type connQueue struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	onClose func() // nil, or what Close also ends
}

func newConnQueue(addr net.Addr, onClose func()) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{}), onClose: onClose}
}

// deliver waits until the server accepts c, or reports false once the
// queue is closed.
func (q *connQueue) deliver(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() {
		close(q.done)
		if q.onClose != nil {
			q.onClose()
		}
	})
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// aLongTimeAgo is a deadline that has passed: it interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)
