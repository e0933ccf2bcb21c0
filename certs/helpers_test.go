package certs

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// testLogger writes to stderr, not t.Log: autocert and watcher goroutines
// may log after a test has returned, which t.Log turns into a panic.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// serveTLS accepts connections on 127.0.0.1:0 with conf and completes the
// handshake on each, then closes it. It returns the address.
func serveTLS(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveTLSOn(t, ln, conf)
}

// serveTLSOn is serveTLS on a listener the test chose (e.g. Pebble's
// TLS-ALPN-01 port).
func serveTLSOn(t *testing.T, ln net.Listener, conf *tls.Config) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, conf)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() == nil {
					// Echo, so a test can check that a connection
					// survives a reload; returns when the client closes.
					_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
					_, _ = io.Copy(tc, tc)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake dials addr with conf and returns the connection state.
func handshake(addr string, conf *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

// leafNames returns the DNS names of the certificate the server presented.
func leafNames(st tls.ConnectionState) []string {
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0].DNSNames
}

var errNoPeer = errors.New("no peer certificate")

func leafSerial(st tls.ConnectionState) (string, error) {
	if len(st.PeerCertificates) == 0 {
		return "", errNoPeer
	}
	return st.PeerCertificates[0].SerialNumber.String(), nil
}
