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
		case RefusedPerIP, RefusedFlood:
		default:
			t.Fatalf("refusal %q, want %q or %q", r, RefusedPerIP, RefusedFlood)
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
	if total, nets := l.Counts(); total != 0 || nets != 0 || len(l.refused) != 0 {
		t.Fatalf("after closing all: total %d, networks %d, refused %v, want 0, 0, none", total, nets, l.refused)
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

// TestConnLimitsRefusedFlood: refused connections still open count against
// their network; past MaxRefusedOpenPerNet of them the next is RefusedFlood
// (closed without a reply), whether the per-network or the total cap
// refused it, while other networks and exempt clients are unaffected and a
// closed refusal makes room for the next 421.
func TestConnLimitsRefusedFlood(t *testing.T) {
	flood := netip.MustParseAddr("2001:db8::1")
	same := netip.MustParseAddr("2001:db8::ffff") // the same /64
	other := netip.MustParseAddr("192.0.2.3")
	l := NewConnLimits(0, 2)
	admit := func(ip netip.Addr, exempt bool) (*Ticket, string) {
		var tk Ticket
		l.Open()
		return &tk, l.Admit(&tk, ip, exempt)
	}
	var admitted, refused []*Ticket
	for range 2 {
		tk, r := admit(flood, false)
		if r != "" {
			t.Fatalf("within the cap: refusal %q", r)
		}
		admitted = append(admitted, tk)
	}
	for i := range MaxRefusedOpenPerNet {
		tk, r := admit(flood, false)
		if r != RefusedPerIP {
			t.Fatalf("refused connection %d: %q, want %q", i+1, r, RefusedPerIP)
		}
		refused = append(refused, tk)
	}
	for range 3 {
		tk, r := admit(same, false)
		if r != RefusedFlood {
			t.Fatalf("past %d refused still open: %q, want %q", MaxRefusedOpenPerNet, r, RefusedFlood)
		}
		l.Close(tk) // closed at once by the caller
	}
	if _, r := admit(other, false); r != "" {
		t.Fatalf("another network: refusal %q", r)
	}
	if total, _ := l.Counts(); total != 2+MaxRefusedOpenPerNet+1 {
		t.Fatalf("total %d, want %d: flood closes must not hold slots", total, 2+MaxRefusedOpenPerNet+1)
	}
	l.Close(refused[0])
	l.Close(refused[0])
	if _, r := admit(flood, false); r != RefusedPerIP {
		t.Fatalf("after one refused closed: %q, want %q", r, RefusedPerIP)
	}
	l.Close(admitted[0])
	if _, r := admit(flood, false); r != "" {
		t.Fatalf("after a session ended: refusal %q", r)
	}

	// The total's refusals count too; exempt clients always get their 421.
	g := NewConnLimits(1, 0)
	g.Open()
	if r := g.Admit(&Ticket{}, other, false); r != "" {
		t.Fatalf("first connection: refusal %q", r)
	}
	for i := range MaxRefusedOpenPerNet + 2 {
		g.Open()
		want := RefusedGlobal
		if i >= MaxRefusedOpenPerNet {
			want = RefusedFlood
		}
		if r := g.Admit(&Ticket{}, flood, false); r != want {
			t.Fatalf("over the total, connection %d: %q, want %q", i+1, r, want)
		}
		g.Open()
		if r := g.Admit(&Ticket{}, same, true); r != RefusedGlobal {
			t.Fatalf("exempt, over the total: %q, want %q", r, RefusedGlobal)
		}
	}
}
