package proxy

import (
	"crypto/rand"
	"encoding/base32"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// clientConn wraps every accepted connection, under TLS if there is one.
//
// It exists for three reasons go-smtp cannot cover:
//   - deadlines: go-smtp sets a read deadline once per command line, so a
//     large DATA would have to arrive within one timeout. clientConn instead
//     renews an idle deadline on every read and caps it with the DATA
//     deadline while a message is being received;
//   - closing right after a reply (too many AUTH failures, lockout): the
//     session marks the connection and the next write closes it;
//   - identity that survives STARTTLS: go-smtp builds a new Session after the
//     upgrade, but the connection (id, peer, AUTH failure count) stays.
type clientConn struct {
	net.Conn

	id       string
	listener string // listener name, e.g. "starttls:587"
	remote   netip.AddrPort
	opened   time.Time

	idleTimeout  time.Duration
	dataDeadline atomic.Int64 // unix nanoseconds; 0 when no message is in flight

	closeAfterReply atomic.Bool
	authFailures    atomic.Int32
	tlsLogged       atomic.Bool
	messages        atomic.Int32
	closeOnce       sync.Once
	onClose         func(*clientConn)
}

func newClientConn(c net.Conn, listener string, idle time.Duration, onClose func(*clientConn)) *clientConn {
	remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return &clientConn{
		Conn:        c,
		id:          newID(),
		listener:    listener,
		remote:      netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()),
		opened:      time.Now(),
		idleTimeout: idle,
		onClose:     onClose,
	}
}

// Read renews the idle deadline before every read, capped by the DATA deadline.
func (c *clientConn) Read(b []byte) (int, error) {
	if c.idleTimeout > 0 {
		deadline := time.Now().Add(c.idleTimeout)
		if d := c.dataDeadline.Load(); d != 0 && d < deadline.UnixNano() {
			deadline = time.Unix(0, d)
		}
		if err := c.Conn.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// Write sends b and closes the connection afterwards if a reply was marked as
// the last one. Each go-smtp reply line is one write (textproto flushes per
// line), so the mark closes right after the marked reply.
func (c *clientConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.closeAfterReply.Load() {
		c.Close()
	}
	return n, err
}

// SetReadDeadline is owned by clientConn (see Read); go-smtp's calls are ignored.
func (c *clientConn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline only applies the write part; reads are governed by Read.
func (c *clientConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

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

// closeAfterNextReply makes the next reply the last one on this connection.
func (c *clientConn) closeAfterNextReply() { c.closeAfterReply.Store(true) }

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
	name string
	idle time.Duration
	// onAccept may reject a connection (returns false) before SMTP starts;
	// onClose is called once per connection.
	onAccept func(*clientConn) bool
	onClose  func(*clientConn)
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := newClientConn(c, l.name, l.idle, l.onClose)
		if l.onAccept != nil && !l.onAccept(cc) {
			continue
		}
		return cc, nil
	}
}
