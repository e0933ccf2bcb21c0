package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// LoadKeyPair reads a PEM certificate chain (leaf first) and its private key,
// checks that they belong together and returns them with Leaf set. Each
// failure names the file and what was wrong, because this error is what an
// administrator sees from `postern check-config` or at start-up.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: reading private key: %w", err)
	}
	return parseKeyPair(certPEM, keyPEM, certFile, keyFile)
}

// parseKeyPair is LoadKeyPair after the files were read; the names are only
// for error messages.
func parseKeyPair(certPEM, keyPEM []byte, certFile, keyFile string) (*tls.Certificate, error) {
	// Look for a certificate block first so that a key file passed as the
	// certificate (a common slip) is not reported as a key mismatch.
	if !hasPEMBlock(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("certs: %s: no PEM CERTIFICATE block found", certFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls has no sentinel for a mismatch; its text is stable.
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("certs: the certificate in %s does not match the private key in %s: %w", certFile, keyFile, err)
		}
		return nil, fmt.Errorf("certs: loading %s with key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil {
		// X509KeyPair sets Leaf since Go 1.23 unless GODEBUG x509keypairleaf=0.
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: %s: parsing certificate: %w", certFile, err)
		}
	}
	return &pair, nil
}

func hasPEMBlock(data []byte, typ string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == typ {
			return true
		}
	}
}
