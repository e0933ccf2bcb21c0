package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// proxyV2Sig opens every PROXY protocol v2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// TestStartHAProxy: the balanced frontend spreads connections over both
// backends, Only[i] reaches backend i alone, and each backend is told the
// client's own address (127.0.0.7) in a PROXY v2 header.
func TestStartHAProxy(t *testing.T) {
	var backends []string
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		backends = append(backends, ln.Addr().String())
		// Each connection is answered "BACKEND SOURCE\n": which backend
		// took it and the client address its PROXY header gave (health
		// checks get the same and hang up).
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					// Signature, version/command, family, length, then
					// for TCP over IPv4 the source address first.
					hdr := make([]byte, 16+4)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					src := "no PROXY v2 TCP4 header"
					if bytes.Equal(hdr[:12], proxyV2Sig) && hdr[12] == 0x21 && hdr[13] == 0x11 {
						src = net.IP(hdr[16:20]).String()
					}
					fmt.Fprintf(c, "%d %s\n", i, src)
				}()
			}
		}()
	}
	h := StartHAProxy(t, backends, HAProxyOptions{HealthCheck: true})

	dial := func(frontend string) string {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", frontend)
		if err != nil {
			t.Fatalf("dialing %s: %v", frontend, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading from %s: %v\nconfig:\n%s", frontend, err, h.Config)
		}
		backend, src, _ := strings.Cut(strings.TrimSpace(line), " ")
		if src != "127.0.0.7" {
			t.Errorf("backend %s was told the client is %q, want 127.0.0.7", backend, src)
		}
		return backend
	}
	balanced := map[string]int{}
	for i := 0; i < 4; i++ {
		balanced[dial(h.Balanced)]++
	}
	if balanced["0"] == 0 || balanced["1"] == 0 {
		t.Errorf("balanced frontend: connections per backend %v, want both used", balanced)
	}
	for i, fe := range h.Only {
		for j := 0; j < 2; j++ {
			if b := dial(fe); b != fmt.Sprint(i) {
				t.Errorf("Only[%d] reached backend %s", i, b)
			}
		}
	}
}
