package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ExpiryWarning is how close to its expiry a certificate is reported (Info.
// Warning, and a log line on load): two weeks leaves time to notice a renewal
// that keeps failing (Let's Encrypt renews at 30 days).
const ExpiryWarning = 14 * 24 * time.Hour

// Info describes one certificate Postern would serve, for `postern
// check-config` and the logs.
type Info struct {
	Source    string   // SourceStatic, SourceSelfSigned, SourceSNIDir or SourceACME
	Names     []string // DNS names, then IP addresses, from the certificate
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
	CertFile  string // empty for self-signed and ACME certificates
	KeyFile   string
	// ExpiresSoon is set when NotAfter is within ExpiryWarning (or past).
	ExpiresSoon bool
	// Warning is a human-readable problem ("expires in 3 days", "expired",
	// "not obtained yet"); empty when all is well.
	Warning string
}

// Certificates lists every certificate the Manager would serve: the default
// pair, the SNI directory's pairs in file order, then the ACME domains.
func (m *Manager) Certificates() []Info {
	return m.certificates(true)
}

// certificates is Certificates, without the ACME part (which may read the
// cache directory) when withACME is false.
func (m *Manager) certificates(withACME bool) []Info {
	now := m.cfg.Now()
	s := m.snap.Load()
	var out []Info
	if s.def != nil {
		out = append(out, newInfo(s.def.source, s.def.cert, s.def.certFile, s.def.keyFile, now))
	}
	for _, e := range s.sni.entries {
		out = append(out, newInfo(e.source, e.cert, e.certFile, e.keyFile, now))
	}
	if withACME && m.acme != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, d := range m.acme.domains {
			out = append(out, m.acme.info(ctx, d, now))
		}
	}
	return out
}

func newInfo(source string, c *tls.Certificate, certFile, keyFile string, now time.Time) Info {
	leaf := c.Leaf
	in := Info{
		Source:    source,
		Names:     append([]string(nil), leaf.DNSNames...),
		Issuer:    leaf.Issuer.String(),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		CertFile:  certFile,
		KeyFile:   keyFile,
	}
	for _, ip := range leaf.IPAddresses {
		in.Names = append(in.Names, ip.String())
	}
	if len(in.Names) == 0 && leaf.Subject.CommonName != "" {
		in.Names = []string{leaf.Subject.CommonName}
	}
	left := leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		in.ExpiresSoon = true
		in.Warning = fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left <= ExpiryWarning:
		in.ExpiresSoon = true
		in.Warning = fmt.Sprintf("expires in %s (%s)", roundDays(left), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		in.Warning = fmt.Sprintf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return in
}

func roundDays(d time.Duration) string {
	if d < 24*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// warnExpiring logs each file-based certificate with a warning, so an
// administrator who never runs check-config still sees it after a reload or
// restart. ACME certificates are left out: at start-up they are not
// obtained yet, and autocert renews them on its own (silently; a renewal that
// keeps failing shows up in check-config as ExpiresSoon).
func (m *Manager) warnExpiring() {
	for _, in := range m.certificates(false) {
		if in.Warning != "" {
			m.log.Warn("certs: certificate needs attention", "source", in.Source, "names", in.Names,
				"file", in.CertFile, "problem", in.Warning)
		}
	}
}

// parseCachedCert reads the certificate chain from autocert's cache entry
// (PEM: the private key, then the certificates); the key is not needed.
func parseCachedCert(data []byte) (*tls.Certificate, error) {
	var c tls.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c.Certificate = append(c.Certificate, b.Bytes)
		}
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("certs: no certificate in ACME cache entry")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: parsing ACME cache entry: %w", err)
	}
	c.Leaf = leaf
	return &c, nil
}
