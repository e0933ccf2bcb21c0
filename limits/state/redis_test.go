package state

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// newTestRedis starts a redis-server and returns a store on it. The timeout
// is generous: the test machine is shared, and these tests are about
// atomicity, not speed.
func newTestRedis(t *testing.T) (*Redis, *testkit.RedisServer) {
	t.Helper()
	srv := testkit.StartRedis(t)
	r, err := NewRedis(RedisConfig{URL: srv.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, srv
}

func TestRedisStore(t *testing.T) {
	r, _ := newTestRedis(t)
	// Real sleeps against Redis's clock: the window is long enough that a
	// loaded CI machine's scheduling delays stay well inside a quarter of it.
	storeSuite(t, r, time.Sleep, 2*time.Second)
}

// TestRedisStoreTwoClients: two stores on one Redis (two replicas) share
// their counters, and together never add more than the limit.
func TestRedisStoreTwoClients(t *testing.T) {
	a, srv := newTestRedis(t)
	b, err := NewRedis(RedisConfig{URL: srv.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	added := 0
	for i := range 20 {
		s := Store(a)
		if i%2 == 1 {
			s = b
		}
		_, ok, err := s.Add(ctx, "lockout:addr:192.0.2.1/32", 10, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			added++
		}
	}
	if added != 10 {
		t.Fatalf("two replicas added %d events with limit 10", added)
	}
	if ok, _ := a.Once(ctx, "blocked", time.Hour); !ok {
		t.Fatal("first Once false")
	}
	if ok, _ := b.Once(ctx, "blocked", time.Hour); ok {
		t.Fatal("Once true on the second replica too")
	}
}

// TestRedisKeysNamespacedExpiringHashed: every key is under postern:, has a
// ttl, and no login appears in a key or a value.
func TestRedisKeysNamespacedExpiringHashed(t *testing.T) {
	r, srv := newTestRedis(t)
	ctx := context.Background()
	login := "Alice.Secret@example.test"
	long := strings.Repeat("x", 10_000)
	r.Record(ctx, "lockout:login:"+LoginKey(login), 7, time.Hour)
	r.Add(ctx, "limit:messages:"+LoginKey(login), 200, time.Hour)
	r.Add(ctx, long, 3, time.Hour)
	r.Once(ctx, "lockout:blocked:192.0.2.1/32", time.Hour)
	r.Suspend(ctx, login, Suspension{Reason: "test", Since: time.Now(), Until: time.Now().Add(time.Hour)})

	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Errorf("keys = %q, want 5", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "postern:") {
			t.Errorf("key %q is not under postern:", k)
		}
		if len(k) > 200 {
			t.Errorf("key of %d bytes: long keys are not hashed", len(k))
		}
		if strings.Contains(strings.ToLower(k), "alice") {
			t.Errorf("key %q holds the login", k)
		}
		if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Errorf("key %q has ttl %v (%v); every key must expire", k, ttl, err)
		}
		if typ, _ := c.Type(ctx, k).Result(); typ == "string" {
			if v, _ := c.Get(ctx, k).Result(); strings.Contains(strings.ToLower(v), "alice") {
				t.Errorf("value of %q holds the login: %q", k, v)
			}
		}
	}
}

// TestRedisPassword: the password authenticates; a password in the URL is
// refused (it would be visible in the process list).
func TestRedisPassword(t *testing.T) {
	srv := testkit.StartRedisWithPassword(t, "s3cret pass")
	ctx := context.Background()
	good, err := NewRedis(RedisConfig{URL: srv.URL(), Password: "s3cret pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, _, err := good.Add(ctx, "k", 1, time.Minute); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	bad, err := NewRedis(RedisConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, _, err := bad.Add(ctx, "k", 1, time.Minute); err == nil {
		t.Fatal("no error without the password")
	}
	if _, err := NewRedis(RedisConfig{URL: "redis://:pw@" + srv.Addr + "/0"}); err == nil || !strings.Contains(err.Error(), "password-file") {
		t.Fatalf("password in the URL: err = %v, want a refusal naming --state-password-file", err)
	}
	if _, err := NewRedis(RedisConfig{URL: "http://" + srv.Addr}); err == nil {
		t.Fatal("an http:// URL was accepted")
	}
}

// TestRedisScriptLoadedAgain: after SCRIPT FLUSH (a Redis restart, a
// failover) EVALSHA fails with NOSCRIPT and the store falls back to EVAL.
func TestRedisScriptLoadedAgain(t *testing.T) {
	r, srv := newTestRedis(t)
	ctx := context.Background()
	if _, _, err := r.Add(ctx, "k", 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := r.Add(ctx, "k", 5, time.Minute); err != nil || n != 2 {
		t.Fatalf("add after SCRIPT FLUSH = %d, %v; want 2, nil", n, err)
	}
}
