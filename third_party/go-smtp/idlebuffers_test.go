package smtp_test

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

// readSizeListener reports the size of every read the server makes on its
// connections.
type readSizeListener struct {
	net.Listener
	sizes chan int
}

func (l readSizeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return readSizeConn{Conn: c, sizes: l.sizes}, nil
}

type readSizeConn struct {
	net.Conn
	sizes chan int
}

func (c readSizeConn) Read(b []byte) (int, error) {
	select {
	case c.sizes <- len(b):
	default: // nobody listens any more
	}
	return c.Conn.Read(b)
}

func idleServer(t *testing.T, tlsConfig *tls.Config) (chan int, net.Conn, *bufio.Reader) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sizes := make(chan int, 1000)
	s := smtp.NewServer(new(backend))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.TLSConfig = tlsConfig
	go s.Serve(readSizeListener{Listener: l, sizes: sizes})
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
		t.Fatalf("greeting: %q, %v", l, err)
	}
	return sizes, c, br
}

// replies reads n reply lines that end a reply ("250 ", not "250-").
func replies(t *testing.T, br *bufio.Reader, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if len(l) > 3 && l[3] == ' ' {
			got = append(got, strings.TrimRight(l, "\r\n"))
		}
	}
	return got
}

// A connection waiting for its next command holds no read buffer: the
// server waits with a small read (its 4 KiB buffer and the reply buffer are
// back in the server's pools), and what arrives then is read as before:
// a pipelined group longer than that read, a command dribbled byte by byte,
// a line over the limit.
func TestServerIdleWaitWithoutBuffers(t *testing.T) {
	sizes, c, br := idleServer(t, nil)
	select {
	case n := <-sizes:
		if n > 128 {
			t.Errorf("the server waits for the first command with a %d-byte read, want at most 128 (no read buffer held)", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server made no read")
	}

	group := "EHLO localhost\r\n" + strings.Repeat("NOOP\r\n", 40) + "RSET\r\n"
	io.WriteString(c, group)
	got := replies(t, br, 42)
	if !strings.HasPrefix(got[0], "250 ") || got[41] != "250 2.0.0 Session reset" {
		t.Errorf("replies to a %d-byte pipelined group: first %q, last %q", len(group), got[0], got[41])
	}
	for i, r := range got[1:41] {
		if !strings.HasPrefix(r, "250 ") {
			t.Fatalf("reply %d to NOOP: %q", i, r)
		}
	}

	for _, b := range []byte("NOOP\r\n") {
		c.Write([]byte{b})
		time.Sleep(5 * time.Millisecond)
	}
	if got := replies(t, br, 1); !strings.HasPrefix(got[0], "250 ") {
		t.Errorf("reply to a NOOP sent byte by byte: %q", got[0])
	}

	io.WriteString(c, "NOOP "+strings.Repeat("x", 3000)+"\r\n")
	if got := replies(t, br, 1); got[0] != "500 5.5.6 Line too long" {
		t.Errorf("reply to a 3000-byte line: %q", got[0])
	}
}

// What a client pipelines behind STARTTLS is read in clear text; it must not
// be run under TLS (RFC 3207 section 6), even when it arrived during an
// idle wait, in the small read that ended it.
func TestServerStartTLSInjectionAfterIdleWait(t *testing.T) {
	_, c, br := idleServer(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	io.WriteString(c, "EHLO localhost\r\n")
	replies(t, br, 1)
	io.WriteString(c, "STARTTLS\r\nNOOP\r\n")
	if got := replies(t, br, 1); !strings.HasPrefix(got[0], "220 ") {
		t.Fatalf("reply to STARTTLS: %q", got[0])
	}
	if br.Buffered() > 0 {
		t.Fatalf("the server answered the injected NOOP in clear text")
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tbr := bufio.NewReader(tc)
	io.WriteString(tc, "EHLO again\r\n")
	if l, err := tbr.ReadString('\n'); err != nil || l != "250-Hello again\r\n" {
		t.Errorf("first line under TLS: %q, %v (want EHLO's reply, nothing for the injected NOOP)", l, err)
	}
}
