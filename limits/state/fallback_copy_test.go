package state

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// Issue 18 item 5: an outage goes on from what this process last knew.

// hang stops srv with SIGSTOP (it keeps its port, accepts and never
// answers) until the test ends.
func hang(t *testing.T, srv *testkit.RedisServer) {
	t.Helper()
	if err := srv.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Proc.Signal(syscall.SIGCONT) })
}

// demote makes srv a read-only replica of a new, empty primary: writes get
// READONLY, and once synchronised its data is the primary's (none), as
// after a failover to a fresh node.
func demote(t *testing.T, srv *testkit.RedisServer) {
	t.Helper()
	primary := testkit.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	host, port, _ := strings.Cut(primary.Addr, ":")
	if err := c.ReplicaOf(context.Background(), host, port).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr})
		c.ReplicaOf(context.Background(), "NO", "ONE")
		c.Close()
	})
}

// outages are the ways Redis stops answering that the copy must outlive.
var outages = []struct {
	name  string
	start func(*testing.T, *testkit.RedisServer)
}{
	{"stopped", func(t *testing.T, srv *testkit.RedisServer) { srv.Stop(t) }},
	{"hung", hang},
	{"read-only", demote},
}

// TestFallbackKnownSuspensionsOutliveOutage: suspensions this process made,
// and one another replica made that this process looked up, still refuse
// their logins while Redis is stopped, hung (SIGSTOP) or a read-only
// replica; a login it never saw suspended is not suspended (fail open).
// Before, the outage answered from an empty memory: not suspended.
func TestFallbackKnownSuspensionsOutliveOutage(t *testing.T) {
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			srv := testkit.StartRedis(t)
			var logs, logsB syncBuffer
			a := newTestFallback(t, srv, &logs)
			b := newTestFallback(t, srv, &logsB)
			ctx := context.Background()
			now := time.Now().Truncate(time.Millisecond) // Redis keeps milliseconds
			s := Suspension{Reason: "test", Since: now, Until: now.Add(time.Hour)}
			if err := a.Suspend(ctx, "made@example.test", s); err != nil {
				t.Fatal(err)
			}
			if err := b.Suspend(ctx, "seen@example.test", s); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := a.Suspended(ctx, "Seen@Example.test"); err != nil || !ok {
				t.Fatalf("seen@ not suspended with Redis up: %v, %v", ok, err)
			}
			// Suspended elsewhere and lifted: a's lookup drops its copy.
			if err := b.Suspend(ctx, "lifted@example.test", s); err != nil {
				t.Fatal(err)
			}
			a.Suspended(ctx, "lifted@example.test")
			if was, err := b.Unsuspend(ctx, "lifted@example.test"); err != nil || !was {
				t.Fatalf("unsuspend on b: %v, %v", was, err)
			}
			if _, ok, _ := a.Suspended(ctx, "lifted@example.test"); ok {
				t.Fatal("lifted@ still suspended on a with Redis up")
			}
			if err := b.Suspend(ctx, "unseen@example.test", s); err != nil {
				t.Fatal(err)
			}

			o.start(t, srv)
			// Any write turns a degraded: a read-only replica still answers reads.
			a.Add(ctx, "some-counter", 5, time.Hour)
			waitDegraded(t, a, true)
			for _, login := range []string{"made@example.test", "SEEN@example.test"} {
				got, ok, err := a.Suspended(ctx, login)
				if err != nil || !ok || got.Reason != "test" || !got.Until.Equal(s.Until) {
					t.Errorf("%s during the outage: %+v suspended=%v (%v), want the suspension it knew", login, got, ok, err)
				}
			}
			for _, login := range []string{"lifted@example.test", "unseen@example.test"} {
				if _, ok, _ := a.Suspended(ctx, login); ok {
					t.Errorf("%s suspended during the outage; a did not know it suspended", login)
				}
			}
		})
	}
}

// TestFallbackCountersContinueDuringOutage: a counter this process last
// saw full (events of two replicas together) stays full when Redis stops
// answering; one it saw at 2 of 3 lets exactly one more through; one it
// never saw starts from zero (fail open). Before, every counter started
// from zero: a fresh budget per outage.
func TestFallbackCountersContinueDuringOutage(t *testing.T) {
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			srv := testkit.StartRedis(t)
			var logs, logsB syncBuffer
			a := newTestFallback(t, srv, &logs)
			b := newTestFallback(t, srv, &logsB)
			ctx := context.Background()
			add := func(s Store, key string) (int, bool) {
				t.Helper()
				n, ok, err := s.Add(ctx, key, 3, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return n, ok
			}
			add(b, "full")
			add(b, "full")
			if n, ok := add(a, "full"); n != 3 || !ok {
				t.Fatalf("third add on a = %d, %v; want 3, true", n, ok)
			}
			add(b, "two")
			if n, err := a.Count(ctx, "two", time.Hour); err != nil || n != 1 {
				t.Fatalf("count of two on a = %d, %v", n, err)
			}
			add(a, "two")
			if n, err := a.Record(ctx, "recorded", 3, time.Hour); err != nil || n != 1 {
				t.Fatalf("record = %d, %v", n, err)
			}
			add(b, "unseen")
			add(b, "unseen")
			add(b, "unseen")

			o.start(t, srv)
			if n, ok := add(a, "full"); ok || n != 3 {
				t.Errorf("add to the full counter during the outage = %d, added %v; want 3, refused", n, ok)
			}
			waitDegraded(t, a, true)
			if n, ok := add(a, "full"); ok || n != 3 {
				t.Errorf("second add to the full counter during the outage = %d, added %v; want 3, refused", n, ok)
			}
			if n, ok := add(a, "two"); !ok || n != 3 {
				t.Errorf("add to the counter at 2 = %d, added %v; want 3, added", n, ok)
			}
			if n, ok := add(a, "two"); ok {
				t.Errorf("second add to the counter at 2 = %d, added; want refused", n)
			}
			if n, err := a.Count(ctx, "recorded", time.Hour); err != nil || n != 1 {
				t.Errorf("recorded counter during the outage = %d, %v; want 1", n, err)
			}
			if n, ok := add(a, "unseen"); !ok || n != 1 {
				t.Errorf("add to a counter a never saw = %d, %v; want 1, added (fail open)", n, ok)
			}
		})
	}
}

// TestFallbackSuspensionsOutliveRedisRestartedEmpty: two replicas are
// degraded while Redis is stopped; it starts again empty. The replica that
// knew nothing of alice's suspension answers first and starts a new data
// generation; the one that knew it must still notice that Redis lost its
// data and write the suspension back. Before, only a replica that found
// the marker missing did: the later one dropped its copy at its next
// lookup and alice was free everywhere.
func TestFallbackSuspensionsOutliveRedisRestartedEmpty(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logsA, logsB, logsC syncBuffer
	a := newTestFallback(t, srv, &logsA) // probes every 50 ms
	r, err := NewRedis(RedisConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	b := NewFallback(r, NewMemory(MemoryConfig{}), FallbackConfig{
		ProbeInterval: time.Second, // answers after a
		Log:           slog.New(slog.NewTextHandler(&logsB, nil)),
	})
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	for _, f := range []*Fallback{a, b} {
		if err := f.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s := Suspension{Reason: "test", Since: time.Now(), Until: time.Now().Add(time.Hour)}
	if err := b.Suspend(ctx, "alice@example.test", s); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	a.Count(ctx, "x", time.Hour)
	if _, ok, _ := b.Suspended(ctx, "alice@example.test"); !ok {
		t.Fatal("alice not suspended on b during the outage")
	}
	waitDegraded(t, a, true)
	waitDegraded(t, b, true)
	srv.Restart(t)
	waitDegraded(t, a, false)
	waitDegraded(t, b, false)
	c := newTestFallback(t, srv, &logsC)
	if _, ok, err := c.Suspended(ctx, "alice@example.test"); err != nil || !ok {
		t.Fatalf("alice after Redis came back empty: suspended=%v (%v), want true\nb's log:\n%s", ok, err, logsB.String())
	}
}
