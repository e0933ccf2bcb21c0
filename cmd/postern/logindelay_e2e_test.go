package main

// End-to-end test of issue 19 item 6 (last bullet) through the built
// binary: the per-login delay before an AUTH is answered ends at once when
// the client hangs up or a shutdown starts.

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestLoginDelayEndsWithClientE2E: with --auth-login-delay 10m, one wrong
// password for alice makes every later AUTH for her wait 10 minutes before
// it is verified. A client that hangs up during that wait (TLS close_notify
// then FIN, a FIN alone, a reset) ends its session at once: "auth
// abandoned" and "disconnect" are logged while the delay still has minutes
// to run, and its reserved attempt is given back (three abandoned attempts
// with --auth-max-failures 3, then bob still gets in from that address).
// SIGTERM during such a wait ends the process at once too (its drain,
// --shutdown-timeout 10m, would otherwise wait for the delay): the waiting
// client hears 421 4.3.2. Before, the session slept the delay out whatever
// happened. (The bounds are seconds against a 10-minute delay.)
func TestLoginDelayEndsWithClientE2E(t *testing.T) {
	t.Parallel()
	p := startPostern(t, "127.0.0.1:1", "--auth-login-delay", "10m", "--auth-login-delay-max", "10m",
		"--auth-max-failures", "3", "--max-auth-failures-per-connection", "100", "--shutdown-timeout", "10m")
	c := dialFrom(t, p.StartTLS, "127.0.0.5")
	expectReply(t, "wrong password for alice", c.auth(aliceLogin, "wrong"), "535 5.7.8")

	const ip = "127.0.0.6"
	for i, hangup := range []struct {
		name  string
		close func(*tls.Conn)
	}{
		{"close_notify and FIN", func(c *tls.Conn) { c.Close() }},
		{"FIN alone", func(c *tls.Conn) { c.NetConn().Close() }},
		{"reset", func(c *tls.Conn) {
			tcp := c.NetConn().(*net.TCPConn)
			if err := tcp.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			tcp.Close()
		}},
	} {
		t.Run(hangup.name, func(t *testing.T) {
			c := dialFrom(t, p.StartTLS, ip)
			sendAuthNoWait(t, c, aliceLogin, alicePass)
			waitLogCount(t, p, "auth delayed", ip, i+1)
			hangup.close(c.conn.(*tls.Conn))
			waitLogCount(t, p, "auth abandoned", ip, i+1)
			waitDisconnects(t, p, ip, i+1)
		})
	}
	c = dialFrom(t, p.StartTLS, ip)
	expectReply(t, "bob after three abandoned attempts", c.auth(bobLogin, bobPass), "235")

	t.Run("shutdown", func(t *testing.T) {
		c := dialFrom(t, p.StartTLS, "127.0.0.7")
		sendAuthNoWait(t, c, aliceLogin, alicePass)
		waitLogCount(t, p, "auth delayed", "127.0.0.7", 1)
		stopAndWait(t, p, time.Minute)
		expectReply(t, "AUTH waiting when the shutdown started", c.cmd(""), "421 4.3.2")
	})
}

// sendAuthNoWait sends AUTH PLAIN for login without reading the reply.
func sendAuthNoWait(t *testing.T, c *client, login, password string) {
	t.Helper()
	line := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+password)) + "\r\n"
	if _, err := io.WriteString(c.conn, line); err != nil {
		t.Fatal(err)
	}
}

// waitDisconnects waits (10 s at most) until postern logged want
// "disconnect" lines for client ip, and fails on another number.
func waitDisconnects(t *testing.T, p *postern, ip string, want int) {
	t.Helper()
	count := func() int {
		n := 0
		for _, l := range strings.Split(p.Log(), "\n") {
			if strings.Contains(l, " msg=disconnect ") && strings.Contains(l, " client="+ip+":") {
				n++
			}
		}
		return n
	}
	p.proc.WaitOutput(t, fmt.Sprintf("%d disconnects of %s", want, ip), 10*time.Second, func(string) bool {
		return count() >= want
	})
	if n := count(); n != want {
		t.Fatalf("%d disconnects of %s, want %d:\n%s", n, ip, want, p.Log())
	}
}
