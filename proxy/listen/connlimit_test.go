package listen

import (
	"net/netip"
	"sync"
	"testing"
)

// TestConnLimitsConcurrent: 200 connections from one /64 admitted at once
// against a limit of 5 admit exactly 5; closing everything (twice) leaves
// nothing counted, and the next 5 are admitted again.
func TestConnLimitsConcurrent(t *testing.T) {
	l := NewConnLimits(0, 5)
	tickets := make([]Ticket, 200)
	refused := make([]string, len(tickets))
	var wg sync.WaitGroup
	for i := range tickets {
		l.Open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Addresses differ inside one /64: one network.
			ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			refused[i] = l.Admit(&tickets[i], ip, false)
		}()
	}
	wg.Wait()
	admitted := 0
	for _, r := range refused {
		switch r {
		case "":
			admitted++
		case RefusedPerIP:
		default:
			t.Fatalf("refusal %q, want %q", r, RefusedPerIP)
		}
	}
	if admitted != 5 {
		t.Fatalf("%d admitted, want 5", admitted)
	}
	for i := range tickets {
		wg.Add(1)
		go func() { defer wg.Done(); l.Close(&tickets[i]); l.Close(&tickets[i]) }()
	}
	wg.Wait()
	if total, nets := l.Counts(); total != 0 || nets != 0 {
		t.Fatalf("after closing all: total %d, networks %d, want 0, 0", total, nets)
	}
	for i := 0; i < 6; i++ {
		l.Open()
		r := l.Admit(&Ticket{}, netip.MustParseAddr("2001:db8::1"), false)
		if want := map[bool]string{true: RefusedPerIP, false: ""}[i == 5]; r != want {
			t.Fatalf("connection %d: refusal %q, want %q", i+1, r, want)
		}
	}
}

func TestConnLimitsRules(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	t.Run("global counts from open, exempt included", func(t *testing.T) {
		l := NewConnLimits(2, 0)
		var t1, t2, t3 Ticket
		l.Open()
		l.Open()
		if r := l.Admit(&t1, a, true) + l.Admit(&t2, b, false); r != "" {
			t.Fatalf("refused %q under the limit", r)
		}
		l.Open() // a third, not admitted yet, is over the limit
		if r := l.Admit(&t3, a, true); r != RefusedGlobal {
			t.Fatalf("refusal %q, want %q", r, RefusedGlobal)
		}
		l.Close(&t3)
		l.Close(&t1)
		l.Open()
		if r := l.Admit(&Ticket{}, a, false); r != "" {
			t.Fatalf("refused %q after a close", r)
		}
	})
	t.Run("per address, exempt not counted", func(t *testing.T) {
		l := NewConnLimits(0, 1)
		for i := 0; i < 3; i++ {
			l.Open()
			if r := l.Admit(&Ticket{}, a, true); r != "" {
				t.Fatalf("exempt client refused %q", r)
			}
		}
		l.Open()
		if r := l.Admit(&Ticket{}, a, false); r != "" {
			t.Fatalf("first counted connection refused %q", r)
		}
		l.Open()
		if r := l.Admit(&Ticket{}, a, false); r != RefusedPerIP {
			t.Fatalf("refusal %q, want %q", r, RefusedPerIP)
		}
		l.Open()
		if r := l.Admit(&Ticket{}, b, false); r != "" {
			t.Fatalf("another address refused %q", r)
		}
	})
	t.Run("closed before admission", func(t *testing.T) {
		l := NewConnLimits(0, 1)
		var tk Ticket
		l.Open()
		l.Close(&tk)
		if r := l.Admit(&tk, a, false); r != "" {
			t.Fatalf("refusal %q for a closed connection", r)
		}
		if total, nets := l.Counts(); total != 0 || nets != 0 {
			t.Fatalf("total %d, networks %d, want 0, 0", total, nets)
		}
	})
}

// TestConnLimitsReleased: a released connection (its client QUIT) no longer
// counts as a session, so another is admitted in its place; but released
// sockets still count toward 2×max, so a client that QUITs and never lets
// the socket close cannot hold more than that; closing uncounts all.
func TestConnLimitsReleased(t *testing.T) {
	l := NewConnLimits(0, 2)
	ip := netip.MustParseAddr("192.0.2.1")
	var tickets [4]Ticket
	admit := func(tk *Ticket) string { l.Open(); return l.Admit(tk, ip, false) }
	for i := 0; i < 2; i++ {
		if r := admit(&tickets[i]); r != "" {
			t.Fatalf("connection %d refused %q", i, r)
		}
	}
	var extra Ticket
	if r := admit(&extra); r != RefusedPerIP {
		t.Fatalf("third session: %q, want %q", r, RefusedPerIP)
	}
	l.Close(&extra)
	l.Release(&tickets[0])
	l.Release(&tickets[0]) // twice counts once
	if r := admit(&tickets[2]); r != "" {
		t.Fatalf("in place of a released connection: refused %q", r)
	}
	l.Release(&tickets[1])
	if r := admit(&tickets[3]); r != "" {
		t.Fatalf("in place of the second released connection: refused %q", r)
	}
	l.Release(&tickets[2])
	var fifth Ticket
	if r := admit(&fifth); r != RefusedPerIP { // 4 sockets held = 2×max
		t.Fatalf("fifth socket: %q, want %q", r, RefusedPerIP)
	}
	l.Close(&fifth)
	for i := range tickets {
		l.Close(&tickets[i])
		l.Close(&tickets[i])
	}
	if total, nets := l.Counts(); total != 0 || nets != 0 || len(l.done) != 0 {
		t.Fatalf("after closing all: total %d, networks %d, done %v", total, nets, l.done)
	}
}
