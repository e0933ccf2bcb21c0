package certs

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

func TestSelfSigned(t *testing.T) {
	c, err := SelfSigned("mail.example.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil {
		t.Fatal("Leaf not set")
	}
	if got := c.Leaf.DNSNames; !slices.Equal(got, []string{"mail.example.test"}) {
		t.Errorf("DNSNames = %v", got)
	}
	if len(c.Leaf.IPAddresses) != 1 || c.Leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("IPAddresses = %v", c.Leaf.IPAddresses)
	}
	if c.Leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", c.Leaf.PublicKeyAlgorithm)
	}
	if !c.Leaf.NotBefore.Before(time.Now().Add(-50 * time.Minute)) {
		t.Errorf("NotBefore = %v, want about an hour ago", c.Leaf.NotBefore)
	}
	if _, err := SelfSigned(); err == nil {
		t.Error("SelfSigned() without hosts: no error")
	}
}

func TestServerTLSConfigPolicy(t *testing.T) {
	conf := ServerTLSConfig(nil)
	if conf.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", conf.MinVersion)
	}
	if conf.CurvePreferences[0] != tls.X25519 {
		t.Errorf("CurvePreferences[0] = %v, want X25519", conf.CurvePreferences[0])
	}
	if conf.SessionTicketsDisabled {
		t.Error("session tickets disabled")
	}
	for _, id := range conf.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("suite %s is not ECDHE+AEAD", name)
		}
	}
}

// selfSignedManager builds a demo-mode Manager and serves its TLSConfig.
func selfSignedManager(t *testing.T) (*Manager, string, *x509.CertPool) {
	t.Helper()
	m, err := New(Config{Hostname: "mail.example.test", SelfSigned: true}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(m.snap.Load().def.cert.Leaf)
	return m, serveTLS(t, m.TLSConfig()), pool
}

// TestSelfSignedHandshake: demo mode completes a verified handshake for the
// hostname, for 127.0.0.1 and for a client that sends no SNI.
func TestSelfSignedHandshake(t *testing.T) {
	m, addr, pool := selfSignedManager(t)
	for _, name := range []string{"mail.example.test", "localhost", "127.0.0.1"} {
		st, err := handshake(addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Errorf("handshake for %s: %v", name, err)
			continue
		}
		if st.Version < tls.VersionTLS12 {
			t.Errorf("version %x", st.Version)
		}
	}
	// No SNI: crypto/tls sends none when ServerName is an IP address.
	if _, err := handshake(addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Errorf("handshake without SNI: %v", err)
	}
	infos := m.Certificates()
	if len(infos) != 1 || infos[0].Source != SourceSelfSigned || infos[0].Warning != "" {
		t.Errorf("Certificates() = %+v", infos)
	}
}

// TestPolicyRefusesOldAndNonAEAD: TLS 1.1 and a CBC suite are refused by
// the server, while TLS 1.2 with an AEAD suite and TLS 1.3 work.
func TestPolicyRefusesOldAndNonAEAD(t *testing.T) {
	_, addr, pool := selfSignedManager(t)
	base := func() *tls.Config { return &tls.Config{RootCAs: pool, ServerName: "mail.example.test"} }

	old := base()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := handshake(addr, old); err == nil {
		t.Error("TLS 1.1 handshake succeeded")
	}

	cbc := base()
	cbc.MaxVersion = tls.VersionTLS12
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if _, err := handshake(addr, cbc); err == nil {
		t.Error("TLS 1.2 handshake with CBC suites succeeded")
	}

	gcm := base()
	gcm.MaxVersion = tls.VersionTLS12
	gcm.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	st, err := handshake(addr, gcm)
	if err != nil {
		t.Fatalf("TLS 1.2 AEAD handshake: %v", err)
	}
	if st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("negotiated %x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
	st, err = handshake(addr, base())
	if err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3 handshake: %x %v", st.Version, err)
	}
}

// TestStaticPair: the static pair is served for any name and without SNI.
func TestStaticPair(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	chain, key := ca.Issue(t, 30*24*time.Hour, "mail.example.test")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certstest.WriteFile(t, certFile, chain)
	certstest.WriteFile(t, keyFile, key)
	m, err := New(Config{Hostname: "mail.example.test", CertFile: certFile, KeyFile: keyFile}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.TLSConfig())
	for _, sni := range []string{"mail.example.test", "other.example.test", ""} {
		conf := &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.test"}
		if sni == "" {
			// Verify by hand: no SNI is sent for an IP ServerName.
			conf = &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1"}
		} else if sni != "mail.example.test" {
			conf = &tls.Config{InsecureSkipVerify: true, ServerName: sni}
		}
		st, err := handshake(addr, conf)
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		if got := leafNames(st); !slices.Equal(got, []string{"mail.example.test"}) {
			t.Errorf("SNI %q: served %v", sni, got)
		}
	}
	infos := m.Certificates()
	if len(infos) != 1 || infos[0].Source != SourceStatic || infos[0].CertFile != certFile ||
		infos[0].Issuer != "CN=Postern Test CA" || infos[0].ExpiresSoon {
		t.Errorf("Certificates() = %+v", infos)
	}
}

// TestStaticPairErrors: start-up fails with an error naming the problem.
func TestStaticPairErrors(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	chainA, keyA := ca.Issue(t, time.Hour, "a.example.test")
	_, keyB := ca.Issue(t, time.Hour, "b.example.test")
	certstest.WriteFile(t, filepath.Join(dir, "a.crt"), chainA)
	certstest.WriteFile(t, filepath.Join(dir, "a.key"), keyA)
	certstest.WriteFile(t, filepath.Join(dir, "b.key"), keyB)
	cases := []struct {
		name, cert, key, want string
	}{
		{"mismatch", "a.crt", "b.key", "does not match the private key"},
		{"missing cert", "nope.crt", "a.key", "reading certificate"},
		{"missing key", "a.crt", "nope.key", "reading private key"},
		{"key as cert", "a.key", "a.key", "no PEM CERTIFICATE block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{CertFile: filepath.Join(dir, tc.cert), KeyFile: filepath.Join(dir, tc.key)}, testLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}, testLogger()); err == nil {
		t.Error("New with no source: no error")
	}
	if _, err := New(Config{CertFile: "x"}, testLogger()); err == nil {
		t.Error("New with a cert and no key: no error")
	}
}

// TestExpiryWarning: a certificate expiring within 14 days is flagged.
func TestExpiryWarning(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	chain, key := ca.Issue(t, 3*24*time.Hour, "mail.example.test")
	certstest.WriteFile(t, filepath.Join(dir, "c.pem"), chain)
	certstest.WriteFile(t, filepath.Join(dir, "k.pem"), key)
	m, err := New(Config{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	in := m.Certificates()[0]
	if !in.ExpiresSoon || !strings.Contains(in.Warning, "expires in 2 days") {
		t.Errorf("Info = %+v", in)
	}
}
