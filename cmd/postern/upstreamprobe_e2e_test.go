package main

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/proxy/proxytest"
)

// The upstream probe (proxy/upstream.Probe) of check-config and /readyz
// dials as a session does; these tests hold it to what a bare TCP connect,
// or check-config's own dial before, let through.

// TestReadyzUpstreamRefusingGreetingE2E: an upstream that accepts TCP
// connections but refuses every session at its greeting (421, an MTA
// shutting down) can take no message, so /readyz answers 503 naming it and
// its reply, as it does for one that refuses connections; with a working
// upstream behind it, 200. /readyz probes the upstream as a session dials
// it (greeting, EHLO, STARTTLS, AUTH), not with a bare TCP connect.
func TestReadyzUpstreamRefusingGreetingE2E(t *testing.T) {
	refusing := startGreetingRefuser(t)
	p := startPostern(t, refusing, "--metrics", anyPort)
	url := "http://" + p.metricsAddr(t) + "/readyz"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), refusing) || !strings.Contains(string(body), "421") {
		t.Errorf("/readyz with an upstream that greets 421: %d %q, want 503 naming %s and its 421", resp.StatusCode, body, refusing)
	}

	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p = startPostern(t, refusing, "--upstream", up.Addr, "--metrics", anyPort)
	if s := opsStatus(t, "http://"+p.metricsAddr(t)+"/readyz"); s != 200 {
		t.Errorf("/readyz with a working upstream behind the refusing one: %d, want 200", s)
	}
}

// startGreetingRefuser is an upstream on a loopback port that accepts
// every connection, greets it with 421 and closes it, until the test ends.
func startGreetingRefuser(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(conn, "421 4.3.2 refusing.test Service shutting down\r\n")
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestCheckConfigUpstreamAuthE2E: with --upstream-auth-file, check-config
// authenticates as serve's sessions will, so a password the upstream
// refuses is a WARNING naming it (exit 1 with --strict) rather than
// "configuration OK" and a 4xx for every client once serving.
func TestCheckConfigUpstreamAuthE2E(t *testing.T) {
	_, flags := validConfig(t)
	flags = withoutFlag(flags, "--upstream")
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	up := startAuthUpstream(t, certFile, keyFile, "postern", "right")
	for _, c := range []struct {
		password string
		ok       bool
	}{{"right", true}, {"wrong", false}} {
		authFile := filepath.Join(dir, "auth-"+c.password)
		writeFile(t, authFile, "postern:"+c.password+"\n")
		args := append(append([]string{"check-config"}, flags...), "--upstream", up,
			"--upstream-tls", "starttls", "--upstream-tls-ca", certFile, "--upstream-auth-file", authFile)
		stdout, stderr, code := runPostern(t, args...)
		warned := strings.Contains(stderr, "WARNING: upstream "+up+" cannot be reached") && strings.Contains(stderr, "authenticating")
		if code != 0 || !strings.Contains(stdout, "configuration OK") || warned == c.ok {
			t.Errorf("password %s: exit %d, warned %v\nstdout:\n%s\nstderr:\n%s", c.password, code, warned, stdout, stderr)
		}
		if c.ok {
			continue
		}
		if _, stderr, code = runPostern(t, append(args, "--strict")...); code != 1 || !strings.Contains(stderr, "upstream "+up+" cannot be reached") {
			t.Errorf("password %s, --strict: exit %d\nstderr:\n%s", c.password, code, stderr)
		}
	}
}

// startAuthUpstream is an SMTP server on a loopback port that offers
// STARTTLS with the given certificate and, inside TLS, AUTH PLAIN for one
// user, until the test ends. It takes no mail.
func startAuthUpstream(t *testing.T, certFile, keyFile, user, password string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &authUpstreamSession{user: user, password: password}, nil
	}))
	srv.Domain = "auth-upstream.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

type authUpstreamSession struct{ user, password string }

func (s *authUpstreamSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *authUpstreamSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user == s.user && pass == s.password {
			return nil
		}
		return errors.New("invalid credentials")
	}), nil
}
func (s *authUpstreamSession) Mail(string, *smtp.MailOptions) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no mail here"}
}
func (s *authUpstreamSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *authUpstreamSession) Data(io.Reader) error                 { return nil }
func (s *authUpstreamSession) Reset()                               {}
func (s *authUpstreamSession) Logout() error                        { return nil }
