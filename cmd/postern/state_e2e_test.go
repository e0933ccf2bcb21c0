package main

// End-to-end tests of --state redis:// (issue 12): three instances of the
// built binary behind a real HAProxy (balance roundrobin, send-proxy-v2)
// sharing a real redis-server, with a real Postfix upstream.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// stateReplicas starts three instances with flags behind one HAProxy
// frontend "all" (round robin) and one frontend per instance ("only[i]"),
// and returns the instances, the frontends and the metrics URLs.
func stateReplicas(t *testing.T, upstream, users string, flags ...string) (ps [3]*postern, all string, only [3]string, metrics [3]string) {
	t.Helper()
	testkit.RequireTool(t, "haproxy") // before starting the instances
	flags = append([]string{"--proxy-protocol-from", "127.0.0.1/32",
		"--max-auth-failures-per-connection", "100", "--metrics", anyPort}, flags...)
	var backends []string
	for i := range ps {
		ps[i] = startPosternUsers(t, upstream, users, flags...)
		metrics[i] = "http://" + ps[i].metricsAddr(t)
		backends = append(backends, ps[i].StartTLS)
	}
	h := testkit.StartHAProxy(t, backends, testkit.HAProxyOptions{})
	copy(only[:], h.Only)
	return ps, h.Balanced, only, metrics
}

// stateSpray sends n wrong passwords from ip through frontend, each on its
// own connection and for a different login (password spraying: no login
// delay builds up), and returns the replies.
func stateSpray(t *testing.T, frontend, ip string, n int) []string {
	t.Helper()
	var replies []string
	for i := range n {
		c := opsDial(t, frontend, ip, "")
		replies = append(replies, c.auth(fmt.Sprintf("guess-%d@example.test", i), "wrong"))
		c.conn.Close()
	}
	return replies
}

// stateExpectLockedOutEverywhere: the right password from ip gets the
// address lockout's 421 on every instance.
func stateExpectLockedOutEverywhere(t *testing.T, only [3]string, ip string) {
	t.Helper()
	for i, fe := range only {
		c := opsDial(t, fe, ip, "")
		r := c.auth(aliceLogin, alicePass)
		if !strings.HasPrefix(r, "421 4.7.0") || !strings.Contains(r, "from your address") {
			t.Errorf("instance %d: AUTH from the locked-out %s got %q, want the 421 4.7.0 address lockout", i, ip, r)
		}
	}
}

func stateDegraded(t *testing.T, metricsURL string) float64 {
	t.Helper()
	m, raw := opsScrape(t, metricsURL+"/metrics")
	v, ok := m["postern_state_degraded"]
	if !ok {
		t.Fatalf("no postern_state_degraded in\n%s", raw)
	}
	return v
}

// TestStateRedisSharedLockoutE2E: 10 wrong passwords from one client
// address, spread by round robin over three instances sharing Redis, lock
// it out on all three (the 11th attempt gets 421 on each), with one lockout
// log line between them; other clients are not affected. Then Redis is
// stopped mid-run: well-behaved users send through every instance without
// a failed session, /readyz stays ready, each instance logs one warning and
// shows postern_state_degraded 1, and the lockout keeps working per
// instance. Redis restarted on the same port: the instances share again.
func TestStateRedisSharedLockoutE2E(t *testing.T) {
	t.Parallel()
	redis := testkit.StartRedis(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	ps, all, only, metrics := stateReplicas(t, pf.Addr, cheapUsers(t), "--state", redis.URL())
	delivered := 0

	// 1. Shared lockout.
	replies := stateSpray(t, all, "127.0.0.9", 10)
	for i, r := range replies[:9] {
		expectReply(t, fmt.Sprintf("wrong password %d", i+1), r, "535 5.7.8")
	}
	expectReply(t, "10th wrong password", replies[9], "421 4.7.0")
	// Round robin spread the ten over the three instances (4, 3, 3).
	waitFor(t, "the failures spread over the three instances", func() bool {
		return logCount(ps[0], "auth failed", "127.0.0.9") > 0 && logCount(ps[1], "auth failed", "127.0.0.9") > 0 &&
			logCount(ps[2], "auth failed", "127.0.0.9") > 0
	})
	for i, p := range ps {
		t.Logf("instance %d: %d failures of 127.0.0.9", i, logCount(p, "auth failed", "127.0.0.9"))
	}
	stateExpectLockedOutEverywhere(t, only, "127.0.0.9")
	blocked := 0
	for _, p := range ps {
		blocked += logCount(p, "auth lockout: address blocked", "127.0.0.9")
	}
	if blocked != 1 {
		t.Errorf("%d 'auth lockout: address blocked' lines over three instances, want exactly 1", blocked)
	}
	for i, fe := range only {
		c := opsDial(t, fe, "127.0.0.10", "")
		expectReply(t, fmt.Sprintf("AUTH from 127.0.0.10 on instance %d", i), c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message from 127.0.0.10", c.send(aliceLogin, "friend@example.test", fmt.Sprintf("state-shared-%d", i)), "250")
		c.expect("QUIT", "221")
		if v := stateDegraded(t, metrics[i]); v != 0 {
			t.Errorf("instance %d: postern_state_degraded %v with Redis up", i, v)
		}
	}
	delivered += 3
	pf.WaitMessages(t, delivered, 30*time.Second)

	// 2. Redis stopped mid-run.
	redis.Stop(t)
	for i := range 6 {
		start := time.Now()
		c := opsDial(t, all, "127.0.0.11", "")
		expectReply(t, fmt.Sprintf("AUTH %d with Redis down", i), c.auth(aliceLogin, alicePass), "235")
		expectReply(t, fmt.Sprintf("message %d with Redis down", i), c.send(aliceLogin, "friend@example.test", fmt.Sprintf("state-down-%d", i)), "250")
		c.expect("QUIT", "221")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("session %d with Redis down took %v", i, d)
		}
	}
	delivered += 6
	pf.WaitMessages(t, delivered, 30*time.Second)
	for i, p := range ps {
		if v := stateDegraded(t, metrics[i]); v != 1 {
			t.Errorf("instance %d: postern_state_degraded %v with Redis down, want 1", i, v)
		}
		if s := opsStatus(t, metrics[i]+"/readyz"); s != 200 {
			t.Errorf("instance %d: /readyz %d with Redis down, want 200", i, s)
		}
		if n := strings.Count(p.Log(), "state: redis failed"); n != 1 {
			t.Errorf("instance %d: %d redis warnings for one outage, want 1", i, n)
		}
	}
	// The lockout still works, per instance: 10 failures on instance 0
	// block the address there.
	replies = stateSpray(t, only[0], "127.0.0.12", 10)
	expectReply(t, "10th wrong password with Redis down", replies[9], "421 4.7.0")
	c := opsDial(t, only[0], "127.0.0.12", "")
	expectReply(t, "right password after the lockout with Redis down", c.auth(aliceLogin, alicePass), "421 4.7.0")

	// 3. Redis back on the same port (empty): shared again.
	redis.Restart(t)
	for i := range ps {
		waitFor(t, fmt.Sprintf("instance %d to leave degraded mode", i), func() bool { return stateDegraded(t, metrics[i]) == 0 })
		if !strings.Contains(ps[i].Log(), "redis answers again") {
			t.Errorf("instance %d: no line saying Redis is back", i)
		}
	}
	replies = stateSpray(t, all, "127.0.0.13", 10)
	expectReply(t, "10th wrong password after Redis came back", replies[9], "421 4.7.0")
	stateExpectLockedOutEverywhere(t, only, "127.0.0.13")
}

// TestStateBadConfigurations: a --state the binary cannot use stops it at
// start with a message naming the problem; a password never goes in the URL.
func TestStateBadConfigurations(t *testing.T) {
	t.Parallel()
	dir, flags := validConfig(t)
	pw := filepath.Join(dir, "redis-password")
	writeFile(t, pw, "s3cret\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown store", []string{"--state", "etcd://127.0.0.1:2379"}, "want memory, redis://"},
		{"password in the URL", []string{"--state", "redis://:s3cret@127.0.0.1:6379/0"}, "--state-password-file"},
		{"bad database", []string{"--state", "redis://127.0.0.1:6379/notanumber"}, "--state"},
		{"password file without redis", []string{"--state-password-file", pw}, "needs --state redis"},
		{"missing password file", []string{"--state", "redis://127.0.0.1:6379/0", "--state-password-file", filepath.Join(dir, "nope")}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runCLI(t, nil, "", append(append([]string{"check-config"}, flags...), tt.args...)...)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want non-zero with %q:\n%s", code, tt.want, out)
			}
			if strings.Contains(out, "s3cret") {
				t.Fatalf("the password shows in the output:\n%s", out)
			}
		})
	}
	// A Redis that is down is no reason not to start: check-config passes.
	out, code := runCLI(t, nil, "", append(append([]string{"check-config"}, flags...), "--state", "rediss://127.0.0.1:1/0", "--state-password-file", pw)...)
	if code != 0 {
		t.Fatalf("check-config with an unreachable rediss:// exit %d:\n%s", code, out)
	}
}
