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
