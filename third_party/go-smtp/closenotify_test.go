package smtp_test

// Commands that arrive together with the end of the connection (a TLS
// close_notify in the same flight) are all run and answered, replies held
// for pipelining included, before the connection ends.

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

type okEchoBackend struct{}

func (okEchoBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &okEchoSession{}, nil }

type okEchoSession struct {
	echoSession
	rcpts []string
}

func (s *okEchoSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *okEchoSession) Reset() { s.rcpts = nil }

// batchConn holds what is written while hold is set, to send it in one
// write later: a TLS record and the close_notify after it then arrive
// together, and the server's tls.Conn.Read returns (n, io.EOF).
type batchConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	if b.hold {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// Under TLS, commands followed by close_notify in the same flight: the
// idle read returns the bytes with io.EOF. Every complete command must be
// run and answered before the connection ends, including a reply held for
// pipelining (0019) while a partial line follows.
func TestServerTLSCloseNotifyWithCommands(t *testing.T) {
	cert := selfSigned(t)
	_, addr := echoServer(t, okEchoBackend{}, func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	for _, tc := range []struct {
		send string
		want []string
	}{
		{"NOOP\r\n", []string{"250 2.0.0 I have successfully done nothing"}},
		{"RSET\r\nNOOP\r\n", []string{"250 2.0.0 Session reset", "250 2.0.0 I have successfully done nothing"}},
		{"RSET\r\nNOO", []string{"250 2.0.0 Session reset"}},
		{"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDAT", []string{"250 2.0.0 Roger, accepting mail from <a@x.test>", "250 2.0.0 I'll make sure <b@x.test> gets this"}},
	} {
		c, br := dialGreeted(t, addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "EHLO x\r\nSTARTTLS\r\n")
		if _, err := finalReplies(br, 2); err != nil {
			t.Fatal(err)
		}
		bc := &batchConn{Conn: c}
		// TLS 1.2: its close_notify is a plain alert record, which
		// tls.Conn.Read reads with the data and returns (n, io.EOF) for
		// (a TLS 1.3 alert is encrypted and comes one Read later).
		tlc := tls.Client(bc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		if err := tlc.Handshake(); err != nil {
			t.Fatal(err)
		}
		tbr := bufio.NewReader(tlc)
		io.WriteString(tlc, "EHLO y\r\n")
		if _, err := finalReplies(tbr, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the server waits in its idle read
		bc.hold = true
		io.WriteString(tlc, tc.send)
		tlc.CloseWrite()
		bc.hold = false
		c.SetWriteDeadline(time.Now().Add(5 * time.Second)) // CloseWrite left it at now
		if n, err := c.Write(bc.buf); err != nil || n == 0 {
			t.Fatalf("flight of %d bytes: %d, %v", len(bc.buf), n, err)
		}
		rest, err := io.ReadAll(tbr)
		if err != nil {
			t.Logf("%q: read: %v", tc.send, err)
		}
		var finals []string
		for _, l := range strings.Split(strings.TrimSuffix(string(rest), "\r\n"), "\r\n") {
			if len(l) > 3 && l[3] == ' ' {
				finals = append(finals, l)
			}
		}
		if strings.Join(finals, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q then close_notify in one flight: got %q, want %q", tc.send, finals, tc.want)
		}
	}
}
