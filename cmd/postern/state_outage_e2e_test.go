package main

// End-to-end tests of issue 18 items 5 and 6: what --state redis:// keeps
// when Redis stops answering, and what it says about a Redis that evicts.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// TestStateSuspensionOutlivesRedisOutageE2E: alice is suspended (over
// --limit-messages 1/1h with --suspend-after 2) and bob has used his one
// message, through a real redis-server. Then Redis stops answering — hung
// by SIGSTOP, or turned into a read-only replica (of a fresh primary, as
// after a failover) — and the instance goes on from what it knew: alice's
// right password still gets 535 5.7.8, bob's next MAIL still 451 4.7.1.
// Before, the outage answered from an empty memory: alice logged in (235)
// and both had a fresh budget.
func TestStateSuspensionOutlivesRedisOutageE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	outages := []struct {
		name  string
		start func(*testing.T, *testkit.RedisServer)
	}{
		{"SIGSTOP", func(t *testing.T, r *testkit.RedisServer) { r.Hang(t) }},
		{"read-only replica", func(t *testing.T, r *testkit.RedisServer) { r.ReplicaOf(t, testkit.StartRedis(t)) }},
	}
	delivered := 0
	for i, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			redis := testkit.StartRedis(t)
			p := startPostern(t, pf.Addr, "--state", redis.URL(),
				"--limit-messages", "1/1h", "--suspend-after", "2", "--metrics", anyPort)
			metrics := "http://" + p.metricsAddr(t)

			c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
			if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, fmt.Sprintf("outage-%d-alice", i)); err != nil {
				t.Fatalf("alice's first message refused at %s: %v", stage, err)
			}
			_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
			wantLimitReply(t, "alice's second MAIL", err, aliceLogin)
			c.Close()
			p.waitLog(t, "event=suspension login=alice@example.test", 10*time.Second)
			b := dialAuth(t, p.StartTLS, bobLogin, bobPass)
			if stage, err := sendOn(t, b, bobLogin, []string{"friend@example.test"}, fmt.Sprintf("outage-%d-bob", i)); err != nil {
				t.Fatalf("bob's first message refused at %s: %v", stage, err)
			}
			b.Close()
			delivered += 2
			pf.WaitMessages(t, delivered, 30*time.Second)
			a := dialFrom(t, p.StartTLS, "127.0.0.2")
			expectReply(t, "suspended alice with Redis up", a.auth(aliceLogin, alicePass), "535 5.7.8")

			o.start(t, redis)
			a = dialFrom(t, p.StartTLS, "127.0.0.3")
			start := time.Now()
			if r := a.auth(aliceLogin, alicePass); !strings.HasPrefix(r, "535 5.7.8") {
				t.Errorf("suspended alice's right password during the outage: got %q, want 535 5.7.8", r)
			}
			t.Logf("the first AUTH of the outage was answered in %v", time.Since(start)) // a figure, not an assertion
			if v := stateDegraded(t, metrics); v != 1 {
				t.Fatalf("postern_state_degraded %v during the outage, want 1", v)
			}
			b = dialAuth(t, p.StartTLS, bobLogin, bobPass)
			_, err = sendOn(t, b, bobLogin, []string{"friend@example.test"}, "bob during the outage")
			wantLimitReply(t, "bob's MAIL during the outage", err, bobLogin)
			b.Close()
			if n := len(pf.Messages(t)); n != delivered {
				t.Fatalf("Postfix holds %d messages, want %d: one got through during the outage", n, delivered)
			}
		})
	}
}

// TestStateUnsuspendDuringOutageE2E: `postern unsuspend` through the
// control socket while Redis refuses writes (a replica of a primary that is
// gone: read-only, its data kept). Before, the instance lifted the
// suspension in its own memory only and answered "unsuspended"; when Redis
// took writes again the suspension was back (535 5.7.8) and on every other
// replica it had never gone. Now the command fails and says why, or, if it
// says the login is unsuspended, the login must be able to log in once
// Redis answers again.
func TestStateUnsuspendDuringOutageE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	redis := testkit.StartRedis(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	p := startPostern(t, pf.Addr, "--state", redis.URL(), "--control-socket", sock,
		"--limit-messages", "1/1h", "--suspend-after", "2", "--metrics", anyPort)
	p.waitLog(t, "control socket listening", 10*time.Second)
	metrics := "http://" + p.metricsAddr(t)

	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "unsuspend-outage"); err != nil {
		t.Fatalf("alice's first message refused at %s: %v", stage, err)
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
	wantLimitReply(t, "alice's second MAIL", err, aliceLogin)
	c.Close()
	p.waitLog(t, "event=suspension login=alice@example.test", 10*time.Second)

	// Port 1 on loopback: no primary answers there, so the replica never
	// synchronises and keeps alice's suspension, refusing writes.
	redis.Do(t, "REPLICAOF", "127.0.0.1", "1")
	out, uerr := posternCLI(t, "unsuspend", "--control-socket", sock, aliceLogin)
	redis.Do(t, "REPLICAOF", "NO", "ONE")
	for i := 0; stateDegraded(t, metrics) != 0; i++ {
		if i == 100 {
			t.Fatalf("postern_state_degraded still 1, 10 s after Redis takes writes again\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	a := dialFrom(t, p.StartTLS, "127.0.0.2")
	reply := a.auth(aliceLogin, alicePass)
	if uerr == nil {
		if !strings.HasPrefix(reply, "235") {
			t.Fatalf("unsuspend during the outage said %q, but once Redis answers alice gets %q: the suspension came back", strings.TrimSpace(out), reply)
		}
		return
	}
	if !strings.Contains(out, "redis does not answer") {
		t.Errorf("unsuspend during the outage failed without saying why: %v\n%s", uerr, out)
	}
	expectReply(t, "alice after a refused unsuspend", reply, "535 5.7.8")
	if out, err := posternCLI(t, "unsuspend", "--control-socket", sock, aliceLogin); err != nil {
		t.Fatalf("unsuspend with Redis up: %v\n%s", err, out)
	}
	expectReply(t, "alice after unsuspend with Redis up", dialFrom(t, p.StartTLS, "127.0.0.3").auth(aliceLogin, alicePass), "235")
}

// TestStateSuspensionOutlivesRedisRestartE2E: alice is suspended, Redis
// is stopped (alice still gets 535 5.7.8 from the instance's copy) and
// started again empty, as a Redis without persistence comes back. Before,
// the instance dropped its copy at the first lookup that found none in the
// empty Redis: alice logged in (235) and sent. Now the instance notices
// the lost data and writes back the suspensions it knew.
func TestStateSuspensionOutlivesRedisRestartE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	redis := testkit.StartRedis(t)
	p := startPostern(t, pf.Addr, "--state", redis.URL(),
		"--limit-messages", "1/1h", "--suspend-after", "2", "--metrics", anyPort)
	metrics := "http://" + p.metricsAddr(t)

	c := dialAuth(t, p.StartTLS, aliceLogin, alicePass)
	if stage, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "restart-alice"); err != nil {
		t.Fatalf("alice's first message refused at %s: %v", stage, err)
	}
	_, err := sendOn(t, c, aliceLogin, []string{"friend@example.test"}, "over")
	wantLimitReply(t, "alice's second MAIL", err, aliceLogin)
	c.Close()
	p.waitLog(t, "event=suspension login=alice@example.test", 10*time.Second)

	redis.Stop(t)
	expectReply(t, "suspended alice with Redis stopped", dialFrom(t, p.StartTLS, "127.0.0.2").auth(aliceLogin, alicePass), "535 5.7.8")
	if v := stateDegraded(t, metrics); v != 1 {
		t.Fatalf("postern_state_degraded %v with Redis stopped, want 1", v)
	}
	redis.Restart(t)
	for i := 0; stateDegraded(t, metrics) != 0; i++ {
		if i == 100 {
			t.Fatalf("postern_state_degraded still 1, 10 s after Redis started again\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	expectReply(t, "suspended alice after Redis came back empty", dialFrom(t, p.StartTLS, "127.0.0.3").auth(aliceLogin, alicePass), "535 5.7.8")
	p.waitLog(t, `msg="state: redis answers again but lost its data`, 10*time.Second)
}

// TestStateRedisEvictionPolicyE2E: a Redis whose maxmemory-policy may evict
// Postern's keys (every one has a TTL, so volatile-* as well as allkeys-*)
// is reported at start with a warning naming the policy and
// postern_state_redis_evicting 1 — read with CONFIG GET, or from INFO
// memory where CONFIG is renamed away — and keys it already evicted are
// logged; noeviction gets neither (gauge 0). Before, nothing was said.
func TestStateRedisEvictionPolicyE2E(t *testing.T) {
	t.Parallel()
	const warning = "state: redis may evict postern's keys"
	tests := []struct {
		name, config string
		fill         bool   // another application fills the memory before Postern starts
		want         string // in the line naming the policy
		evicting     float64
	}{
		{"allkeys-lru", "maxmemory 4mb\nmaxmemory-policy allkeys-lru\n", true, "policy=allkeys-lru read_from=config", 1},
		{"volatile-lru, CONFIG renamed away", "maxmemory-policy volatile-lru\nrename-command CONFIG \"\"\n", false, "policy=volatile-lru read_from=info", 1},
		{"noeviction", "maxmemory 4mb\nmaxmemory-policy noeviction\n", false, "policy=noeviction read_from=config", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redis := testkit.StartRedisWith(t, testkit.RedisOptions{Config: tt.config})
			if tt.fill {
				value := strings.Repeat("x", 100_000)
				for i := range 100 {
					redis.Do(t, "SET", fmt.Sprintf("other-app:%d", i), value)
				}
			}
			p := startPostern(t, "127.0.0.1:1", "--state", redis.URL(), "--metrics", anyPort)
			metrics := "http://" + p.metricsAddr(t)
			p.waitLog(t, tt.want, 10*time.Second)
			if strings.Contains(p.Log(), warning) != (tt.evicting == 1) {
				t.Errorf("warning %q logged: %v, want %v:\n%s", warning, !(tt.evicting == 1), tt.evicting == 1, p.Log())
			}
			if tt.fill && !strings.Contains(p.Log(), `msg="state: redis has evicted keys since it started" evicted_keys=`) {
				t.Errorf("the keys Redis evicted are not logged:\n%s", p.Log())
			}
			m, raw := opsScrape(t, metrics+"/metrics")
			if v, ok := m["postern_state_redis_evicting"]; !ok || v != tt.evicting {
				t.Errorf("postern_state_redis_evicting = %v (present %v), want %v:\n%s", v, ok, tt.evicting, raw)
			}
		})
	}
}
