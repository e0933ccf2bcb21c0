package smtp_test

// Tests of the TLS handshake's own goroutine (handshake.go): however the
// handshake ends (an error, a panic, runtime.Goexit, panic(nil)), the
// connection ends, and no goroutine is left waiting.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func waitGoroutines(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s: %d goroutines, %d before\n%s", what, n, base, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runtime.Goexit in GetCertificate (t.FailNow in a test's callback, for
// one) ends the handshake's goroutine without a return or a panic: the
// connection's goroutine must not wait for it forever (whatever GODEBUG
// says), but exit too, as it did when the handshake ran on it, its deferred
// Close ending the connection.
func TestServerHandshakeGoexit(t *testing.T) {
	s, addr := echoServer(t, echoBackend{}, func(s *smtp.Server) {
		s.ReadTimeout = time.Second
		s.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			runtime.Goexit()
			return nil, nil
		}}
	})
	c, br := dialGreeted(t, addr)
	io.WriteString(c, "STARTTLS\r\n")
	finalReplies(br, 1)
	c.SetDeadline(time.Now().Add(6 * time.Second))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	t.Logf("client handshake: %v", tc.Handshake())
	c.SetDeadline(time.Now().Add(6 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("the server did not end the connection within its 1 s read timeout (+5 s): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v (a connection goroutine is stuck)", err)
	}
}

// panic(nil) in GetCertificate during STARTTLS. This module's go.mod says
// go 1.13, so GODEBUG panicnil=1 applies: recover() returns nil for it, as
// for a Goexit. The connection's goroutine must not wait for the handshake
// forever (past every deadline, where Shutdown cannot end it): the
// connection ends within its read timeout.
func TestServerHandshakePanicNil(t *testing.T) {
	s, addr := echoServer(t, echoBackend{}, func(s *smtp.Server) {
		s.ReadTimeout = time.Second
		s.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			panic(nil)
		}}
	})
	c, br := dialGreeted(t, addr)
	io.WriteString(c, "STARTTLS\r\n")
	finalReplies(br, 1)
	c.SetDeadline(time.Now().Add(6 * time.Second))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	herr := tc.Handshake()
	t.Logf("client handshake: %v", herr)
	c.SetDeadline(time.Now().Add(6 * time.Second))
	_, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("the server did not end the connection within its 1 s read timeout (+5 s): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v (a connection goroutine is stuck)", err)
	}
}

// STARTTLS and implicit-TLS handshakes that never complete (the client says
// nothing, or half a ClientHello): the read timeout ends them, and so do
// Close and Shutdown; no goroutine is left.
func TestServerHandshakeNeverCompletes(t *testing.T) {
	cert := selfSigned(t)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	base := runtime.NumGoroutine()

	for _, mode := range []string{"timeout", "close", "shutdown"} {
		for _, implicit := range []bool{false, true} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := smtp.NewServer(echoBackend{})
			s.Domain = "localhost"
			s.TLSConfig = tlsConf
			s.ErrorLog = nopLogger{}
			if mode == "timeout" {
				s.ReadTimeout = 300 * time.Millisecond
			}
			var ln net.Listener = l
			if implicit {
				ln = tls.NewListener(l, tlsConf)
			}
			go s.Serve(ln)
			var conns []net.Conn
			for i := 0; i < 10; i++ {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				if !implicit {
					br := bufio.NewReader(c)
					br.ReadString('\n')
					io.WriteString(c, "STARTTLS\r\n")
					br.ReadString('\n')
				}
				if i%2 == 1 {
					c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // half a ClientHello record
				}
			}
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			switch mode {
			case "close":
				s.Close()
			case "shutdown":
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				err := s.Shutdown(ctx)
				cancel()
				t.Logf("implicit=%v Shutdown: %v", implicit, err)
			}
			for i, c := range conns {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := io.Copy(io.Discard, c)
				if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Errorf("%s implicit=%v conn %d: not ended by the server: %v", mode, implicit, i, err)
				}
				c.Close()
			}
			t.Logf("%s implicit=%v: all ended %v after", mode, implicit, time.Since(start))
			s.Close()
			waitGoroutines(t, base, fmt.Sprintf("%s implicit=%v", mode, implicit))
		}
	}
}
