package proxy

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/listen"
	"github.com/postern/postern/proxy/proxytest"
)

// startShared is startServer with a ModeShared listener (the third
// address) whose pending connections count in budget.
func startShared(t *testing.T, budget *listen.ConnBudget, wait time.Duration) (*testEnv, string) {
	t.Helper()
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) {
		c.Listeners = append(c.Listeners, listen.Listener{Mode: listen.ModeShared, Addr: "127.0.0.1:0"})
		c.Shared = listen.SharedConfig{Pending: budget, FirstBytesWait: wait, HandshakeTimeout: time.Minute}
	})
	return env, env.srv.Addrs()[2].String()
}

// waitOpen waits until budget counts n connections.
func waitOpen(t *testing.T, budget *listen.ConnBudget, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for budget.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the budget counts %d connections, want %d", budget.Open(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedSMTPLeavesPendingBudget: a connection that chose SMTP (ALPN
// smtp) is no longer counted in the pending budget; its session is.
func TestSharedSMTPLeavesPendingBudget(t *testing.T) {
	budget := listen.NewConnBudget(1, 0)
	env, shared := startShared(t, budget, time.Second)
	for i := range 3 { // more sessions than the budget holds
		c, err := tls.Dial("tcp", shared, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{listen.ALPNSMTP}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
			t.Fatalf("session %d: %q, %v", i, line, err)
		}
		waitOpen(t, budget, 0)
	}
	if n := env.srv.ActiveSessions(); n != 3 {
		t.Errorf("active sessions %d, want 3", n)
	}
}

// TestSharedShutdownEndsPending: connections still in their handshake or
// in the wait for their first bytes when the server stops are closed then,
// not at their deadlines (a minute here), and given back to the budget.
func TestSharedShutdownEndsPending(t *testing.T) {
	budget := listen.NewConnBudget(10, 0)
	env, shared := startShared(t, budget, time.Minute)
	silent, err := net.Dial("tcp", shared) // never starts its handshake
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waiting, err := tls.Dial("tcp", shared, &tls.Config{InsecureSkipVerify: true, ServerName: "www.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	waitOpen(t, budget, 2)
	// Both are pending: nothing closes them before the shutdown.
	for _, c := range []net.Conn{silent, waiting} {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("closed before the shutdown: %v", err)
		}
	}
	env.stop()
	for _, tc := range []struct {
		name string
		c    net.Conn
	}{{"in the handshake", silent}, {"waiting for its first bytes", waiting}} {
		_ = tc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := tc.c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("a connection %s was not closed at shutdown: %v", tc.name, err)
		}
	}
	waitOpen(t, budget, 0)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSharedHandshakePanic: a panic in the shared listener's handshake
// (GetCertificate) ends that connection and is logged; the budget gets its
// slot back and the listener serves on.
func TestSharedHandshakePanic(t *testing.T) {
	budget := listen.NewConnBudget(10, 0)
	env := startServer(t, proxytest.UpstreamOptions{}, func(c *Config) {
		c.Listeners = append(c.Listeners, listen.Listener{Mode: listen.ModeShared, Addr: "127.0.0.1:0"})
		c.Shared = listen.SharedConfig{Pending: budget}
		c.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { panic("boom") }}
	})
	shared := env.srv.Addrs()[2].String()
	for range 2 {
		if c, err := tls.Dial("tcp", shared, &tls.Config{InsecureSkipVerify: true}); err == nil {
			c.Close()
			t.Fatal("a handshake whose GetCertificate panics succeeded")
		}
	}
	waitOpen(t, budget, 0)
	if !strings.Contains(env.log.String(), `msg="shared listener: panic"`) {
		t.Errorf("the panic was not logged:\n%s", env.log.String())
	}
}
