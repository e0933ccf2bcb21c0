package main

// End-to-end tests of the connection limits and the login timeout (issue 9,
// hole 4) through the built binary: --max-connections-per-ip (counted on
// the real client address, IPv6 per /64, mynetworks exempt),
// --max-connections, a flood from one address, and --login-timeout against
// clients that keep the connection busy without logging in.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

const (
	tooManyConnections = "421 4.7.0 Too many connections\r\n"
	loginTimeoutReply  = "421 4.7.0 Login timeout, closing connection"
)

// limDial connects from localIP to addr and writes preamble (a PROXY
// header) if there is one. The connection is closed at the end of the test.
func limDial(t *testing.T, addr, localIP, preamble string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s from %s: %v", addr, localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	if preamble != "" {
		if _, err := io.WriteString(conn, preamble); err != nil {
			t.Fatalf("writing the preamble: %v", err)
		}
	}
	return conn
}

// limGreeted connects and waits for the 220 banner.
func limGreeted(t *testing.T, addr, localIP, preamble string) *client {
	t.Helper()
	conn := limDial(t, addr, localIP, preamble)
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.expect("", "220 ")
	return c
}

// limUntilClosed returns all the server sends until it closes the
// connection, and fails if that takes more than 15 s.
func limUntilClosed(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within 15 s (got %q)", b)
	}
	return string(b) // EOF, or a reset after it closed
}

// limExpectRefused checks that the first and only thing the client hears is
// the refusal, followed by the close.
func limExpectRefused(t *testing.T, conn net.Conn) {
	t.Helper()
	if got := limUntilClosed(t, conn); got != tooManyConnections {
		t.Fatalf("got %q, want exactly %q and the connection closed", got, tooManyConnections)
	}
}

// limExpectRefusedTLS does the same on the implicit-TLS listener, where the
// refusal is the first thing said over TLS.
func limExpectRefusedTLS(t *testing.T, addr, localIP string) {
	t.Helper()
	tc := tls.Client(limDial(t, addr, localIP, ""), &tls.Config{InsecureSkipVerify: true})
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	limExpectRefused(t, tc)
}

// limMetric waits (10 s) until the series has the value want.
func limMetric(t *testing.T, url, series string, want float64) {
	t.Helper()
	var got float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := opsScrape(t, url)
		got = m[series]
		if got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", series, got, want)
	}
}

func startLimited(t *testing.T, upstream string, flags ...string) (p *postern, metricsURL string) {
	t.Helper()
	p = startPostern(t, upstream, append(flags, "--metrics", anyPort)...)
	return p, "http://" + p.metricsAddr(t) + "/metrics"
}

// TestConnLimitPerIPE2E: with --max-connections-per-ip 5, five idle
// connections from one address are held and the sixth hears only "421 4.7.0
// Too many connections" (on the implicit-TLS port after the handshake);
// other addresses and mynetworks are unaffected; a closed connection frees
// its slot; behind a trusted load balancer the PROXY header's address is
// what counts, IPv6 per /64.
func TestConnLimitPerIPE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections-per-ip", "5",
		"--mynetworks", "127.0.0.5/32", "--proxy-protocol-from", "127.0.0.9/32")

	var held []*client
	for i := 0; i < 5; i++ {
		held = append(held, limGreeted(t, p.StartTLS, "127.0.0.1", ""))
	}
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.1", ""))
	limExpectRefusedTLS(t, p.TLS, "127.0.0.1")
	limMetric(t, metrics, `postern_connections_refused_total{reason="per_ip"}`, 2)

	// Another address is unaffected, and can work.
	other := dialFrom(t, p.StartTLS, "127.0.0.2")
	expectReply(t, "AUTH from another address", other.auth(aliceLogin, alicePass), "235")
	expectReply(t, "message from another address", other.send(aliceLogin, "friend@example.test", "other"), "250")
	// mynetworks is not held to the per-address limit.
	for i := 0; i < 7; i++ {
		limGreeted(t, p.StartTLS, "127.0.0.5", "")
	}

	// Closing one frees its slot (once the server has seen the close).
	held[0].conn.Close()
	limMetric(t, metrics, "postern_active_sessions", 4+1+7)
	held[0] = limGreeted(t, p.StartTLS, "127.0.0.1", "")
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.1", ""))

	// Behind the load balancer: the client in the PROXY header counts, not
	// the balancer's address, and IPv6 counts per /64.
	lb := func(client string) string {
		family := "TCP4"
		if strings.Contains(client, ":") {
			family = "TCP6"
		}
		return fmt.Sprintf("PROXY %s %s %s 40000 587\r\n", family, client, map[string]string{"TCP4": "192.0.2.100", "TCP6": "2001:db8::100"}[family])
	}
	for i := 1; i <= 5; i++ {
		limGreeted(t, p.StartTLS, "127.0.0.9", lb("198.51.100.7"))
		limGreeted(t, p.StartTLS, "127.0.0.9", lb(fmt.Sprintf("2001:db8:1:2::%d", i)))
	}
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.9", lb("198.51.100.7")))
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.9", lb("2001:db8:1:2:ffff::1")))
	limGreeted(t, p.StartTLS, "127.0.0.9", lb("198.51.100.8"))
	limGreeted(t, p.StartTLS, "127.0.0.9", lb("2001:db8:1:3::1"))
	limMetric(t, metrics, `postern_connections_refused_total{reason="per_ip"}`, 5)
	if !strings.Contains(p.Log(), `msg="connection refused"`) || !strings.Contains(p.Log(), "client=198.51.100.7 reason=per_ip") {
		t.Errorf("no refusal logged for the PROXY client:\n%s", p.Log())
	}
}

// TestConnLimitFloodE2E: 300 simultaneous connections from one address get
// exactly 5 banners and 295 refusals while another client logs in and
// sends; when all are closed nothing stays counted: the gauge is back at 0
// and the address again gets exactly 5 connections.
func TestConnLimitFloodE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections-per-ip", "5")

	const flood = 300
	conns := make([]net.Conn, flood)
	first := make([]string, flood)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 30 * time.Second}
			c, err := d.Dial("tcp", p.StartTLS)
			if err != nil {
				first[i] = "dial: " + err.Error()
				return
			}
			conns[i] = c
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				line += "error: " + err.Error()
			}
			first[i] = line
		}()
	}
	// Meanwhile another client is served.
	other := dialFrom(t, p.StartTLS, "127.0.0.4")
	expectReply(t, "AUTH during the flood", other.auth(aliceLogin, alicePass), "235")
	expectReply(t, "message during the flood", other.send(aliceLogin, "friend@example.test", "flood"), "250")
	wg.Wait()
	banners, refusals := 0, 0
	for i, l := range first {
		switch {
		case strings.HasPrefix(l, "220 "):
			banners++
		case l == tooManyConnections:
			refusals++
		default:
			t.Errorf("connection %d: %q", i, l)
		}
	}
	if banners != 5 || refusals != flood-5 {
		t.Fatalf("%d banners and %d refusals, want 5 and %d", banners, refusals, flood-5)
	}
	limMetric(t, metrics, `postern_connections_refused_total{reason="per_ip"}`, flood-5)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	other.conn.Close()
	limMetric(t, metrics, "postern_active_sessions", 0)

	for i := 0; i < 5; i++ {
		limGreeted(t, p.StartTLS, "127.0.0.3", "")
	}
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.3", ""))
}

// TestConnLimitGlobalE2E: with --max-connections 5 the sixth connection,
// from any address, mynetworks included, hears only the refusal; a closed
// connection frees its slot.
func TestConnLimitGlobalE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--max-connections", "5", "--mynetworks", "127.0.0.2/32")

	held := []*client{limGreeted(t, p.StartTLS, "127.0.0.1", ""), limGreeted(t, p.StartTLS, "127.0.0.1", "")}
	for i := 0; i < 3; i++ {
		held = append(held, limGreeted(t, p.StartTLS, "127.0.0.2", ""))
	}
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.3", ""))
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.2", ""))
	limExpectRefusedTLS(t, p.TLS, "127.0.0.4")
	limMetric(t, metrics, `postern_connections_refused_total{reason="global"}`, 3)
	limMetric(t, metrics, `postern_connections_refused_total{reason="per_ip"}`, 0)

	held[4].conn.Close()
	limMetric(t, metrics, "postern_active_sessions", 4)
	c := dialFrom(t, p.StartTLS, "127.0.0.3")
	expectReply(t, "AUTH in the freed slot", c.auth(aliceLogin, alicePass), "235")
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.3", ""))
}

// slowConn writes one byte per interval, as a client dribbling its
// ClientHello would.
type slowConn struct {
	net.Conn
	interval time.Duration
}

func (c slowConn) Write(b []byte) (int, error) {
	for i := range b {
		if _, err := c.Conn.Write(b[i : i+1]); err != nil {
			return i, err
		}
		time.Sleep(c.interval)
	}
	return len(b), nil
}

// TestLoginTimeoutE2E: with --login-timeout 2s, clients that keep the
// connection busy without logging in (NOOP every 0.5 s before and after
// STARTTLS, a command dribbled one byte at a time, a stalled or dribbled
// TLS handshake on either port) are cut with 421 4.7.0 (where a reply can
// be read) well within 15 s; a client that logged in in time, and a
// mynetworks client, keep their sessions beyond the timeout.
func TestLoginTimeoutE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, metrics := startLimited(t, up.Addr, "--login-timeout", "2s", "--mynetworks", "127.0.0.5/32")

	noops := func(t *testing.T, c *client) {
		start := time.Now()
		for n := 0; ; n++ {
			r := c.cmd("NOOP")
			if strings.HasPrefix(r, "250") {
				if time.Since(start) > 15*time.Second {
					t.Fatalf("still served after %v", time.Since(start))
				}
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if r != loginTimeoutReply || n < 2 {
				t.Fatalf("after %d NOOPs: %q, want %q after at least 2 NOOPs", n, r, loginTimeoutReply)
			}
			if !c.closed() {
				t.Fatal("connection still open after the 421")
			}
			return
		}
	}
	t.Run("clients", func(t *testing.T) {
		t.Run("NOOPs before TLS", func(t *testing.T) {
			t.Parallel()
			noops(t, limGreeted(t, p.StartTLS, "127.0.0.1", ""))
		})
		t.Run("NOOPs after STARTTLS", func(t *testing.T) {
			t.Parallel()
			noops(t, dialFrom(t, p.StartTLS, "127.0.0.1"))
		})
		t.Run("dribbled command", func(t *testing.T) {
			t.Parallel()
			c := limGreeted(t, p.StartTLS, "127.0.0.1", "")
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for _, b := range []byte("EHLO dribble.test" + strings.Repeat("x", 100)) {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.conn.Write([]byte{b}); err != nil {
						return
					}
				}
			}()
			_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			got, err := io.ReadAll(c.br)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("not cut within 15 s (got %q)", got)
			}
			// The half-sent command is not run (go-smtp patch partial-line-not-run): the
			// only reply is the 421, then the close.
			if string(got) != loginTimeoutReply+"\r\n" {
				t.Fatalf("got %q, want only %q and the close", got, loginTimeoutReply)
			}
		})
		t.Run("stalled implicit TLS handshake", func(t *testing.T) {
			t.Parallel()
			if got := limUntilClosed(t, limDial(t, p.TLS, "127.0.0.1", "")); got != "" {
				t.Fatalf("got %q before the close", got)
			}
		})
		t.Run("dribbled implicit TLS handshake", func(t *testing.T) {
			t.Parallel()
			conn := limDial(t, p.TLS, "127.0.0.1", "")
			tc := tls.Client(slowConn{conn, 50 * time.Millisecond}, &tls.Config{InsecureSkipVerify: true})
			done := make(chan error, 1)
			go func() { done <- tc.Handshake() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a handshake dribbled past the login timeout succeeded")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the dribbled handshake was not cut within 30 s")
			}
		})
		t.Run("stalled STARTTLS handshake", func(t *testing.T) {
			t.Parallel()
			c := limGreeted(t, p.StartTLS, "127.0.0.1", "")
			c.expect("EHLO client.test", "250")
			c.expect("STARTTLS", "220")
			_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			got, err := io.ReadAll(c.br)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("not cut within 15 s (got %q)", got)
			}
			// A handshake that fails, cut by the login timeout or not,
			// ends the connection with no clear-text reply: the client
			// is mid-handshake and could not read one (go-smtp patch
			// server-starttls-failure-ends-connection; was 550 then the 421 in clear text).
			if string(got) != "" {
				t.Fatalf("got %q after 220, want only the close", got)
			}
		})
		t.Run("logged in in time", func(t *testing.T) {
			t.Parallel()
			c := dialFrom(t, p.StartTLS, "127.0.0.1")
			expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
			time.Sleep(3 * time.Second)
			expectReply(t, "NOOP after the login timeout", c.cmd("NOOP"), "250")
			expectReply(t, "message after the login timeout", c.send(aliceLogin, "friend@example.test", "in time"), "250")
		})
		t.Run("mynetworks", func(t *testing.T) {
			t.Parallel()
			c := dialFrom(t, p.StartTLS, "127.0.0.5")
			time.Sleep(3 * time.Second)
			expectReply(t, "NOOP after the login timeout", c.cmd("NOOP"), "250")
			expectReply(t, "relay after the login timeout", c.send("app@example.test", "friend@example.test", "mynetworks"), "250")
		})
	})
	limMetric(t, metrics, `postern_connections_refused_total{reason="login_timeout"}`, 6)
	if n := strings.Count(p.Log(), `msg="login timeout"`); n != 6 {
		t.Errorf("%d login timeout log lines, want 6:\n%s", n, p.Log())
	}
}

// TestConnLimitQuitReconnectE2E: at --max-connections-per-ip 3, with two
// connections held, a client that sends a message, QUITs and connects
// again as soon as it reads 221 is never refused: its slot is free before
// the 221 is written, not after Postern has quit its upstream (with
// --upstream-pool 0 every session's end waits for Postfix's reply to QUIT,
// the window the client used to fall into). The cap still holds: with the
// third connection open, a fourth hears 421.
func TestConnLimitQuitReconnectE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p, _ := startLimited(t, up.Addr, "--max-connections-per-ip", "3", "--upstream-pool", "0")

	for i := 0; i < 2; i++ {
		limGreeted(t, p.StartTLS, "127.0.0.1", "")
	}
	const rounds = 30
	refused := 0
	for i := 0; i < rounds; i++ {
		conn := limDial(t, p.StartTLS, "127.0.0.1", "")
		c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
		if greeting := c.cmd(""); strings.HasPrefix(greeting, "421") {
			refused++
			conn.Close()
			continue
		}
		c.expect("EHLO client.test", "250")
		c.expect("STARTTLS", "220")
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("round %d: TLS handshake: %v", i, err)
		}
		c.conn, c.br = tc, bufio.NewReader(tc)
		c.expect("EHLO client.test", "250")
		expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
		expectReply(t, "message", c.send(aliceLogin, "friend@example.test", fmt.Sprintf("round %d", i)), "250")
		c.expect("QUIT", "221")
		conn.Close() // and at once the next round's connect
	}
	if refused > 0 {
		t.Fatalf("%d of %d reconnections after QUIT were refused 421 at the cap", refused, rounds)
	}

	// The cap still bounds what the address holds.
	limGreeted(t, p.StartTLS, "127.0.0.1", "")
	limExpectRefused(t, limDial(t, p.StartTLS, "127.0.0.1", ""))
}
