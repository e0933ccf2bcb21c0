package certs

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

// TestCovers: a name is covered by the default pair's names (wildcards as
// TLS matches them), the SNI directory, or the ACME allow-list — and by
// nothing else, even though the default pair is served for every name.
func TestCovers(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	chain, key := ca.Issue(t, 30*24*time.Hour, "mail.example.test", "*.wild.example.test")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certstest.WriteFile(t, certFile, chain)
	certstest.WriteFile(t, keyFile, key)
	le := certstest.NewLetsEncryptDir(t, ca)
	le.Put("autoconfig.example.test", "autoconfig.example.test")
	m, err := New(Config{Hostname: "mail.example.test", CertFile: certFile, KeyFile: keyFile, SNIDir: le.Live(),
		ACMEDomains: []string{"mta-sts.example.test"}, ACMEHTTPAddr: "none", ACMECache: t.TempDir()}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"mail.example.test":            true,
		"MAIL.example.test.":           true,
		"autoconfig.wild.example.test": true,
		"autoconfig.example.test":      true,
		"mta-sts.example.test":         true,
		"autodiscover.example.test":    false,
		"a.b.wild.example.test":        false,
		"example.test":                 false,
	} {
		if got := m.Covers(name); got != want {
			t.Errorf("Covers(%q) = %v, want %v", name, got, want)
		}
	}
}
