// Package certstest holds the certificate fixtures shared by the certs
// package's tests and the end-to-end tests of the postern binary: a test CA
// that issues ECDSA P-256 leaf certificates, a directory laid out the way
// certbot lays out /etc/letsencrypt (archive/ files, live/ symlinks), and a
// Pebble ACME server with pebble-challtestsrv as its DNS (pebble.go).
//
// It must not import package certs: the certs package's own (internal)
// tests import it.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CACommonName is the subject (and so the issuer of every leaf) of a CA from
// NewCA.
const CACommonName = "Postern Test CA"

// CA issues leaf certificates for tests.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool // holds Cert only
}

// NewCA generates a CA valid from an hour ago for a year.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}
}

// PEM returns the CA certificate in PEM, for a -CAfile.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Issue returns a PEM chain (leaf, then the CA) and a PKCS#8 PEM key for
// names (the first is also the subject CN), valid from an hour ago for
// validity.
func (ca *CA) Issue(t testing.TB, validity time.Duration, names ...string) (chainPEM, keyPEM []byte) {
	t.Helper()
	if len(names) == 0 {
		t.Fatal("certstest: Issue without names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM()...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return chainPEM, keyPEM
}

// SelfSigned returns a self-signed CA-capable certificate and its key, PEM,
// for hosts (IP addresses become IP SANs), valid from an hour ago for a
// day. It can go straight into a trust store (SSL_CERT_FILE, RootCAs).
func SelfSigned(t testing.TB, hosts ...string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	return SelfSignedUntil(t, time.Now().Add(24*time.Hour), hosts...)
}

// SelfSignedUntil is SelfSigned with the end of validity chosen by the
// caller, for tests of expiry warnings and renewals.
func SelfSignedUntil(t testing.TB, notAfter time.Time, hosts ...string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("certstest: SelfSigned without hosts")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), cert
}

// WriteFile writes data to path (mode 0600), creating its directory.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// LeafFingerprint returns the hex SHA-256 of the first certificate in a PEM
// chain, as `openssl x509 -fingerprint -sha256` shows it (without colons,
// lower case).
func LeafFingerprint(t testing.TB, chainPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(chainPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("certstest: no PEM certificate in %q", chainPEM)
	}
	return Fingerprint(b.Bytes)
}

// Fingerprint returns the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// LetsEncryptDir lays out certificates as certbot does: Root/archive/<host>/
// holds numbered files (fullchain1.pem, privkey1.pem, ...), Root/live/<host>/
// holds relative symlinks to the current ones, and live/README is there too.
type LetsEncryptDir struct {
	Root string
	CA   *CA
	t    testing.TB
	gen  map[string]int
}

// NewLetsEncryptDir makes an empty layout in a fresh temporary directory.
func NewLetsEncryptDir(t testing.TB, ca *CA) *LetsEncryptDir {
	t.Helper()
	d := &LetsEncryptDir{Root: t.TempDir(), CA: ca, t: t, gen: map[string]int{}}
	WriteFile(t, filepath.Join(d.Live(), "README"), []byte("This directory contains your keys and certificates.\n"))
	return d
}

// Live is the directory to give to --tls-sni-dir (/etc/letsencrypt/live).
func (d *LetsEncryptDir) Live() string { return filepath.Join(d.Root, "live") }

// Chain returns the path of host's live fullchain.pem (a symlink).
func (d *LetsEncryptDir) Chain(host string) string {
	return filepath.Join(d.Live(), host, "fullchain.pem")
}

// Key returns the path of host's live privkey.pem (a symlink).
func (d *LetsEncryptDir) Key(host string) string {
	return filepath.Join(d.Live(), host, "privkey.pem")
}

// Put issues a 90-day certificate for names and installs it as the next
// version of host's lineage, the way `certbot renew` does. It returns the
// chain it installed.
func (d *LetsEncryptDir) Put(host string, names ...string) (chainPEM []byte) {
	d.t.Helper()
	chain, key := d.CA.Issue(d.t, 90*24*time.Hour, names...)
	d.PutPair(host, chain, key)
	return chain
}

// PutPair installs chain and key as the next version of host's lineage:
// new numbered files in archive/<host>/, then each live/<host>/ symlink
// replaced atomically (a new link renamed over the old one).
func (d *LetsEncryptDir) PutPair(host string, chainPEM, keyPEM []byte) {
	d.t.Helper()
	d.gen[host]++
	n := d.gen[host]
	arch := filepath.Join(d.Root, "archive", host)
	WriteFile(d.t, filepath.Join(arch, fmt.Sprintf("fullchain%d.pem", n)), chainPEM)
	WriteFile(d.t, filepath.Join(arch, fmt.Sprintf("privkey%d.pem", n)), keyPEM)
	live := filepath.Join(d.Live(), host)
	if err := os.MkdirAll(live, 0o755); err != nil {
		d.t.Fatal(err)
	}
	for _, f := range []string{"fullchain", "privkey"} {
		link := filepath.Join(live, f+".pem")
		tmp := link + ".new"
		if err := os.Symlink(fmt.Sprintf("../../archive/%s/%s%d.pem", host, f, n), tmp); err != nil {
			d.t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			d.t.Fatal(err)
		}
	}
}
