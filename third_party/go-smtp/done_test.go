package smtp_test

// Tests of DoneBackend: Done runs before QUIT's 221 is written, and once,
// before Logout, when the client goes away without QUIT.

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// doneBackend records, in order, Done and Logout.
type doneBackend struct {
	backend
	mu     sync.Mutex
	events []string
	done   chan struct{} // closed by the first Done
}

func (b *doneBackend) record(e string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, e)
}

func (b *doneBackend) Done(*smtp.Conn) {
	b.record("done")
	close(b.done)
}

func (b *doneBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s, err := b.backend.NewSession(c)
	return &logoutRecorder{Session: s, b: b}, err
}

type logoutRecorder struct {
	smtp.Session
	b *doneBackend
}

func (s *logoutRecorder) Logout() error {
	s.b.record("logout")
	return s.Session.Logout()
}

func (b *doneBackend) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done was not called")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.events...)
}

func serveDone(t *testing.T) (*doneBackend, *smtp.Server, net.Conn, *bufio.Reader) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &doneBackend{done: make(chan struct{})}
	s := smtp.NewServer(b)
	s.Domain = "localhost"
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting: %q, %v", line, err)
	}
	if _, err := c.Write([]byte("EHLO client\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "250 ") {
			break
		}
	}
	return b, s, c, r
}

func TestServer_doneBeforeQuitReply(t *testing.T) {
	b, _, c, r := serveDone(t)
	if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "221 ") {
		t.Fatalf("QUIT: %q, %v", line, err)
	}
	// Done ran before the 221 was written: it is recorded already.
	b.mu.Lock()
	events := append([]string(nil), b.events...)
	b.mu.Unlock()
	if len(events) == 0 || events[0] != "done" {
		t.Fatalf("events when the 221 arrived = %v, want done first", events)
	}
}

func TestServer_doneOnceBeforeLogout(t *testing.T) {
	b, s, c, _ := serveDone(t)
	c.Close()
	b.wait(t)
	s.Close() // waits for the connection's goroutine: Logout has run
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := strings.Join(b.events, " "); got != "done logout" {
		t.Fatalf("events = %q, want \"done logout\"", got)
	}
}
