package state

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testkit"
)

// Issue 18 item 6: a Redis that may evict Postern's keys is reported.

func newTestEvictionWatch(t *testing.T, srv *testkit.RedisServer, logs *syncBuffer) *EvictionWatch {
	t.Helper()
	r, err := NewRedis(RedisConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return NewEvictionWatch(r, EvictionWatchConfig{Log: slog.New(slog.NewTextHandler(logs, nil))})
}

const evictWarning = "state: redis may evict postern's keys"

// TestEvictionWatchPolicy: every policy but noeviction gets the warning,
// naming it, and Evicting; read with CONFIG GET, or from INFO memory where
// CONFIG is renamed away.
func TestEvictionWatchPolicy(t *testing.T) {
	tests := []struct {
		name, config, wantFrom string
		evicting               bool
		policy                 string
	}{
		{"allkeys-lru", "maxmemory-policy allkeys-lru\n", "config", true, "allkeys-lru"},
		{"volatile-ttl", "maxmemory-policy volatile-ttl\n", "config", true, "volatile-ttl"},
		{"CONFIG renamed away", "maxmemory-policy volatile-lru\nrename-command CONFIG \"\"\n", "info", true, "volatile-lru"},
		{"noeviction", "maxmemory-policy noeviction\n", "config", false, "noeviction"},
		{"noeviction, CONFIG renamed away", "rename-command CONFIG \"\"\n", "info", false, "noeviction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testkit.StartRedisWith(t, testkit.RedisOptions{Config: tt.config})
			var logs syncBuffer
			w := newTestEvictionWatch(t, srv, &logs)
			w.check(context.Background())
			if w.Evicting() != tt.evicting {
				t.Errorf("Evicting() = %v, want %v", w.Evicting(), tt.evicting)
			}
			out := logs.String()
			if !strings.Contains(out, "policy="+tt.policy+" read_from="+tt.wantFrom) {
				t.Errorf("no line naming policy=%s read_from=%s:\n%s", tt.policy, tt.wantFrom, out)
			}
			if strings.Contains(out, evictWarning) != tt.evicting {
				t.Errorf("warning logged: %v, want %v:\n%s", !tt.evicting, tt.evicting, out)
			}
		})
	}
}

// TestEvictionWatchFollowsChanges: a policy changed at run time (CONFIG
// SET) shows at the next check, both ways; evictions between two checks
// are logged with their number.
func TestEvictionWatchFollowsChanges(t *testing.T) {
	srv := testkit.StartRedisWith(t, testkit.RedisOptions{Config: "maxmemory 4mb\n"})
	var logs syncBuffer
	w := newTestEvictionWatch(t, srv, &logs)
	ctx := context.Background()
	w.check(ctx)
	if w.Evicting() || strings.Contains(logs.String(), "WARN") {
		t.Fatalf("noeviction: Evicting %v, logs:\n%s", w.Evicting(), logs.String())
	}
	srv.Do(t, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
	// Another application fills the memory: Redis evicts.
	value := strings.Repeat("x", 100_000)
	for i := range 100 {
		srv.Do(t, "SET", fmt.Sprintf("other:%d", i), value)
	}
	w.check(ctx)
	if !w.Evicting() {
		t.Fatal("Evicting() false after CONFIG SET maxmemory-policy allkeys-lru")
	}
	out := logs.String()
	if !strings.Contains(out, evictWarning) || !strings.Contains(out, "policy=allkeys-lru") {
		t.Fatalf("no warning naming allkeys-lru:\n%s", out)
	}
	if !strings.Contains(out, `msg="state: redis evicted keys"`) || !strings.Contains(out, " new=") {
		t.Fatalf("evictions not logged:\n%s", out)
	}
	w.check(ctx) // nothing evicted since: no second eviction line
	if n := strings.Count(logs.String(), `msg="state: redis evicted keys"`); n != 1 {
		t.Fatalf("%d eviction lines for one burst, want 1:\n%s", n, logs.String())
	}
	srv.Do(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
	w.check(ctx)
	if w.Evicting() {
		t.Fatal("Evicting() still true after CONFIG SET maxmemory-policy noeviction")
	}
}

// TestEvictionWatchRedisDown: a Redis that does not answer changes
// nothing (Fallback reports the outage) and logs no warning.
func TestEvictionWatchRedisDown(t *testing.T) {
	srv := testkit.StartRedisWith(t, testkit.RedisOptions{Config: "maxmemory-policy allkeys-lru\n"})
	var logs syncBuffer
	w := newTestEvictionWatch(t, srv, &logs)
	ctx := context.Background()
	w.check(ctx)
	srv.Stop(t)
	before := strings.Count(logs.String(), "WARN")
	w.check(ctx)
	if !w.Evicting() {
		t.Error("Evicting() forgot what was last read while Redis is down")
	}
	if after := strings.Count(logs.String(), "WARN"); after != before {
		t.Errorf("warnings with Redis down:\n%s", logs.String())
	}
}

// FuzzInfoField: infoField never panics, and a value it returns is that of
// a line "name:value" of the text.
func FuzzInfoField(f *testing.F) {
	f.Add("# Memory\r\nused_memory:1024\r\nmaxmemory_policy:allkeys-lru\r\n", "maxmemory_policy")
	f.Add("# Stats\r\nevicted_keys:12\r\nexpired_keys:3\r\n", "evicted_keys")
	f.Add("evicted_keys", "evicted_keys")
	f.Fuzz(func(t *testing.T, info, name string) {
		v, ok := infoField(info, name)
		if !ok {
			return
		}
		if !strings.Contains(info, name+":"+v) {
			t.Fatalf("infoField(%q, %q) = %q, not a line of the text", info, name, v)
		}
	})
}
