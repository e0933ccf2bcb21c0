package main

// End-to-end tests of the authentication backends through the built binary:
// a real Dovecot (auth socket, unix and TCP) and a real slapd as the only
// backends, the credential cache, and the per-address lockout, with a private
// Postfix as the upstream.

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/auth/authtest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// startPosternUsers is startPostern with users as the whole users file, or
// with no --users at all when users is "".
func startPosternUsers(t *testing.T, upstream, users string, extra ...string) *postern {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	p := &postern{StartTLS: anyPort, TLS: anyPort, Dir: dir}
	args := []string{"serve",
		"--hostname", "submission.test",
		"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS,
		"--upstream", upstream,
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--shutdown-timeout", "5s",
	}
	if users != "" {
		p.UsersFile = filepath.Join(dir, "users")
		writeFile(t, p.UsersFile, users)
		args = append(args, "--users", p.UsersFile)
	}
	args = append(args, extra...)
	cmd := exec.Command(posternBin, args...)
	cmd.Env = cleanEnv()
	p.run(t, cmd)
	return p
}

// dovecotUsers are the Dovecot passwd-file entries of the Dovecot tests.
// carol logs in as "carol", and Dovecot renames her to carol@example.test
// (passdb extra field user=): only with Dovecot's canonical name is she the
// owner of that address.
func dovecotUsers() []authtest.User {
	return []authtest.User{
		{Login: aliceLogin, Password: alicePass, Scheme: "SHA512-CRYPT"},
		{Login: bobLogin, Password: bobPass, Scheme: "BLF-CRYPT"},
		{Login: "carol", Password: "carol-secret", Extra: "user=carol@example.test"},
	}
}

// client is a line-level SMTP client over STARTTLS whose local address the
// test chooses (127.0.0.x), for per-address lockout and Dovecot's rip=.
type client struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// dialFrom connects from localIP to addr and is ready for AUTH: banner,
// EHLO, STARTTLS, handshake, EHLO.
func dialFrom(t *testing.T, addr, localIP string) *client {
	t.Helper()
	return opsDial(t, addr, localIP, "")
}

// cmd sends line (unless "") and returns the last line of the reply.
func (c *client) cmd(line string) string {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if line != "" {
		if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
			c.t.Fatalf("sending %q: %v", line, err)
		}
	}
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading the reply to %q: %v", line, err)
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 || l[3] != '-' {
			return l
		}
	}
}

func (c *client) expect(line, prefix string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("%q: got %q, want %s...", line, r, prefix)
	}
	return r
}

// auth sends AUTH PLAIN with an initial response and returns the reply.
func (c *client) auth(login, password string) string {
	c.t.Helper()
	return c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+password)))
}

// closed reports whether the server closed the connection (EOF within 5 s).
func (c *client) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// send runs one transaction and returns the reply to MAIL (if not 250) or
// to the final dot.
func (c *client) send(from, to, subject string) string {
	c.t.Helper()
	if r := c.cmd("MAIL FROM:<" + from + ">"); !strings.HasPrefix(r, "250") {
		return r
	}
	c.expect("RCPT TO:<"+to+">", "250")
	c.expect("DATA", "354")
	return c.cmd("Subject: " + subject + "\r\n\r\nhello\r\n.")
}

// logCount counts the log lines of postern with msg="msg" and client=ip.
func logCount(p *postern, msg, ip string) int {
	n := 0
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, `msg="`+msg+`"`) && (strings.Contains(l, " client="+ip+" ") || strings.HasSuffix(l, " client="+ip)) {
			n++
		}
	}
	return n
}

// waitLogCount waits (up to 10 s: the log reaches the test through a pipe,
// after the client saw the reply) until postern logged want such lines, and
// fails if it logged another number.
func waitLogCount(t *testing.T, p *postern, msg, ip string, want int) {
	t.Helper()
	p.proc.WaitOutput(t, fmt.Sprintf("%d %q lines for client=%s", want, msg, ip), 10*time.Second, func(string) bool {
		return logCount(p, msg, ip) >= want
	})
	if n := logCount(p, msg, ip); n != want {
		t.Fatalf("%d %q lines for client=%s, want %d:\n%s", n, msg, ip, want, p.Log())
	}
}

// authOKLogins returns the login= of every "auth ok" line, in order.
func authOKLogins(p *postern) []string {
	var logins []string
	re := regexp.MustCompile(`msg="auth ok" .* login=(\S+)`)
	for _, l := range strings.Split(p.Log(), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			logins = append(logins, m[1])
		}
	}
	return logins
}

func expectReply(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.HasPrefix(got, want) {
		t.Fatalf("%s: got %q, want %s...", what, got, want)
	}
}

// TestDovecotEndToEnd: Postern with only --dovecot-auth (unix socket, then
// host:port) sends mail for Dovecot's users under Dovecot's canonical name;
// a stopped Dovecot gives 454 without counting failures, and Postern picks
// Dovecot up again when it is back.
func TestDovecotEndToEnd(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dv := authtest.StartDovecot(t, dovecotUsers())
	delivered := 0
	for i, mode := range []struct{ name, addr string }{
		{"unix socket", dv.Socket},
		{"host:port", dv.TCPAddr},
	} {
		t.Run(mode.name, func(t *testing.T) {
			const maxFailures = 5
			p := startPosternUsers(t, pf.Addr, "", "--dovecot-auth", mode.addr,
				"--auth-cache-ttl", "0", "--auth-max-failures", fmt.Sprint(maxFailures))

			// Alice types her login in mixed case; Dovecot answers
			// user=alice@example.test (auth_username_format = %Lu).
			subject := fmt.Sprintf("dovecot-%d", i)
			out, code := swaks(t, p.swaksAuth("Alice@Example.test", alicePass,
				"--from", aliceLogin, "--to", "friend@example.test", "--header", "Subject: "+subject)...)
			if code != 0 || !queuedByPostfix(out) {
				t.Fatalf("swaks via Dovecot (%d):\n%s", code, out)
			}
			delivered++
			if m := findSubject(t, pf.WaitMessages(t, delivered, 30*time.Second), subject); m.ReturnPath != aliceLogin {
				t.Fatalf("envelope sender %q", m.ReturnPath)
			}
			waitLogCount(t, p, "auth ok", "127.0.0.1", 1)
			if authOKLogins(p)[0] != aliceLogin {
				t.Fatalf("login %q, want Dovecot's canonical %s:\n%s", authOKLogins(p)[0], aliceLogin, p.Log())
			}

			// carol is a bare login; only Dovecot's canonical name
			// carol@example.test makes her the owner of that address.
			out, code = swaks(t, p.swaksAuth("carol", "carol-secret",
				"--from", "carol@example.test", "--to", "friend@example.test")...)
			if code != 0 || !queuedByPostfix(out) {
				t.Fatalf("carol (renamed by Dovecot) may not send as carol@example.test (%d):\n%s", code, out)
			}
			delivered++
			waitLogCount(t, p, "auth ok", "127.0.0.1", 2)
			if got := authOKLogins(p)[1]; got != "carol@example.test" {
				t.Fatalf("login %q, want Dovecot's user=carol@example.test", got)
			}
			out, _ = swaks(t, p.swaksAuth("carol", "carol-secret", "--from", aliceLogin, "--to", "friend@example.test")...)
			if !strings.Contains(out, "553 5.7.1") {
				t.Fatalf("carol sent as alice:\n%s", out)
			}

			// Wrong password and unknown user: 535 through Dovecot. Each
			// from its own address, so neither Dovecot's penalty (which
			// delays every request from an address with failures) nor
			// Postern's counter touches 127.0.0.1.
			for j, bad := range [][2]string{{bobLogin, "wrong password"}, {"nobody@example.test", bobPass}} {
				ip := fmt.Sprintf("127.0.%d.%d", i+1, j+2)
				c := dialFrom(t, p.StartTLS, ip)
				expectReply(t, bad[0]+"/"+bad[1], c.auth(bad[0], bad[1]), "535 5.7.8")
				waitLogCount(t, p, "auth failed", ip, 1)
			}

			// Dovecot down: 454 4.7.0 every time, never a failure, never a
			// lockout, more often than --auth-max-failures. A connection is
			// closed at its third 454 (like at its third 535), so the client
			// reconnects every two attempts.
			dv.Stop()
			c := dialFrom(t, p.StartTLS, "127.0.0.1")
			for n := range maxFailures + 2 {
				if n > 0 && n%2 == 0 {
					c = dialFrom(t, p.StartTLS, "127.0.0.1")
				}
				password := alicePass
				if n%2 == 1 {
					password = "wrong password"
				}
				expectReply(t, fmt.Sprintf("attempt %d with Dovecot down", n+1), c.auth(aliceLogin, password), "454 4.7.0")
			}
			waitLogCount(t, p, "auth unavailable", "127.0.0.1", maxFailures+2)
			// (the lines below would have been written before the last
			// "auth unavailable")
			for _, msg := range []string{"auth failed", "auth lockout: address blocked", "auth locked out"} {
				if n := logCount(p, msg, "127.0.0.1"); n != 0 {
					t.Fatalf("%d %q lines for 127.0.0.1 while Dovecot was down:\n%s", n, msg, p.Log())
				}
			}

			// Dovecot back: the same address gets in at once, on the
			// connection that saw the 454s, without restarting Postern.
			dv.Start()
			start := time.Now()
			expectReply(t, "right password after Dovecot restarted", c.auth("Alice@Example.test", alicePass), "235")
			t.Logf("first AUTH after Dovecot restarted took %v", time.Since(start).Round(time.Millisecond))
			expectReply(t, "send after restart", c.send(aliceLogin, "friend@example.test", "after-restart"), "250")
			delivered++
			pf.WaitMessages(t, delivered, 30*time.Second)
		})
	}
}

// TestLDAPEndToEnd: Postern with only LDAP (search then bind) authenticates
// slapd's users; the alias attribute's addresses belong to the user, another
// user's address does not; slapd down is 454.
func TestLDAPEndToEnd(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := authtest.StartSlapd(t)
	s.AddUser("alice", "alice-ldap-secret", aliceLogin, "alias@example.test", "a.smith@example.test")
	s.AddUser("bob", "bob-ldap-secret", bobLogin)
	pwFile := filepath.Join(t.TempDir(), "ldap-bind-password")
	writeFile(t, pwFile, authtest.LDAPSearchPW+"\n")

	p := startPosternUsers(t, pf.Addr, "",
		"--ldap-url", s.URL, "--ldap-base", authtest.LDAPPeople, "--ldap-filter", "(mail=%u)",
		"--ldap-bind-dn", authtest.LDAPSearchDN, "--ldap-bind-password-file", pwFile,
		"--ldap-alias-attribute", "mailLocalAddress", "--auth-cache-ttl", "0")
	delivered := 0
	sendAs := func(login, password, from, subject string) (string, int) {
		return swaks(t, p.swaksAuth(login, password, "--from", from, "--to", "friend@example.test",
			"--header", "Subject: "+subject)...)
	}

	for _, from := range []string{aliceLogin, "alias@example.test", "A.Smith@example.test"} {
		out, code := sendAs(aliceLogin, "alice-ldap-secret", from, "ldap-"+from)
		if code != 0 || !queuedByPostfix(out) {
			t.Fatalf("alice from %s (%d):\n%s", from, code, out)
		}
		delivered++
		if m := findSubject(t, pf.WaitMessages(t, delivered, 30*time.Second), "ldap-"+from); m.ReturnPath != from {
			t.Fatalf("envelope sender %q, want %q", m.ReturnPath, from)
		}
	}
	for _, from := range []string{bobLogin, "someone@example.test"} {
		out, _ := sendAs(aliceLogin, "alice-ldap-secret", from, "spoof")
		if !strings.Contains(out, "553 5.7.1 Sender address rejected: not owned by user") {
			t.Fatalf("alice sent as %s:\n%s", from, out)
		}
	}
	out, code := sendAs(bobLogin, "bob-ldap-secret", bobLogin, "ldap-bob")
	if code != 0 {
		t.Fatalf("bob (%d):\n%s", code, out)
	}
	delivered++

	c := dialFrom(t, p.StartTLS, "127.0.0.2")
	for _, bad := range [][2]string{
		{aliceLogin, "wrong password"},
		{bobLogin, "alice-ldap-secret"},
		{"alias@example.test", "alice-ldap-secret"}, // (mail=%u): the alias is not a login
	} {
		expectReply(t, bad[0]+"/"+bad[1], c.auth(bad[0], bad[1]), "535 5.7.8")
		c = dialFrom(t, p.StartTLS, "127.0.0.2")
	}

	t.Run("anonymous search by uid", func(t *testing.T) {
		// The login "alice" is no address; the entry's mail and
		// mailLocalAddress are what she may send as.
		p := startPosternUsers(t, pf.Addr, "",
			"--ldap-url", s.URL, "--ldap-base", authtest.LDAPBase, "--ldap-filter", "(|(uid=%u)(mail=%u))",
			"--ldap-alias-attribute", "mailLocalAddress", "--auth-cache-ttl", "0")
		c := dialFrom(t, p.StartTLS, "127.0.0.1")
		expectReply(t, "AUTH alice", c.auth("alice", "alice-ldap-secret"), "235")
		expectReply(t, "send as alias", c.send("alias@example.test", "friend@example.test", "ldap-uid"), "250")
		expectReply(t, "send as bob", c.cmd("MAIL FROM:<"+bobLogin+">"), "553 5.7.1")
		delivered++
	})

	t.Run("slapd down", func(t *testing.T) {
		s.Stop()
		c := dialFrom(t, p.StartTLS, "127.0.0.1")
		expectReply(t, "slapd down", c.auth(aliceLogin, "alice-ldap-secret"), "454 4.7.0")
		waitLogCount(t, p, "auth unavailable", "127.0.0.1", 1)
		if n := logCount(p, "auth failed", "127.0.0.1"); n != 0 {
			t.Fatalf("slapd down counted as %d failures", n)
		}
		s.Start()
		expectReply(t, "slapd back", c.auth(aliceLogin, "alice-ldap-secret"), "235")
	})
	pf.WaitMessages(t, delivered, 30*time.Second)
}

// cheapUsers is a users file with alice and bob at bcrypt cost 4, so that a
// burst of failures fits well inside a short lockout window even in the race
// build.
func cheapUsers(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, u := range [][2]string{{aliceLogin, alicePass}, {bobLogin, bobPass}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u[0], h)
	}
	return b.String()
}

// TestLockoutEndToEnd: 10 failures from 127.0.0.1 within the window lock
// that address out (421 and close, even with the right password); the owner
// from another address gets in at once; after the window 127.0.0.1 does too.
func TestLockoutEndToEnd(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	const window = 3 * time.Second
	p := startPosternUsers(t, pf.Addr, cheapUsers(t), "--auth-max-failures", "10",
		"--auth-lockout-window", window.String(), "--max-auth-failures-per-connection", "100")

	// Failures 1..9 get 535; the 10th blocks the address: 421 and close.
	// Two guesses are at alice's login (they only slow her down), the rest
	// at logins that do not exist.
	start := time.Now()
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	for n := 1; n <= 10; n++ {
		login := fmt.Sprintf("guess%d@example.test", n)
		if n <= 2 {
			login = aliceLogin
		}
		r := c.auth(login, fmt.Sprintf("wrong-%d", n))
		if n < 10 {
			expectReply(t, fmt.Sprintf("failure %d", n), r, "535 5.7.8")
			continue
		}
		expectReply(t, "failure 10", r, "421 4.7.0")
		if !c.closed() {
			t.Fatal("connection still open after the 421 of the 10th failure")
		}
	}
	lastFailure := time.Now()
	if el := lastFailure.Sub(start); el > window/2 {
		t.Logf("warning: 10 failures took %v, close to the %v window", el, window)
	}
	// The 11th wrong password and then the right one: refused at AUTH.
	for _, pw := range []string{"wrong-11", alicePass} {
		c := dialFrom(t, p.StartTLS, "127.0.0.1")
		expectReply(t, "AUTH from the blocked address", c.auth(aliceLogin, pw), "421 4.7.0")
		if !c.closed() {
			t.Fatal("connection still open after 421")
		}
	}

	// The owner from another address: accepted at once (her login's
	// failures only delay the answer a little), and can send.
	c9 := dialFrom(t, p.StartTLS, "127.0.0.9")
	t0 := time.Now()
	expectReply(t, "right password from 127.0.0.9", c9.auth(aliceLogin, alicePass), "235")
	t.Logf("AUTH from 127.0.0.9 while 127.0.0.1 is blocked took %v", time.Since(t0).Round(time.Millisecond))
	expectReply(t, "send from 127.0.0.9", c9.send(aliceLogin, "friend@example.test", "lockout-other-ip"), "250")
	// Still blocked from 127.0.0.1 at this point (the test is inside the window).
	if time.Since(start) < window {
		c := dialFrom(t, p.StartTLS, "127.0.0.1")
		expectReply(t, "still blocked", c.auth(aliceLogin, alicePass), "421 4.7.0")
	}

	// After the window (failures are kept with a resolution of one second).
	time.Sleep(time.Until(lastFailure.Add(window + 1100*time.Millisecond)))
	c = dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "right password from 127.0.0.1 after the window", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "send from 127.0.0.1", c.send(aliceLogin, "friend@example.test", "lockout-after-window"), "250")
	pf.WaitMessages(t, 2, 30*time.Second)

	// The lines fail2ban reads. Refused at AUTH: the 11th wrong password,
	// the right one, and the check "still blocked" if it ran.
	waitLogCount(t, p, "auth ok", "127.0.0.1", 1)
	waitLogCount(t, p, "auth failed", "127.0.0.1", 10)
	waitLogCount(t, p, "auth lockout: address blocked", "127.0.0.1", 1)
	if n := logCount(p, "auth locked out", "127.0.0.1"); n < 2 || n > 3 {
		t.Errorf("%d auth locked out lines for 127.0.0.1, want 2 or 3", n)
	}
	for _, msg := range []string{"auth failed", "auth lockout: address blocked", "auth locked out"} {
		if n := logCount(p, msg, "127.0.0.9"); n != 0 {
			t.Errorf("%d %q lines for 127.0.0.9", n, msg)
		}
	}
	for _, secret := range []string{alicePass, "wrong-1"} {
		if strings.Contains(p.Log(), secret) {
			t.Errorf("log contains a password")
		}
	}
	t.Run("fail2ban filter", func(t *testing.T) {
		tool := testkit.RequireTool(t, "fail2ban-regex")
		logFile := filepath.Join(t.TempDir(), "postern.log")
		writeFile(t, logFile, p.Log())
		filter, err := filepath.Abs("../../deploy/fail2ban/filter.d/postern.conf")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "--out", "ip", logFile, filter).CombinedOutput()
		if err != nil {
			t.Fatalf("fail2ban-regex: %v\n%s", err, out)
		}
		ips := strings.Fields(string(out))
		// 10 "auth failed" + 1 "auth lockout: address blocked".
		if len(ips) != 11 || strings.Count(string(out), "127.0.0.1") != 11 ||
			!regexp.MustCompile(`^[0-9.\s]+$`).Match(out) {
			t.Fatalf("fail2ban-regex found %v, want 127.0.0.1 eleven times", ips)
		}
	})
}

// TestCacheEndToEnd: with --auth-cache-ttl a repeated login with the same
// password is answered without Dovecot (which is stopped by then), a wrong
// password is never cached, and SIGHUP empties the cache.
func TestCacheEndToEnd(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dv := authtest.StartDovecot(t, dovecotUsers())
	p := startPosternUsers(t, pf.Addr, "", "--dovecot-auth", dv.Socket, "--auth-cache-ttl", "1m")

	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "first login (Dovecot)", c.auth(aliceLogin, alicePass), "235")

	// A wrong password reaches Dovecot each time (auth_verbose logs each
	// mismatch); from their own addresses, so Dovecot's penalty does not
	// delay them.
	mismatches := func() int { return strings.Count(dv.Log(), "Password mismatch") }
	before := mismatches()
	for _, ip := range []string{"127.0.0.4", "127.0.0.5"} {
		expectReply(t, "wrong password", dialFrom(t, p.StartTLS, ip).auth(aliceLogin, "wrong password"), "535 5.7.8")
	}
	deadline := time.Now().Add(5 * time.Second)
	for mismatches()-before != 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := mismatches() - before; n != 2 {
		t.Fatalf("Dovecot logged %d password mismatches for 2 wrong passwords:\n%s", n, dv.Log())
	}

	// Dovecot stopped: the same credentials come from the cache, anything
	// else needs Dovecot and gets 454.
	dv.Stop()
	c = dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "second login (cache)", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "send on a cached login", c.send(aliceLogin, "friend@example.test", "cache-hit"), "250")
	pf.WaitMessages(t, 1, 30*time.Second)
	c = dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "another user (not cached)", c.auth(bobLogin, bobPass), "454 4.7.0")
	expectReply(t, "same login, other password (not cached)", c.auth(aliceLogin, "wrong password"), "454 4.7.0")

	// SIGHUP purges the cache: the same credentials go to Dovecot again.
	hup(t, p)
	c = dialFrom(t, p.StartTLS, "127.0.0.1") // the old one saw two 454s already
	expectReply(t, "login after SIGHUP (Dovecot down)", c.auth(aliceLogin, alicePass), "454 4.7.0")
	dv.Start()
	expectReply(t, "login after SIGHUP (Dovecot back)", c.auth(aliceLogin, alicePass), "235")
}

// TestDovecotPenaltyStillCountsFailures: Dovecot holds back the FAIL for an
// address with recent failures (its auth penalty: 4 s, 8 s, then 15 s). Those
// late answers must still reach the client as 535 and count towards the
// lockout; with a Dovecot timeout under 15 s they became 454 and were not
// counted from the 4th guess on. (About 30 s: Dovecot's delays are fixed.)
func TestDovecotPenaltyStillCountsFailures(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for Dovecot's penalty (about 30 s)")
	}
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	dv := authtest.StartDovecot(t, dovecotUsers())
	p := startPosternUsers(t, pf.Addr, "", "--dovecot-auth", dv.Socket, "--auth-cache-ttl", "0",
		"--max-auth-failures-per-connection", "100")
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	for n := 1; n <= 4; n++ {
		t0 := time.Now()
		// Distinct logins: Postern's own per-login delay stays out of it.
		r := c.auth(fmt.Sprintf("guess%d@example.test", n), "wrong password")
		t.Logf("guess %d: %q after %v", n, r, time.Since(t0).Round(time.Millisecond))
		expectReply(t, fmt.Sprintf("guess %d", n), r, "535 5.7.8")
	}
	waitLogCount(t, p, "auth failed", "127.0.0.1", 4)
}
