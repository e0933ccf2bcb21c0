package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

func TestMemoryStore(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	m := NewMemory(MemoryConfig{Now: clock.Now})
	storeSuite(t, m, clock.Advance, time.Minute)
}

// TestMemoryBounded floods a small store with distinct keys from many
// goroutines: it never holds more than MaxKeys, and a ring never more than
// its limit.
func TestMemoryBounded(t *testing.T) {
	const maxKeys = 1000
	m := NewMemory(MemoryConfig{MaxKeys: maxKeys})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20_000 {
				k := fmt.Sprintf("k%d-%d", g, i)
				if _, err := m.Record(ctx, k, 5, time.Hour); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Once(ctx, "once:"+k, time.Hour); err != nil {
					t.Error(err)
					return
				}
				if n := m.Len(); n > maxKeys {
					t.Errorf("%d keys tracked, bound is %d", n, maxKeys)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n != maxKeys {
		t.Errorf("%d keys tracked after the flood, want %d", n, maxKeys)
	}
	for range 100 {
		m.Record(ctx, "hot", 5, time.Hour)
	}
	m.mu.Lock()
	e, _ := m.keys.Peek("hot")
	size := len(e.times)
	m.mu.Unlock()
	if size != 5 {
		t.Errorf("ring of a key with limit 5 holds %d slots", size)
	}
}

// TestMemoryLimitMustBePositive: a limit of 0 is a caller's bug, reported,
// not a counter that holds nothing and never says full.
func TestMemoryLimitMustBePositive(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	if _, _, err := m.Add(context.Background(), "k", 0, time.Minute); err == nil {
		t.Error("Add with limit 0 succeeded")
	}
	if _, err := m.Record(context.Background(), "k", -1, time.Minute); err == nil {
		t.Error("Record with limit -1 succeeded")
	}
}

// TestMemorySuspensionLiftsItself: a suspension ends at Until without
// Unsuspend.
func TestMemorySuspensionLiftsItself(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	m := NewMemory(MemoryConfig{Now: clock.Now})
	ctx := context.Background()
	m.Suspend(ctx, "alice", Suspension{Reason: "r", Since: clock.Now(), Until: clock.Now().Add(time.Hour)})
	if _, ok, _ := m.Suspended(ctx, "alice"); !ok {
		t.Fatal("not suspended")
	}
	clock.Advance(time.Hour)
	if _, ok, _ := m.Suspended(ctx, "alice"); ok {
		t.Fatal("still suspended at Until")
	}
	if ok, _ := m.Unsuspend(ctx, "alice"); ok {
		t.Fatal("Unsuspend reported a lifted suspension")
	}
}

// TestMemoryMirror: a counter copied from Redis (count and span) counts
// every event until the newest would lift, the oldest at its own time, and
// goes on from there; a count of 0 empties it.
func TestMemoryMirror(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	m := NewMemory(MemoryConfig{Now: clock.Now})
	ctx := context.Background()
	start := clock.Now()
	m.mirror("k", 3, span{oldest: start.Add(-40 * time.Minute), newest: start.Add(-10 * time.Minute)})
	if n, _ := m.Count(ctx, "k", time.Hour); n != 3 {
		t.Fatalf("count after mirror = %d, want 3", n)
	}
	if _, added, _ := m.Add(ctx, "k", 3, time.Hour); added {
		t.Fatal("an add to a copied full counter went through")
	}
	clock.Advance(25 * time.Minute) // the oldest is out
	if n, added, _ := m.Add(ctx, "k", 3, time.Hour); !added || n != 3 {
		t.Fatalf("add once the oldest lifted = %d, %v; want 3, true", n, added)
	}
	clock.Advance(30 * time.Minute) // the copied newest are out, the add is in
	if n, _ := m.Count(ctx, "k", time.Hour); n != 1 {
		t.Fatalf("count once the copied events lifted = %d, want 1", n)
	}
	m.mirror("k", 0, span{})
	if n, _ := m.Count(ctx, "k", time.Hour); n != 0 {
		t.Fatalf("count after mirroring 0 = %d, want 0", n)
	}
	m.mirror("unknown", 0, span{})
	if m.Len() != 1 {
		t.Fatalf("mirroring 0 for an unknown key created it: %d keys", m.Len())
	}
}
