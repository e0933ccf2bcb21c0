package dovecot

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/auth"
)

// fakeDovecot plays a Dovecot auth server on a unix socket. Like Dovecot 2.4
// it says nothing until the client's VERSION and CPID arrived. Each AUTH
// line goes to answer, whose return value (if not "") is sent back.
type fakeDovecot struct {
	t         *testing.T
	path      string
	ln        net.Listener
	handshake string
	answer    func(id string, params map[string]string, resp []byte) string

	mu      sync.Mutex
	conns   []net.Conn
	lines   []string // everything the client sent
	accepts int
}

const fakeHandshake = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t42\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"

func newFakeDovecot(t *testing.T, answer func(id string, params map[string]string, resp []byte) string) *fakeDovecot {
	t.Helper()
	f := &fakeDovecot{t: t, path: filepath.Join(t.TempDir(), "auth-client"), handshake: fakeHandshake, answer: answer}
	f.listen()
	t.Cleanup(f.close)
	return f
}

func (f *fakeDovecot) listen() {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatalf("listening on %s: %v", f.path, err)
	}
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.accepts++
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
}

// close stops listening and drops every connection (Dovecot going down).
func (f *fakeDovecot) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ln.Close()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (f *fakeDovecot) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepts
}

func (f *fakeDovecot) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *fakeDovecot) serve(c net.Conn) {
	br := bufio.NewReader(c)
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = c.Write([]byte(s))
	}
	greeted := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		fields := strings.Split(line, "\t")
		switch fields[0] {
		case "CPID":
			if !greeted {
				write(f.handshake)
				greeted = true
			}
		case "AUTH":
			params := map[string]string{}
			var resp []byte
			for _, p := range fields[3:] {
				k, v, _ := strings.Cut(p, "=")
				params[k] = v
				if k == "resp" {
					resp, _ = base64.StdEncoding.DecodeString(v)
				}
			}
			// Answer concurrently so replies can come out of order.
			go func() {
				if a := f.answer(fields[1], params, resp); a != "" {
					write(a + "\n")
				}
			}()
		}
	}
}

// plainFields splits a PLAIN message into authzid, authcid, passwd.
func plainFields(resp []byte) (login, password string) {
	parts := strings.SplitN(string(resp), "\x00", 3)
	if len(parts) != 3 {
		return "", ""
	}
	return parts[1], parts[2]
}

// passwordAnswer accepts password "secret" for any login and answers with
// the login lower-cased as the canonical user=.
func passwordAnswer(id string, params map[string]string, resp []byte) string {
	login, password := plainFields(resp)
	switch password {
	case "secret":
		return "OK\t" + id + "\tuser=" + dovecotTabEscape(strings.ToLower(login))
	case "tempfail":
		return "FAIL\t" + id + "\tuser=" + login + "\ttemp"
	case "tempcode":
		return "FAIL\t" + id + "\tcode=temp_fail\treason=db down"
	case "cont":
		return "CONT\t" + id + "\t"
	case "silence":
		return ""
	default:
		return "FAIL\t" + id + "\tuser=" + login
	}
}

func testRequest(login, password string) auth.Request {
	return auth.Request{Login: login, Password: password, RemoteIP: netip.MustParseAddr("192.0.2.7"), Secured: true}
}

func TestDovecotFakeReplies(t *testing.T) {
	f := newFakeDovecot(t, passwordAnswer)
	d := New("unix", f.path, Options{Timeout: 2 * time.Second}, nil)
	defer d.Close()
	ctx := context.Background()

	res, err := d.Authenticate(ctx, testRequest("Alice@Example.ORG", "secret"))
	if err != nil || res.Login != "alice@example.org" {
		t.Fatalf("right password: %+v, %v; want login alice@example.org (Dovecot's user=)", res, err)
	}
	for _, tc := range []struct {
		password string
		want     error
	}{
		{"wrong", auth.ErrInvalidCredentials},
		{"tempfail", auth.ErrUnavailable},
		{"tempcode", auth.ErrUnavailable},
		{"cont", auth.ErrUnavailable},
	} {
		_, err := d.Authenticate(ctx, testRequest("alice@example.org", tc.password))
		if !errors.Is(err, tc.want) {
			t.Errorf("password %q: %v, want %v", tc.password, err, tc.want)
		}
		if tc.want == auth.ErrUnavailable && errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("password %q: a temporary failure also looks like invalid credentials", tc.password)
		}
	}
	// Login or password with NUL, empty password: rejected before Dovecot.
	for _, req := range []auth.Request{testRequest("a\x00b", "secret"), testRequest("a", "sec\x00ret"), testRequest("a", "")} {
		if _, err := d.Authenticate(ctx, req); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("%q/%q: %v, want ErrInvalidCredentials", req.Login, req.Password, err)
		}
	}

	// What went over the wire: our handshake first, then AUTH with the
	// parameters and resp= last.
	lines := f.sent()
	if len(lines) < 3 || lines[0] != "VERSION\t1\t2" || !strings.HasPrefix(lines[1], "CPID\t") {
		t.Fatalf("client handshake: %q", lines[:min(len(lines), 2)])
	}
	want := "AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.7\tresp=" + plainResponse("Alice@Example.ORG", "secret")
	if lines[2] != want {
		t.Errorf("first AUTH line\n got %q\nwant %q", lines[2], want)
	}
	if f.connections() != 1 {
		t.Errorf("%d connections for sequential requests, want 1", f.connections())
	}
}

// TestDovecotFailNamesUser: FAIL's user= (Dovecot's canonical name of the
// login, e.g. after auth_username_format = %Ln) comes back as auth.Result.Login
// beside auth.ErrInvalidCredentials; a FAIL without user= names nobody.
func TestDovecotFailNamesUser(t *testing.T) {
	f := newFakeDovecot(t, func(id string, _ map[string]string, resp []byte) string {
		login, _ := plainFields(resp)
		if login == "anonymous" {
			return "FAIL\t" + id
		}
		user, _, _ := strings.Cut(strings.ToLower(login), "@") // %Ln
		return "FAIL\t" + id + "\tuser=" + user
	})
	d := New("unix", f.path, Options{Timeout: 2 * time.Second}, nil)
	defer d.Close()
	for login, want := range map[string]string{"Mallory@Example.com": "mallory", "mallory": "mallory", "anonymous": ""} {
		res, err := d.Authenticate(context.Background(), testRequest(login, "wrong"))
		if !errors.Is(err, auth.ErrInvalidCredentials) || res.Login != want {
			t.Errorf("%s: %+v, %v; want ErrInvalidCredentials naming %q", login, res, err, want)
		}
	}
}

func TestDovecotNotSecuredNoRip(t *testing.T) {
	f := newFakeDovecot(t, passwordAnswer)
	d := New("unix", f.path, Options{Service: "sub\tmission"}, nil)
	defer d.Close()
	if _, err := d.Authenticate(context.Background(), auth.Request{Login: "a", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	lines := f.sent()
	want := "AUTH\t1\tPLAIN\tservice=sub\x01tmission\tresp=" + plainResponse("a", "secret")
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("AUTH line\n got %q\nwant %q", got, want)
	}
}

// TestDovecotConcurrentMultiplexed sends many requests at once over one
// connection; the fake answers them in random order, and each caller must
// get its own answer.
func TestDovecotConcurrentMultiplexed(t *testing.T) {
	f := newFakeDovecot(t, func(id string, params map[string]string, resp []byte) string {
		time.Sleep(time.Duration(len(id)%3) * time.Millisecond)
		return passwordAnswer(id, params, resp)
	})
	d := New("unix", f.path, Options{}, nil)
	defer d.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			login := fmt.Sprintf("user%d", i)
			password := "secret"
			if i%3 == 0 {
				password = "wrong"
			}
			res, err := d.Authenticate(context.Background(), testRequest(login, password))
			switch {
			case password == "wrong" && !errors.Is(err, auth.ErrInvalidCredentials):
				errs <- fmt.Errorf("%s wrong password: %v", login, err)
			case password == "secret" && (err != nil || res.Login != login):
				errs <- fmt.Errorf("%s: got %+v, %v", login, res, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.connections() != 1 {
		t.Errorf("%d connections, want 1 shared connection", f.connections())
	}
}

func TestDovecotTimeoutCancels(t *testing.T) {
	f := newFakeDovecot(t, passwordAnswer)
	d := New("unix", f.path, Options{Timeout: 200 * time.Millisecond}, nil)
	defer d.Close()
	start := time.Now()
	_, err := d.Authenticate(context.Background(), testRequest("a", "silence"))
	if !errors.Is(err, auth.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no answer: %v, want ErrUnavailable (deadline exceeded)", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("request took %v with a 200ms timeout", el)
	}
	// The caller's own deadline applies too, and the connection survives.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Authenticate(ctx, testRequest("a", "silence")); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("ctx deadline: %v", err)
	}
	if _, err := d.Authenticate(context.Background(), testRequest("a", "secret")); err != nil {
		t.Fatalf("after timeouts: %v", err)
	}
	waitFor(t, func() bool {
		for _, l := range f.sent() {
			if l == "CANCEL\t1" {
				return true
			}
		}
		return false
	}, "CANCEL for the timed-out request")
}

func TestDovecotReconnects(t *testing.T) {
	f := newFakeDovecot(t, passwordAnswer)
	d := New("unix", f.path, Options{Timeout: time.Second}, nil)
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Authenticate(ctx, testRequest("a", "secret")); err != nil {
		t.Fatal(err)
	}
	f.close() // Dovecot stops
	waitFor(t, func() bool { return d.current() == nil }, "client to notice the closed connection")
	if _, err := d.Authenticate(ctx, testRequest("a", "secret")); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("server down: %v, want ErrUnavailable", err)
	}
	f.listen() // Dovecot is back
	if _, err := d.Authenticate(ctx, testRequest("a", "secret")); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if f.connections() != 2 {
		t.Errorf("%d connections, want 2", f.connections())
	}
}

// A request in flight when the connection drops fails at once as
// unavailable instead of waiting for its timeout.
func TestDovecotInFlightOnDisconnect(t *testing.T) {
	var f *fakeDovecot
	f = newFakeDovecot(t, func(id string, params map[string]string, resp []byte) string {
		go f.close()
		return ""
	})
	d := New("unix", f.path, Options{Timeout: 30 * time.Second}, nil)
	defer d.Close()
	start := time.Now()
	if _, err := d.Authenticate(context.Background(), testRequest("a", "secret")); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v: waited for the timeout instead of the disconnect", el)
	}
}

func TestDovecotHandshakeProblems(t *testing.T) {
	for name, hs := range map[string]string{
		"no PLAIN":      "VERSION\t1\t2\nMECH\tLOGIN\tplaintext\nSPID\t1\nDONE\n",
		"wrong version": "VERSION\t2\t0\nMECH\tPLAIN\nDONE\n",
		"garbage":       "HTTP/1.1 400 Bad Request\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeDovecot(t, passwordAnswer)
			f.handshake = hs
			d := New("unix", f.path, Options{Timeout: 300 * time.Millisecond}, nil)
			defer d.Close()
			if _, err := d.Authenticate(context.Background(), testRequest("a", "secret")); !errors.Is(err, auth.ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		d := New("unix", filepath.Join(t.TempDir(), "none"), Options{}, nil)
		if _, err := d.Authenticate(context.Background(), testRequest("a", "secret")); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("closed client", func(t *testing.T) {
		f := newFakeDovecot(t, passwordAnswer)
		d := New("unix", f.path, Options{}, nil)
		d.Close()
		if _, err := d.Authenticate(context.Background(), testRequest("a", "secret")); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
