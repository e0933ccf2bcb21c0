package certs

import (
	"context"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// sClient runs `openssl s_client` against addr with args and returns its
// output and whether the handshake completed.
func sClient(t *testing.T, openssl, addr string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr}, args...)...)
	cmd.Stdin = strings.NewReader("") // EOF right after the handshake: s_client quits
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl s_client %v timed out:\n%s", args, out)
	}
	// s_client exits non-zero when the handshake fails; a finished
	// handshake prints the negotiated cipher.
	ok := err == nil && strings.Contains(string(out), "Cipher is ") && !strings.Contains(string(out), "Cipher is (NONE)")
	return string(out), ok
}

// TestOpenSSLPolicy: a real non-Go client is refused TLS 1.1 and non-AEAD
// suites, and gets the certificate chosen by -servername. The client is
// allowed everything at @SECLEVEL=0, so each refusal is the server's.
func TestOpenSSLPolicy(t *testing.T) {
	openssl := testkit.RequireOpenSSL(t)
	f := newSNIFixture(t, -1)
	anything := "-cipher=ALL:@SECLEVEL=0"

	cases := []struct {
		name string
		args []string
		ok   bool
	}{
		{"TLS 1.1", []string{"-tls1_1", anything}, false},
		{"TLS 1.0", []string{"-tls1", anything}, false},
		{"AES128-SHA", []string{"-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"}, false},
		{"ECDHE-ECDSA-AES128-SHA (CBC)", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0"}, false},
		{"ECDHE-ECDSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}, true},
		{"TLS 1.3", []string{"-tls1_3"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := sClient(t, openssl, f.addr, append(tc.args, "-servername", "a.example.test")...)
			// A refusal must come from the server (an alert), not from
			// the client declining to offer what it was told to.
			if !tc.ok && !strings.Contains(out, "alert") {
				t.Errorf("no alert from the server:\n%s", out)
			}
			if ok != tc.ok {
				t.Errorf("handshake completed = %v, want %v:\n%s", ok, tc.ok, out)
			}
		})
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certstest.WriteFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.le.CA.Cert.Raw}))
	for _, host := range []string{"a.example.test", "b.example.test", "c.example.test", "x.dept.example.test"} {
		out, ok := sClient(t, openssl, f.addr, "-servername", host, "-CAfile", caFile, "-verify_hostname", host, "-verify_return_error")
		if !ok || !strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Errorf("-servername %s: not verified:\n%s", host, out)
		}
		want := "subject=CN=" + host
		if host == "x.dept.example.test" {
			want = "subject=CN=*.dept.example.test"
		}
		if !strings.Contains(strings.ReplaceAll(out, " ", ""), want+"\n") {
			t.Errorf("-servername %s: %q not served:\n%s", host, want, out)
		}
	}
}
