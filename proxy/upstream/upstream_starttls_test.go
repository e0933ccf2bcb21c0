package upstream

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// startStallingTLSUpstream is a fake MTA that offers STARTTLS (and
// XCLIENT), answers STARTTLS with 220 and then never says another word:
// the TLS handshake stalls. It stops when the test ends.
func startStallingTLSUpstream(t *testing.T) (addr string, ehlos func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string // EHLO arguments, in order
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.Write([]byte("220 stall.test ESMTP\r\n"))
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
					case "EHLO":
						mu.Lock()
						seen = append(seen, strings.TrimSpace(line[len("EHLO"):]))
						mu.Unlock()
						conn.Write([]byte("250-stall.test\r\n250-XCLIENT LOGIN ADDR\r\n250 STARTTLS\r\n"))
					case "STARTTLS":
						conn.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
						<-stop
						return
					default:
						conn.Write([]byte("502 5.5.2 not here\r\n"))
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(stop)
		wg.Wait()
	})
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestUpstreamStartTLSStalledHandshakeBounded: an upstream that stops
// answering inside the STARTTLS handshake fails the dial within
// --upstream-dial-timeout's setup bound, far below the per-step timeout, on
// both ways of speaking STARTTLS (go-smtp's client alone, and the XCLIENT
// preamble).
func TestUpstreamStartTLSStalledHandshakeBounded(t *testing.T) {
	addr, ehlos := startStallingTLSUpstream(t)
	for _, tc := range []struct {
		name string
		id   Identity
	}{{"starttls", Identity{}}, {"starttls with XCLIENT", Identity{Login: "alice@example.test"}}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Addr: addr, HeloName: "postern.test", TLS: "starttls", XCLIENT: true,
				DialTimeout: time.Second, Timeout: time.Minute}
			done := make(chan error, 1)
			go func() {
				up, err := Dial(context.Background(), cfg, tc.id)
				if up != nil {
					up.Abort()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("dial succeeded through a stalled TLS handshake")
				}
				if !strings.Contains(err.Error(), "STARTTLS") {
					t.Errorf("error does not name STARTTLS: %v", err)
				}
				t.Logf("error: %v", err)
				// The EHLO before STARTTLS carries our name, never
				// go-smtp's default "localhost" (go-smtp patch client-starttls-after-hello).
				if got := ehlos(); len(got) == 0 || got[len(got)-1] != "postern.test" {
					t.Errorf("EHLO names before STARTTLS: %q, want postern.test", got)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("dial still running 15 s after a 1 s dial timeout")
			}
		})
	}
}

// TestUpstreamStartTLSNotOfferedRefused: with --upstream-tls starttls an
// upstream that does not offer STARTTLS gets nothing in clear text: the dial
// fails naming STARTTLS, with and without XCLIENT.
func TestUpstreamStartTLSNotOfferedRefused(t *testing.T) {
	fake := proxytest.StartUpstream(t, proxytest.UpstreamOptions{}) // no STARTTLS
	for _, tc := range []struct {
		name string
		id   Identity
	}{{"starttls", Identity{}}, {"starttls with XCLIENT", Identity{Login: "alice@example.test"}}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Addr: fake.Addr, HeloName: "postern.test", TLS: "starttls", XCLIENT: true,
				DialTimeout: 5 * time.Second, Timeout: 5 * time.Second}
			up, err := Dial(context.Background(), cfg, tc.id)
			if err == nil {
				up.Abort()
				t.Fatal("dial succeeded without STARTTLS")
			}
			if !strings.Contains(err.Error(), "STARTTLS") {
				t.Errorf("error does not name STARTTLS: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
	if n := len(fake.Messages()); n != 0 {
		t.Fatalf("the upstream got %d messages", n)
	}
}
