package listen

import (
	"net/netip"
	"sync"
	"testing"
)

// TestConnBudget: 100 connections at once from four addresses against a
// budget of 10 in total and 4 per address admit exactly 10; a refusal
// counts nothing; releasing twice uncounts once; a released slot is free
// again.
func TestConnBudget(t *testing.T) {
	b := NewConnBudget(10, 4)
	releases := make([]func(), 100)
	reasons := make([]string, len(releases))
	var wg sync.WaitGroup
	for i := range releases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			releases[i], reasons[i] = b.Admit(netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 4)}))
		}()
	}
	wg.Wait()
	admitted := 0
	for i, r := range reasons {
		switch {
		case r == "" && releases[i] != nil:
			admitted++
		case r != RefusedGlobal && r != RefusedPerIP || releases[i] != nil:
			t.Fatalf("connection %d: reason %q, release %v", i, r, releases[i] != nil)
		}
	}
	if admitted != 10 || b.Open() != 10 {
		t.Fatalf("%d admitted, %d open, want 10 and 10", admitted, b.Open())
	}
	for _, rel := range releases {
		if rel != nil {
			rel()
			rel()
		}
	}
	if b.Open() != 0 {
		t.Fatalf("%d open after every release, want 0", b.Open())
	}
	a := netip.MustParseAddr("2001:db8::1")
	var held []func()
	for i := 0; i < 4; i++ {
		rel, r := b.Admit(a)
		if r != "" {
			t.Fatalf("connection %d of one address refused: %s", i+1, r)
		}
		held = append(held, rel)
	}
	// The same /64 is the same client.
	if _, r := b.Admit(netip.MustParseAddr("2001:db8::ffff")); r != RefusedPerIP {
		t.Fatalf("fifth from one /64: %q, want %q", r, RefusedPerIP)
	}
	held[0]()
	if _, r := b.Admit(a); r != "" {
		t.Fatalf("a released slot was not free: %q", r)
	}
}
