package main

// End-to-end test of issue 18 item 4 through the built binary, with a real
// slapd that is stopped: a backend that is down must not switch the lockout
// off.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/auth/authtest"
	"github.com/postern/postern/internal/testkit"
)

// TestLockoutHoldsWhileLDAPDown: --users in front of --ldap-url, slapd
// stopped. A wrong password for a users-file login goes on to LDAP, which
// cannot answer: the client hears 454 (the login might live in LDAP with
// this password), but the guess counts toward --auth-max-failures, so after
// 5 of them the address gets 421 even with the right password (before, the
// attempt was given back: 45 guesses in 0.8 s, then 235). A login that
// lives only in LDAP, whose attempts nobody could check, counts toward
// --auth-max-unavailable instead, never as a failure (no "auth failed"
// line for fail2ban): 454 up to that budget, then 421. Parallel guesses from
// one address get no more than sequential ones. Once slapd is back,
// LDAP users from other addresses get in. With --state memory and with
// --state redis:// (the counters are the lockout's store keys either way).
func TestLockoutHoldsWhileLDAPDown(t *testing.T) {
	t.Parallel()
	s := authtest.StartSlapd(t)
	s.AddUser("carol", "carol-ldap-secret", "carol@example.test")
	s.Stop() // each run starts it
	redis := testkit.StartRedis(t)
	for _, tc := range []struct{ name, state string }{
		{"memory", "memory"},
		{"redis", redis.URL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Start()
			t.Cleanup(s.Stop) // idempotent: a failed run leaves it stopped for the next
			const maxFailures, maxUnavailable = 5, 8
			p := startPosternUsers(t, "127.0.0.1:1", cheapUsers(t),
				"--ldap-url", s.URL, "--ldap-base", authtest.LDAPPeople, "--ldap-filter", "(mail=%u)",
				"--auth-cache-ttl", "0", "--state", tc.state,
				"--auth-max-failures", fmt.Sprint(maxFailures), "--auth-max-unavailable", fmt.Sprint(maxUnavailable),
				"--max-auth-failures-per-connection", "100")
			// Both backends answer: carol (LDAP) and alice (users file) get in.
			c := dialFrom(t, p.StartTLS, "127.0.0.10")
			expectReply(t, "carol with slapd up", c.auth("carol@example.test", "carol-ldap-secret"), "235")
			s.Stop()

			t.Run("wrong passwords for users-file logins", func(t *testing.T) {
				c := dialFrom(t, p.StartTLS, "127.0.0.1")
				for n := 1; n <= maxFailures; n++ {
					login := aliceLogin
					if n%2 == 0 {
						login = bobLogin // alice's own delay stays short
					}
					want := "454 4.7.0"
					if n == maxFailures {
						want = "421 4.7.0"
					}
					expectReply(t, fmt.Sprintf("guess %d at %s", n, login), c.auth(login, fmt.Sprintf("wrong-%d", n)), want)
				}
				if !c.closed() {
					t.Fatal("connection still open after the 421")
				}
				c = dialFrom(t, p.StartTLS, "127.0.0.1")
				expectReply(t, "right password after the guesses", c.auth(aliceLogin, alicePass), "421 4.7.0")
				waitLogCount(t, p, "auth failed", "127.0.0.1", maxFailures)
				waitLogCount(t, p, "auth lockout: address blocked", "127.0.0.1", 1)
				// The owner from another address: the users file answers.
				c = dialFrom(t, p.StartTLS, "127.0.0.9")
				expectReply(t, "alice from another address", c.auth(aliceLogin, alicePass), "235")
			})

			t.Run("parallel guesses while slapd is down", func(t *testing.T) {
				const n = 20
				replies := parallelAuth(t, p.StartTLS, "127.0.0.4", n, func(i int) (string, string) {
					return bobLogin, fmt.Sprintf("wrong-%d", i)
				})
				checked := 0
				for i, r := range replies {
					switch {
					case strings.HasPrefix(r, "454 4.7.0"):
						checked++
					case strings.HasPrefix(r, "421 4.7.0"):
					default:
						t.Errorf("connection %d: got %q, want 454 or 421", i, r)
					}
				}
				if checked >= maxFailures {
					t.Errorf("%d of %d parallel guesses got past the lockout of %d", checked, n, maxFailures)
				}
				// Each was checked ("auth failed") or refused unchecked.
				p.proc.WaitOutput(t, "a log line per parallel guess", 10*time.Second, func(string) bool {
					return logCount(p, "auth failed", "127.0.0.4")+logCount(p, "auth locked out", "127.0.0.4") >= n
				})
				if f := logCount(p, "auth failed", "127.0.0.4"); f > maxFailures {
					t.Errorf("%d parallel guesses were checked; the lockout allows %d", f, maxFailures)
				}
				c := dialFrom(t, p.StartTLS, "127.0.0.4")
				expectReply(t, "right password after the parallel guesses", c.auth(bobLogin, bobPass), "421 4.7.0")
			})

			t.Run("LDAP-only login while slapd is down", func(t *testing.T) {
				c := dialFrom(t, p.StartTLS, "127.0.0.2")
				for n := 1; n <= maxUnavailable; n++ {
					want := "454 4.7.0"
					if n == maxUnavailable {
						want = "421 4.7.0"
					}
					// The right password, and guesses at logins no backend
					// that answered holds: neither can be checked.
					login, pw := "carol@example.test", "carol-ldap-secret"
					if n%2 == 0 {
						login, pw = fmt.Sprintf("nobody%d@example.test", n), "guess"
					}
					expectReply(t, fmt.Sprintf("attempt %d (%s)", n, login), c.auth(login, pw), want)
				}
				if !c.closed() {
					t.Fatal("connection still open after the 421")
				}
				c = dialFrom(t, p.StartTLS, "127.0.0.2")
				expectReply(t, "after the budget", c.auth("carol@example.test", "carol-ldap-secret"), "421 4.7.0")
				waitLogCount(t, p, "auth unavailable", "127.0.0.2", maxUnavailable)
				waitLogCount(t, p, "auth lockout: address blocked after attempts while a backend was unavailable", "127.0.0.2", 1)
				if n := logCount(p, "auth failed", "127.0.0.2"); n != 0 {
					t.Fatalf("%d attempts nobody could check were logged as failures (fail2ban)", n)
				}
				if n := logCount(p, "auth lockout: address blocked", "127.0.0.2"); n != 0 {
					t.Fatal("the unavailable budget logged the line fail2ban bans on")
				}
			})

			s.Start()
			c = dialFrom(t, p.StartTLS, "127.0.0.3")
			expectReply(t, "carol once slapd is back", c.auth("carol@example.test", "carol-ldap-secret"), "235")
			s.Stop()
		})
	}
}
