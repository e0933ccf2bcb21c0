package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/proxy/upstream"
)

// buildUpstream turns the --upstream* flags into the proxy's upstream
// settings, shared by every --upstream; Addr is the first.
func buildUpstream(c *cli.Context) (upstream.Config, error) {
	timeout := c.Duration("upstream-timeout")
	up := upstream.Config{
		Addr:        c.StringSlice("upstream")[0],
		DialTimeout: timeout,
		Timeout:     timeout,
		XCLIENT:     c.Bool("upstream-xclient"),
	}
	var err error
	if up.TLS, err = upstream.ParseTLS(c.String("upstream-tls")); err != nil {
		return up, err
	}
	if ca := c.String("upstream-tls-ca"); ca != "" {
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
	if f := c.String("upstream-auth-file"); f != "" {
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
