package smtp_test

// Tests of Server.Shutdown: idle connections end with 421 4.3.2 written by
// their own goroutine, a message being received is finished first, and the
// end of Shutdown's context ends the rest with the same reply.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const shuttingDown = "421 4.3.2 Service shutting down, try again later\r\n"

// shutdownClient is a raw client past EHLO.
type shutdownClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialShutdown(t *testing.T, addr string) *shutdownClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc := &shutdownClient{t: t, c: c, br: bufio.NewReader(c)}
	sc.send("EHLO localhost\r\n")
	for line := ""; line != "250 SIZE\r\n"; {
		line = sc.line()
	}
	return sc
}

func (sc *shutdownClient) send(s string) {
	sc.t.Helper()
	if _, err := io.WriteString(sc.c, s); err != nil {
		sc.t.Fatal(err)
	}
}

func (sc *shutdownClient) line() string {
	sc.t.Helper()
	l, err := sc.br.ReadString('\n')
	if err != nil {
		sc.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	return l
}

// rest is everything until the server closes.
func (sc *shutdownClient) rest() string {
	sc.t.Helper()
	b, err := io.ReadAll(sc.br)
	if err != nil {
		sc.t.Fatalf("reading until the server closes: %v (got %q)", err, b)
	}
	return string(b)
}

// startMessage sends a transaction up to half a message.
func (sc *shutdownClient) startMessage() {
	sc.t.Helper()
	sc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250 ", "250 ", "354 "} {
		if l := sc.line(); !strings.HasPrefix(l, want) {
			sc.t.Fatalf("got %q, want %q", l, want)
		}
	}
	sc.send("Subject: in flight\r\n\r\nfirst half\r\n")
}

func serveShutdown(t *testing.T) (*smtp.Server, *closingBackend, string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &closingBackend{}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, be, l.Addr().String()
}

func TestServer_shutdownIdleAndInFlight(t *testing.T) {
	s, be, addr := serveShutdown(t)
	idle := dialShutdown(t, addr)
	busy := dialShutdown(t, addr)
	busy.startMessage()

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	// The idle connection is told at once, then closed.
	if got := idle.rest(); got != shuttingDown {
		t.Errorf("idle connection: got %q, want %q and the close", got, shuttingDown)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a message in flight", err)
	default:
	}
	// The message in flight is finished and answered, then the connection ends.
	busy.send("second half\r\n.\r\n")
	if got, want := busy.rest(), "250 2.0.0 OK: queued\r\n"+shuttingDown; got != want {
		t.Errorf("connection with a message in flight: got %q, want %q and the close", got, want)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// The idle session's Logout may come before the busy one's Data: the
	// busy session calls Data after writing 354, and the test starts the
	// shutdown as soon as it reads the 354.
	calls := be.recorded()
	if busy := strings.Replace(calls, "Logout ", "", 1); strings.Count(calls, "Logout") != 2 ||
		busy != "Mail(a@example.org) Rcpt(b@example.org) Data Logout" {
		t.Errorf("session calls: %s", calls)
	}
}

// A command that arrives after the shutdown began, outside a transaction,
// is answered with the 421 instead of being run.
func TestServer_shutdownTransactionThenCommand(t *testing.T) {
	s, be, addr := serveShutdown(t)
	c := dialShutdown(t, addr)
	c.send("MAIL FROM:<a@example.org>\r\n")
	if l := c.line(); !strings.HasPrefix(l, "250 ") {
		t.Fatalf("MAIL: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	waitRefused(t, s, addr)
	// A transaction is in progress: the connection is not interrupted.
	// RSET ends it, and the commands pipelined behind it are not run.
	c.send("RSET\r\nMAIL FROM:<c@example.org>\r\n")
	if got, want := c.rest(), "250 2.0.0 Session reset\r\n"+shuttingDown; got != want {
		t.Errorf("got %q, want %q and the close", got, want)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// A probe connection that Serve accepted logs out too.
	if calls := be.recorded(); strings.ReplaceAll(calls, " Logout", "") != "Mail(a@example.org)" ||
		!strings.HasPrefix(calls, "Mail(a@example.org) Logout") {
		t.Errorf("session calls: %s", calls)
	}
}

// waitRefused waits until Shutdown has marked the connections: a dial to
// addr is refused once Shutdown has closed the listeners, which it does
// holding the server's lock it marks the connections with; Serve takes that
// lock before its first Accept, so once a Serve has reached Accept, the
// marking is done.
func waitRefused(t *testing.T, s *smtp.Server, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts 5 s after Shutdown began")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Serve(closedListener{}); err != nil {
		t.Fatalf("Serve during the shutdown: %v", err)
	}
}

// closedListener's Accept fails at once, as a closed listener's does.
type closedListener struct{}

func (closedListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (closedListener) Close() error              { return nil }
func (closedListener) Addr() net.Addr            { return &net.TCPAddr{} }

func TestServer_shutdownContextEnds(t *testing.T) {
	s, _, addr := serveShutdown(t)
	busy := dialShutdown(t, addr)
	busy.startMessage()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the context's error", err)
	}
	// The message's reader failed: the session's reply to it, then the 421.
	got := busy.rest()
	if !strings.HasPrefix(got, "554 5.0.0 Error: transaction failed: ") || !strings.HasSuffix(got, "\r\n"+shuttingDown) {
		t.Errorf("got %q, want the reply to the interrupted message, %q and the close", got, shuttingDown)
	}
}
