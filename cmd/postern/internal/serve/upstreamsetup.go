package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/postern/postern/proxy/upstream"
)

// BuildUpstream turns the --upstream-* settings into the proxy's upstream
// settings, shared by every --upstream; Addr is addr. HeloName is left to
// the caller.
func BuildUpstream(cfg UpstreamConfig, addr string) (upstream.Config, error) {
	up := upstream.Config{
		Addr:        addr,
		DialTimeout: cfg.Timeout,
		Timeout:     cfg.Timeout,
		XCLIENT:     cfg.XCLIENT,
	}
	var err error
	if up.TLS, err = upstream.ParseTLS(cfg.TLS); err != nil {
		return up, err
	}
	if ca := cfg.TLSCA; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return up, fmt.Errorf("reading --upstream-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return up, fmt.Errorf("--upstream-tls-ca %s: no PEM certificate found", ca)
		}
		up.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if f := cfg.AuthFile; f != "" {
		if up.TLS == "none" {
			return up, errors.New("--upstream-auth-file needs --upstream-tls starttls or tls: no password in clear text")
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return up, fmt.Errorf("reading --upstream-auth-file: %w", err)
		}
		line, _, _ := strings.Cut(string(raw), "\n")
		user, pass, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok || user == "" || pass == "" {
			return up, fmt.Errorf("--upstream-auth-file %s: want one line 'username:password'", f)
		}
		up.Username, up.Password = user, pass
	}
	return up, nil
}
