package smtp_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// The TLS handshake (implicit TLS or STARTTLS) runs on a goroutine of its
// own: the connection's goroutine, which lives as long as the connection,
// keeps a stack sized for SMTP, not for the handshake's cryptography. With
// the garbage collector off (it would shrink the stacks), connections held
// after a handshake take 2-4 KiB of stack each (8 KiB under the race
// detector), where a handshake on the connection's goroutine left 16 KiB.
func TestServerHandshakeStack(t *testing.T) {
	cert := selfSigned(t)
	for _, mode := range []string{"starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := smtp.NewServer(new(backend))
			s.Domain = "localhost"
			s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			var sl net.Listener = l
			if mode == "implicit" {
				sl = tls.NewListener(l, s.TLSConfig)
			}
			go s.Serve(sl)
			defer s.Close()

			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			runtime.GC()
			const n = 100
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := 0; i < n; i++ {
				c := dialTLS(t, l.Addr().String(), mode)
				defer c.Close()
			}
			runtime.ReadMemStats(&after)
			perConn := (int64(after.StackInuse) - int64(before.StackInuse)) / n
			t.Logf("%d B of stack per connection", perConn)
			if perConn >= 12<<10 {
				t.Errorf("%d B of stack per connection held after its handshake, want < 12 KiB", perConn)
			}
		})
	}
}

// dialTLS returns a connection past the handshake and an EHLO under TLS,
// the client on the test's goroutine.
func dialTLS(t *testing.T, addr, mode string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	cfg := &tls.Config{InsecureSkipVerify: true}
	if mode == "starttls" {
		br := bufio.NewReader(raw)
		io.WriteString(raw, "EHLO localhost\r\nSTARTTLS\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "220 ") && strings.Contains(l, "TLS") {
				break
			}
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	if mode == "implicit" {
		if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
			t.Fatalf("greeting: %q, %v", l, err)
		}
	}
	io.WriteString(tc, "EHLO localhost\r\n")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "250 ") {
			return tc
		}
	}
}
