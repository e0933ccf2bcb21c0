package main

import (
	"encoding/base64"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// TestAuthTimeoutE2E: --auth-timeout bounds one AUTH's verification. An LDAP
// server that accepts and then never answers (a hung slapd) costs the client
// 454 4.7.0 after --auth-timeout (2 s here), before the LDAP backend's own
// 10 s timeout and the 30 s default,
// and the attempt is logged as unavailable, not as a failure. A negative
// value is refused at start.
func TestAuthTimeoutE2E(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})

	p := startPosternUsers(t, testkit.FreeAddr(t), "",
		"--ldap-url", "ldap://"+silent.Addr().String(), "--ldap-base", "dc=example,dc=test",
		"--auth-cache-ttl", "0", "--auth-timeout", "2s")
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	line := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@example.test\x00secret")) + "\r\n"
	if _, err := io.WriteString(c.conn, line); err != nil {
		t.Fatal(err)
	}
	// Under the LDAP backend's own 10 s request timeout (auth/ldap/ldap.go) and
	// the 30 s default: only --auth-timeout can end it in time.
	_ = c.conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	reply, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("no reply to AUTH while the LDAP server is silent: %v", err)
	}
	if !strings.HasPrefix(reply, "454 4.7.0") {
		t.Fatalf("AUTH with a silent LDAP server: got %q, want 454 4.7.0", reply)
	}
	waitLogCount(t, p, "auth unavailable", "127.0.0.1", 1)
	if n := logCount(p, "auth failed", "127.0.0.1"); n != 0 {
		t.Errorf("a timed-out verification was counted as %d failures", n)
	}

	_, stderr, code := runPostern(t, "check-config", "--upstream", "127.0.0.1:25", "--users", p.UsersFile,
		"--tls-cert", p.Dir+"/cert.pem", "--tls-key", p.Dir+"/key.pem", "--auth-timeout", "-1s")
	if code == 0 || !strings.Contains(stderr, "--auth-timeout") {
		t.Errorf("--auth-timeout -1s: exit %d, want an error naming the flag:\n%s", code, stderr)
	}
}
