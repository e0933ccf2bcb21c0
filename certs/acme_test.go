package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// pebbleCA is a Pebble ACME server started for one test, with
// pebble-challtestsrv as its DNS server answering 127.0.0.1 for every name
// (autocert needs a name with a dot, and Pebble must resolve it to reach
// our challenge listeners).
type pebbleCA struct {
	dirURL    string
	client    *http.Client   // trusts Pebble's HTTPS certificate
	roots     *x509.CertPool // Pebble's issuing root, from /roots/0
	httpPort  int            // where Pebble connects for HTTP-01
	tlsPort   int            // where Pebble connects for TLS-ALPN-01
	validity  time.Duration
	pebbleLog func() string
}

func startPebble(t *testing.T, validity time.Duration) *pebbleCA {
	t.Helper()
	pebble := testkit.RequireTool(t, "pebble")
	challtestsrv := testkit.RequireTool(t, "pebble-challtestsrv")
	dir := t.TempDir()

	// Pebble's own HTTPS certificate, trusted by the ACME client below.
	own, err := SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(own.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: own.Certificate[0]}))
	writeFile(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))

	dnsAddr := testkit.FreeAddr(t)
	testkit.Start(t, challtestsrv,
		"-dns01", dnsAddr, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", testkit.FreeAddr(t), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")

	p := &pebbleCA{httpPort: testkit.FreePort(t), tlsPort: testkit.FreePort(t), validity: validity}
	listen, mgmt := testkit.FreeAddr(t), testkit.FreeAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       p.httpPort,
		"tlsPort":                        p.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"certificateValidityPeriod":      uint64(validity / time.Second),
	}}
	data, _ := json.Marshal(conf)
	writeFile(t, filepath.Join(dir, "pebble.json"), data)
	cmd := exec.Command(pebble, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dnsAddr)
	// No artificial validation delays; no nonce rejections (autocert
	// retries them, but they only slow the test down).
	cmd.Env = append(cmd.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	proc := testkit.StartCmd(t, cmd)
	p.pebbleLog = proc.Output
	testkit.WaitTCP(t, listen, 10*time.Second)
	testkit.WaitTCP(t, mgmt, 10*time.Second)

	pool := x509.NewCertPool()
	pool.AddCert(own.Leaf)
	p.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p.dirURL = "https://" + listen + "/dir"

	// The root that issues end-entity certificates is generated at start;
	// only the management interface hands it out.
	resp, err := p.client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	rootPEM, _ := io.ReadAll(resp.Body)
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("Pebble's /roots/0 is not PEM: %q", rootPEM)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.pebbleLog())
		}
	})
	return p
}

// runManager builds a Manager for domains against the CA and runs it until
// the test ends.
func (p *pebbleCA) runManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	cfg.ACMEDirectory = p.dirURL
	cfg.ACMEHTTPClient = p.client
	if cfg.ACMECache == "" {
		cfg.ACMECache = t.TempDir()
	}
	cfg.ACMEEmail = "postmaster@postern.test"
	cfg.PollInterval = -1
	m, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
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
func (p *pebbleCA) waitIssued(t *testing.T, addr, name string, timeout time.Duration) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := handshake(addr, &tls.Config{ServerName: name, RootCAs: p.roots})
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
	p := startPebble(t, 30*time.Second)

	t.Run("http-01", func(t *testing.T) {
		const name = "mail.postern.test"
		cache := t.TempDir()
		m := p.runManager(t, Config{
			Hostname:     name,
			ACMECache:    cache,
			ACMEDomains:  []string{name},
			ACMEHTTPAddr: "127.0.0.1:" + strconv.Itoa(p.httpPort),
		})
		// Nothing listens on p.tlsPort: autocert's first choice,
		// TLS-ALPN-01, fails and it falls back to HTTP-01.
		addr := serveTLS(t, m.TLSConfig())
		st := p.waitIssued(t, addr, name, 60*time.Second)
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
		if !strings.Contains(p.pebbleLog(), "Attempting to validate w/ HTTP: http://"+name+":") {
			t.Error("Pebble did not validate over HTTP-01")
		}
		infos := m.Certificates()
		if len(infos) != 1 || infos[0].Source != SourceACME || infos[0].Names[0] != name || !strings.Contains(infos[0].Issuer, "Pebble") {
			t.Errorf("Certificates() = %+v", infos)
		}
		// check-config builds a Manager and never runs it: Info comes
		// from the cache directory.
		offline, err := New(Config{ACMEDomains: []string{name}, ACMECache: cache, ACMEDirectory: p.dirURL}, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		if in := offline.Certificates(); len(in) != 1 || in[0].NotAfter.IsZero() || in[0].Warning == "not obtained yet" ||
			!in[0].ExpiresSoon { // 30-second certificates expire "within 14 days"
			t.Errorf("Certificates() from the cache = %+v", in)
		}
		// The HTTP-01 port serves challenges only.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p.httpPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET / on the HTTP-01 port: %s, want 404", resp.Status)
		}

		// Renewal: with 30-second certificates autocert renews after
		// about 20 s; the handshake path must serve the new one.
		deadline := time.Now().Add(p.validity + 15*time.Second)
		for {
			st := p.waitIssued(t, addr, name, 5*time.Second)
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
		m := p.runManager(t, Config{
			Hostname:     name,
			ACMEDomains:  []string{name},
			ACMEHTTPAddr: "none",
		})
		// The ":443" listener: Pebble validates TLS-ALPN-01 here.
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.tlsPort))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					tc := tls.Server(c, m.TLSConfig())
					_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
					_ = tc.Handshake()
				}()
			}
		}()
		st := p.waitIssued(t, ln.Addr().String(), name, 60*time.Second)
		if err := st.PeerCertificates[0].VerifyHostname(name); err != nil {
			t.Error(err)
		}
		// Ordinary clients are not offered acme-tls/1, and one that asks
		// for another protocol is not refused for it.
		st, err = handshake(ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: p.roots, NextProtos: []string{"smtp"}})
		if err != nil || st.NegotiatedProtocol != "" {
			t.Errorf("handshake with ALPN smtp: %q, %v", st.NegotiatedProtocol, err)
		}
	})
}
