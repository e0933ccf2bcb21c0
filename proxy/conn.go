package proxy

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/postern/postern/policy"
	"github.com/postern/postern/proxy/listen"
)

// clientConn wraps every accepted connection, under TLS if there is one.
// go-smtp owns the connection (it alone reads and writes it); clientConn
// adds what go-smtp has no notion of:
//   - deadlines: go-smtp would set a read deadline once per command line
//     (Server.ReadTimeout, left at zero), so a large DATA would have to
//     arrive within one timeout. clientConn instead renews an idle deadline
//     on every read and caps it with the DATA deadline while a message is
//     being received. A deadline go-smtp sets itself (Server.Shutdown
//     interrupts an idle session's read with one in the past) caps reads
//     too, as on any net.Conn;
//   - the login deadline: a connection that has not authenticated within
//     --login-timeout of Accept (TLS handshake included) is cut, however
//     slowly it keeps sending, since every read renews the idle deadline.
//     Reads are capped at the login deadline, and a read that reaches it
//     fails with replyLoginTimeout, which go-smtp writes as the last reply
//     from its own goroutine (go-smtp patch read-error-reply);
//   - the connection limits: its ticket is counted until it is closed (against its network only until its client is done);
//   - identity that survives STARTTLS: go-smtp builds a new Session after the
//     upgrade, but the connection (id, peer, AUTH failure count) stays.
//
// Ending a connection after a reply is go-smtp's (Conn.CloseAfterReply,
// patch close-after-reply), and so is the shutdown's 421 (patch shutdown-421).
type clientConn struct {
	net.Conn

	id       string
	listener string // listener name, e.g. "starttls:587"
	peer     string // the TCP peer (a load balancer when PROXY protocol is used)
	opened   time.Time

	remoteOnce sync.Once
	remote     netip.AddrPort // the client, resolved on first use (see client)

	idleTimeout   time.Duration
	dataDeadline  atomic.Int64  // unix nanoseconds; 0 when no message is in flight
	loginDeadline atomic.Int64  // unix nanoseconds; 0 once logged in (or none)
	loginExpired  atomic.Bool   // the login deadline cut the connection
	endDeadline   atomic.Int64  // unix nanoseconds; 0: none. Refused: over by then (see endWithin)
	ticket        listen.Ticket // its share of the connection limits

	// readMu makes "compute the deadline, set it" in Read one step with
	// SetReadDeadline, so that a deadline go-smtp sets from another
	// goroutine (the shutdown's interrupt) is never replaced by an older one.
	readMu       sync.Mutex
	ownDeadline  time.Time // set by SetReadDeadline; zero: none
	readDeadline time.Time // the deadline last applied to Conn; zero: none

	authFailures     atomic.Int32
	authTempFailures atomic.Int32 // AUTH answered 454 (backend down)
	tlsLogged        atomic.Bool  // a session over TLS has started
	tlsStarted       atomic.Bool  // a ClientHello was received
	messages         atomic.Int32
	closeOnce        sync.Once
	onClose          func(*clientConn)
}

func newClientConn(c net.Conn, peer, listener string, idle, login time.Duration, onClose func(*clientConn)) *clientConn {
	cc := &clientConn{
		Conn:        c,
		id:          newID(),
		listener:    listener,
		peer:        peer,
		opened:      time.Now(),
		idleTimeout: idle,
		onClose:     onClose,
	}
	if login > 0 {
		cc.loginDeadline.Store(cc.opened.Add(login).UnixNano())
	}
	return cc
}

// client is the client's address: the TCP peer, or the address a trusted
// load balancer passed in a PROXY protocol header. Reading the header
// blocks, so it is resolved on first use in the connection's own goroutine,
// never in Accept.
func (c *clientConn) client() netip.AddrPort {
	c.remoteOnce.Do(func() {
		ap, err := netip.ParseAddrPort(c.Conn.RemoteAddr().String())
		if err == nil {
			c.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	})
	return c.remote
}

// clientIP is client() without the port.
func (c *clientConn) clientIP() netip.Addr { return c.client().Addr() }

// Read renews the idle deadline before every read, capped by the DATA,
// login and end deadlines and by one set with SetReadDeadline. Once the login
// deadline has passed, reads fail with replyLoginTimeout (not a net.Error:
// crypto/tls passes it on unchanged).
func (c *clientConn) Read(b []byte) (int, error) {
	now := time.Now()
	login := c.loginDeadline.Load()
	if login != 0 && now.UnixNano() >= login {
		return 0, c.expireLogin()
	}
	var deadline time.Time // zero: none
	if c.idleTimeout > 0 {
		deadline = now.Add(c.idleTimeout)
	}
	for _, d := range [...]int64{c.dataDeadline.Load(), login, c.endDeadline.Load()} {
		if d != 0 {
			deadline = earliest(deadline, time.Unix(0, d))
		}
	}
	c.readMu.Lock()
	deadline = earliest(deadline, c.ownDeadline)
	err := c.Conn.SetReadDeadline(deadline) // zero clears an earlier one
	c.readDeadline = deadline
	c.readMu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if err != nil && login != 0 && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().UnixNano() >= login {
		return n, c.expireLogin()
	}
	return n, err
}

// earliest is the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// SetReadDeadline caps every later read at t (zero: no cap), on top of the
// deadlines Read sets itself. A read in progress is woken at t if t is
// earlier than its own deadline: go-smtp's Shutdown interrupts an idle
// session's read this way.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.ownDeadline = t
	if t.IsZero() || !c.readDeadline.IsZero() && !t.Before(c.readDeadline) {
		return nil // the next Read applies it
	}
	c.readDeadline = t
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *clientConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *clientConn) expireLogin() error {
	c.loginExpired.Store(true)
	return replyLoginTimeout
}

// loggedIn lifts the login deadline (successful AUTH, or a mynetworks
// client). Call it from the connection's goroutine, or before it reads.
func (c *clientConn) loggedIn() { c.loginDeadline.Store(0) }

// lastReplyTimeout bounds the write of a reply after which the connection
// is closed anyway (the login timeout's 421, the 421 of a shutdown whose
// drain has ended).
const lastReplyTimeout = time.Second

// SetWriteDeadline caps go-smtp's write deadline (--command-timeout, set
// before each reply; crypto/tls passes its own calls on here) at the login
// deadline: a client that never logs in and stops reading its replies
// would otherwise block a reply write, and so the read that enforces the
// login deadline, for the whole write timeout. Once the login deadline has
// passed, only the last reply is still written: it gets lastReplyTimeout.
func (c *clientConn) SetWriteDeadline(t time.Time) error {
	if end := c.endDeadline.Load(); end != 0 {
		t = earliest(t, time.Unix(0, end))
	}
	if login := c.loginDeadline.Load(); login != 0 {
		limit := time.Unix(0, login)
		if now := time.Now(); !now.Before(limit) {
			limit = now.Add(lastReplyTimeout)
		}
		if t.IsZero() || limit.Before(t) {
			t = limit
		}
	}
	return c.Conn.SetWriteDeadline(t)
}

// endWithin ends the connection within d whatever the client does: every
// later read and write is capped at now+d. A refused connection (see
// backend.Connect) still holds a --max-connections slot until it closes,
// and on an implicit-TLS listener its 421 waits for a handshake that the
// client drives: without this bound a client past its
// --max-connections-per-ip could keep each refused connection for the
// whole login timeout and fill the total cap from one address.
func (c *clientConn) endWithin(d time.Duration) {
	c.endDeadline.Store(time.Now().Add(d).UnixNano())
}

// Write records a write cut by the login deadline as the login timeout: a
// client that never logs in and stops reading its replies blocks go-smtp's
// reply write until SetWriteDeadline's cap, and the connection then ends
// without any read reaching that deadline.
func (c *clientConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if login := c.loginDeadline.Load(); login != 0 && time.Now().UnixNano() >= login {
			c.loginExpired.Store(true)
		}
	}
	return n, err
}

// CloseWrite half-closes the TCP connection: go-smtp shuts the write side
// after a last reply it must not lose to a reset (over-long line), then
// drops what the client still sends before closing.
func (c *clientConn) CloseWrite() error {
	conn := c.Conn
	if pc, ok := conn.(*proxyproto.Conn); ok {
		conn = pc.Raw()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose(c)
		}
	})
	return err
}

// startData caps reads for the message being received at now+timeout.
func (c *clientConn) startData(timeout time.Duration) {
	if timeout > 0 {
		c.dataDeadline.Store(time.Now().Add(timeout).UnixNano())
	}
}

func (c *clientConn) endData() { c.dataDeadline.Store(0) }

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// newID returns a random 16-character id for sessions and messages, in the
// alphabet of Postfix queue ids so log readers see familiar tokens.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// clientListener wraps accepted connections in clientConn.
type clientListener struct {
	net.Listener
	name  string
	idle  time.Duration
	login time.Duration // --login-timeout, 0: none
	// proxyFrom lists the load balancers whose PROXY protocol header (v1
	// or v2) is honoured; from anyone else a header is just a bad command.
	// A connection from such an address without a header gets its banner
	// only after the header timeout (SMTP servers speak first, so the
	// absence of a header can only be seen by waiting): keep it short.
	proxyFrom []netip.Prefix
	// onAccept is called for every connection before SMTP starts; onClose
	// once per connection.
	onAccept func(*clientConn)
	onClose  func(*clientConn)
}

func (l *clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	peer := c.RemoteAddr().String()
	if len(l.proxyFrom) > 0 {
		if ap, err := netip.ParseAddrPort(peer); err == nil && policy.InNetworks(l.proxyFrom, ap.Addr()) {
			c = proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.USE),
				proxyproto.SetReadHeaderTimeout(3*time.Second))
		}
	}
	cc := newClientConn(c, peer, l.name, l.idle, l.login, l.onClose)
	if l.onAccept != nil {
		l.onAccept(cc)
	}
	return cc, nil
}
