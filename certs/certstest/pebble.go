package certstest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// Pebble is a Pebble ACME server (Debian package pebble) started for one
// test on loopback, with pebble-challtestsrv as its DNS server answering
// 127.0.0.1 for every name: ACME clients need names with a dot, and Pebble
// must resolve them to reach the challenge listeners. Both are stopped by
// PID when the test ends.
type Pebble struct {
	// DirURL is the ACME directory, https://127.0.0.1:PORT/dir.
	DirURL string
	// Client trusts Pebble's own HTTPS certificate (for DirURL).
	Client *http.Client
	// HTTPSCertFile is Pebble's own HTTPS certificate, PEM: point
	// SSL_CERT_FILE at it to make another process (the postern binary)
	// trust the directory.
	HTTPSCertFile string
	// Roots holds Pebble's issuing root, fetched from /roots/0 of the
	// management interface; RootPEM is the same in PEM.
	Roots   *x509.CertPool
	RootPEM []byte
	// HTTPPort and TLSPort are where Pebble connects, on 127.0.0.1, to
	// validate HTTP-01 and TLS-ALPN-01 challenges.
	HTTPPort, TLSPort int
	// Validity is the lifetime of the certificates Pebble issues.
	Validity time.Duration

	proc *testkit.Process
}

// Log returns what Pebble logged so far (its validation attempts, among
// others: "Attempting to validate w/ HTTP: http://NAME:PORT/...").
func (p *Pebble) Log() string { return p.proc.Output() }

// StartPebble starts pebble-challtestsrv and Pebble issuing certificates
// valid for validity. It fails the test under CI=true, and skips it
// otherwise, when either tool is missing.
func StartPebble(t testing.TB, validity time.Duration) *Pebble {
	t.Helper()
	pebble := testkit.RequireTool(t, "pebble")
	challtestsrv := testkit.RequireTool(t, "pebble-challtestsrv")
	dir := t.TempDir()

	// Pebble's own HTTPS certificate.
	certPEM, keyPEM, own := SelfSigned(t, "localhost", "127.0.0.1")
	p := &Pebble{
		HTTPSCertFile: filepath.Join(dir, "cert.pem"),
		HTTPPort:      testkit.FreePort(t),
		TLSPort:       testkit.FreePort(t),
		Validity:      validity,
	}
	WriteFile(t, p.HTTPSCertFile, certPEM)
	WriteFile(t, filepath.Join(dir, "key.pem"), keyPEM)

	dnsAddr := testkit.FreeAddr(t)
	testkit.Start(t, challtestsrv,
		"-dns01", dnsAddr, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", testkit.FreeAddr(t), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")

	listen, mgmt := testkit.FreeAddr(t), testkit.FreeAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    p.HTTPSCertFile,
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       p.HTTPPort,
		"tlsPort":                        p.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"certificateValidityPeriod":      uint64(validity / time.Second),
	}}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, "pebble.json"), data)
	cmd := exec.Command(pebble, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dnsAddr)
	// No artificial validation delays; no nonce rejections (ACME clients
	// retry them, but they only slow the test down).
	cmd.Env = append(cmd.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	p.proc = testkit.StartCmd(t, cmd)
	// 30 s: on a loaded CI machine Pebble has logged "listening" on its
	// management address and still refused connections at 10 s.
	testkit.WaitTCP(t, listen, 30*time.Second)
	testkit.WaitTCP(t, mgmt, 30*time.Second)

	pool := x509.NewCertPool()
	pool.AddCert(own)
	p.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p.DirURL = "https://" + listen + "/dir"

	// The root that issues end-entity certificates is generated at start;
	// only the management interface hands it out.
	resp, err := p.Client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	if p.RootPEM, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(p.RootPEM) {
		t.Fatalf("Pebble's /roots/0 is not PEM: %q", p.RootPEM)
	}
	return p
}
