package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/postern/postern/proxy/proxytest"
)

// TestReadyzUpstreamRefusingGreetingE2E: an upstream that accepts TCP
// connections but refuses every session at its greeting (421, an MTA
// shutting down) can take no message, so /readyz answers 503 naming it and
// its reply, as it does for one that refuses connections; with a working
// upstream behind it, 200. /readyz probes the upstream as a session dials
// it (greeting, EHLO, STARTTLS, AUTH), not with a bare TCP connect.
func TestReadyzUpstreamRefusingGreetingE2E(t *testing.T) {
	refusing := startGreetingRefuser(t)
	p := startPostern(t, refusing, "--metrics", anyPort)
	url := "http://" + p.metricsAddr(t) + "/readyz"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), refusing) || !strings.Contains(string(body), "421") {
		t.Errorf("/readyz with an upstream that greets 421: %d %q, want 503 naming %s and its 421", resp.StatusCode, body, refusing)
	}

	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p = startPostern(t, refusing, "--upstream", up.Addr, "--metrics", anyPort)
	if s := opsStatus(t, "http://"+p.metricsAddr(t)+"/readyz"); s != 200 {
		t.Errorf("/readyz with a working upstream behind the refusing one: %d, want 200", s)
	}
}

// startGreetingRefuser is an upstream on a loopback port that accepts
// every connection, greets it with 421 and closes it, until the test ends.
func startGreetingRefuser(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(conn, "421 4.3.2 refusing.test Service shutting down\r\n")
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}
