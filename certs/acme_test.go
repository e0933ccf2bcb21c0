package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

// runACMEManager builds a Manager for domains against Pebble and runs it
// until the test ends.
func runACMEManager(t *testing.T, p *certstest.Pebble, cfg Config) *Manager {
	t.Helper()
	cfg.ACMEDirectory = p.DirURL
	cfg.ACMEHTTPClient = p.Client
	if cfg.ACMECache == "" {
		cfg.ACMECache = t.TempDir()
	}
	cfg.ACMEEmail = "postmaster@postern.test"
	cfg.PollInterval = -1
	m, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	var http01 net.Listener
	if addr := m.HTTP01Addr(); addr != "" {
		if http01, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, http01) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m
}

// waitIssued waits until the Manager serves a certificate for name that
// verifies against Pebble's root, and returns the handshake state.
func waitIssued(t *testing.T, p *certstest.Pebble, addr, name string, timeout time.Duration) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := handshake(addr, &tls.Config{ServerName: name, RootCAs: p.Roots})
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified certificate for %s within %v: %v", name, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEPebble gets real certificates from Pebble through the Manager,
// once validated over HTTP-01 on ACMEHTTPAddr and once over TLS-ALPN-01 on
// a TLS listener using TLSConfig, and checks the chains, the fallback for
// hellos without SNI, Info, and (Pebble issuing 30-second certificates)
// that autocert's renewal reaches the handshake path.
func TestACMEPebble(t *testing.T) {
	p := certstest.StartPebble(t, 30*time.Second)

	t.Run("http-01", func(t *testing.T) {
		const name = "mail.postern.test"
		cache := t.TempDir()
		m := runACMEManager(t, p, Config{
			Hostname:     name,
			ACMECache:    cache,
			ACMEDomains:  []string{name},
			ACMEHTTPAddr: "127.0.0.1:" + strconv.Itoa(p.HTTPPort),
		})
		// Nothing listens on p.TLSPort: autocert's first choice,
		// TLS-ALPN-01, fails and it falls back to HTTP-01.
		addr := serveTLS(t, m.TLSConfig())
		st := waitIssued(t, p, addr, name, 60*time.Second)
		leaf := st.PeerCertificates[0]
		if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
		}
		if err := leaf.VerifyHostname(name); err != nil {
			t.Error(err)
		}
		// A hello without SNI gets Hostname's ACME certificate (autocert
		// alone would refuse it).
		noSNI, err := handshake(addr, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake without SNI: %v", err)
		}
		if got := noSNI.PeerCertificates[0].SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("no-SNI hello got serial %v, want %v", got, leaf.SerialNumber)
		}
		// A name outside ACMEDomains is not requested from the CA.
		if _, err := handshake(addr, &tls.Config{ServerName: "evil.postern.test", InsecureSkipVerify: true}); err != nil {
			t.Errorf("handshake for an unlisted name (want Hostname's certificate): %v", err)
		}
		if !strings.Contains(p.Log(), "Attempting to validate w/ HTTP: http://"+name+":") {
			t.Error("Pebble did not validate over HTTP-01")
		}
		infos := m.Certificates()
		if len(infos) != 1 || infos[0].Source != SourceACME || infos[0].Names[0] != name || !strings.Contains(infos[0].Issuer, "Pebble") {
			t.Errorf("Certificates() = %+v", infos)
		}
		// check-config builds a Manager and never runs it: Info comes
		// from the cache directory.
		offline, err := New(Config{ACMEDomains: []string{name}, ACMECache: cache, ACMEDirectory: p.DirURL}, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		if in := offline.Certificates(); len(in) != 1 || in[0].NotAfter.IsZero() || in[0].Warning == "not obtained yet" ||
			!in[0].ExpiresSoon { // 30-second certificates expire "within 14 days"
			t.Errorf("Certificates() from the cache = %+v", in)
		}
		// The HTTP-01 port serves challenges only.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p.HTTPPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET / on the HTTP-01 port: %s, want 404", resp.Status)
		}

		// Renewal: with 30-second certificates autocert renews after
		// about 20 s; the handshake path must serve the new one.
		deadline := time.Now().Add(p.Validity + 15*time.Second)
		for {
			st := waitIssued(t, p, addr, name, 5*time.Second)
			if st.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Logf("renewed: %v (not after %v) replaced %v (not after %v)",
					st.PeerCertificates[0].SerialNumber, st.PeerCertificates[0].NotAfter, leaf.SerialNumber, leaf.NotAfter)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("certificate not renewed")
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("tls-alpn-01", func(t *testing.T) {
		const name = "smtp.postern.test"
		m := runACMEManager(t, p, Config{
			Hostname:     name,
			ACMEDomains:  []string{name},
			ACMEHTTPAddr: "none",
		})
		// The ":443" listener: Pebble validates TLS-ALPN-01 here.
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.TLSPort))
		if err != nil {
			t.Fatal(err)
		}
		serveTLSOn(t, ln, m.TLSConfig())
		st := waitIssued(t, p, ln.Addr().String(), name, 60*time.Second)
		if err := st.PeerCertificates[0].VerifyHostname(name); err != nil {
			t.Error(err)
		}
		// Ordinary clients are not offered acme-tls/1, and one that asks
		// for another protocol is not refused for it.
		st, err = handshake(ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: p.Roots, NextProtos: []string{"smtp"}})
		if err != nil || st.NegotiatedProtocol != "" {
			t.Errorf("handshake with ALPN smtp: %q, %v", st.NegotiatedProtocol, err)
		}
	})
}
