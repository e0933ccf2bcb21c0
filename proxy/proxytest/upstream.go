package proxytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// UpstreamOptions configures a fake upstream. The zero value accepts
// everything. The misbehaviour knobs can be changed while it runs with
// SetOptions; they apply from the next command on.
type UpstreamOptions struct {
	// Domain is the name in the banner and EHLO reply; default
	// "fake.upstream.test".
	Domain string
	// MaxMessageBytes is advertised with SIZE and enforced (552); 0
	// means 64 MiB, room for a 10 MB test message and then some.
	MaxMessageBytes int64
	// NoSMTPUTF8 and NoDSN turn off those EHLO capabilities, for testing
	// that the proxy does not pass on what its upstream lacks.
	NoSMTPUTF8, NoDSN bool

	// MailError, if set, is the reply to every MAIL FROM.
	MailError *smtp.SMTPError
	// RejectRcpt maps recipient addresses (case-insensitive) to the
	// reply their RCPT TO gets.
	RejectRcpt map[string]*smtp.SMTPError
	// DataError, if set, is the reply to DATA once the whole body has
	// been read; the message is not recorded.
	DataError *smtp.SMTPError
	// DropAfterBytes, if > 0, closes the connection without a reply
	// after that many bytes of message data, as a crashing MTA would;
	// the message is not recorded.
	DropAfterBytes int64
	// DataDelay is slept after the body was read and before the reply to
	// DATA, as a slow upstream (content filter, fsync) would.
	DataDelay time.Duration
}

// UpstreamMessage is one message the fake upstream accepted.
type UpstreamMessage struct {
	// From is the MAIL FROM address ("" for the null sender).
	From string
	// MailOptions are the MAIL FROM parameters (SIZE, BODY, SMTPUTF8,
	// RET, ENVID, AUTH).
	MailOptions smtp.MailOptions
	// Rcpts are the accepted recipients, in order.
	Rcpts []string
	// RcptOptions are their RCPT TO parameters (NOTIFY, ORCPT), in the
	// same order.
	RcptOptions []smtp.RcptOptions
	// Data is the message as received: CRLF line endings, dot-stuffing
	// undone.
	Data []byte
	// QueueID is the id given in the 250 reply, "FAKE<n>".
	QueueID string
	// Conn numbers the connection it came over (1 for the first one
	// accepted), so tests can tell reuse from new connections.
	Conn int
}

// Upstream is an in-process SMTP server on 127.0.0.1 that records what it
// receives and misbehaves on request. No TLS, no AUTH.
type Upstream struct {
	// Addr is "127.0.0.1:PORT".
	Addr string

	server   *smtp.Server
	listener net.Listener
	served   chan struct{}

	mu             sync.Mutex
	opts           UpstreamOptions
	msgs           []UpstreamMessage
	queued         int // queue ids handed out
	conns          int // connections accepted
	activeConns    int
	sessions       int // SMTP sessions (EHLO/HELO) begun
	activeSessions int
	changed        chan struct{} // closed and replaced when msgs grows or a connection closes
	closed         bool
	live           map[*countedConn]struct{}
}

// StartUpstream starts a fake upstream; it is closed when the test ends.
func StartUpstream(t testing.TB, opts UpstreamOptions) *Upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for the fake upstream: %v", err)
	}
	u := &Upstream{
		Addr:     l.Addr().String(),
		served:   make(chan struct{}),
		changed:  make(chan struct{}),
		opts:     opts,
		listener: l,
	}
	s := smtp.NewServer(smtp.BackendFunc(u.newSession))
	s.Domain = opts.Domain
	if s.Domain == "" {
		s.Domain = "fake.upstream.test"
	}
	s.MaxMessageBytes = opts.MaxMessageBytes
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = 64 << 20
	}
	s.EnableSMTPUTF8 = !opts.NoSMTPUTF8
	s.EnableDSN = !opts.NoDSN
	// A wedged client must not hang the test run.
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = testLogger{t, u}
	u.server = s

	go func() {
		defer close(u.served)
		_ = s.Serve(countingListener{l, u})
	}()
	t.Cleanup(u.Close)
	return u
}

// SetOptions replaces the misbehaviour knobs (MailError, RejectRcpt,
// DataError, DropAfterBytes, DataDelay); the EHLO settings stay as
// started.
func (u *Upstream) SetOptions(opts UpstreamOptions) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.opts = opts
}

func (u *Upstream) options() UpstreamOptions {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.opts
}

// Close stops listening and drops every connection. Safe to call twice.
func (u *Upstream) Close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	u.mu.Unlock()
	_ = u.server.Close()
	// go-smtp only closes listeners its Serve goroutine has registered; one
	// that has not run yet would accept forever, so close ours too.
	_ = u.listener.Close()
	<-u.served
}

// Messages returns a copy of the messages accepted so far, in order.
func (u *Upstream) Messages() []UpstreamMessage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]UpstreamMessage(nil), u.msgs...)
}

// WaitMessages waits until at least n messages were accepted and returns
// them; the test fails after timeout.
func (u *Upstream) WaitMessages(t testing.TB, n int, timeout time.Duration) []UpstreamMessage {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		u.mu.Lock()
		msgs := append([]UpstreamMessage(nil), u.msgs...)
		changed := u.changed
		u.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("fake upstream accepted %d messages, want %d, within %v", len(msgs), n, timeout)
		}
	}
}

// WaitConnectionsClosed waits until every connection to the upstream is
// closed (then all a client sent it has been processed, so a count of
// messages is final); the test fails after timeout.
func (u *Upstream) WaitConnectionsClosed(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		u.mu.Lock()
		open, changed := u.activeConns, u.changed
		u.mu.Unlock()
		if open == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d connections to the fake upstream still open after %v", open, timeout)
		}
	}
}

// Connections is the number of TCP connections accepted so far.
func (u *Upstream) Connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// ActiveConnections is the number of TCP connections open now.
func (u *Upstream) ActiveConnections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.activeConns
}

// Sessions is the number of SMTP sessions (a connection after HELO/EHLO)
// begun so far.
func (u *Upstream) Sessions() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sessions
}

// ActiveSessions is the number of SMTP sessions not ended yet; it drops
// when the client quits or the connection closes.
func (u *Upstream) ActiveSessions() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.activeSessions
}

// countingListener counts connections; go-smtp only creates a session at
// HELO/EHLO, so a client that connects and never greets would otherwise
// go unseen.
type countingListener struct {
	net.Listener
	u *Upstream
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.u.mu.Lock()
	l.u.conns++
	l.u.activeConns++
	n := l.u.conns
	cc := &countedConn{Conn: c, u: l.u, n: n}
	if l.u.live == nil {
		l.u.live = make(map[*countedConn]struct{})
	}
	l.u.live[cc] = struct{}{}
	l.u.mu.Unlock()
	return cc, nil
}

type countedConn struct {
	net.Conn
	u    *Upstream
	n    int
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.u.mu.Lock()
		c.u.activeConns--
		delete(c.u.live, c)
		close(c.u.changed)
		c.u.changed = make(chan struct{})
		c.u.mu.Unlock()
	})
	return c.Conn.Close()
}

// DropIdle closes every open connection without a word, as an MTA does
// when its idle timeout fires, to test that clients of a pooled or reused
// connection recover.
func (u *Upstream) DropIdle() {
	u.mu.Lock()
	conns := make([]*countedConn, 0, len(u.live))
	for c := range u.live {
		conns = append(conns, c)
	}
	u.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (u *Upstream) newSession(c *smtp.Conn) (smtp.Session, error) {
	n := 0
	if cc, ok := c.Conn().(*countedConn); ok {
		n = cc.n
	}
	u.mu.Lock()
	u.sessions++
	u.activeSessions++
	u.mu.Unlock()
	return &upstreamSession{u: u, conn: c, connN: n}, nil
}

type upstreamSession struct {
	u     *Upstream
	conn  *smtp.Conn
	connN int
	msg   UpstreamMessage
	ended bool
}

func (s *upstreamSession) Reset() {
	s.msg = UpstreamMessage{}
}

func (s *upstreamSession) Logout() error {
	if !s.ended {
		s.ended = true
		s.u.mu.Lock()
		s.u.activeSessions--
		s.u.mu.Unlock()
	}
	return nil
}

func (s *upstreamSession) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.u.options().MailError; err != nil {
		return err
	}
	s.msg = UpstreamMessage{From: from, Conn: s.connN}
	if opts != nil {
		s.msg.MailOptions = *opts
	}
	return nil
}

func (s *upstreamSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	for addr, err := range s.u.options().RejectRcpt {
		if strings.EqualFold(addr, to) {
			return err
		}
	}
	s.msg.Rcpts = append(s.msg.Rcpts, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = *opts
	}
	s.msg.RcptOptions = append(s.msg.RcptOptions, o)
	return nil
}

// errDropped ends DATA after the connection was cut on purpose; nobody
// will read the reply.
var errDropped = errors.New("fake upstream dropped the connection on purpose")

func (s *upstreamSession) Data(r io.Reader) error {
	opts := s.u.options()
	var buf bytes.Buffer
	if opts.DropAfterBytes > 0 {
		_, err := io.CopyN(&buf, r, opts.DropAfterBytes)
		if err == nil {
			// Closing the raw connection (not smtp.Conn.Close,
			// which would call Logout) makes the client see EOF
			// mid-DATA, with no reply.
			_ = s.conn.Conn().Close()
			return errDropped
		}
		if err != io.EOF {
			return err
		}
		// The message ended before the drop point: a normal DATA.
	} else if _, err := io.Copy(&buf, r); err != nil {
		// go-smtp reports an over-size message here as an
		// *smtp.SMTPError (552); it becomes the reply.
		return err
	}
	if opts.DataDelay > 0 {
		time.Sleep(opts.DataDelay)
	}
	if opts.DataError != nil {
		return opts.DataError
	}

	s.u.mu.Lock()
	s.u.queued++
	s.msg.QueueID = fmt.Sprintf("FAKE%d", s.u.queued)
	s.msg.Data = buf.Bytes()
	s.u.msgs = append(s.u.msgs, s.msg)
	close(s.u.changed)
	s.u.changed = make(chan struct{})
	s.u.mu.Unlock()
	id := s.msg.QueueID
	s.msg = UpstreamMessage{}
	// go-smtp answers a nil error with a fixed "OK: queued"; an
	// "error" with code 250 is how a backend chooses its own text.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// testLogger sends go-smtp's server errors to the test log, until Close:
// a connection goroutine may still log after that, when the test may have
// ended and t.Log would panic.
type testLogger struct {
	t testing.TB
	u *Upstream
}

func (l testLogger) Printf(format string, v ...interface{}) {
	l.u.mu.Lock()
	defer l.u.mu.Unlock()
	if !l.u.closed {
		l.t.Logf("fake upstream: "+format, v...)
	}
}

func (l testLogger) Println(v ...interface{}) {
	l.Printf("%s", fmt.Sprintln(v...))
}
