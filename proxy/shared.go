package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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

// ModeShared is submission over implicit TLS and HTTPS on one port
// (--listen tls+https=:443), for networks that let nothing but 443 out:
// one TLS handshake, then the connection goes to SMTP or to HTTP.
const ModeShared ListenMode = "tls+https"

// The ALPN protocol IDs the shared listener serves besides ALPNSMTP.
const (
	alpnH2     = "h2"
	alpnHTTP11 = "http/1.1"
	alpnACME   = "acme-tls/1" // RFC 8737; certs.Manager answers the validation
)

// SharedConfig configures the ModeShared listener.
type SharedConfig struct {
	// SMTPNames are TLS server names (SNI) that choose SMTP for a client
	// that offers no ALPN; Config.Hostname is one without being listed.
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

// sharedListener demultiplexes one ModeShared socket: it accepts, counts
// the connection in Pending, shakes hands, decides, and hands the *tls.Conn
// to go-smtp (smtp) or to the HTTP server (http).
type sharedListener struct {
	srv     *Server
	ln      net.Listener
	name    string // "tls+https:PORT"
	tlsConf *tls.Config
	cfg     SharedConfig
	names   map[string]bool // SNI names that choose SMTP
	smtp    *connQueue
	http    *connQueue
	closed  atomic.Bool
}

func (s *Server) newSharedListener(ln net.Listener) *sharedListener {
	cfg := s.cfg.Shared
	if cfg.FirstBytesWait <= 0 {
		cfg.FirstBytesWait = DefaultSharedFirstBytesWait
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultSharedHandshakeTimeout
	}
	names := map[string]bool{normalizeServerName(s.cfg.Hostname): true}
	for _, n := range cfg.SMTPNames {
		names[normalizeServerName(n)] = true
	}
	l := &sharedListener{srv: s, ln: ln, name: string(ModeShared) + ":" + portOf(ln.Addr()), cfg: cfg, names: names,
		// Strict ALPN (RFC 9325 §3.8): SMTP first, so a client offering
		// smtp among others gets it.
		tlsConf: strictALPN(s.tlsConfig, ALPNSMTP, alpnH2, alpnHTTP11)}
	l.smtp = newConnQueue(ln.Addr(), func() { l.closed.Store(true); ln.Close() })
	l.http = newConnQueue(ln.Addr(), nil)
	return l
}

func normalizeServerName(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }

// run accepts until the listener is closed (nil) or fails (the error).
// A connection over Pending's caps is closed at once, before any goroutine,
// read or buffer is spent on it.
func (l *sharedListener) run(ctx context.Context) error {
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
				l.srv.log.Warn("accept error", "listener", l.name, "err", err, "retry_in", tempDelay.String())
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
func (l *sharedListener) fromBalancer(peer netip.Addr) bool {
	from := l.srv.cfg.ProxyProtocolFrom
	return len(from) > 0 && policy.InNetworks(from, peer)
}

// admitTotal is Admit for a load balancer's connection: counted in the
// total only, since it carries many clients behind one address, and the
// client's own is known only once its PROXY header is read, in the
// connection's goroutine. (Once it chose SMTP, the SMTP caps count it by
// the client's address, as on the other listeners.)
func (b *ConnBudget) admitTotal() (release func(), reason string) {
	t := &connTicket{}
	b.limits.open()
	if reason := b.limits.admit(t, netip.Addr{}, true); reason != "" {
		b.limits.close(t)
		return nil, reason
	}
	return func() { b.limits.close(t) }, ""
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
func (l *sharedListener) handle(ctx context.Context, raw net.Conn, release func(), accepted time.Time) {
	peer := raw.RemoteAddr().String()
	// A panic in the handshake (GetCertificate, say) ends this connection,
	// not the process, as go-smtp and net/http recover theirs.
	defer func() {
		if p := recover(); p != nil {
			l.srv.log.Error("shared listener: panic", "listener", l.name, "peer", peer, "panic", fmt.Sprint(p),
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
		l.srv.cfg.Metrics.tlsFailed(l.name)
		l.srv.log.Debug("shared listener: TLS handshake failed", "listener", l.name, "peer", peer, "err", err)
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
	// (the total at once, the client's network at go-smtp's Connect), and
	// is given back to Pending.
	cc := newClientConn(under, peer, l.name, l.srv.cfg.CommandTimeout, 0, l.srv.connClosed)
	cc.opened = accepted // --login-timeout counts from accept, handshake included, as on 465
	if login := l.srv.cfg.LoginTimeout; login > 0 {
		cc.loginDeadline.Store(accepted.Add(login).UnixNano())
	}
	cc.tlsStarted.Store(true)
	l.srv.connOpened(cc)
	sc.handTo(cc)
	release()
	if !l.smtp.deliver(tc) {
		_ = tc.Close()
	}
}

// decide returns whether the connection is SMTP (true) or HTTP (false,
// with the connection to give the HTTP server), or ok false for one to
// close: an ACME TLS-ALPN-01 validation (the handshake was all of it, RFC
// 8737 §3), or a client that left or failed.
func (l *sharedListener) decide(tc *tls.Conn, deadline time.Time) (smtp bool, httpConn net.Conn, ok bool) {
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
	if err := tc.SetReadDeadline(earliest(deadline, time.Now().Add(l.cfg.FirstBytesWait))); err != nil {
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
// bytes, then, for SMTP, the clientConn that wraps it (the *tls.Conn
// cannot be rebuilt over another connection once its handshake is done).
type sharedConn struct {
	target  atomic.Pointer[net.Conn] // the accepted connection, or the clientConn that wraps it
	release func()                   // the Pending slot; idempotent
}

func (c *sharedConn) conn() net.Conn { return *c.target.Load() }

// handTo makes cc the connection every later call goes to. Call it
// between the wait and the hand-off, when nothing reads or writes c.
func (c *sharedConn) handTo(cc *clientConn) {
	var n net.Conn = cc
	c.target.Store(&n)
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

// HTTPSListener returns the HTTP side of the ModeShared listener: the
// connections that chose HTTP, their TLS handshake done (ALPN h2 or
// http/1.1, or none), for an http.Server's Serve; nil without a ModeShared
// listener. Valid after Listen.
func (s *Server) HTTPSListener() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil {
		return nil
	}
	return s.shared.http
}

// checkShared checks the ModeShared part of cfg: at most one such
// listener, and the budget that counts its connections before they choose.
func checkShared(cfg Config) error {
	n := 0
	for _, l := range cfg.Listeners {
		if l.Mode == ModeShared {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("proxy: only one tls+https listener")
	case n == 1 && cfg.Shared.Pending == nil:
		return errors.New("proxy: a tls+https listener needs a budget for its pending connections")
	}
	return nil
}
