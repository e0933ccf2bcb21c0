package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// Issue 23, the administrator's first hour: the commands as the README
// prints them work, and a step that goes wrong leaves nothing broken behind.

// TestListenHTTPSKeepsSMTPDefaultsE2E: `--listen https=:443` adds the
// autoconfig listener and keeps the default submission listeners (587, 465,
// 2525); a starttls= or tls= listener replaces them. The dns-records call is
// the README's, as printed.
func TestListenHTTPSKeepsSMTPDefaultsE2E(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// TestCheckConfigUpstreamE2E: check-config says when the upstream cannot
// be reached (a WARNING on stderr, exit 0; exit 1 with --strict), and says
// nothing about a Postfix that answers. On main it said "configuration OK"
// without a word.
func TestCheckConfigUpstreamE2E(t *testing.T) {
	t.Parallel()
	_, flags := validConfig(t)
	flags = withoutFlag(flags, "--upstream") // --upstream is repeatable: replace, not add
	closed := testkit.FreeAddr(t)            // nothing listens there
	args := append(append([]string{"check-config"}, flags...), "--upstream", closed)
	stdout, stderr, code := runPostern(t, args...)
	if code != 0 || !strings.Contains(stdout, "configuration OK") ||
		!strings.Contains(stderr, "WARNING: upstream "+closed+" cannot be reached") {
		t.Errorf("unreachable upstream: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = runPostern(t, append(args, "--strict")...)
	if code != 1 || strings.Contains(stdout, "configuration OK") || !strings.Contains(stderr, "upstream "+closed+" cannot be reached") {
		t.Errorf("unreachable upstream with --strict: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	pf := proxytest.StartPostfix(t, proxytest.PostfixOptions{})
	args = append(append([]string{"check-config", "--strict"}, flags...), "--upstream", pf.Addr)
	stdout, stderr, code = runPostern(t, args...)
	if code != 0 || !strings.Contains(stdout, "configuration OK") || strings.Contains(stderr, "WARNING") {
		t.Errorf("Postfix as the upstream: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Several upstreams: each is probed, the one that cannot be reached is
	// named, the one that answers is not.
	args = append(append([]string{"check-config"}, flags...), "--upstream", pf.Addr, "--upstream", closed)
	stdout, stderr, code = runPostern(t, args...)
	if code != 0 || !strings.Contains(stdout, "configuration OK") ||
		!strings.Contains(stderr, "WARNING: upstream "+closed+" cannot be reached") || strings.Contains(stderr, "upstream "+pf.Addr) {
		t.Errorf("a standby that cannot be reached: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if _, stderr, code = runPostern(t, append(args, "--strict")...); code != 1 || !strings.Contains(stderr, "upstream "+closed+" cannot be reached") {
		t.Errorf("a standby that cannot be reached, --strict: exit %d\nstderr:\n%s", code, stderr)
	}
}

// withoutFlag returns flags without name and its value.
func withoutFlag(flags []string, name string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		if flags[i] == name {
			i++
			continue
		}
		out = append(out, flags[i])
	}
	return out
}

// TestUnknownSettingsE2E: an unknown key in the --config file is a usage
// error (exit 2, as the README says; main exited 1) with the closest key;
// an unknown POSTERN_ variable is named in a warning with the closest one
// (main ignored it silently), and the command still runs.
func TestUnknownSettingsE2E(t *testing.T) {
	t.Parallel()
	dir, flags := validConfig(t)
	conf := filepath.Join(dir, "postern.toml")
	writeFile(t, conf, "upstraem = \"127.0.0.1:25\"\n")
	out, code := runCLI(t, nil, "", append([]string{"check-config", "--config", conf}, flags...)...)
	if code != 2 || !strings.Contains(out, `unknown key "upstraem"; did you mean "upstream"?`) {
		t.Errorf("unknown config key: exit %d, want 2:\n%s", code, out)
	}

	stdout, stderr, code := runPosternEnv(t, []string{"POSTERN_UPSTRAEM=127.0.0.1:25", "POSTERN_NO_SUCH_THING=1", "POSTERN_MAX_RECIPIENTS=5"}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "postern ") {
		t.Errorf("version with unknown variables: exit %d: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"WARNING: unknown environment variable POSTERN_UPSTRAEM ignored (did you mean POSTERN_UPSTREAM?)\n",
		"WARNING: unknown environment variable POSTERN_NO_SUCH_THING ignored\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "POSTERN_MAX_RECIPIENTS") {
		t.Errorf("a known variable was warned about:\n%s", stderr)
	}
}

// TestSenderMapLoggedE2E: the sender map's loading and each reload are
// logged with the number of entries (main logged neither).
func TestSenderMapLoggedE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	senders := filepath.Join(t.TempDir(), "sender_login_maps")
	writeFile(t, senders, "# shared\nsales@example.test alice@example.test,bob@example.test\n@example.net alice@example.test\n")
	p := startPostern(t, up.Addr, "--sender-map", senders)
	p.waitLog(t, `msg="sender map loaded" path=`+senders+` entries=2`, 10*time.Second)
	writeFile(t, senders, "sales@example.test alice@example.test\n@example.net alice@example.test\ninfo@example.test bob@example.test\n")
	hup(t, p)
	p.waitLog(t, `msg="sender map reloaded" path=`+senders+` entries=3`, 10*time.Second)
}

// runPosternEnv is runPostern with extra environment variables.
func runPosternEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, posternBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running postern %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestAuthFailedConnFailuresE2E: the "auth failed" line names its count
// conn_failures, and it is the connection's: a new connection from the
// same address starts again at 1 (main called it failures=, which read as
// the address's count that fail2ban and the lockout keep).
func TestAuthFailedConnFailuresE2E(t *testing.T) {
	t.Parallel()
	up := proxytest.StartUpstream(t, proxytest.UpstreamOptions{})
	p := startPostern(t, up.Addr)
	c := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "first wrong password", c.auth(aliceLogin, "wrong 1"), "535")
	expectReply(t, "second wrong password", c.auth(aliceLogin, "wrong 2"), "535")
	c2 := dialFrom(t, p.StartTLS, "127.0.0.1")
	expectReply(t, "wrong password on a new connection", c2.auth(aliceLogin, "wrong 3"), "535")
	p.proc.WaitOutput(t, "three auth failed lines", 10*time.Second, func(out string) bool {
		return strings.Count(out, `msg="auth failed"`) >= 3
	})
	var counts []string
	for _, line := range strings.Split(p.Log(), "\n") {
		if strings.Contains(line, `msg="auth failed"`) {
			i := strings.Index(line, " conn_failures=")
			if i < 0 {
				t.Fatalf("auth failed line without conn_failures=: %s", line)
			}
			counts = append(counts, strings.Fields(line[i+1:])[0])
		}
	}
	if len(counts) != 3 || counts[0] != "conn_failures=1" || counts[1] != "conn_failures=2" || counts[2] != "conn_failures=1" {
		t.Errorf("auth failed counts %v, want conn_failures=1, 2, then 1 on the new connection:\n%s", counts, p.Log())
	}
}
