package smtp_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// writeCounter counts the writes the server makes on its connections.
type writeCounter struct {
	net.Listener
	writes *atomic.Int32
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{Conn: c, writes: l.writes}, nil
}

type countedConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c countedConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// pipeliningServer starts a server that counts its writes and returns a
// client connection past EHLO.
func pipeliningServer(t *testing.T, fn ...func(*backend)) (*atomic.Int32, net.Conn, *bufio.Reader) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	writes := new(atomic.Int32)
	be := new(backend)
	for _, f := range fn {
		f(be)
	}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	go s.Serve(writeCounter{Listener: l, writes: writes})
	t.Cleanup(func() { s.Close() })

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expectReply(t, r, "220 ")
	io.WriteString(c, "EHLO localhost\r\n")
	expectReply(t, r, "250 ")
	return writes, c, r
}

// expectReply reads lines up to the last line of a reply and checks its start.
func expectReply(t *testing.T, r *bufio.Reader, prefix string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a reply (want %q): %v", prefix, err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("reply %q, want %q", line, prefix)
		}
		return
	}
}

// TestServerPipelinedGroupOneWrite: the replies to a pipelined group
// (RFC 2920) come in order and in one write, not one write per reply.
func TestServerPipelinedGroupOneWrite(t *testing.T) {
	writes, c, r := pipeliningServer(t)
	writes.Store(0)
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250 2.0.0 Roger", "250 2.0.0 I'll", "250 2.0.0 I'll", "354 "} {
		expectReply(t, r, want)
	}
	if n := writes.Load(); n != 1 {
		t.Errorf("%d writes for four replies to one pipelined group, want 1", n)
	}
	io.WriteString(c, "Subject: x\r\n\r\nhi\r\n.\r\nRSET\r\nQUIT\r\n")
	expectReply(t, r, "250 ")
	expectReply(t, r, "250 2.0.0 Session reset")
	expectReply(t, r, "221 ")
}

// TestServerHeldReplyNotStuck: a reply held back because more input was
// buffered is sent when the server has to wait for the rest of a command.
func TestServerHeldReplyNotStuck(t *testing.T) {
	_, c, r := pipeliningServer(t)
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<a@exa")
	expectReply(t, r, "250 2.0.0 Roger")
	io.WriteString(c, "mple.org>\r\n")
	expectReply(t, r, "250 ")
}

// TestServerRefusalNotHeld: a refusal is sent at once, with the replies
// held before it; QUIT after RSET in one packet loses no reply.
func TestServerRefusalNotHeld(t *testing.T) {
	writes, c, r := pipeliningServer(t, func(be *backend) {
		be.userErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No"}
	})
	writes.Store(0)
	io.WriteString(c, "RSET\r\nMAIL FROM:<root@nsa.gov>\r\nRCPT TO:<a@example.org>\r\nRSET\r\nQUIT\r\n")
	expectReply(t, r, "250 2.0.0 Session reset")
	expectReply(t, r, "550 5.7.1 No")
	expectReply(t, r, "503 ") // RCPT without MAIL
	expectReply(t, r, "250 2.0.0 Session reset")
	expectReply(t, r, "221 ")
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after 221: %v, want EOF", err)
	}
}
