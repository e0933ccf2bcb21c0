package main

// End-to-end tests of running Postern in production (issue 5), against the
// built binary and real components: HAProxy with PROXY protocol v2 in front
// of two instances, the PROXY protocol trust boundary, the SIGTERM drain of a
// large message, SIGHUP under load, the metrics/health endpoints and the
// healthcheck command, XCLIENT against Postfix's own sender checks, and
// STARTTLS towards the upstream.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// opsDial connects from localIP to addr, writes preamble (a PROXY protocol
// header, say) at once if there is one, and returns a client that is ready
// for AUTH (banner, EHLO, STARTTLS, handshake, EHLO), like dialFrom.
func opsDial(t *testing.T, addr, localIP, preamble string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s from %s: %v", addr, localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	if preamble != "" {
		if _, err := io.WriteString(conn, preamble); err != nil {
			t.Fatalf("writing the preamble: %v", err)
		}
	}
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.expect("", "220")
	c.expect("EHLO client.test", "250")
	c.expect("STARTTLS", "220")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.conn, c.br = tc, bufio.NewReader(tc)
	c.expect("EHLO client.test", "250")
	return c
}

// opsPublicDir is a fresh directory the unprivileged Postfix daemons can
// traverse (t.TempDir sits below a 0700 directory).
func opsPublicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "postern-ops-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// opsWriteCert writes a self-signed ECDSA certificate for localhost and
// 127.0.0.1 valid until notAfter, replacing the files atomically (rename),
// as certbot does. The key is 0600, the certificate 0644.
func opsWriteCert(t *testing.T, certFile, keyFile string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, cert := certstest.SelfSignedUntil(t, notAfter, "localhost", "127.0.0.1")
	opsWriteAtomic(t, keyFile, string(keyPEM), 0o600)
	opsWriteAtomic(t, certFile, string(certPEM), 0o644)
	return cert
}

// opsWriteAtomic replaces path with content through a rename, so a reader
// never sees a half-written file.
func opsWriteAtomic(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// opsSendOnce submits one message in its own session with go-smtp's client
// and returns the first error. It does not touch t: senders run in
// goroutines.
func opsSendOnce(addr, login, password, from, subject string) error {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	if err := c.Auth(sasl.NewPlainClient("", login, password)); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	body := "From: <" + from + ">\r\nSubject: " + subject + "\r\n\r\nhello from " + subject + "\r\n"
	if err := c.SendMail(from, []string{"friend@example.test"}, strings.NewReader(body)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// 1. HAProxy with send-proxy-v2 in front of two instances.

// TestOpsHAProxyE2E: a client on 127.0.0.9 reaches two instances through
// HAProxy (mode tcp, send-proxy-v2, balance roundrobin, check). Both
// instances see and log 127.0.0.9, not HAProxy's 127.0.0.1; failures from
// 127.0.0.9 lock out 127.0.0.9 only (other clients behind the same HAProxy
// and HAProxy's own address keep working); when one instance is stopped with
// SIGTERM the next messages go through the other.
func TestOpsHAProxyE2E(t *testing.T) {
	t.Parallel()
	testkit.RequireTool(t, "haproxy") // before starting Postfix and the instances
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	users := cheapUsers(t)
	flags := []string{"--proxy-protocol-from", "127.0.0.1/32",
		"--auth-max-failures", "3", "--auth-lockout-window", "10m",
		"--max-auth-failures-per-connection", "10"}
	p1 := startPosternUsers(t, pf.Addr, users, flags...)
	p2 := startPosternUsers(t, pf.Addr, users, flags...)

	// "both" balances over the two instances; "one" reaches p1 only, so
	// the lockout part does not depend on where round robin sends each
	// connection (lockout counters are per instance).
	h := testkit.StartHAProxy(t, []string{p1.StartTLS, p2.StartTLS}, testkit.HAProxyOptions{HealthCheck: true})
	both, one := h.Balanced, h.Only[0]
	delivered := 0

	// Mail through HAProxy from 127.0.0.9: round robin spreads the
	// sessions over both instances, and each logs the real client.
	const n = 4
	for i := 0; i < n; i++ {
		c := opsDial(t, both, "127.0.0.9", "")
		expectReply(t, "AUTH via HAProxy", c.auth(aliceLogin, alicePass), "235")
		expectQueued(t, "message via HAProxy", c.send(aliceLogin, "friend@example.test", fmt.Sprintf("haproxy-%d", i)))
		c.expect("QUIT", "221")
	}
	delivered += n
	pf.WaitMessages(t, delivered, 30*time.Second)
	testkit.WaitOutputs(t, "auth ok lines for 127.0.0.9", 10*time.Second, func() bool {
		return logCount(p1, "auth ok", "127.0.0.9")+logCount(p2, "auth ok", "127.0.0.9") == n
	}, p1.proc, p2.proc)
	ok1, ok2 := logCount(p1, "auth ok", "127.0.0.9"), logCount(p2, "auth ok", "127.0.0.9")
	if ok1 == 0 || ok2 == 0 {
		t.Fatalf("round robin: p1 saw %d sessions of 127.0.0.9, p2 %d; want both > 0", ok1, ok2)
	}
	t.Logf("round robin: p1 %d sessions, p2 %d", ok1, ok2)
	for _, p := range []*postern{p1, p2} {
		log := p.Log()
		if !strings.Contains(log, "client=127.0.0.9 version=") {
			t.Errorf("no TLS line naming client=127.0.0.9:\n%s", log)
		}
		if n := logCount(p, "auth ok", "127.0.0.1"); n != 0 {
			t.Errorf("%d auth ok lines name HAProxy's address 127.0.0.1 as the client", n)
		}
	}

	t.Run("lockout of the client behind HAProxy", func(t *testing.T) {
		c := opsDial(t, one, "127.0.0.9", "")
		expectReply(t, "wrong password 1", c.auth(aliceLogin, "wrong-1"), "535 5.7.8")
		expectReply(t, "wrong password 2", c.auth(aliceLogin, "wrong-2"), "535 5.7.8")
		r := c.auth(aliceLogin, "wrong-3")
		expectReply(t, "wrong password 3", r, "421 4.7.0")
		if !strings.Contains(r, "from your address") {
			t.Fatalf("3rd failure: %q is not the address lockout", r)
		}
		if !c.closed() {
			t.Fatal("connection still open after the lockout 421")
		}
		// The right password from 127.0.0.9: still refused.
		c = opsDial(t, one, "127.0.0.9", "")
		expectReply(t, "right password from the blocked client", c.auth(aliceLogin, alicePass), "421 4.7.0")
		// Another client behind the same HAProxy (same TCP peer as
		// 127.0.0.9) is not blocked.
		c = opsDial(t, one, "127.0.0.10", "")
		expectReply(t, "AUTH from 127.0.0.10 via HAProxy", c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message from 127.0.0.10", c.send(aliceLogin, "friend@example.test", "haproxy-other-client"), "250")
		// Nor is HAProxy's own address 127.0.0.1, connecting directly.
		// A header-less connection from a trusted proxy address waits
		// for the PROXY header timeout, so say "PROXY UNKNOWN" (v1:
		// use the connection's own addresses), as a health check would.
		c = opsDial(t, p1.StartTLS, "127.0.0.1", "PROXY UNKNOWN\r\n")
		expectReply(t, "AUTH from 127.0.0.1 directly", c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message from 127.0.0.1", c.send(aliceLogin, "friend@example.test", "haproxy-direct"), "250")
		delivered += 2
		pf.WaitMessages(t, delivered, 30*time.Second)

		waitLogCount(t, p1, "auth failed", "127.0.0.9", 3)
		waitLogCount(t, p1, "auth lockout: address blocked", "127.0.0.9", 1)
		waitLogCount(t, p1, "auth ok", "127.0.0.10", 1)
		waitLogCount(t, p1, "auth ok", "127.0.0.1", 1)
		for _, msg := range []string{"auth failed", "auth lockout: address blocked", "auth locked out"} {
			if n := logCount(p1, msg, "127.0.0.1"); n != 0 {
				t.Errorf("%d %q lines for HAProxy's address 127.0.0.1", n, msg)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("one instance stopped", func(t *testing.T) {
		// Stop p1 (where 127.0.0.9 is locked out, so a message that
		// reaches p1 would fail visibly) and send without waiting for
		// HAProxy's check to notice.
		okBefore := logCount(p2, "auth ok", "127.0.0.9")
		if err := p1.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Its listeners close right after this line: from then on a
		// connection HAProxy sends there is refused and redispatched
		// (before that, p1 would accept it and end it with 421).
		p1.waitLog(t, `msg="shutting down"`, 10*time.Second)
		testkit.WaitNotListening(t, p1.StartTLS, 10*time.Second)
		const m = 6
		for i := 0; i < m; i++ {
			c := opsDial(t, both, "127.0.0.9", "")
			expectReply(t, fmt.Sprintf("AUTH %d after SIGTERM of p1", i), c.auth(aliceLogin, alicePass), "235")
			expectQueued(t, fmt.Sprintf("message %d after SIGTERM of p1", i),
				c.send(aliceLogin, "friend@example.test", fmt.Sprintf("haproxy-failover-%d", i)))
			c.expect("QUIT", "221")
		}
		delivered += m
		pf.WaitMessages(t, delivered, 30*time.Second)
		waitLogCount(t, p2, "auth ok", "127.0.0.9", okBefore+m)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := p1.proc.Wait(ctx); err != nil {
			t.Fatalf("p1 after SIGTERM: %v\n%s", err, p1.Log())
		}
	})
	// Nothing more is on its way: whatever Postfix accepted is delivered.
	pf.WaitQueueEmpty(t, 30*time.Second)
	if got := len(pf.Messages(t)); got != delivered {
		t.Fatalf("Postfix delivered %d messages, want %d", got, delivered)
	}
}

// waitFor polls cond for up to 10 s, for a state only a request can see
// (an HTTP status); a condition on the log waits on its writes instead
// (testkit.Process.WaitOutput).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// PROXY protocol trust boundary (no HAProxy needed).

// TestOpsProxyProtocolTrustE2E: a PROXY header from an address outside
// --proxy-protocol-from is just a bad command (v1) or makes the session end
// (v2, whose signature contains "QUIT"), and the address it claims appears
// nowhere; from a trusted address a v1 header is honoured for mynetworks and
// the logs.
func TestOpsProxyProtocolTrustE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	untrusted := startPosternUsers(t, up.Addr, cheapUsers(t), "--proxy-protocol-from", "10.0.0.0/8",
		"--mynetworks", "1.2.3.0/24")

	t.Run("untrusted v1", func(t *testing.T) {
		conn, err := net.Dial("tcp", untrusted.StartTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
		// As a load balancer would: the header first, before the banner.
		if _, err := io.WriteString(conn, "PROXY TCP4 1.2.3.4 127.0.0.1 40000 587\r\n"); err != nil {
			t.Fatal(err)
		}
		c.expect("", "220")
		r := c.cmd("")
		if r[0] != '5' {
			t.Fatalf("reply to an untrusted PROXY line: %q, want 5xx", r)
		}
		c.expect("EHLO client.test", "250")
		c.expect("STARTTLS", "220")
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c.conn, c.br = tc, bufio.NewReader(tc)
		c.expect("EHLO client.test", "250")
		// 1.2.3.0/24 is in mynetworks: were the header honoured, MAIL
		// without AUTH would pass.
		expectReply(t, "MAIL without AUTH", c.cmd("MAIL FROM:<x@example.test>"), "530 5.7.0")
		expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
		waitLogCount(t, untrusted, "auth ok", "127.0.0.1", 1)
	})

	t.Run("untrusted v2", func(t *testing.T) {
		conn, err := net.Dial("tcp", untrusted.StartTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hdr := []byte("\r\n\r\n\x00\r\nQUIT\n")
		hdr = append(hdr, 0x21, 0x11, 0x00, 12, // v2 PROXY, TCP over IPv4, 12 address bytes
			1, 2, 3, 4, 127, 0, 0, 1, 0x9c, 0x40, 0x02, 0x4b)
		if _, err := conn.Write(hdr); err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("session after an untrusted v2 header did not end: %v (got %q)", err, out)
		}
		if !strings.HasPrefix(string(out), "220 ") || !strings.Contains(string(out), "\r\n221 ") {
			t.Fatalf("transcript after an untrusted v2 header: %q; want the banner, errors and 221", out)
		}
	})
	// Both sessions are over (each subtest closed its connection), so
	// everything they could have logged is in the log.
	untrusted.proc.WaitOutput(t, "the end of both untrusted sessions", 10*time.Second, func(out string) bool {
		return strings.Count(out, "msg=disconnect ") >= 2
	})
	if strings.Contains(untrusted.Log(), "1.2.3.4") {
		t.Fatalf("the untrusted header's address reached the log:\n%s", untrusted.Log())
	}

	t.Run("trusted v1", func(t *testing.T) {
		trusted := startPosternUsers(t, up.Addr, cheapUsers(t), "--proxy-protocol-from", "127.0.0.0/8",
			"--mynetworks", "192.0.2.0/24")
		// 192.0.2.7 is in mynetworks: relays without AUTH.
		c := opsDial(t, trusted.StartTLS, "127.0.0.1", "PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n")
		expectReply(t, "MAIL from a mynetworks client via PROXY", c.cmd("MAIL FROM:<relay@example.test>"), "250")
		c.expect("RCPT TO:<friend@example.test>", "250")
		c.expect("DATA", "354")
		expectReply(t, "end of data", c.cmd("Subject: proxy-v1-mynetworks\r\n\r\nhi\r\n."), "250")
		// The same proxy without a client address (UNKNOWN): 127.0.0.1
		// is not in mynetworks.
		c = opsDial(t, trusted.StartTLS, "127.0.0.1", "PROXY UNKNOWN\r\n")
		expectReply(t, "MAIL from 127.0.0.1", c.cmd("MAIL FROM:<relay@example.test>"), "530 5.7.0")
		up.WaitMessages(t, 1, 10*time.Second)
		trusted.waitLog(t, "client=192.0.2.7 version=", 10*time.Second)
	})
}

// ---------------------------------------------------------------------------
// 2. SIGTERM during a 20 MB DATA.

// TestOpsSIGTERMDuringDataE2E: SIGTERM arrives in the middle of a 20 MB
// message. The listeners close at once (new connections are refused), the
// message in flight is finished and answered with Postfix's 250, Postfix
// delivers it exactly once, and postern exits 0 within the drain time.
func TestOpsSIGTERMDuringDataE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--shutdown-timeout", "30s")
	body := bigBody(20 << 20)

	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	c.expect("MAIL FROM:<"+aliceLogin+"> SIZE="+strconv.Itoa(len(body)), "250")
	c.expect("RCPT TO:<friend@example.test>", "250")
	c.expect("DATA", "354")
	half := len(body) / 2
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.conn.Write(body[:half]); err != nil {
		t.Fatalf("writing the first half: %v", err)
	}

	signalled := time.Now()
	if err := p.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `msg="shutting down"`, 10*time.Second)
	// The listeners are closed right after that line is written. Waiting
	// on the socket table, not on a probe connection: one accepted before
	// the close would count as a connection after SIGTERM.
	for _, addr := range []string{p.StartTLS, p.TLS} {
		testkit.WaitNotListening(t, addr, 10*time.Second)
	}
	for _, addr := range []string{p.StartTLS, p.TLS} {
		for i := 0; i < 3; i++ {
			conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err == nil {
				conn.Close()
				t.Fatalf("%s accepted a connection after SIGTERM", addr)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dialing %s after SIGTERM: %v, want connection refused", addr, err)
			}
		}
	}
	select {
	case <-p.proc.Done():
		t.Fatalf("postern exited with a message in flight:\n%s", p.Log())
	default:
	}

	// Finish the message: Postfix's own 250 is passed on.
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.conn.Write(body[half:]); err != nil {
		t.Fatalf("writing the second half after SIGTERM: %v", err)
	}
	reply := c.cmd(".")
	t.Logf("reply after SIGTERM: %q", reply)
	switch {
	case strings.HasPrefix(reply, "250 ") && queuedByPostfix(reply):
		msgs := pf.WaitMessages(t, 1, 30*time.Second)
		if m := findSubject(t, msgs, "big"); !strings.Contains(string(m.Data), string(body[len(body)-200:])) {
			t.Fatal("delivered message is not the whole body")
		}
	case strings.HasPrefix(reply, "4"):
		// Allowed by the contract, but then nothing may be delivered.
	default:
		t.Fatalf("reply to the final dot after SIGTERM: %q, want 250 or 4xx", reply)
	}
	// After its message the session is ended with 421 4.3.2.
	if r := c.cmd(""); !strings.HasPrefix(r, "421 4.3.2") {
		t.Errorf("after the message: %q, want 421 4.3.2", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	if err := p.proc.Wait(ctx); err != nil {
		t.Fatalf("postern after SIGTERM: %v (want exit 0)\n%s", err, p.Log())
	}
	t.Logf("postern exited %v after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	if strings.Contains(p.Log(), "drain timeout") {
		t.Errorf("drain timed out:\n%s", p.Log())
	}
	// Exactly once: postern has exited, so all it handed to Postfix is in
	// Postfix's queue or delivered; an empty queue leaves nothing to come.
	pf.WaitQueueEmpty(t, 10*time.Second)
	want := 0
	if strings.HasPrefix(reply, "250") {
		want = 1
	}
	if got := len(pf.Messages(t)); got != want {
		t.Fatalf("Postfix delivered %d messages, want %d (reply %q)", got, want, reply)
	}
	// No connection was accepted after the signal.
	log := p.Log()
	after := log[strings.Index(log, `msg="shutting down"`):]
	if n := strings.Count(after, "msg=connect "); n != 0 {
		t.Fatalf("%d connections accepted after SIGTERM:\n%s", n, after)
	}
}

// ---------------------------------------------------------------------------
// 3. SIGHUP under a steady stream of messages.

// TestOpsSIGHUPUnderLoadE2E: four senders submit messages for about five
// seconds while the users file, the sender map and the certificate are
// replaced and SIGHUP is sent repeatedly: no session fails, every message
// is delivered once.
func TestOpsSIGHUPUnderLoadE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	senderMap := filepath.Join(t.TempDir(), "senders")
	writeFile(t, senderMap, "shared@example.test alice@example.test, bob@example.test\n")
	p := startPostern(t, pf.Addr, "--sender-map", senderMap, "--auth-cache-ttl", "0")
	certFile, keyFile := filepath.Join(p.Dir, "cert.pem"), filepath.Join(p.Dir, "key.pem")

	// The run lasts at least duration and until enough has happened (a
	// loaded CI machine with a -race binary is slow), at most limit.
	const senders, perSender, duration, limit = 4, 30, 5 * time.Second, 60 * time.Second
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		sent   int
		failed []string
		done   atomic.Bool
	)
	start := time.Now()
	for i := 0; i < senders; i++ {
		login, pass := aliceLogin, alicePass
		if i%2 == 1 {
			login, pass = bobLogin, bobPass
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perSender && !done.Load(); j++ {
				from := login
				if j%3 == 2 {
					from = "shared@example.test" // granted by the sender map
				}
				err := opsSendOnce(p.StartTLS, login, pass, from, fmt.Sprintf("hup-load-%d-%d", i, j))
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("sender %d message %d: %v", i, j, err))
				} else {
					sent++
				}
				mu.Unlock()
			}
		}()
	}
	hups := 0
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(start) >= duration && hups >= 5 && sent >= 2*senders
	}
	for !enough() && time.Since(start) < limit {
		time.Sleep(300 * time.Millisecond) // pacing: messages flow between reloads (not synchronisation)
		// Replace what SIGHUP reloads (same passwords and grants, new
		// hashes and certificate), then signal and wait for the reload.
		opsWriteAtomic(t, p.UsersFile, cheapUsers(t), 0o600)
		opsWriteAtomic(t, senderMap, "shared@example.test alice@example.test, bob@example.test\n", 0o644)
		opsWriteCert(t, certFile, keyFile, time.Now().Add(90*24*time.Hour))
		hup(t, p)
		hups++
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d messages from %d senders in %v with %d reloads", sent, senders, time.Since(start).Round(time.Millisecond), hups)
	if len(failed) > 0 {
		t.Fatalf("%d failed sessions under SIGHUP:\n%s\npostern log:\n%s", len(failed), strings.Join(failed, "\n"), p.Log())
	}
	if hups < 5 || sent < 2*senders {
		t.Fatalf("too little happened: %d reloads, %d messages", hups, sent)
	}
	if n := strings.Count(p.Log(), "msg=reloaded ok=true"); n != hups {
		t.Fatalf("%d successful reloads logged, want %d:\n%s", n, hups, p.Log())
	}
	pf.WaitMessages(t, sent, 60*time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second)
	if got := len(pf.Messages(t)); got != sent {
		t.Fatalf("Postfix delivered %d messages, want %d", got, sent)
	}
}

// ---------------------------------------------------------------------------
// 4. /metrics, /healthz, /readyz and `postern healthcheck`.

// opsScrape fetches a Prometheus text exposition and returns each series
// ("name{labels}" as printed) with its value.
func opsScrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %v %s", url, err, resp.Status)
	}
	series := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series, string(raw)
}

func opsStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOpsMetricsE2E: after a run the counters moved as expected; the health
// endpoints and `postern healthcheck` follow the upstream's state.
func TestOpsMetricsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--metrics", anyPort, "--pprof")
	base := "http://" + p.metricsAddr(t)
	listener := `listener="starttls:` + p.StartTLS[strings.LastIndexByte(p.StartTLS, ':')+1:] + `"`

	before, _ := opsScrape(t, base+"/metrics")

	// The run: one message, one wrong password, one failed TLS handshake.
	msgBody := "Subject: metrics\r\n\r\n" + strings.Repeat("metrics body line\r\n", 100)
	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	if err := c.SendMail(aliceLogin, []string{"friend@example.test"}, strings.NewReader(msgBody)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	pf.WaitMessages(t, 1, 30*time.Second)
	bad := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "wrong password", bad.auth(aliceLogin, "wrong"), "535 5.7.8")
	bad.conn.Close()
	raw, err := net.Dial("tcp", p.StartTLS)
	if err != nil {
		t.Fatal(err)
	}
	rc := &client{t: t, conn: raw, br: bufio.NewReader(raw)}
	rc.expect("", "220")
	rc.expect("EHLO client.test", "250")
	rc.expect("STARTTLS", "220")
	// A client that does not trust the certificate aborts the handshake.
	if err := tls.Client(raw, &tls.Config{ServerName: "localhost"}).Handshake(); err == nil {
		t.Fatal("handshake with an untrusted certificate succeeded")
	}
	raw.Close()

	// Every session has ended once each connect line has its disconnect
	// line, which the server logs after counting the session's metrics.
	p.proc.WaitOutput(t, "a disconnect line for every connection", 10*time.Second, func(out string) bool {
		return strings.Count(out, "msg=disconnect ") == strings.Count(out, "msg=connect ")
	})
	after, text := opsScrape(t, base+"/metrics")
	delta := func(series string) float64 { return after[series] - before[series] }
	expectDelta := func(series string, want float64) {
		t.Helper()
		if got := delta(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	expectDelta(`postern_connections_total{`+listener+`}`, 3)
	expectDelta(`postern_auth_total{backend="file",result="ok"}`, 1)
	expectDelta(`postern_auth_total{backend="none",result="invalid"}`, 1)
	expectDelta(`postern_messages_total{result="accepted"}`, 1)
	expectDelta(`postern_upstream_replies_total{class="2xx",stage="connect"}`, 1)
	expectDelta(`postern_upstream_replies_total{class="2xx",stage="mail"}`, 1)
	expectDelta(`postern_upstream_replies_total{class="2xx",stage="rcpt"}`, 1)
	expectDelta(`postern_upstream_replies_total{class="2xx",stage="data"}`, 1)
	expectDelta(`postern_upstream_latency_seconds_count{stage="connect"}`, 1)
	expectDelta(`postern_upstream_latency_seconds_count{stage="data"}`, 1)
	expectDelta(`postern_tls_handshakes_total{version="TLS 1.3"}`, 2)
	expectDelta(`postern_tls_handshake_failures_total{`+listener+`}`, 1)
	if got := delta(`postern_forwarded_bytes_total`); got < float64(len(msgBody)) {
		t.Errorf("postern_forwarded_bytes_total moved by %v, want >= %d", got, len(msgBody))
	}
	if got := after[`postern_upstream_latency_seconds_sum{stage="data"}`]; got <= 0 {
		t.Errorf("upstream data latency sum %v", got)
	}
	if got := after["postern_active_sessions"]; got != 0 {
		t.Errorf("postern_active_sessions = %v after every client left", got)
	}
	// Bounded labels: no client address, no login.
	for _, leak := range []string{"127.0.0.1", "alice", "example.test"} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics mention %q", leak)
		}
	}

	// Certificate expiry: the served certificate's NotAfter, and the new
	// one's after a replacement and SIGHUP.
	certFile, keyFile := filepath.Join(p.Dir, "cert.pem"), filepath.Join(p.Dir, "key.pem")
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	served, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	expiry := func(m map[string]float64) []float64 {
		var out []float64
		for k, v := range m {
			if strings.HasPrefix(k, "postern_certificate_expiry_timestamp_seconds{") {
				out = append(out, v)
			}
		}
		return out
	}
	if got := expiry(after); len(got) != 1 || int64(got[0]) != served.NotAfter.Unix() {
		t.Errorf("certificate expiry %v, want [%d]", got, served.NotAfter.Unix())
	}
	renewed := opsWriteCert(t, certFile, keyFile, time.Now().Add(20*24*time.Hour).Truncate(time.Second))
	hup(t, p)
	if got := expiry(func() map[string]float64 { m, _ := opsScrape(t, base+"/metrics"); return m }()); len(got) != 1 || int64(got[0]) != renewed.NotAfter.Unix() {
		t.Errorf("certificate expiry after renewal and SIGHUP %v, want [%d]", got, renewed.NotAfter.Unix())
	}

	// Health and readiness, over HTTP and through `postern healthcheck`.
	healthcheck := func(path string) int {
		_, _, code := runPostern(t, "healthcheck", "--url", base+path, "--timeout", "5s")
		return code
	}
	if s := opsStatus(t, base+"/healthz"); s != 200 {
		t.Errorf("/healthz %d", s)
	}
	if s := opsStatus(t, base+"/readyz"); s != 200 {
		t.Errorf("/readyz with Postfix up: %d", s)
	}
	if s := opsStatus(t, base+"/debug/pprof/cmdline"); s != 200 {
		t.Errorf("/debug/pprof/cmdline with --pprof: %d", s)
	}
	if code := healthcheck("/healthz"); code != 0 {
		t.Errorf("healthcheck /healthz exit %d", code)
	}
	if code := healthcheck("/readyz"); code != 0 {
		t.Errorf("healthcheck /readyz with Postfix up: exit %d", code)
	}

	pf.Stop()
	waitFor(t, "/readyz to answer 503 with Postfix stopped", func() bool { return opsStatus(t, base+"/readyz") == 503 })
	if code := healthcheck("/readyz"); code == 0 {
		t.Errorf("healthcheck /readyz with Postfix stopped: exit 0")
	}
	if s := opsStatus(t, base+"/healthz"); s != 200 {
		t.Errorf("/healthz with Postfix stopped: %d (alive is not ready)", s)
	}
	if code := healthcheck("/healthz"); code != 0 {
		t.Errorf("healthcheck /healthz with Postfix stopped: exit %d", code)
	}
	// A message meanwhile: MAIL goes upstream with the first RCPT, so the
	// 451 is RCPT's reply, counted as an upstream connect error.
	c = dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	var se *smtp.SMTPError
	if err := c.Mail(aliceLogin, nil); err != nil {
		t.Errorf("MAIL with Postfix stopped: %v, want 250 (nothing is sent upstream before RCPT)", err)
	}
	if err := c.Rcpt("friend@example.test", nil); !errors.As(err, &se) || se.Code != 451 {
		t.Errorf("RCPT with Postfix stopped: %v, want 451", err)
	}
	c.Close()
	m, _ := opsScrape(t, base+"/metrics")
	if got := m[`postern_upstream_replies_total{class="error",stage="connect"}`] - before[`postern_upstream_replies_total{class="error",stage="connect"}`]; got != 1 {
		t.Errorf("upstream connect errors moved by %v, want 1", got)
	}

	pf.Start()
	waitFor(t, "/readyz to answer 200 with Postfix back", func() bool { return opsStatus(t, base+"/readyz") == 200 })
	if code := healthcheck("/readyz"); code != 0 {
		t.Errorf("healthcheck /readyz with Postfix back: exit %d", code)
	}
	// Nothing listening (port 1 is privileged and unused): non-zero.
	if _, _, code := runPostern(t, "healthcheck", "--url", "http://127.0.0.1:1/healthz", "--timeout", "2s"); code == 0 {
		t.Errorf("healthcheck against nothing: exit 0")
	}
}

// ---------------------------------------------------------------------------
// 5. XCLIENT against Postfix's own sender checks.

// opsQueueID extracts the Postfix queue id from "250 2.0.0 Ok: queued as ID"
// (or "Ok: 1234 bytes queued as ID", Postfix's reply to BDAT).
func opsQueueID(t *testing.T, reply string) string {
	t.Helper()
	const marker = "queued as "
	i := strings.Index(reply, marker)
	if i < 0 {
		t.Fatalf("no queue id in %q", reply)
	}
	return strings.Fields(reply[i+len(marker):])[0]
}

// opsSmtpdLine returns Postfix smtpd's "QUEUEID: client=..." log line.
func opsSmtpdLine(t *testing.T, pf *proxytest.Postfix, qid string) string {
	t.Helper()
	pf.WaitLog(t, qid+": client=", 10*time.Second)
	for _, l := range strings.Split(pf.Log(), "\n") {
		if strings.Contains(l, qid+": client=") {
			return l
		}
	}
	return ""
}

// TestOpsXCLIENTPostfixE2E: with --upstream-xclient Postfix (which allows
// Postern's address in smtpd_authorized_xclient_hosts) logs the login, and
// its own reject_sender_login_mismatch refuses a sender that Postern's
// sender map allows. ADDR= is sent in --received full only.
func TestOpsXCLIENTPostfixE2E(t *testing.T) {
	t.Parallel()
	dir := opsPublicDir(t)
	loginMap := filepath.Join(dir, "sender_login")
	if err := os.WriteFile(loginMap, []byte("alice@example.test alice@example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without Cyrus's mechanism plugins smtpd exits: "no SASL authentication
	// mechanisms".
	testkit.RequireFile(t, "/usr/lib/*/sasl2/libplain.so*", "Cyrus SASL's PLAIN plugin (package libsasl2-modules)")
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{XCLIENT: true, MainCF: []string{
		"smtpd_sender_login_maps = texthash:" + loginMap,
		"smtpd_sender_restrictions = reject_sender_login_mismatch",
		// Postfix ignores reject_sender_login_mismatch unless SASL is
		// enabled ("ignored: no SASL support"). XCLIENT LOGIN= needs no
		// working SASL backend: Cyrus with its defaults lists mechanisms.
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = cyrus",
	}})
	senderMap := filepath.Join(t.TempDir(), "senders")
	writeFile(t, senderMap, "other@example.test alice@example.test\n")
	anon := startPostern(t, pf.Addr, "--upstream-xclient", "--sender-map", senderMap)
	full := startPostern(t, pf.Addr, "--upstream-xclient", "--sender-map", senderMap, "--received", "full")

	// Anonymous: LOGIN= only. Postfix logs the user and sees Postern's
	// address, not the client's.
	c := dialFrom(t, anon.StartTLS, "127.0.0.9")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	r := c.send(aliceLogin, "friend@example.test", "xclient-anon")
	expectQueued(t, "own address", r)
	line := opsSmtpdLine(t, pf, opsQueueID(t, r))
	t.Logf("Postfix: %s", line)
	if !strings.Contains(line, "sasl_method=XCLIENT, sasl_username=alice@example.test") {
		t.Errorf("Postfix does not name the login: %s", line)
	}
	if !strings.Contains(line, "[127.0.0.1]") || strings.Contains(line, "127.0.0.9") {
		t.Errorf("anonymous mode: Postfix should see 127.0.0.1 only: %s", line)
	}

	// Postern's map lets alice use other@example.test; Postfix's does not.
	// Postfix checks the sender at RCPT (smtpd_delay_reject) and its reply
	// reaches the client.
	c.expect("MAIL FROM:<other@example.test>", "250")
	r = c.cmd("RCPT TO:<friend@example.test>")
	expectReply(t, "RCPT for a sender Postfix refuses", r, "553 5.7.1")
	if !strings.Contains(r, "not owned by user alice@example.test") {
		t.Errorf("not Postfix's reply: %q", r)
	}
	c.expect("RSET", "250")
	pf.WaitLog(t, "553 5.7.1 <other@example.test>: Sender address rejected: not owned by user alice@example.test", 10*time.Second)
	// A sender Postern itself refuses never reaches Postfix.
	expectReply(t, "MAIL as an unmapped sender", c.cmd("MAIL FROM:<stranger@example.test>"), "553 5.7.1 Sender address rejected: not owned by user")

	// Full: ADDR= too, so Postfix sees (and logs, and writes in its
	// Received header) the client's address.
	c = dialFrom(t, full.StartTLS, "127.0.0.9")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	r = c.send(aliceLogin, "friend@example.test", "xclient-full")
	expectQueued(t, "own address (full)", r)
	line = opsSmtpdLine(t, pf, opsQueueID(t, r))
	t.Logf("Postfix: %s", line)
	if !strings.Contains(line, "[127.0.0.9]") || !strings.Contains(line, "sasl_username=alice@example.test") {
		t.Errorf("full mode: Postfix should log client 127.0.0.9 and the login: %s", line)
	}

	msgs := pf.WaitMessages(t, 2, 30*time.Second)
	if got := len(msgs); got != 2 {
		t.Fatalf("Postfix delivered %d messages, want 2", got)
	}
	if m := findSubject(t, msgs, "xclient-anon"); strings.Contains(m.Received, "127.0.0.9") {
		t.Errorf("anonymous mode: Postfix's Received names the client:\n%s", m.Received)
	} else {
		t.Logf("Postfix Received (anonymous): %s", m.Received)
	}
	if m := findSubject(t, msgs, "xclient-full"); !strings.Contains(m.Received, "127.0.0.9") {
		t.Errorf("full mode: Postfix's Received does not name the client:\n%s", m.Received)
	}
}

// ---------------------------------------------------------------------------
// 6. STARTTLS towards the upstream.

// TestOpsUpstreamTLSPostfixE2E: with --upstream-tls starttls and
// --upstream-tls-ca Postern verifies Postfix's certificate and the message
// travels over TLS; with the wrong CA nothing is sent and the client gets 4xx.
func TestOpsUpstreamTLSPostfixE2E(t *testing.T) {
	t.Parallel()
	dir := opsPublicDir(t)
	certFile, keyFile := filepath.Join(dir, "postfix.pem"), filepath.Join(dir, "postfix.key")
	opsWriteCert(t, certFile, keyFile, time.Now().Add(24*time.Hour))
	otherCA, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key")
	opsWriteCert(t, otherCA, otherKey, time.Now().Add(24*time.Hour))
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{
		"smtpd_tls_cert_file = " + certFile,
		"smtpd_tls_key_file = " + keyFile,
		"smtpd_tls_security_level = may",
		"smtpd_tls_loglevel = 1",
		"smtpd_tls_received_header = yes",
	}})

	p := startPostern(t, pf.Addr, "--upstream-tls", "starttls", "--upstream-tls-ca", certFile)
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	expectQueued(t, "message over upstream STARTTLS", c.send(aliceLogin, "friend@example.test", "upstream-starttls"))
	msgs := pf.WaitMessages(t, 1, 30*time.Second)
	m := findSubject(t, msgs, "upstream-starttls")
	if !strings.Contains(m.Received, "(using TLSv1.") {
		t.Errorf("Postfix's Received shows no TLS:\n%s", m.Received)
	}
	log := pf.WaitLog(t, "TLS connection established from", 10*time.Second)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "TLS connection established from") {
			t.Logf("Postfix: %s", l)
		}
	}

	wrong := startPostern(t, pf.Addr, "--upstream-tls", "starttls", "--upstream-tls-ca", otherCA)
	c = dialFrom(t, wrong.StartTLS, "127.0.0.1")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "MAIL with an unverifiable upstream", c.cmd("MAIL FROM:<"+aliceLogin+">"), "250")
	expectReply(t, "RCPT with an unverifiable upstream", c.cmd("RCPT TO:<friend@example.test>"), "451 4.4.1")
	wrong.waitLog(t, "certificate", 10*time.Second)
	pf.WaitQueueEmpty(t, 10*time.Second)
	if got := len(pf.Messages(t)); got != 1 {
		t.Fatalf("Postfix delivered %d messages, want 1", got)
	}
}
