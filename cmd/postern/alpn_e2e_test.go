package main

// End-to-end tests of strict ALPN (RFC 9325 §3.8, ALPACA) on the
// implicit-TLS listener, with openssl s_client as the client.

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// sClientSession runs `openssl s_client -connect addr args...` with input
// on its stdin, and -ign_eof: it reads what the server sends until the
// server closes (input should end with QUIT). It returns the transcript.
func sClientSession(t testing.TB, addr, input string, args ...string) string {
	t.Helper()
	openssl := testkit.RequireOpenSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr, "-ign_eof", "-quiet"}, args...)...)
	cmd.Stdin = strings.NewReader(input)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl s_client %v timed out:\n%s", args, out)
	}
	return string(out)
}

// TestStrictALPNImplicitTLSE2E: on the implicit-TLS listener a ClientHello
// offering only ALPN values other than smtp (an HTTPS client sent here) is
// refused with the no_application_protocol alert; one offering smtp is
// served and gets smtp; one offering nothing is served. The STARTTLS
// listener is unchanged: it negotiates no ALPN.
func TestStrictALPNImplicitTLSE2E(t *testing.T) {
	t.Parallel()
	p := startPostern(t, "127.0.0.1:1")

	out, ok := sClient(t, p.TLS, "-alpn", "http/1.1")
	if ok || !strings.Contains(out, "no application protocol") {
		t.Errorf("ALPN http/1.1 on implicit TLS: want the no_application_protocol alert, got:\n%s", out)
	}
	out, ok = sClient(t, p.TLS, "-alpn", "h2,imap")
	if ok || !strings.Contains(out, "no application protocol") {
		t.Errorf("ALPN h2,imap on implicit TLS: want the no_application_protocol alert, got:\n%s", out)
	}
	out, ok = sClient(t, p.TLS, "-alpn", "http/1.1,smtp")
	if !ok || !strings.Contains(out, "ALPN protocol: smtp") {
		t.Errorf("ALPN http/1.1,smtp on implicit TLS: want smtp negotiated, got:\n%s", out)
	}
	out, ok = sClient(t, p.TLS)
	if !ok || !strings.Contains(out, "No ALPN negotiated") {
		t.Errorf("no ALPN on implicit TLS: want served without ALPN, got:\n%s", out)
	}
	for _, alpn := range []string{"smtp", ""} {
		args := []string{}
		if alpn != "" {
			args = append(args, "-alpn", alpn)
		}
		if out := sClientSession(t, p.TLS, "QUIT\r\n", args...); !strings.Contains(out, "220 submission.test ") || !strings.Contains(out, "221 ") {
			t.Errorf("ALPN %q: want the banner and QUIT's 221, got:\n%s", alpn, out)
		}
	}
	// STARTTLS: ALPN values are not checked (the client spoke SMTP first).
	out, ok = sClient(t, p.StartTLS, "-starttls", "smtp", "-alpn", "http/1.1")
	if !ok || !strings.Contains(out, "No ALPN negotiated") {
		t.Errorf("STARTTLS with ALPN http/1.1: want served without ALPN, got:\n%s", out)
	}
}
