package smtp

import (
	"crypto/tls"
	"io"
	"time"
)

// ErrLineTooLong is the reply to a command line, or a line of an AUTH
// exchange, longer than Server.MaxLineLength (RFC 5321 §4.5.3.1.4: "500
// Line too long"; 5.5.6 is the enhanced code RFC 4954 §4 gives an over-long
// AUTH line). The connection is closed after it.
var ErrLineTooLong = &SMTPError{
	Code:         500,
	EnhancedCode: EnhancedCode{5, 5, 6},
	Message:      "Line too long",
}

// Bounds of the read-and-drop in lingeringClose.
const (
	lingerMaxBytes = 64 << 10
	lingerTimeout  = 2 * time.Second
)

// lingeringClose ends the connection after a last reply while the client
// may still be sending (the rest of an over-long line). Closing a TCP socket
// with unread data makes the kernel answer with a reset (RFC 1122
// §4.2.2.13), and a reset makes the client's kernel drop the reply before
// the client has read it. So the write side is shut first (the client reads
// the reply, then EOF; under TLS a close_notify comes first), and what
// arrives is read and dropped until the client closes its side, for at most
// lingerTimeout and lingerMaxBytes. The timeout closes the connection rather
// than setting a read deadline, so that it holds even when the net.Conn is a
// wrapper that manages its own deadlines. The caller closes the connection.
func (c *Conn) lingeringClose() {
	conn := c.conn
	if tc, ok := conn.(*tls.Conn); ok {
		tc.CloseWrite() // close_notify; the bytes below TLS are dropped unread
		conn = tc.NetConn()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	timer := time.AfterFunc(lingerTimeout, func() { conn.Close() })
	defer timer.Stop()
	io.CopyN(io.Discard, conn, lingerMaxBytes)
}
