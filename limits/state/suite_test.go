package state

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeSuite is what every Store must do. wait lets time pass: a fake clock
// for Memory, real sleeping for Redis (whose clock is the server's). window
// is the sliding window the counters are tested with.
func storeSuite(t *testing.T, s Store, wait func(time.Duration), window time.Duration) {
	ctx := context.Background()
	key := func(name string) string { return fmt.Sprintf("test:%s:%s", t.Name(), name) }

	t.Run("AddStopsAtLimit", func(t *testing.T) {
		k := key("add")
		for i := 1; i <= 3; i++ {
			n, added, err := s.Add(ctx, k, 3, window)
			if err != nil || !added || n != i {
				t.Fatalf("add %d = %d, %v, %v; want %d, true, nil", i, n, added, err, i)
			}
		}
		n, added, err := s.Add(ctx, k, 3, window)
		if err != nil || added || n != 3 {
			t.Fatalf("4th add = %d, %v, %v; want 3, false, nil", n, added, err)
		}
		if n, err := s.Count(ctx, k, window); err != nil || n != 3 {
			t.Fatalf("count = %d, %v; want 3", n, err)
		}
		wait(window + window/2)
		if n, err := s.Count(ctx, k, window); err != nil || n != 0 {
			t.Fatalf("count after the window = %d, %v; want 0", n, err)
		}
		if n, added, err := s.Add(ctx, k, 3, window); err != nil || !added || n != 1 {
			t.Fatalf("add after the window = %d, %v, %v; want 1, true", n, added, err)
		}
	})

	t.Run("RecordKeepsNewest", func(t *testing.T) {
		k := key("record")
		for range 2 {
			if _, err := s.Record(ctx, k, 3, window); err != nil {
				t.Fatal(err)
			}
		}
		wait(window / 2)
		for i := range 3 {
			n, err := s.Record(ctx, k, 3, window)
			if err != nil || n != 3 {
				t.Fatalf("record %d past the limit = %d, %v; want 3", i, n, err)
			}
		}
		// The two old events were overwritten by the three newer ones: all
		// three are still inside the window when the old ones would be out.
		wait(window/2 + window/4)
		if n, err := s.Count(ctx, k, window); err != nil || n != 3 {
			t.Fatalf("count = %d, %v; want the 3 newest", n, err)
		}
	})

	t.Run("RemoveNewestAndClear", func(t *testing.T) {
		k := key("remove")
		for range 3 {
			if _, _, err := s.Add(ctx, k, 3, window); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RemoveNewest(ctx, k); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(ctx, k, window); n != 2 {
			t.Fatalf("count after RemoveNewest = %d, want 2", n)
		}
		if _, added, _ := s.Add(ctx, k, 3, window); !added {
			t.Fatal("the slot given back was not free")
		}
		if err := s.Clear(ctx, k); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(ctx, k, window); n != 0 {
			t.Fatalf("count after Clear = %d, want 0", n)
		}
		if err := s.RemoveNewest(ctx, key("never-seen")); err != nil {
			t.Fatalf("RemoveNewest of an unknown key: %v", err)
		}
	})

	t.Run("Once", func(t *testing.T) {
		k := key("once")
		if ok, err := s.Once(ctx, k, window); err != nil || !ok {
			t.Fatalf("first Once = %v, %v; want true", ok, err)
		}
		for range 3 {
			if ok, err := s.Once(ctx, k, window); err != nil || ok {
				t.Fatalf("second Once = %v, %v; want false", ok, err)
			}
		}
		wait(window + window/2)
		if ok, err := s.Once(ctx, k, window); err != nil || !ok {
			t.Fatalf("Once after the ttl = %v, %v; want true", ok, err)
		}
	})

	t.Run("ClearForgetsOnce", func(t *testing.T) {
		// Unsuspend clears a suspension's Once so the next suspension
		// alerts again; both stores must forget it the same way.
		k := key("clear-once")
		if ok, err := s.Once(ctx, k, time.Hour); err != nil || !ok {
			t.Fatalf("first Once = %v, %v; want true", ok, err)
		}
		if err := s.Clear(ctx, k); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Once(ctx, k, time.Hour); err != nil || !ok {
			t.Fatalf("Once after Clear = %v, %v; want true", ok, err)
		}
	})

	t.Run("Suspensions", func(t *testing.T) {
		login := "Mallory@" + t.Name() + ".example"
		if _, ok, err := s.Suspended(ctx, login); err != nil || ok {
			t.Fatalf("suspended before Suspend = %v, %v", ok, err)
		}
		since := time.Now().Truncate(time.Millisecond)
		want := Suspension{Reason: "limit-messages exceeded 3x", Since: since, Until: since.Add(time.Hour)}
		if err := s.Suspend(ctx, login, want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Suspended(ctx, "mallory@"+t.Name()+".EXAMPLE") // case-folded
		if err != nil || !ok || got.Reason != want.Reason || !got.Since.Equal(want.Since) || !got.Until.Equal(want.Until) {
			t.Fatalf("Suspended = %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if ok, err := s.Unsuspend(ctx, login); err != nil || !ok {
			t.Fatalf("Unsuspend = %v, %v; want true", ok, err)
		}
		if ok, err := s.Unsuspend(ctx, login); err != nil || ok {
			t.Fatalf("second Unsuspend = %v, %v; want false", ok, err)
		}
		if _, ok, _ := s.Suspended(ctx, login); ok {
			t.Fatal("still suspended after Unsuspend")
		}
	})

	// Many goroutines at once on one key: exactly limit of them get in.
	t.Run("ConcurrentAdd", func(t *testing.T) {
		k := key("concurrent")
		var added atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, ok, err := s.Add(ctx, k, 10, time.Hour); err != nil {
					t.Error(err)
				} else if ok {
					added.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := added.Load(); got != 10 {
			t.Fatalf("%d of 200 concurrent adds with limit 10 recorded, want exactly 10", got)
		}
		if n, _ := s.Count(ctx, k, time.Hour); n != 10 {
			t.Fatalf("count = %d, want 10", n)
		}
	})
}
