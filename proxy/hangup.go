package proxy

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// errClientGone is the cause of a context from untilHangup that ended
// because the client closed or reset the connection.
var errClientGone = errors.New("client closed the connection")

// untilHangup returns a context that ends with parent, or as soon as the
// client closes or resets the connection, and the function that stops
// watching (call it before go-smtp reads the connection again).
//
// It is for the session's goroutine while it waits inside a callback of
// go-smtp (AUTH's per-login delay): go-smtp owns the reads and reads
// nothing until the callback returns, so a client that left is otherwise
// only noticed afterwards. Reading to find out would consume what the
// client sent (a pipelined command, a TLS record), and a peek could not
// see a close behind data still unread (TLS clients send close_notify
// before they close). So the watcher does not read: it waits on the
// socket's readiness, as a read would, and asks the kernel whether the
// peer ended the connection (peerGone: TCP_INFO on Linux; elsewhere,
// and for connections that are not TCP, only parent ends the context).
func (c *clientConn) untilHangup(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	tcp := c.tcpConn()
	if tcp == nil || !canSeeHangup {
		return ctx, func() { cancel(nil) }
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return ctx, func() { cancel(nil) }
	}
	// The idle and login deadlines Read set are for go-smtp's reads; the
	// watcher has no deadline of its own and is ended by stop. A
	// deadline set meanwhile (Shutdown's interrupt) applies to it too.
	c.readMu.Lock()
	c.readDeadline = c.ownDeadline
	_ = tcp.SetReadDeadline(c.readDeadline)
	c.readMu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// f runs at once and again whenever the socket turns readable
		// (data, FIN or RST arriving); it never reads.
		err := raw.Read(func(fd uintptr) bool { return ctx.Err() != nil || peerGone(fd) })
		if err == nil && ctx.Err() == nil {
			cancel(errClientGone)
		}
	}()
	stop := func() {
		cancel(nil)
		c.readMu.Lock()
		defer c.readMu.Unlock()
		_ = tcp.SetReadDeadline(aLongTimeAgo) // wakes raw.Read
		<-done
		_ = tcp.SetReadDeadline(c.readDeadline) // go-smtp's next Read sets its own
	}
	return ctx, stop
}

// aLongTimeAgo is a deadline that has passed: it interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// tcpConn is the TCP connection under c (below a PROXY protocol header
// reader), or nil.
func (c *clientConn) tcpConn() *net.TCPConn {
	conn := c.Conn
	if pc, ok := conn.(*proxyproto.Conn); ok {
		conn = pc.Raw()
	}
	tc, _ := conn.(*net.TCPConn)
	return tc
}
