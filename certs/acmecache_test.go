package certs

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

var testCacheKey = bytes.Repeat([]byte{0x42}, ACMECacheKeySize)

// newTestRedisCache builds a RedisCache on r with key and its own local
// directory (returned).
func newTestRedisCache(t *testing.T, r *testkit.RedisServer, key []byte, mod func(*RedisCacheConfig)) (*RedisCache, string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	dir := filepath.Join(t.TempDir(), "acme")
	cfg := RedisCacheConfig{Client: client, Key: key, LocalDir: dir, Log: testLogger(), Timeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewRedisCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// certEntry is a cache entry as autocert writes it: the key, then the
// chain, PEM, valid for validity.
func certEntry(t *testing.T, validity time.Duration, name string) []byte {
	t.Helper()
	chain, key := certstest.NewCA(t).Issue(t, validity, name)
	return append(key, chain...)
}

func redisRaw(t *testing.T, r *testkit.RedisServer, key string) []byte {
	t.Helper()
	v, ok := r.Do(t, "GET", key).(string)
	if !ok {
		t.Fatalf("redis GET %s: no string", key)
	}
	return []byte(v)
}

// TestACMERedisCacheRoundTrip: what goes in comes out, a missing entry is
// ErrCacheMiss, Delete removes it from Redis and the local copy, and
// neither Redis nor the local copy holds a key in clear.
func TestACMERedisCacheRoundTrip(t *testing.T) {
	r := testkit.StartRedis(t)
	c, dir := newTestRedisCache(t, r, testCacheKey, nil)
	ctx := context.Background()
	const name = "mail.postern.test"
	if _, err := c.Get(ctx, name); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get before Put: %v, want ErrCacheMiss", err)
	}
	entry := certEntry(t, 90*24*time.Hour, name)
	if err := c.Put(ctx, name, entry); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, name)
	if err != nil || !bytes.Equal(got, entry) {
		t.Fatalf("Get = %q, %v; want what was put", got, err)
	}
	for where, raw := range map[string][]byte{
		"redis": redisRaw(t, r, acmeKeyPrefix+name),
		"local": mustRead(t, filepath.Join(dir, name)),
	} {
		if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte("-----BEGIN")) {
			t.Errorf("%s copy holds PEM in clear: %q", where, raw)
		}
		if b, _ := pem.Decode(raw); b != nil {
			t.Errorf("%s copy parses as PEM (%s)", where, b.Type)
		}
	}
	if n := r.Do(t, "EXISTS", acmeLockPrefix+name).(int64); n != 0 {
		t.Errorf("lock left behind after Put and a Get of a fresh certificate")
	}
	if err := c.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, name); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get after Delete: %v, want ErrCacheMiss", err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Errorf("local copy after Delete: %v", err)
	}
	c.releaseAll(name)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestACMERedisCacheRefusesForeignEntries: an entry sealed with another
// key, a flipped byte, and two entries swapped in Redis are all refused
// (an error, not ErrCacheMiss: autocert then neither serves nor orders).
func TestACMERedisCacheRefusesForeignEntries(t *testing.T) {
	r := testkit.StartRedis(t)
	c, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.LocalDir = "" })
	ctx := context.Background()
	const a, b = "a.postern.test", "b.postern.test"
	for _, n := range []string{a, b, "acme_account+key"} {
		if err := c.Put(ctx, n, certEntry(t, 90*24*time.Hour, n)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(t *testing.T, c *RedisCache, name string) {
		t.Helper()
		data, err := c.Get(ctx, name)
		c.releaseAll(name)
		if err == nil || errors.Is(err, autocert.ErrCacheMiss) || data != nil {
			t.Errorf("Get(%s) = %d bytes, %v; want it refused", name, len(data), err)
		}
	}
	t.Run("another key", func(t *testing.T) {
		other, _ := newTestRedisCache(t, r, bytes.Repeat([]byte{0x43}, ACMECacheKeySize), nil)
		refused(t, other, a)
	})
	t.Run("flipped byte", func(t *testing.T) {
		raw := redisRaw(t, r, acmeKeyPrefix+a)
		for _, i := range []int{0, 5, len(raw) / 2, len(raw) - 1} {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x01
			r.Do(t, "SET", acmeKeyPrefix+a, bad)
			refused(t, c, a)
		}
		r.Do(t, "SET", acmeKeyPrefix+a, raw)
		if _, err := c.Get(ctx, a); err != nil {
			t.Errorf("the original value again: %v", err)
		}
	})
	t.Run("swapped names", func(t *testing.T) {
		ra, rb := redisRaw(t, r, acmeKeyPrefix+a), redisRaw(t, r, acmeKeyPrefix+b)
		r.Do(t, "SET", acmeKeyPrefix+a, rb)
		r.Do(t, "SET", acmeKeyPrefix+b, ra)
		refused(t, c, a)
		refused(t, c, b)
		// The account key put under a certificate's name.
		r.Do(t, "SET", acmeKeyPrefix+a, redisRaw(t, r, acmeKeyPrefix+"acme_account+key"))
		refused(t, c, a)
	})
}

// TestACMERedisCacheRedisDown: with Redis stopped, a replica (a new cache
// on the same local directory, as after a restart) reads its local copy,
// writes go to the local copy without an error, and Degraded says so
// until Redis answers again.
func TestACMERedisCacheRedisDown(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	const name = "mail.postern.test"
	entry := certEntry(t, 90*24*time.Hour, name)
	first, dir := newTestRedisCache(t, r, testCacheKey, nil)
	if err := first.Put(ctx, name, entry); err != nil {
		t.Fatal(err)
	}
	// A replica that only read the entry (another one ordered it) has
	// its local copy too.
	reader, readerDir := newTestRedisCache(t, r, testCacheKey, nil)
	if _, err := reader.Get(ctx, name); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(readerDir, name)), redisRaw(t, r, acmeKeyPrefix+name)) {
		t.Error("the reader's local copy differs from Redis's entry")
	}
	r.Stop(t)
	restarted, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.LocalDir = dir })
	got, err := restarted.Get(ctx, name)
	restarted.releaseAll(name)
	if err != nil || !bytes.Equal(got, entry) {
		t.Fatalf("Get with Redis down = %d bytes, %v; want the local copy", len(got), err)
	}
	if !restarted.Degraded() {
		t.Error("Degraded() = false with Redis down")
	}
	other := certEntry(t, 90*24*time.Hour, "other.postern.test")
	if err := restarted.Put(ctx, "other.postern.test", other); err != nil {
		t.Errorf("Put with Redis down and a local copy: %v", err)
	}
	noLocal, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.LocalDir = "" })
	if err := noLocal.Put(ctx, "x.postern.test", other); err == nil {
		t.Error("Put with Redis down and no local copy: no error")
	}
	// Redis comes back empty (no persistence): the local copy answers, and
	// the cache is no longer degraded.
	r.Restart(t)
	got, err = restarted.Get(ctx, "other.postern.test")
	restarted.releaseAll("other.postern.test")
	if err != nil || !bytes.Equal(got, other) {
		t.Errorf("Get after Redis came back empty = %d bytes, %v; want the local copy", len(got), err)
	}
	if restarted.Degraded() {
		t.Error("Degraded() = true after Redis answered")
	}
}

// TestACMERedisCacheOneOrderAtATime: a replica that finds no certificate
// holds the name's lock until it has written one; a second replica asking
// meanwhile waits and then gets that certificate instead of a miss (which
// would make it order its own).
func TestACMERedisCacheOneOrderAtATime(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	const name = "mail.postern.test"
	a, _ := newTestRedisCache(t, r, testCacheKey, nil)
	waiting := make(chan struct{}, 1)
	b, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) {
		cfg.Log = slog.New(signalHandler{msg: "waiting for its certificate", ch: waiting})
	})
	if _, err := a.Get(ctx, name); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("a: %v, want ErrCacheMiss", err)
	}
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		data, err := b.Get(ctx, name)
		got <- result{data, err}
	}()
	// a orders only once b waits for the lock.
	select {
	case <-waiting:
	case res := <-got:
		t.Fatalf("b did not wait for a's lock: got %d bytes, %v", len(res.data), res.err)
	}
	entry := certEntry(t, 90*24*time.Hour, name)
	if err := a.Put(ctx, name, entry); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || !bytes.Equal(res.data, entry) {
		t.Fatalf("b got %d bytes, %v; want a's certificate", len(res.data), res.err)
	}
	if n := r.Do(t, "EXISTS", acmeLockPrefix+name).(int64); n != 0 {
		t.Error("lock still held after b read a fresh certificate")
	}
}

// TestACMERedisCacheRenewalHoldsLock: a certificate due for renewal keeps
// the lock with the reader, as a missing one does, so that only one
// replica renews.
func TestACMERedisCacheRenewalHoldsLock(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	const name = "mail.postern.test"
	a, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.RenewBefore = 30 * 24 * time.Hour })
	due := certEntry(t, 10*24*time.Hour, name) // within RenewBefore
	if err := a.Put(ctx, name, due); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n := r.Do(t, "EXISTS", acmeLockPrefix+name).(int64); n != 1 {
		t.Fatal("reading a certificate due for renewal did not keep the lock")
	}
	if err := a.Put(ctx, name, certEntry(t, 90*24*time.Hour, name)); err != nil {
		t.Fatal(err)
	}
	if n := r.Do(t, "EXISTS", acmeLockPrefix+name).(int64); n != 0 {
		t.Error("Put of the renewed certificate did not release the lock")
	}
}

// TestACMERedisCacheDeadHolder: the lock of a replica that died (it holds
// a token nobody will release) expires, and the waiting replica then
// takes it; a holder never deletes a lock that is no longer its own.
func TestACMERedisCacheDeadHolder(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	const name = "mail.postern.test"
	r.Do(t, "SET", acmeLockPrefix+name, "dead-replica", "PX", 1500)
	b, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.LockWait = time.Minute })
	if _, err := b.Get(ctx, name); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get behind a dead replica's lock: %v, want ErrCacheMiss once it expired", err)
	}
	tok, _ := r.Do(t, "GET", acmeLockPrefix+name).(string)
	if tok == "" || tok == "dead-replica" {
		t.Fatalf("lock holds %q, want b's token", tok)
	}
	// b's lock expires and a third replica takes it: b's Put must leave
	// that one alone.
	r.Do(t, "SET", acmeLockPrefix+name, "third-replica", "PX", 60000)
	if err := b.Put(ctx, name, certEntry(t, 90*24*time.Hour, name)); err != nil {
		t.Fatal(err)
	}
	if tok, _ := r.Do(t, "GET", acmeLockPrefix+name).(string); tok != "third-replica" {
		t.Errorf("after b's Put the lock holds %q, want the third replica's token", tok)
	}
}

// TestACMERedisCacheLockWaitBounded: a replica gives up waiting after
// LockWait with an error (not a miss, which would make autocert order).
func TestACMERedisCacheLockWaitBounded(t *testing.T) {
	r := testkit.StartRedis(t)
	const name = "mail.postern.test"
	r.Do(t, "SET", acmeLockPrefix+name, "busy-replica", "PX", 600000)
	b, _ := newTestRedisCache(t, r, testCacheKey, func(cfg *RedisCacheConfig) { cfg.LockWait = time.Second })
	_, err := b.Get(context.Background(), name)
	if err == nil || errors.Is(err, autocert.ErrCacheMiss) || !strings.Contains(err.Error(), "still held") {
		t.Errorf("Get behind a busy lock: %v, want a timeout error", err)
	}
}

// signalHandler is a slog.Handler that sends on ch when a record's
// message contains msg.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func TestParseACMECacheKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5}, 32)
	hexKey := hex.EncodeToString(raw)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"raw 32 bytes", string(raw), true},
		{"hex", hexKey, true},
		{"hex with newline", hexKey + "\n", true},
		{"upper-case hex", strings.ToUpper(hexKey) + "\r\n", true},
		{"short hex", hexKey[:62], false},
		{"long hex", hexKey + "00", false},
		{"not hex", strings.Repeat("zz", 32), false},
		{"empty", "", false},
		{"31 raw bytes", string(raw[:31]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseACMECacheKey([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(k, raw) {
				t.Errorf("key %x, want %x", k, raw)
			}
		})
	}
}
