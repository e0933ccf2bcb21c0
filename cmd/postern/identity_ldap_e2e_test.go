package main

// End-to-end tests of issue 18 item 3: one LDAP entry reachable by several
// spellings is one account for limits, suspensions, the limit file, the
// control commands, the logs and the sender map.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/auth/authtest"
	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/limits"
	"github.com/postern/postern/limits/state"
	"github.com/postern/postern/proxy/proxytest"
)

// mallory's entry, as in the issue: uid mallory and two mail values. The
// README's filter finds it by any of the three; its canonical identity is
// the first mail value (--ldap-login-attribute's default).
const (
	malloryPass      = "mallory-ldap-secret"
	malloryCanonical = "mallory@example.com"
)

var mallorySpellings = []string{"mallory", malloryCanonical, "m.allory@example.com"}

// startMalloryLDAP starts slapd holding mallory's entry.
func startMalloryLDAP(t *testing.T) *authtest.Slapd {
	t.Helper()
	s := authtest.StartSlapd(t)
	s.Add("uid=mallory,"+authtest.LDAPPeople, map[string][]string{
		"objectClass": {"inetOrgPerson"},
		"uid":         {"mallory"}, "cn": {"mallory"}, "sn": {"mallory"},
		"mail":         {malloryCanonical, "m.allory@example.com"},
		"userPassword": {s.SSHA(malloryPass)},
	})
	return s
}

// startMalloryPostern runs Postern with only LDAP and the README's filter.
func startMalloryPostern(t *testing.T, upstream string, s *authtest.Slapd, extra ...string) *postern {
	t.Helper()
	return startPosternUsers(t, upstream, "", append([]string{
		"--ldap-url", s.URL, "--ldap-base", authtest.LDAPBase, "--ldap-filter", "(|(uid=%u)(mail=%u))",
	}, extra...)...)
}

// authReply dials addr and tries AUTH PLAIN, returning the client (nil when
// AUTH failed, then closed) and AUTH's error.
func authReply(t *testing.T, addr, login, password string) (*smtp.Client, error) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", login, password)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// sendAsMallory authenticates with spelling and sends one message from her
// canonical address to rcpt.
func sendAsMallory(t *testing.T, addr, spelling, rcpt, subject string) (string, error) {
	t.Helper()
	c := dialAuth(t, addr, spelling, malloryPass)
	defer c.Close()
	return sendOn(t, c, malloryCanonical, []string{rcpt}, subject)
}

// logLines returns postern's log lines holding msg="<msg>".
func logLines(p *postern, msg string) []string {
	var out []string
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, `msg="`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// TestLDAPOneAccountManySpellingsE2E: at --limit-messages 3/1h the three
// spellings of mallory's entry share one budget of 3 (before, each had its
// own: 9 messages), every further attempt, by any spelling, gets the 451
// naming the canonical identity, and the log lines name that identity
// whichever spelling logged in.
func TestLDAPOneAccountManySpellingsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	p := startMalloryPostern(t, pf.Addr, s, "--limit-messages", "3/1h", "--suspend-after", "0")
	const rcpt = "budget@example.test"
	for _, spelling := range mallorySpellings {
		if stage, err := sendAsMallory(t, p.StartTLS, spelling, rcpt, "as "+spelling); err != nil {
			t.Fatalf("first message as %q refused at %s: %v", spelling, stage, err)
		}
	}
	for _, spelling := range mallorySpellings {
		_, err := sendAsMallory(t, p.StartTLS, spelling, rcpt, "again as "+spelling)
		wantLimitReply(t, fmt.Sprintf("%q after the account's 3 of 3", spelling), err, malloryCanonical)
	}
	if got := len(proxytest.MessagesTo(pf.WaitMessages(t, 3, 30*time.Second), rcpt)); got != 3 {
		t.Fatalf("Postfix got %d messages, want the account's 3", got)
	}
	// The log arrives through a pipe, maybe after the replies.
	waitFor(t, "an auth ok line per session and a message line per message", func() bool {
		return len(logLines(p, "auth ok")) == 2*len(mallorySpellings) && len(logLines(p, "message accepted")) == 3
	})
	for _, l := range append(logLines(p, "auth ok"), logLines(p, "message accepted")...) {
		if !strings.Contains(l, " login="+malloryCanonical+" ") {
			t.Fatalf("log line does not name the canonical identity %s:\n%s", malloryCanonical, l)
		}
	}
}

// TestLDAPLimitFileCanonicalE2E: a --limit-file line for the canonical
// identity applies to every spelling, the uid one too (before, the uid
// spelling fell back to --limit-messages).
func TestLDAPLimitFileCanonicalE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	limitFile := filepath.Join(t.TempDir(), "limits")
	writeFile(t, limitFile, malloryCanonical+" messages=2/1h\n")
	p := startMalloryPostern(t, pf.Addr, s, "--limit-messages", "1/1h", "--limit-file", limitFile, "--suspend-after", "0")
	const rcpt = "limitfile@example.test"
	for i := 1; i <= 2; i++ {
		if stage, err := sendAsMallory(t, p.StartTLS, "mallory", rcpt, fmt.Sprintf("uid %d", i)); err != nil {
			t.Fatalf("message %d as the uid (file: 2/1h) refused at %s: %v", i, stage, err)
		}
	}
	for _, spelling := range mallorySpellings {
		_, err := sendAsMallory(t, p.StartTLS, spelling, rcpt, "over as "+spelling)
		wantLimitReply(t, fmt.Sprintf("%q after 2 of the file's 2/1h", spelling), err, malloryCanonical)
	}
	if got := len(proxytest.MessagesTo(pf.WaitMessages(t, 2, 30*time.Second), rcpt)); got != 2 {
		t.Fatalf("Postfix got %d messages, want 2", got)
	}
}

// TestLDAPSuspensionAllSpellingsE2E: once the account is suspended through
// one spelling, AUTH with the right password gets 535 5.7.8 by every
// spelling (before, the other two still got 235); `postern status` and
// `postern unsuspend` take the canonical identity, and after the unsuspend
// every spelling logs in again.
func TestLDAPSuspensionAllSpellingsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	p := startMalloryPostern(t, pf.Addr, s, "--limit-messages", "1/1h", "--suspend-after", "1",
		"--control-socket", sock)
	p.waitLog(t, "control socket listening", 10*time.Second)
	const rcpt = "suspend@example.test"
	c := dialAuth(t, p.StartTLS, "mallory", malloryPass)
	for i := 0; i < 5 && !strings.Contains(p.Log(), "event=suspension"); i++ {
		sendOn(t, c, malloryCanonical, []string{rcpt}, "until suspended")
	}
	c.Close()
	p.waitLog(t, "event=suspension", 10*time.Second)
	for _, spelling := range mallorySpellings {
		c, err := authReply(t, p.StartTLS, spelling, malloryPass)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("AUTH as %q of the suspended account: %v, want 535 5.7.8", spelling, err)
		}
	}
	p.waitLog(t, "event=suspension login="+malloryCanonical+" ", 10*time.Second)
	status, err := posternCLI(t, "status", "--control-socket", sock, malloryCanonical)
	if err != nil || !strings.Contains(status, "login "+malloryCanonical) || !strings.Contains(status, "suspended since ") {
		t.Fatalf("postern status %s: %v\n%s", malloryCanonical, err, status)
	}
	out, err := posternCLI(t, "unsuspend", "--control-socket", sock, malloryCanonical)
	if err != nil || !strings.Contains(out, malloryCanonical+" unsuspended") {
		t.Fatalf("postern unsuspend %s: %v\n%s", malloryCanonical, err, out)
	}
	for _, spelling := range mallorySpellings {
		c, err := authReply(t, p.StartTLS, spelling, malloryPass)
		if err != nil {
			t.Fatalf("AUTH as %q after the unsuspend: %v", spelling, err)
		}
		c.Close()
	}
}

// TestLDAPSenderMapSpellingsE2E: a sender-map line naming the uid or the
// canonical identity gives its address to every spelling (before, only to
// the spelling the line named), and a line naming another login gives
// nothing to any spelling.
func TestLDAPSenderMapSpellingsE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	senderMap := filepath.Join(t.TempDir(), "sender-map")
	writeFile(t, senderMap, "by-uid@example.com mallory\nby-mail@example.com "+malloryCanonical+
		"\nothers@example.com eve\n")
	p := startMalloryPostern(t, pf.Addr, s, "--sender-map", senderMap)
	for _, spelling := range mallorySpellings {
		c := dialAuth(t, p.StartTLS, spelling, malloryPass)
		for _, from := range []string{"by-uid@example.com", "by-mail@example.com", "m.allory@example.com"} {
			if err := c.Mail(from, nil); err != nil {
				t.Fatalf("logged in as %q, MAIL FROM:<%s>: %v, want 250", spelling, from, err)
			}
			if err := c.Reset(); err != nil {
				t.Fatal(err)
			}
		}
		err := c.Mail("others@example.com", nil)
		wantCode(t, fmt.Sprintf("logged in as %q, MAIL FROM another login's address", spelling), err, 553)
		c.Close()
	}
}

// TestLDAPLoginDelayAllSpellingsE2E: wrong passwords on any spelling count
// against the account's canonical identity in the shared lockout state (so
// its login delay slows guesses on every spelling; before, each spelling
// had counters of its own and a guesser rotating spellings tripled his
// rate), and the owner's success by another spelling clears them.
func TestLDAPLoginDelayAllSpellingsE2E(t *testing.T) {
	t.Parallel()
	redis := testkit.StartRedis(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	p := startMalloryPostern(t, pf.Addr, s, "--state", redis.URL())
	store, err := state.NewRedis(state.RedisConfig{URL: redis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	failures := func(login string) int {
		t.Helper()
		n, err := store.Count(context.Background(), "lockout:login:"+state.LoginKey(login), limits.DefaultLockoutWindow)
		if err != nil {
			t.Fatalf("reading the login counter of %s: %v", login, err)
		}
		return n
	}
	for i, spelling := range []string{"mallory", "m.allory@example.com"} {
		_, err := authReply(t, p.StartTLS, spelling, "wrong guess")
		wantCode(t, "wrong password as "+spelling, err, 535)
		if got := failures(malloryCanonical); got != i+1 {
			t.Fatalf("after %d wrong passwords (last as %q) the account has %d failures, want %d", i+1, spelling, got, i+1)
		}
	}
	if got := failures("mallory"); got != 1 {
		t.Fatalf("the spelling mallory has %d failures, want its own 1", got)
	}
	c, err := authReply(t, p.StartTLS, "mallory", malloryPass)
	if err != nil {
		t.Fatalf("the owner's AUTH as mallory: %v", err)
	}
	c.Close()
	if got := failures(malloryCanonical); got != 0 {
		t.Fatalf("after the owner logged in the account still has %d failures, want 0", got)
	}
}

// TestLDAPLoginAttributeFlagE2E: --ldap-login-attribute, its environment
// twin and its config-file key choose the canonical identity (here uid),
// which the log lines then name for every spelling.
func TestLDAPLoginAttributeFlagE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	s := startMalloryLDAP(t)
	conf := filepath.Join(t.TempDir(), "postern.toml")
	writeFile(t, conf, "ldap-login-attribute = \"uid\"\n")
	for name, setting := range map[string]struct{ env, flags []string }{
		"flag":        {flags: []string{"--ldap-login-attribute", "uid"}},
		"environment": {env: []string{"POSTERN_LDAP_LOGIN_ATTRIBUTE=uid"}},
		"config file": {flags: []string{"--config", conf}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := writeTestCert(t, dir)
			p := &postern{StartTLS: anyPort, TLS: anyPort, Dir: dir}
			cmd := exec.Command(posternBin, append([]string{"serve", "--hostname", "submission.test",
				"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS, "--upstream", pf.Addr,
				"--tls-cert", certFile, "--tls-key", keyFile, "--shutdown-timeout", "5s",
				"--ldap-url", s.URL, "--ldap-base", authtest.LDAPBase, "--ldap-filter", "(|(uid=%u)(mail=%u))",
			}, setting.flags...)...)
			cmd.Env = append(cleanEnv(), setting.env...)
			p.run(t, cmd)
			for _, spelling := range mallorySpellings {
				dialAuth(t, p.StartTLS, spelling, malloryPass).Close()
			}
			waitFor(t, "an auth ok line per session", func() bool { return len(logLines(p, "auth ok")) == len(mallorySpellings) })
			for _, l := range logLines(p, "auth ok") {
				if !strings.Contains(l, " login=mallory ") {
					t.Fatalf("auth ok line does not name the uid:\n%s", l)
				}
			}
		})
	}
}
