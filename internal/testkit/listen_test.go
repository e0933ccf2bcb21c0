package testkit

import (
	"net"
	"testing"
	"time"
)

// TestListening: a listener is seen in /proc/net/tcp while open, an
// established connection to it does not count, and it is gone once closed.
func TestListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if !Listening(t, addr) {
		t.Fatalf("Listening(%s) = false with the listener open", addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if Listening(t, c.LocalAddr().String()) {
		t.Fatalf("Listening(%s) = true for the client end of a connection", c.LocalAddr())
	}
	l.Close()
	WaitNotListening(t, addr, 5*time.Second)
	if Listening(t, addr) {
		t.Fatalf("Listening(%s) = true after Close", addr)
	}
}

// TestFreePortBelowEphemeralRange: a port handed out lies below the range
// outgoing connections take their local ports from (so a server restarted
// on it cannot find it taken by a client's socket), is bindable, and is
// never handed out twice.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if p < freePortLow || p >= low {
			t.Fatalf("FreePort = %d, want within [%d, %d)", p, freePortLow, low)
		}
		if seen[p] {
			t.Fatalf("FreePort handed out %d twice", p)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("binding a port FreeAddr returned: %v", err)
	}
	l.Close()
}
