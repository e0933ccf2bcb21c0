package state

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// syncBuffer is a log destination safe for the probe goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestFallback(t *testing.T, srv *testkit.RedisServer, logs *syncBuffer) *Fallback {
	t.Helper()
	r, err := NewRedis(RedisConfig{URL: srv.URL()}) // the default timeout: what production gets
	if err != nil {
		t.Fatal(err)
	}
	f := NewFallback(r, NewMemory(MemoryConfig{}), FallbackConfig{
		ProbeInterval: 50 * time.Millisecond,
		Log:           slog.New(slog.NewTextHandler(logs, nil)),
	})
	t.Cleanup(func() { f.Close() })
	return f
}

// timed runs op and fails the test if it took longer than a generous bound:
// with Redis gone or hung, no call may stall a session.
func timed(t *testing.T, what string, op func() error) {
	t.Helper()
	start := time.Now()
	if err := op(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("%s took %v", what, d)
	}
}

func waitDegraded(t *testing.T, f *Fallback, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for f.Degraded() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Degraded() still %v after 15s", !want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFallbackRedisStoppedAndRestarted: Redis stopped mid-run (by PID) →
// every operation keeps answering, from memory, one warning, degraded;
// Redis restarted on the same port → the shared state is used again; a
// second outage warns again.
func TestFallbackRedisStoppedAndRestarted(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logs syncBuffer
	f := newTestFallback(t, srv, &logs)
	ctx := context.Background()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()

	for range 3 {
		if _, _, err := f.Add(ctx, "k", 5, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := direct.ZCard(ctx, "postern:k").Result(); n != 3 {
		t.Fatalf("redis holds %d events, want 3: the store is not shared", n)
	}
	if f.Degraded() {
		t.Fatal("degraded with Redis up")
	}

	srv.Stop(t)
	for i := range 20 {
		timed(t, "add with redis down", func() error {
			_, _, err := f.Add(ctx, "k", 5, time.Hour)
			return err
		})
		timed(t, "count with redis down", func() error {
			_, err := f.Count(ctx, "k", time.Hour)
			return err
		})
		timed(t, "once with redis down", func() error {
			ok, err := f.Once(ctx, "once", time.Hour)
			if ok != (i == 0) {
				t.Errorf("Once #%d = %v from memory", i, ok)
			}
			return err
		})
	}
	// Memory counts alone from the outage on: limit 5 holds per process.
	if n, _ := f.Count(ctx, "k", time.Hour); n != 5 {
		t.Errorf("count from memory = %d, want 5", n)
	}
	if !f.Degraded() {
		t.Fatal("not degraded with Redis down")
	}
	if got := strings.Count(logs.String(), "redis failed"); got != 1 {
		t.Fatalf("%d warnings for one outage, want 1:\n%s", got, logs.String())
	}

	srv.Restart(t)
	waitDegraded(t, f, false)
	if !strings.Contains(logs.String(), "redis answers again") {
		t.Errorf("no line saying redis is back:\n%s", logs.String())
	}
	if _, _, err := f.Add(ctx, "k", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, _ := direct.ZCard(ctx, "postern:k").Result(); n != 1 {
		t.Fatalf("restarted (empty) redis holds %d events after one add, want 1: not shared again", n)
	}

	srv.Stop(t)
	f.Count(ctx, "k", time.Hour)
	waitDegraded(t, f, true)
	if got := strings.Count(logs.String(), "redis failed"); got != 2 {
		t.Fatalf("%d warnings for two outages, want 2:\n%s", got, logs.String())
	}
}

// TestFallbackRedisHung: a Redis that accepts but does not answer (stopped
// with SIGSTOP) costs one call's timeout, then memory answers at once.
func TestFallbackRedisHung(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logs syncBuffer
	f := newTestFallback(t, srv, &logs)
	ctx := context.Background()
	if _, _, err := f.Add(ctx, "k", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := srv.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer srv.Proc.Signal(syscall.SIGCONT)
	start := time.Now()
	for range 10 {
		timed(t, "add with redis hung", func() error {
			_, _, err := f.Add(ctx, "k", 50, time.Hour)
			return err
		})
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("10 adds with redis hung took %v; the timeout is %v per call and only the first should wait", d, DefaultRedisTimeout)
	}
	if !f.Degraded() {
		t.Fatal("not degraded with redis hung")
	}
	srv.Proc.Signal(syscall.SIGCONT)
	waitDegraded(t, f, false)
}

// TestFallbackCallerCancelNotAnOutage: a caller giving up is not Redis
// failing.
func TestFallbackCallerCancelNotAnOutage(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logs syncBuffer
	f := newTestFallback(t, srv, &logs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Add(ctx, "k", 5, time.Hour)
	if f.Degraded() {
		t.Fatal("a cancelled caller turned the store degraded")
	}
}

// TestFallbackReadOnlyRedisStaysDegraded: a Redis that answers PING but
// refuses writes (a replica after a failover) is not "back": the store
// stays on memory, with one warning, until writes work again.
func TestFallbackReadOnlyRedisStaysDegraded(t *testing.T) {
	srv := testkit.StartRedis(t)
	primary := testkit.StartRedis(t)
	var logs syncBuffer
	f := newTestFallback(t, srv, &logs)
	ctx := context.Background()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	host, port, _ := strings.Cut(primary.Addr, ":")
	if err := direct.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	// A replica refuses writes; the first operation turns the store degraded.
	if _, _, err := f.Add(ctx, "k", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitDegraded(t, f, true)
	time.Sleep(500 * time.Millisecond) // ten probe intervals
	if !f.Degraded() {
		t.Fatal("a read-only Redis was taken back")
	}
	if _, _, err := f.Add(ctx, "k", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(logs.String(), "redis failed"); got != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", got, logs.String())
	}
	if err := direct.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	waitDegraded(t, f, false)
}

// TestFallbackSuspensionOutlivesOutage: a login suspended while Redis was
// down (in this process's memory) stays suspended when Redis answers
// again, on this replica and on the others: before, the shared state came
// back without it and the login could log in again at once. Lifting it
// through any replica lifts it everywhere.
func TestFallbackSuspensionOutlivesOutage(t *testing.T) {
	srv := testkit.StartRedis(t)
	var logs, logsB syncBuffer
	a := newTestFallback(t, srv, &logs)
	ctx := context.Background()
	srv.Stop(t)
	a.Count(ctx, "k", time.Hour)
	waitDegraded(t, a, true)
	s := Suspension{Reason: "test", Since: time.Now(), Until: time.Now().Add(time.Hour)}
	if err := a.Suspend(ctx, "Alice", s); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	waitDegraded(t, a, false)
	if _, ok, err := a.Suspended(ctx, "alice"); err != nil || !ok {
		t.Fatalf("after the outage, on the replica that suspended: suspended=%v (%v), want true", ok, err)
	}
	b := newTestFallback(t, srv, &logsB)
	if got, ok, err := b.Suspended(ctx, "alice"); err != nil || !ok || got.Reason != "test" {
		t.Fatalf("after the outage, on another replica: %+v suspended=%v (%v), want true", got, ok, err)
	}
	if was, err := b.Unsuspend(ctx, "alice"); err != nil || !was {
		t.Fatalf("unsuspend on another replica: %v, %v", was, err)
	}
	if _, ok, _ := a.Suspended(ctx, "alice"); ok {
		t.Fatal("still suspended on the first replica after unsuspend on another")
	}
}
