package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/proxy/proxytest"
)

// Issue 23, the administrator's first hour: the commands as the README
// prints them work, and a step that goes wrong leaves nothing broken behind.

// TestListenHTTPSKeepsSMTPDefaultsE2E: `--listen https=:443` adds the
// autoconfig listener and keeps the default submission listeners (587, 465,
// 2525); a starttls= or tls= listener replaces them. The dns-records call is
// the README's, as printed.
func TestListenHTTPSKeepsSMTPDefaultsE2E(t *testing.T) {
	readme := []string{"dns-records", "--hostname", "mail.example.org", "--listen", "https=:443",
		"--autoconfig-domain", "example.org", "--autoconfig-imap", "imap.example.org:993",
		"--mta-sts-mode", "enforce", "--mta-sts-mx", "mx1.example.org", "--tls-rpt-email", "tlsrpt@example.org"}
	out, errOut, code := runPostern(t, readme...)
	if code != 0 {
		t.Fatalf("the README's dns-records: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.",
		"_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.",
		"_submission._tcp.example.org. 3600 IN SRV 20 1 2525 mail.example.org.",
		"_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	// An SMTP listener given: it alone, the defaults are gone.
	out, errOut, code = runPostern(t, append(slices.Clone(readme), "--listen", "tls=:4465")...)
	if code != 0 {
		t.Fatalf("with tls=:4465: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "IN SRV 0 1 4465 mail.example.org.") || strings.Contains(out, " 587 ") ||
		strings.Contains(out, " 465 ") || strings.Contains(out, " 2525 ") {
		t.Errorf("with --listen tls=:4465 the records name other submission ports:\n%s", out)
	}

	// check-config with the same listeners accepts them (on main it failed:
	// "autoconfig: no submission listener to describe").
	_, flags := validConfig(t)
	args := append(append([]string{"check-config"}, flags...), "--listen", "https=127.0.0.1:8443",
		"--autoconfig-domain", "example.test")
	if out, code := runCLI(t, nil, "", args...); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Errorf("check-config --listen https= alone: exit %d:\n%s", code, out)
	}
}

// TestStatusUnknownLoginE2E: `postern status` for a login the users file
// (the only backend) does not hold says it is unknown and exits 1; for a
// known login that has not sent it says nothing is recorded; a login in
// another case is the file's login. On main it printed zero counters for
// any name and exited 0.
func TestStatusUnknownLoginE2E(t *testing.T) {
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	sock := filepath.Join(t.TempDir(), "control.sock")
	p := startPostern(t, up.Addr, "--control-socket", sock)
	p.waitLog(t, "control socket listening", 10*time.Second)

	out, code := runCLI(t, nil, "", "status", "--control-socket", sock, "--users", p.UsersFile, "mallory@example.test")
	if code != 1 || !strings.Contains(out, `unknown login "mallory@example.test": it is not in the users file`) {
		t.Errorf("status of an unknown login: exit %d:\n%s", code, out)
	}
	out, code = runCLI(t, nil, "", "unsuspend", "--control-socket", sock, "--users", p.UsersFile, "mallory@example.test")
	if code != 1 || !strings.Contains(out, "unknown login") {
		t.Errorf("unsuspend of an unknown login: exit %d:\n%s", code, out)
	}
	out, code = runCLI(t, nil, "", "status", "--control-socket", sock, "--users", p.UsersFile, strings.ToUpper(aliceLogin))
	if code != 0 || !strings.Contains(out, "login "+aliceLogin+"\n") || !strings.Contains(out, "nothing recorded for "+aliceLogin) {
		t.Errorf("status of a known login that has not sent: exit %d:\n%s", code, out)
	}
	// Without the users file, Postern cannot tell: the login is taken as
	// given, and the page says nothing is recorded.
	out, code = runCLI(t, nil, "", "status", "--control-socket", sock, "mallory@example.test")
	if code != 0 || !strings.Contains(out, "nothing recorded for mallory@example.test") {
		t.Errorf("status without --users: exit %d:\n%s", code, out)
	}
}
