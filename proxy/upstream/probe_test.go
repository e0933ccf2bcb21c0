package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/proxy/proxytest"
)

// TestProbePostfix: against a real Postfix, Probe speaks what a session
// speaks, no more: plain (EHLO, QUIT), and STARTTLS verified against the
// configured CA (EHLO, STARTTLS, EHLO, QUIT), Postfix's own count of the
// commands being the witness; an untrusted certificate and a Postfix that
// offers no STARTTLS fail it (never clear text), and nothing is queued.
func TestProbePostfix(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "localhost", "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certstest.WriteFile(t, certFile, certPEM)
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{
		"smtpd_tls_cert_file = " + certFile,
		"smtpd_tls_key_file = " + keyFile,
		"smtpd_tls_security_level = may",
	}})
	trusted := x509.NewCertPool()
	trusted.AppendCertsFromPEM(certPEM)
	otherPEM, _, _ := certstest.SelfSigned(t, "localhost", "127.0.0.1")
	untrusted := x509.NewCertPool()
	untrusted.AppendCertsFromPEM(otherPEM)

	probe := func(mode string, roots *x509.CertPool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return Probe(ctx, Config{Addr: pf.Addr, HeloName: "postern.test", TLS: mode,
			TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	}
	if err := probe("none", nil); err != nil {
		t.Fatalf("plain: %v", err)
	}
	pf.WaitLog(t, "ehlo=1 quit=1 commands=2", 10*time.Second)
	if err := probe("starttls", trusted); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	pf.WaitLog(t, "ehlo=2 starttls=1 quit=1 commands=4", 10*time.Second)
	if err := probe("starttls", untrusted); err == nil || !strings.Contains(err.Error(), "STARTTLS") ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("STARTTLS with an untrusted certificate: %v, want a STARTTLS certificate error", err)
	}
	if got := pf.Messages(t); len(got) != 0 {
		t.Errorf("a probe delivered %d messages", len(got))
	}

	noTLS := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Probe(ctx, Config{Addr: noTLS.Addr, HeloName: "postern.test", TLS: "starttls"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("STARTTLS with a Postfix that offers none: %v, want an error naming STARTTLS", err)
	}
}

// TestProbeRefusingGreeting: an upstream that accepts the connection but
// greets with 421 (an MTA shutting down or overloaded) cannot take a
// session; a TCP connect alone would have called it ready.
func TestProbeRefusingGreeting(t *testing.T) {
	addr := startScriptedUpstream(t, func(conn net.Conn) {
		io.WriteString(conn, "421 4.3.2 Service shutting down\r\n")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Probe(ctx, Config{Addr: addr, HeloName: "postern.test"})
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 {
		t.Errorf("greeting 421: %v, want the 421 reply", err)
	}
}

// TestProbeSilentUpstreamEndsWithContext: an upstream that accepts and
// never says a word holds the probe no longer than its context: the
// context's deadline caps the dial timeout (here an hour: uncapped, the
// test runs into go test's timeout).
func TestProbeSilentUpstreamEndsWithContext(t *testing.T) {
	addr := startScriptedUpstream(t, func(conn net.Conn) {
		io.Copy(io.Discard, conn) // until Probe hangs up
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Probe(ctx, Config{Addr: addr, HeloName: "postern.test", DialTimeout: time.Hour, Timeout: time.Hour})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("silent upstream: %v, want a timeout", err)
	}
}

// TestProbeCancelledAtQuit: an upstream that never answers QUIT holds
// the probe only until its caller gives up: cancelling the context (no
// deadline, an hour of per-step timeout: without the abort the test runs
// into go test's timeout) closes the connection at once.
func TestProbeCancelledAtQuit(t *testing.T) {
	quitting := make(chan struct{}, 1)
	addr := startScriptedUpstream(t, func(conn net.Conn) {
		io.WriteString(conn, "220 mute.test ESMTP\r\n")
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(strings.ToUpper(line), "EHLO") {
				io.WriteString(conn, "250 mute.test\r\n")
				continue
			}
			if strings.HasPrefix(strings.ToUpper(line), "QUIT") {
				quitting <- struct{}{}
				io.Copy(io.Discard, r) // no answer, until Probe hangs up
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-quitting
		cancel()
	}()
	err := Probe(ctx, Config{Addr: addr, HeloName: "postern.test", DialTimeout: time.Hour, Timeout: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled at QUIT: %v, want context.Canceled", err)
	}
}

// TestProbeAuth: with a Username, the probe authenticates as a session
// does, so a wrong password fails it.
func TestProbeAuth(t *testing.T) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &authSession{}, nil
	}))
	srv.Domain = "auth.test"
	srv.AllowInsecureAuth = true // the test stays in clear text
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, c := range []struct {
		password string
		ok       bool
	}{{"right", true}, {"wrong", false}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Probe(ctx, Config{Addr: ln.Addr().String(), HeloName: "postern.test", Username: "postern", Password: c.password})
		cancel()
		if c.ok && err != nil {
			t.Errorf("password %s: %v", c.password, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "authenticating")) {
			t.Errorf("password %s: %v, want an AUTH error", c.password, err)
		}
	}
}

// authSession takes AUTH PLAIN postern/right and nothing else.
type authSession struct{}

func (authSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user == "postern" && pass == "right" {
			return nil
		}
		return errors.New("bad credentials")
	}), nil
}
func (authSession) Mail(string, *smtp.MailOptions) error { return nil }
func (authSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (authSession) Data(io.Reader) error                 { return nil }
func (authSession) Reset()                               {}
func (authSession) Logout() error                        { return nil }

// startScriptedUpstream serves each connection with serve on a loopback
// port until the test ends.
func startScriptedUpstream(t *testing.T, serve func(net.Conn)) string {
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
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}
