package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/proxytest"
	"github.com/postern/postern/proxy/upstream"
)

// fakeAuth is a map of login → password; the login "down@example.test"
// behaves like a backend that is unavailable.
type fakeAuth struct {
	mu    sync.Mutex
	users map[string]string
	calls int
}

func (f *fakeAuth) Authenticate(_ context.Context, req auth.Request) (auth.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if req.Login == "down@example.test" {
		return auth.Result{}, auth.ErrUnavailable
	}
	if pw, ok := f.users[req.Login]; ok && pw == req.Password {
		return auth.Result{Login: req.Login}, nil
	}
	return auth.Result{}, auth.ErrInvalidCredentials
}

const (
	testUser = "alice@example.test"
	testPass = "s3cret"
)

type testEnv struct {
	srv      *Server
	starttls string
	tls      string
	up       *proxytest.Upstream
	log      *logBuffer
	stop     func() // shuts the server down (drain 1 s) and waits
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer runs a Server on loopback ports in front of a fake upstream.
func startServer(t testing.TB, upOpts proxytest.UpstreamOptions, tweak ...func(*Config)) *testEnv {
	t.Helper()
	up := proxytest.StartUpstream(t, upOpts)
	cert, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg := Config{
		Hostname: "submission.test",
		Listeners: []listen.Listener{
			{Mode: listen.ModeStartTLS, Addr: "127.0.0.1:0"},
			{Mode: listen.ModeTLS, Addr: "127.0.0.1:0"},
		},
		TLSConfig:       certs.ServerTLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		Upstream:        upstream.Config{Addr: up.Addr, Timeout: 5 * time.Second},
		Auth:            &fakeAuth{users: map[string]string{testUser: testPass, "bob@example.test": "b0b"}},
		MaxMessageBytes: 1 << 20,
		MaxRecipients:   5,
		CommandTimeout:  10 * time.Second,
		DataTimeout:     20 * time.Second,
		Log:             slog.New(slog.NewTextHandler(logs, nil)),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	addrs := srv.Addrs()
	return &testEnv{srv: srv, starttls: addrs[0].String(), tls: addrs[1].String(), up: up, log: logs, stop: stop}
}

const simpleBody = "Subject: test\r\n\r\nhello\r\n"

// TestReplyTable checks every row of DESIGN.md's protocol table that a
// unit test can reach (the others are end-to-end tests in cmd/postern).
func TestReplyTable(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{
		RejectRcpt: map[string]*smtp.SMTPError{
			"nobody@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown in virtual mailbox table"},
		},
	})

	t.Run("EHLO before TLS offers STARTTLS, not AUTH", func(t *testing.T) {
		c := dialClient(t, env.starttls, false)
		text := c.cmd("EHLO client.test", 250, "STARTTLS")
		if strings.Contains(text, "AUTH") {
			t.Fatalf("AUTH offered before TLS: %q", text)
		}
	})
	t.Run("AUTH before TLS", func(t *testing.T) {
		c := dialClient(t, env.starttls, false)
		c.cmd("EHLO client.test", 250, "")
		c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 530, "5.7.0 Must issue a STARTTLS command first")
	})
	t.Run("MAIL before TLS", func(t *testing.T) {
		c := dialClient(t, env.starttls, false)
		c.cmd("EHLO client.test", 250, "")
		c.cmd("MAIL FROM:<"+testUser+">", 530, "5.7.0 Must issue a STARTTLS command first")
	})
	t.Run("MAIL without AUTH", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.cmd("MAIL FROM:<"+testUser+">", 530, "5.7.0 Authentication required")
	})
	t.Run("wrong password and unknown user: same reply", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.authPlain(testUser, "wrong", 535, "5.7.8 Authentication credentials invalid")
		c.authPlain("nobody@example.test", "wrong", 535, "5.7.8 Authentication credentials invalid")
	})
	t.Run("too many AUTH failures in one session", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.authPlain(testUser, "wrong1", 535, "")
		c.authPlain(testUser, "wrong2", 535, "")
		c.authPlain(testUser, "wrong3", 421, "4.7.0")
		if !c.closed() {
			t.Fatal("connection still open after the third failure")
		}
	})
	t.Run("backend down", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.authPlain("down@example.test", "x", 454, "4.7.0")
		c.authPlain("down@example.test", "x", 454, "4.7.0")
		c.authPlain("down@example.test", "x", 454, "4.7.0")
		if !c.closed() {
			t.Fatal("connection still open after three temporary failures")
		}
	})
	t.Run("AUTH response not base64", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.cmd("AUTH PLAIN !!!notbase64", 501, "5.5.2")
		c.cmd("AUTH PLAIN", 334, "")
		c.cmd("%%%", 501, "5.5.2")
	})
	t.Run("AUTH cancelled", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.cmd("AUTH LOGIN", 334, "")
		c.cmd("*", 501, "")
	})
	t.Run("AUTH PLAIN malformed", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.cmd("AUTH PLAIN bm90IHBsYWlu", 501, "5.5.2 Malformed authentication response")
	})
	t.Run("AUTH LOGIN works", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready("", "")
		c.cmd("AUTH LOGIN", 334, "VXNlcm5hbWU6") // "Username:"
		c.cmd("YWxpY2VAZXhhbXBsZS50ZXN0", 334, "UGFzc3dvcmQ6")
		c.cmd("czNjcmV0", 235, "")
	})
	t.Run("sender not owned", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		c.cmd("MAIL FROM:<bob@example.test>", 553, "5.7.1 Sender address rejected: not owned by user")
		c.cmd("MAIL FROM:<>", 250, "") // null sender allowed
	})
	t.Run("more recipients than the limit", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		c.cmd("MAIL FROM:<"+testUser+">", 250, "")
		for i := 0; i < 5; i++ {
			c.cmd("RCPT TO:<r"+string(rune('a'+i))+"@example.test>", 250, "")
		}
		c.cmd("RCPT TO:<extra@example.test>", 452, "4.5.3")
	})
	t.Run("NUL in a command", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		c.cmd("MAIL FROM:<alice\x00@example.test>", 501, "")
	})
	t.Run("over-long command line", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		c.cmd("NOOP "+strings.Repeat("x", 3000), 500, "")
	})
	t.Run("upstream refuses a recipient", func(t *testing.T) {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		c.cmd("MAIL FROM:<"+testUser+">", 250, "")
		c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1 User unknown in virtual mailbox table")
	})
	t.Run("accepted: the upstream's 250 with its queue id", func(t *testing.T) {
		c := dialClient(t, env.tls, true)
		c.cmd("EHLO client.test", 250, "AUTH PLAIN LOGIN")
		c.authPlain(testUser, testPass, 235, "")
		code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody)
		if code != 250 || !strings.Contains(text, "queued as FAKE") {
			t.Fatalf("got %d %q", code, text)
		}
	})
}

func TestMyNetworksRelayWithoutAuth(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) {
		c.MyNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := dialClient(t, env.starttls, false).ready("", "")
	code, text := c.sendMessage("anyone@example.org", []string{"x@example.test"}, simpleBody)
	if code != 250 {
		t.Fatalf("got %d %q", code, text)
	}
	msgs := env.up.WaitMessages(t, 1, 5*time.Second)
	if !strings.Contains(string(msgs[0].Data), "with ESMTPS id") {
		t.Fatalf("want protocol ESMTPS for TLS without AUTH:\n%s", msgs[0].Data)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("EHLO client.test", 250, "SIZE 1048576")
	c.cmd("MAIL FROM:<"+testUser+"> SIZE=2000000", 552, "5.3.4")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("a", 998)+"\r\n", 1100)
	code, msg := c.sendMessage(testUser, []string{"bob@example.test"}, big)
	if code != 552 || !strings.Contains(msg, "5.3.4") {
		t.Fatalf("got %d %q", code, msg)
	}
	// The session is still usable and nothing reached the upstream.
	code, _ = c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody)
	if code != 250 {
		t.Fatalf("next message got %d", code)
	}
	msgs := env.up.WaitMessages(t, 1, 5*time.Second)
	c.cmd("QUIT", 221, "")
	waitUpstreamClosed(t, env.up)
	if n := len(env.up.Messages()); n != 1 || !strings.Contains(string(msgs[0].Data), "hello") {
		t.Fatalf("upstream got %d messages", n)
	}
}

func TestSmugglingRejectedNothingDelivered(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	for name, payload := range map[string]string{
		"LF.LF": "\n.\n", "CRLF.LF": "\r\n.\n", "LF.CRLF": "\n.\r\n", "CR.CRLF": "\r.\r\n", "NUL": "\x00\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := dialClient(t, env.starttls, false).ready(testUser, testPass)
			code, text := c.sendMessage(testUser, []string{"bob@example.test"},
				"Subject: x\r\n\r\nhello"+payload+"MAIL FROM:<evil@example.test>\r\n")
			if code != 554 {
				t.Fatalf("got %d %q", code, text)
			}
			c.cmd("NOOP", 250, "") // session still in sync
			c.cmd("QUIT", 221, "")
		})
	}
	waitUpstreamClosed(t, env.up)
	if n := len(env.up.Messages()); n != 0 {
		t.Fatalf("upstream got %d messages", n)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		env := startServer(t, proxytest.UpstreamOptions{})
		env.up.Close()
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		// MAIL goes upstream with the first RCPT: the failure is its reply.
		c.cmd("MAIL FROM:<"+testUser+">", 250, "")
		c.cmd("RCPT TO:<bob@example.test>", 451, "4.4.1")
	})
	t.Run("closes mid-DATA", func(t *testing.T) {
		env := startServer(t, proxytest.UpstreamOptions{DropAfterBytes: 1000})
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		body := "Subject: x\r\n\r\n" + strings.Repeat("line of text\r\n", 1000)
		code, text := c.sendMessage(testUser, []string{"bob@example.test"}, body)
		if code/100 != 4 {
			t.Fatalf("got %d %q, want 4xx", code, text)
		}
		// A retry on the same session opens a new upstream connection.
		env.up.SetOptions(proxytest.UpstreamOptions{})
		code, text = c.sendMessage(testUser, []string{"bob@example.test"}, body)
		if code != 250 {
			t.Fatalf("retry got %d %q", code, text)
		}
		if n := len(env.up.WaitMessages(t, 1, 5*time.Second)); n != 1 {
			t.Fatalf("upstream recorded %d messages, want exactly 1", n)
		}
	})
	t.Run("DATA refused", func(t *testing.T) {
		env := startServer(t, proxytest.UpstreamOptions{DataError: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}})
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody)
		if code != 554 || !strings.Contains(text, "5.7.1 spam") {
			t.Fatalf("got %d %q", code, text)
		}
	})
	t.Run("slow beyond the upstream timeout", func(t *testing.T) {
		env := startServer(t, proxytest.UpstreamOptions{DataDelay: 3 * time.Second}, func(c *Config) {
			c.Upstream.Timeout = 500 * time.Millisecond
		})
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody)
		if code/100 != 4 {
			t.Fatalf("got %d %q, want 4xx", code, text)
		}
	})
}

func TestUpstreamConnectionReused(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	for i := 0; i < 3; i++ {
		if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
			t.Fatalf("message %d: %d %q", i, code, text)
		}
	}
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RSET", 250, "")
	if code, _ := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
		t.Fatal("after RSET")
	}
	c.cmd("QUIT", 221, "")
	env.up.WaitMessages(t, 4, 5*time.Second)
	if n := env.up.Connections(); n != 1 {
		t.Fatalf("upstream connections = %d, want 1 for one client session", n)
	}
	waitUpstreamClosed(t, env.up)
}

// waitUpstreamClosed waits until the upstream has closed every connection
// (after the client sessions ended): all Postern sent it has then been
// processed, so a count of messages is final.
func waitUpstreamClosed(t *testing.T, up *proxytest.Upstream) {
	t.Helper()
	up.WaitConnectionsClosed(t, 5*time.Second)
}

func TestReceivedAndHeaderStripping(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	body := "X-Originating-IP: [198.51.100.9]\r\nSubject: x\r\n\r\nhi\r\n"
	if code, _ := c.sendMessage(testUser, []string{"bob@example.test"}, body); code != 250 {
		t.Fatal("not accepted")
	}
	got := string(env.up.WaitMessages(t, 1, 5*time.Second)[0].Data)
	if !strings.HasPrefix(got, "Received: from [127.0.0.1] (localhost [127.0.0.1])\r\n\tby submission.test (Postern) with ESMTPSA id ") {
		t.Fatalf("got:\n%s", got)
	}
	if strings.Contains(got, "198.51.100.9") || strings.Contains(got, "client.test") {
		t.Fatalf("leak:\n%s", got)
	}
	if !strings.HasSuffix(got, "Subject: x\r\n\r\nhi\r\n") {
		t.Fatalf("body changed:\n%q", got)
	}
}

// fakeLimiter blocks an address after its first failure.
type fakeLimiter struct {
	mu      sync.Mutex
	blocked map[netip.Addr]bool
}

func (f *fakeLimiter) Blocked(ip netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[ip]
}
func (f *fakeLimiter) Failure(ip netip.Addr, _ ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[ip] = true
}
func (f *fakeLimiter) Reserve(ip netip.Addr) bool     { return !f.Blocked(ip) }
func (f *fakeLimiter) Release(netip.Addr)             {}
func (f *fakeLimiter) ReservedUnavailable(netip.Addr) {}
func (f *fakeLimiter) ReservedFailure(ip netip.Addr, logins ...string) {
	f.Failure(ip, logins...)
}
func (f *fakeLimiter) Success(netip.Addr, ...string)   {}
func (f *fakeLimiter) LoginDelay(string) time.Duration { return 0 }
func (f *fakeLimiter) LockedOut(netip.Addr, string)    {}

func TestLockedOutAddress(t *testing.T) {
	lim := &fakeLimiter{blocked: map[netip.Addr]bool{}}
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) { c.Limiter = lim })
	c := dialClient(t, env.starttls, false).ready("", "")
	c.authPlain(testUser, "wrong", 421, "4.7.0")
	if !c.closed() {
		t.Fatal("not closed")
	}
	c = dialClient(t, env.starttls, false).ready("", "")
	c.authPlain(testUser, testPass, 421, "4.7.0") // even the right password
	if !strings.Contains(env.log.String(), `msg="auth failed"`) {
		t.Fatal("no auth failed log line")
	}
}

// TestShutdownDrainsInFlight: at shutdown an idle session gets 421 4.3.2
// and is closed at once, by go-smtp from the session's goroutine; a message
// in flight is finished, answered with the upstream's 250, then 421.
func TestShutdownDrainsInFlight(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	idle := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RCPT TO:<bob@example.test>", 250, "")
	c.cmd("DATA", 354, "")
	c.sendRaw("Subject: in flight\r\n\r\nfirst half\r\n")
	stopped := make(chan struct{})
	go func() { env.stop(); close(stopped) }()
	// The idle session is told the service is going away, and closed, as
	// soon as the shutdown has begun.
	idle.expect(421, "4.3.2 Service shutting down")
	if !idle.closed() {
		t.Fatal("idle session still open after its 421")
	}
	// The listeners were closed before that: new connections are refused.
	if conn, err := net.DialTimeout("tcp", env.starttls, time.Second); err == nil {
		conn.Close()
		t.Fatal("still accepting connections after shutdown began")
	}
	// The message in flight completes and is answered by the upstream.
	c.sendRaw("second half\r\n.\r\n")
	c.expect(250, "queued as FAKE")
	// Now idle too: it is ended like the other one.
	c.expect(421, "4.3.2")
	if !c.closed() {
		t.Fatal("session still open after its 421")
	}
	<-stopped
	if n := len(env.up.WaitMessages(t, 1, 5*time.Second)); n != 1 {
		t.Fatalf("upstream got %d messages", n)
	}
}

// TestShutdownDrainEnds: a message still coming in when the drain (1 s
// here) ends is answered 421 4.3.2, not delivered, and the session closed:
// not a bare cut.
func TestShutdownDrainEnds(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{})
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	c.cmd("MAIL FROM:<"+testUser+">", 250, "")
	c.cmd("RCPT TO:<bob@example.test>", 250, "")
	c.cmd("DATA", 354, "")
	c.sendRaw("Subject: never finished\r\n\r\nfirst half\r\n")
	env.stop()
	c.expect(421, "4.3.2 Service shutting down")
	if !c.closed() {
		t.Fatal("session still open after its 421")
	}
	waitUpstreamClosed(t, env.up)
	if n := len(env.up.Messages()); n != 0 {
		t.Fatalf("upstream got %d messages", n)
	}
}

func TestUpstreamPoolAcrossSessions(t *testing.T) {
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) { c.UpstreamPool = 2 })
	for i := 0; i < 3; i++ {
		c := dialClient(t, env.starttls, false).ready(testUser, testPass)
		if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
			t.Fatalf("session %d: %d %q", i, code, text)
		}
		c.cmd("QUIT", 221, "")
		c.closed()
	}
	env.up.WaitMessages(t, 3, 5*time.Second)
	if n := env.up.Connections(); n != 1 {
		t.Fatalf("upstream connections = %d, want 1 shared by three sessions", n)
	}
	// A pooled connection the upstream has closed meanwhile is replaced
	// transparently.
	env.up.SetOptions(proxytest.UpstreamOptions{})
	env.up.DropIdle()
	c := dialClient(t, env.starttls, false).ready(testUser, testPass)
	if code, text := c.sendMessage(testUser, []string{"bob@example.test"}, simpleBody); code != 250 {
		t.Fatalf("after the upstream dropped the pooled connection: %d %q", code, text)
	}
}
