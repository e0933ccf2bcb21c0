package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// TestUpstreamStartTLSXCLIENTPostfixE2E: --upstream-xclient with
// --upstream-tls starttls speaks XCLIENT inside TLS (Postfix wants it
// there): the message travels over TLS and Postfix logs the login. With an
// upstream certificate Postern does not trust, nothing is sent and the
// client hears 451 at MAIL, the log naming the certificate.
func TestUpstreamStartTLSXCLIENTPostfixE2E(t *testing.T) {
	t.Parallel()
	testkit.RequireFile(t, "/usr/lib/*/sasl2/libplain.so*", "Cyrus SASL's PLAIN plugin (package libsasl2-modules)")
	dir := opsPublicDir(t)
	certFile, keyFile := filepath.Join(dir, "postfix.pem"), filepath.Join(dir, "postfix.key")
	opsWriteCert(t, certFile, keyFile, time.Now().Add(24*time.Hour))
	otherCA, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key")
	opsWriteCert(t, otherCA, otherKey, time.Now().Add(24*time.Hour))
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{XCLIENT: true, MainCF: []string{
		"smtpd_tls_cert_file = " + certFile,
		"smtpd_tls_key_file = " + keyFile,
		"smtpd_tls_security_level = may",
		"smtpd_tls_received_header = yes",
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = cyrus",
	}})

	p := startPostern(t, pf.Addr, "--upstream-xclient", "--upstream-tls", "starttls", "--upstream-tls-ca", certFile)
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	r := c.send(aliceLogin, "friend@example.test", "xclient-over-tls")
	expectQueued(t, "message with XCLIENT over upstream STARTTLS", r)
	line := opsSmtpdLine(t, pf, opsQueueID(t, r))
	if !strings.Contains(line, "sasl_username="+aliceLogin) {
		t.Errorf("Postfix does not name the login: %s", line)
	}
	m := findSubject(t, pf.WaitMessages(t, 1, 30*time.Second), "xclient-over-tls")
	if !strings.Contains(m.Received, "(using TLSv1.") {
		t.Errorf("Postfix's Received shows no TLS:\n%s", m.Received)
	}

	wrong := startPostern(t, pf.Addr, "--upstream-xclient", "--upstream-tls", "starttls", "--upstream-tls-ca", otherCA)
	c = dialFrom(t, wrong.StartTLS, "127.0.0.1")
	expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
	// MAIL goes upstream with the first RCPT: the failure is RCPT's reply.
	expectReply(t, "MAIL with an unverifiable upstream", c.cmd("MAIL FROM:<"+aliceLogin+">"), "250")
	expectReply(t, "RCPT with an unverifiable upstream", c.cmd("RCPT TO:<friend@example.test>"), "451 4.4.1")
	wrong.waitLog(t, "certificate", 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if got := len(pf.Messages(t)); got != 1 {
		t.Fatalf("Postfix delivered %d messages, want 1", got)
	}
}

// TestUpstreamStartTLSNotOfferedPostfixE2E: with --upstream-tls starttls
// and a Postfix that offers no STARTTLS (no certificate), Postern sends no
// mail in clear text, with or without XCLIENT: the client hears 451 at MAIL
// and the log names STARTTLS.
func TestUpstreamStartTLSNotOfferedPostfixE2E(t *testing.T) {
	t.Parallel()
	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{XCLIENT: true})
	for _, flags := range [][]string{
		{"--upstream-tls", "starttls"},
		{"--upstream-tls", "starttls", "--upstream-xclient"},
	} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			p := startPostern(t, pf.Addr, flags...)
			c := dialFrom(t, p.StartTLS, "127.0.0.1")
			expectReply(t, "AUTH", c.auth(aliceLogin, alicePass), "235")
			expectReply(t, "MAIL with an upstream without STARTTLS", c.cmd("MAIL FROM:<"+aliceLogin+">"), "250")
			expectReply(t, "RCPT with an upstream without STARTTLS", c.cmd("RCPT TO:<friend@example.test>"), "451 4.4.1")
			p.waitLog(t, "STARTTLS", 10*time.Second)
		})
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(pf.Messages(t)); got != 0 {
		t.Fatalf("Postfix delivered %d messages, want 0", got)
	}
}
