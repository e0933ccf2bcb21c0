package main

// The deploy/haproxy/submission-443.cfg recipe run by the real HAProxy in
// front of Postern and a web server (openssl s_server -www).

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// dialTLSFrom opens a TLS connection to addr from localIP with the TLS
// server name sni and ALPN alpn (nil: none).
func dialTLSFrom(t *testing.T, addr, localIP, sni string, alpn []string) *tls.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: alpn})
	if err != nil {
		t.Fatalf("TLS to %s (SNI %q, ALPN %v): %v", addr, sni, alpn, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// TestHAProxy443RecipeE2E: through the recipe, ALPN smtp and a client
// without ALPN naming the SMTP host reach Postern, which logs the client's
// own address (PROXY v2) and delivers the message; http/1.1, and no ALPN
// with another name, reach the web server.
func TestHAProxy443RecipeE2E(t *testing.T) {
	t.Parallel()
	haproxy := testkit.RequireTool(t, "haproxy")
	openssl := testkit.RequireOpenSSL(t)
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	p := startPostern(t, pf.Addr, "--hostname", "localhost", "--proxy-protocol-from", "127.0.0.1/32")

	web := testkit.FreeAddr(t)
	testkit.StartCmd(t, exec.Command(openssl, "s_server", "-accept", web, "-www", "-quiet",
		"-cert", filepath.Join(p.Dir, "cert.pem"), "-key", filepath.Join(p.Dir, "key.pem")))
	testkit.WaitTCP(t, web, 10*time.Second)

	front := testkit.FreeAddr(t)
	recipe, err := filepath.Abs("../../deploy/haproxy/submission-443.cfg")
	if err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "HTTPS_BIND="+front, "SMTP_NAME=smtp.example.test", "POSTERN_TLS="+p.TLS, "WEB_HTTPS="+web)
	check := exec.Command(haproxy, "-c", "-f", recipe)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	run := exec.Command(haproxy, "-f", recipe, "-db")
	run.Env = env
	testkit.StartCmd(t, run)
	testkit.WaitTCP(t, front, 10*time.Second)

	for i, tc := range []struct {
		from, sni string
		alpn      []string
	}{{"127.0.0.9", "localhost", []string{"smtp"}}, {"127.0.0.10", "smtp.example.test", nil}} {
		conn := dialTLSFrom(t, front, tc.from, tc.sni, tc.alpn)
		c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
		c.expect("", "220 localhost ")
		c.expect("EHLO client.test", "250")
		expectReply(t, "AUTH via the recipe", c.auth(aliceLogin, alicePass), "235")
		expectQueued(t, "message via the recipe", c.send(aliceLogin, "friend@example.test", "haproxy-443-"+tc.from))
		c.expect("QUIT", "221")
		findSubject(t, pf.WaitMessages(t, i+1, 30*time.Second), "haproxy-443-"+tc.from)
		testkit.WaitOutputs(t, "the auth ok line of "+tc.from, 10*time.Second, func() bool {
			return logCount(p, "auth ok", tc.from) == 1
		}, p.proc)
	}
	for _, tc := range []struct {
		sni  string
		alpn []string
	}{{"localhost", []string{"http/1.1"}}, {"www.example.test", nil}} {
		conn := dialTLSFrom(t, front, "127.0.0.11", tc.sni, tc.alpn)
		if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(conn)
		conn.Close() // s_server serves one connection at a time, to its close
		if !strings.HasPrefix(string(body), "HTTP/1.0 200 ok") || !strings.Contains(string(body), "s_server") {
			t.Errorf("SNI %q ALPN %v: want the web server's page, got:\n%.300s", tc.sni, tc.alpn, body)
		}
	}
	if strings.Contains(p.Log(), "127.0.0.11") {
		t.Errorf("the web clients reached Postern:\n%s", p.Log())
	}
}
