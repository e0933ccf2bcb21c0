package certs

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
)

// sniFixture: three hosts in the live/ layout, a wildcard as .crt/.key,
// certbot's README, and a static default pair.
type sniFixture struct {
	le       *certstest.LetsEncryptDir
	m        *Manager
	addr     string
	certFile string
}

func newSNIFixture(t *testing.T, poll time.Duration) *sniFixture {
	t.Helper()
	ca := certstest.NewCA(t)
	le := certstest.NewLetsEncryptDir(t, ca)
	le.Put("a.example.test", "a.example.test")
	le.Put("b.example.test", "b.example.test", "www.b.example.test")
	le.Put("c.example.test", "c.example.test")
	wchain, wkey := ca.Issue(t, 90*24*time.Hour, "*.dept.example.test")
	certstest.WriteFile(t, filepath.Join(le.Live(), "_wildcard.dept.example.test.crt"), wchain)
	certstest.WriteFile(t, filepath.Join(le.Live(), "_wildcard.dept.example.test.key"), wkey)

	static := t.TempDir()
	dchain, dkey := ca.Issue(t, 90*24*time.Hour, "default.example.test")
	certFile, keyFile := filepath.Join(static, "cert.pem"), filepath.Join(static, "key.pem")
	certstest.WriteFile(t, certFile, dchain)
	certstest.WriteFile(t, keyFile, dkey)

	m, err := New(Config{
		Hostname: "default.example.test", CertFile: certFile, KeyFile: keyFile,
		SNIDir: le.Live(), PollInterval: poll,
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	return &sniFixture{le: le, m: m, addr: serveTLS(t, m.TLSConfig()), certFile: certFile}
}

// served returns the names on the certificate served for sni ("" sends no
// SNI), verifying the chain for want when it is not empty.
func (f *sniFixture) served(t *testing.T, sni, verifyFor string) (tls.ConnectionState, []string) {
	t.Helper()
	conf := &tls.Config{ServerName: sni, InsecureSkipVerify: true}
	if sni == "" {
		conf.ServerName = "127.0.0.1" // crypto/tls sends no SNI for an IP
	}
	if verifyFor != "" {
		conf = &tls.Config{ServerName: verifyFor, RootCAs: f.le.CA.Pool}
	}
	st, err := handshake(f.addr, conf)
	if err != nil {
		t.Fatalf("handshake for SNI %q: %v", sni, err)
	}
	return st, leafNames(st)
}

// TestSNIDirectory: each host of the Let's Encrypt layout, the wildcard
// (one label only), no SNI and an unknown name each get the right
// certificate, verified against the CA.
func TestSNIDirectory(t *testing.T) {
	f := newSNIFixture(t, -1)
	cases := []struct {
		sni  string
		want []string
	}{
		{"a.example.test", []string{"a.example.test"}},
		{"b.example.test", []string{"b.example.test", "www.b.example.test"}},
		{"WWW.B.Example.Test", []string{"b.example.test", "www.b.example.test"}},
		{"c.example.test", []string{"c.example.test"}},
		{"x.dept.example.test", []string{"*.dept.example.test"}},
		{"y.x.dept.example.test", []string{"default.example.test"}}, // wildcard covers one label
		{"dept.example.test", []string{"default.example.test"}},
		{"unknown.example.test", []string{"default.example.test"}},
		{"", []string{"default.example.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.sni, func(t *testing.T) {
			verify := tc.sni
			if verify == "" || tc.want[0] == "default.example.test" {
				verify = ""
			}
			_, got := f.served(t, tc.sni, verify)
			if !slices.Equal(got, tc.want) {
				t.Errorf("served %v, want %v", got, tc.want)
			}
		})
	}
	infos := f.m.Certificates()
	if len(infos) != 5 {
		t.Fatalf("Certificates() has %d entries, want 5: %+v", len(infos), infos)
	}
	if infos[0].Source != SourceStatic || infos[1].Source != SourceSNIDir {
		t.Errorf("Certificates() order/sources: %+v", infos)
	}
}

// TestSNIHostnameFallback: without a static pair, hellos without SNI and
// for unknown names get Hostname's certificate from the directory.
func TestSNIHostnameFallback(t *testing.T) {
	ca := certstest.NewCA(t)
	le := certstest.NewLetsEncryptDir(t, ca)
	le.Put("mail.example.test", "mail.example.test")
	le.Put("other.example.test", "other.example.test")
	m, err := New(Config{Hostname: "mail.example.test", SNIDir: le.Live()}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	f := &sniFixture{le: le, m: m, addr: serveTLS(t, m.TLSConfig())}
	for _, sni := range []string{"", "unknown.example.test"} {
		if _, got := f.served(t, sni, ""); !slices.Equal(got, []string{"mail.example.test"}) {
			t.Errorf("SNI %q: served %v", sni, got)
		}
	}
	if _, got := f.served(t, "other.example.test", "other.example.test"); !slices.Equal(got, []string{"other.example.test"}) {
		t.Errorf("other: served %v", got)
	}
}

// TestSNIReload: a renewed certificate is served after Reload, a
// connection opened before the swap keeps working, and a broken new pair
// keeps the old certificate with an error naming the file.
func TestSNIReload(t *testing.T) {
	f := newSNIFixture(t, -1)
	before, _ := f.served(t, "b.example.test", "b.example.test")
	oldSerial, _ := leafSerial(before)

	// An open connection from before the swap.
	open, err := tls.Dial("tcp", f.addr, &tls.Config{ServerName: "b.example.test", RootCAs: f.le.CA.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	f.le.Put("b.example.test", "b.example.test", "www.b.example.test")
	if st, _ := f.served(t, "b.example.test", "b.example.test"); mustSerial(t, st) != oldSerial {
		t.Fatal("new certificate served before Reload")
	}
	if err := f.m.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after, _ := f.served(t, "b.example.test", "b.example.test")
	if mustSerial(t, after) == oldSerial {
		t.Error("old certificate still served after Reload")
	}
	if _, err := fmt.Fprintf(open, "ping\n"); err != nil {
		t.Errorf("connection opened before the reload: write: %v", err)
	}
	line, err := bufio.NewReader(open).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Errorf("connection opened before the reload: read %q, %v", line, err)
	}

	// A broken renewal of c: the key no longer matches the chain.
	cBefore, _ := f.served(t, "c.example.test", "c.example.test")
	_, otherKey := f.le.CA.Issue(t, time.Hour, "c.example.test")
	keyLink := filepath.Join(f.le.Live(), "c.example.test", "privkey.pem")
	if err := os.WriteFile(keyLink, otherKey, 0o600); err != nil { // writes through the symlink
		t.Fatal(err)
	}
	err = f.m.Reload()
	if err == nil || !strings.Contains(err.Error(), "c.example.test") || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Reload with a mismatched key: %v", err)
	}
	cAfter, _ := f.served(t, "c.example.test", "c.example.test")
	if mustSerial(t, cAfter) != mustSerial(t, cBefore) {
		t.Error("broken pair replaced the old certificate")
	}
	// The static pair broken too: the old default stays.
	if err := os.WriteFile(f.certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reload(); err == nil || !strings.Contains(err.Error(), f.certFile) {
		t.Errorf("Reload with a broken static pair: %v", err)
	}
	if _, got := f.served(t, "", ""); !slices.Equal(got, []string{"default.example.test"}) {
		t.Errorf("default after a broken reload: %v", got)
	}
}

// TestWatchReloads: Run notices a renewal on disk without Reload being
// called.
func TestWatchReloads(t *testing.T) {
	f := newSNIFixture(t, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.m.Run(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	st, _ := f.served(t, "a.example.test", "a.example.test")
	old := mustSerial(t, st)
	time.Sleep(100 * time.Millisecond) // let the watcher take its first look
	f.le.Put("a.example.test", "a.example.test")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := f.served(t, "a.example.test", "a.example.test")
		if mustSerial(t, st) != old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("renewed certificate not picked up by the watcher")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustSerial(t *testing.T, st tls.ConnectionState) string {
	t.Helper()
	s, err := leafSerial(st)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
