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

// TestConnLimitsHoldRefused: refused connections held open count against
// their network; past MaxRefusedOpenPerNet of them HoldRefused says no,
// counting nothing, whatever cap refused them (also under concurrency),
// while other networks are unaffected and a closed one makes room for the
// next.
func TestConnLimitsHoldRefused(t *testing.T) {
	flood := netip.MustParseAddr("2001:db8::1")
	same := netip.MustParseAddr("2001:db8::ffff") // the same /64
	other := netip.MustParseAddr("192.0.2.3")
	l := NewConnLimits(0, 2)
	admit := func(ip netip.Addr) (*Ticket, string) {
		var tk Ticket
		l.Open()
		return &tk, l.Admit(&tk, ip, false)
	}
	var admitted []*Ticket
	for range 2 {
		tk, r := admit(flood)
		if r != "" {
			t.Fatalf("within the cap: refusal %q", r)
		}
		admitted = append(admitted, tk)
	}
	if !l.HoldRefused(admitted[0], flood) || len(l.refused) != 0 {
		t.Fatalf("an admitted connection was counted as refused: %v", l.refused)
	}
	// 50 refused at once: exactly MaxRefusedOpenPerNet held.
	refused := make([]*Ticket, 50)
	held := make([]bool, len(refused))
	var wg sync.WaitGroup
	for i := range refused {
		tk, r := admit(same)
		if r != RefusedPerIP {
			t.Fatalf("refused connection %d: %q, want %q", i+1, r, RefusedPerIP)
		}
		refused[i] = tk
		wg.Add(1)
		go func() { defer wg.Done(); held[i] = l.HoldRefused(tk, same) }()
	}
	wg.Wait()
	n := 0
	for i, h := range held {
		if h {
			n++
			continue
		}
		l.Close(refused[i]) // closed at once by the caller
	}
	if n != MaxRefusedOpenPerNet {
		t.Fatalf("%d refused held, want %d", n, MaxRefusedOpenPerNet)
	}
	if total, _ := l.Counts(); total != 2+MaxRefusedOpenPerNet {
		t.Fatalf("total %d, want %d", total, 2+MaxRefusedOpenPerNet)
	}
	if tk, r := admit(other); r != "" || !l.HoldRefused(tk, other) {
		t.Fatalf("another network: refusal %q", r)
	}
	for i, h := range held {
		if h {
			l.Close(refused[i])
			l.Close(refused[i])
			break
		}
	}
	if tk, _ := admit(flood); !l.HoldRefused(tk, flood) {
		t.Fatal("one held refusal closed: the next is not held")
	}
	if tk, _ := admit(flood); l.HoldRefused(tk, flood) {
		t.Fatalf("held past %d", MaxRefusedOpenPerNet)
	}

	// The total's refusals count too.
	g := NewConnLimits(1, 0)
	g.Open()
	if r := g.Admit(&Ticket{}, other, false); r != "" {
		t.Fatalf("first connection: refusal %q", r)
	}
	var tickets []*Ticket
	for i := range MaxRefusedOpenPerNet + 1 {
		tk := &Ticket{}
		g.Open()
		if r := g.Admit(tk, flood, false); r != RefusedGlobal {
			t.Fatalf("over the total: %q, want %q", r, RefusedGlobal)
		}
		if h := g.HoldRefused(tk, flood); h != (i < MaxRefusedOpenPerNet) {
			t.Fatalf("over the total, connection %d: held %v", i+1, h)
		}
		tickets = append(tickets, tk)
	}
	for _, tk := range tickets {
		g.Close(tk)
	}
	if len(g.refused) != 0 {
		t.Fatalf("after closing all: refused %v", g.refused)
	}
}
