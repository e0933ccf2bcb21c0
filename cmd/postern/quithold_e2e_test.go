package main

// Attacks on the connection caps (issue 19) by clients that are done, or
// refused, and keep the socket open without reading: they must not take
// from the slots of well-behaved clients, from their own address or another.

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/proxytest"
)

// TestConnLimitQuitHoldE2E: at --max-connections-per-ip 3 and
// --max-connections 8, clients from one address that send QUIT and then
// keep their socket open, never reading the 221 nor closing, 16 of them
// (twice the total cap), half logged in, half not, cost nothing once the
// server has seen their QUIT: the server closes its side after the 221, so
// their sockets count for no cap, and a well-behaved client from the same
// address and one from another are served.
func TestConnLimitQuitHoldE2E(t *testing.T) {
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections-per-ip", "3", "--max-connections", "8")

	for i := 0; i < 16; i++ {
		var c *client
		if i%2 == 0 {
			c = limGreeted(t, p.StartTLS, "127.0.0.1", "")
		} else {
			c = dialFrom(t, p.StartTLS, "127.0.0.1")
			expectReply(t, fmt.Sprintf("AUTH of QUIT holder %d", i), c.auth(aliceLogin, alicePass), "235")
		}
		if _, err := io.WriteString(c.conn, "QUIT\r\n"); err != nil {
			t.Fatalf("QUIT holder %d: %v", i, err)
		}
		// The socket stays open, unread, until the test ends. Once the
		// server has closed its side, no connection is open there.
		limMetric(t, metrics, "postern_active_sessions", 0)
	}
	limMetric(t, metrics, `postern_connections_refused_total{reason="per_ip"}`, 0)
	limMetric(t, metrics, `postern_connections_refused_total{reason="global"}`, 0)

	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		c := dialFrom(t, p.StartTLS, ip)
		expectReply(t, "AUTH from "+ip, c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message from "+ip, c.send(aliceLogin, "friend@example.test", "after the QUIT holders"), "250")
	}
}

// TestConnLimitRefusedTLSHoldE2E: a client at its --max-connections-per-ip
// (2) opens 10 more connections to the implicit-TLS port and never reads;
// half send no ClientHello, half dribble one. Each is refused at once, but the refusal is said
// over TLS, after a handshake the client never starts; until the
// connection closes it holds one of the --max-connections (6) slots, which
// counts every open socket. Those connections must end well before the
// login timeout (10 min here), or one address fills the total cap and
// every other address is refused: a well-behaved client from another
// address is then served.
func TestConnLimitRefusedTLSHoldE2E(t *testing.T) {
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections-per-ip", "2", "--max-connections", "6",
		"--login-timeout", "10m")

	limGreeted(t, p.StartTLS, "127.0.0.1", "")
	limGreeted(t, p.StartTLS, "127.0.0.1", "")
	for i := 0; i < 10; i++ {
		conn := limDial(t, p.TLS, "127.0.0.1", "") // nothing read
		if i%2 == 0 {
			continue // no ClientHello at all
		}
		// The others dribble a ClientHello's record (512 bytes announced)
		// a byte per 100 ms, for at most 10 s.
		go func() {
			record := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, make([]byte, 94)...)
			for _, b := range record {
				if _, err := conn.Write([]byte{b}); err != nil {
					return // closed by the server
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	// All ten are refused (per address while the total has room, then
	// globally: which depends on how many the server has accepted when it
	// admits one; past listen.MaxRefusedOpenPerNet still open, closed
	// without a reply), and then closed: only the two sessions stay open.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := opsScrape(t, metrics)
		refused := limRefused(m)
		if refused == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v connections refused, want 10", refused)
		}
		time.Sleep(50 * time.Millisecond)
	}
	limMetric(t, metrics, "postern_active_sessions", 2)

	c := dialFrom(t, p.StartTLS, "127.0.0.2")
	expectReply(t, "AUTH from another address", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "message from another address", c.send(aliceLogin, "friend@example.test", "after the refused holders"), "250")
}

// limRefused is the sum of postern_connections_refused_total's connection
// cap reasons in the scrape m.
func limRefused(m map[string]float64) float64 {
	var sum float64
	for _, r := range []string{listen.RefusedGlobal, listen.RefusedPerIP, listen.RefusedFlood} {
		sum += m[fmt.Sprintf("postern_connections_refused_total{reason=%q}", r)]
	}
	return sum
}

// TestConnLimitRefusedFloodE2E: one address (127.0.0.2) at its
// --max-connections-per-ip (2) floods the implicit-TLS port with 120
// connections it keeps open and never sends a ClientHello on, three times
// --max-connections (40). Each refusal would wait for a handshake (up to
// RefusedConnectionTimeout) and hold a total slot meanwhile; past
// listen.MaxRefusedOpenPerNet refused connections still open, the server
// closes the next at once instead. Once every flood connection is decided,
// the server holds at most the two sessions and that many refused ones, a
// client from 127.0.0.3 is served, and so is one from the flooding
// address once its own sessions have ended.
func TestConnLimitRefusedFloodE2E(t *testing.T) {
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections-per-ip", "2", "--max-connections", "40",
		"--login-timeout", "10m")

	sessions := []*client{limGreeted(t, p.StartTLS, "127.0.0.2", ""), limGreeted(t, p.StartTLS, "127.0.0.2", "")}
	const flood = 120
	for i := 0; i < flood; i++ {
		limDial(t, p.TLS, "127.0.0.2", "") // kept open, unread, until the test ends
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, _ := opsScrape(t, metrics)
		if limRefused(m) == flood {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v flood connections refused, want %d", limRefused(m), flood)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A connection closed without a reply is counted once closed: every
	// flood connection is decided, so what is open now is what the server
	// keeps.
	bound := float64(len(sessions) + listen.MaxRefusedOpenPerNet)
	if m, _ := opsScrape(t, metrics); m["postern_active_sessions"] > bound {
		t.Fatalf("postern_active_sessions = %v after the flood, want at most %v (2 sessions, %d refused)",
			m["postern_active_sessions"], bound, listen.MaxRefusedOpenPerNet)
	}

	c := dialFrom(t, p.StartTLS, "127.0.0.3")
	expectReply(t, "AUTH from another address", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "message from another address", c.send(aliceLogin, "friend@example.test", "after the flood"), "250")

	for _, s := range sessions {
		s.expect("QUIT", "221 ") // done with: no longer one of its address's sessions
	}
	c = dialFrom(t, p.StartTLS, "127.0.0.2")
	expectReply(t, "AUTH from the flooding address", c.auth(aliceLogin, alicePass), "235")
	expectReply(t, "message from the flooding address", c.send(aliceLogin, "friend@example.test", "after its flood"), "250")
}
