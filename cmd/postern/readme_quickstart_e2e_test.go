package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
	"github.com/postern/postern/proxy/proxytest"
)

// The README's first run is a test: the fenced blocks README.md marks with
// readmeTestMarker are run as printed, in order, against a real Postfix,
// through to a message that Postfix delivers. What a test machine cannot
// take as printed (the system's /etc, ports, users and Postfix; systemd) is
// replaced through one explicit table, readmeSubstitutions, which the
// README's HTML comment lists for its readers; every entry must still match
// the README, so the table cannot silently stop applying.

// readmeTestMarker is the line before each block the test runs.
const readmeTestMarker = "<!-- readme-test -->"

// readmeServiceStart is the README's line that starts the systemd unit. The
// test has no systemd: it starts `postern serve` as the unit does instead
// (startReadmeService).
const readmeServiceStart = "systemctl enable --now postern"

// readmePassword is what the test "types" at every password prompt
// (`postern user add` asks twice, swaks once): each block's standard
// input.
const readmePassword = "first hour, second try"

// substitution replaces printed (text of the README) by test (what the
// test machine needs).
type substitution struct{ printed, test string }

// readmeEnv is the machine the README's blocks run on: a root directory
// standing in for / and a private Postfix standing in for the system's.
type readmeEnv struct {
	root    string // stands in for /: etc/postern, run/postern, usr/bin/postern
	bin     string // directory first on PATH, holding `postern`
	ctlSock string // the control socket under root/run/postern
	postfix *proxytest.Postfix
	ports   map[string]string // "587", "465", "2525" → 127.0.0.1:PORT
	service *testkit.Process
}

// substitutions is the table the README's HTML comment describes, applied
// in this order.
func (e *readmeEnv) substitutions() []substitution {
	conf := e.postfix.ConfigDir()
	return []substitution{
		{"/etc/postern", filepath.Join(e.root, "etc/postern")},
		{"127.0.0.1:25", e.postfix.Addr},
		{"starttls=:587", "starttls=" + e.ports["587"]},
		{"tls=:465", "tls=" + e.ports["465"]},
		{"starttls=:2525", "starttls=" + e.ports["2525"]},
		{"localhost:587", e.ports["587"]},
		// The package's user and group do not exist here; nobody and
		// nogroup are as unprivileged, so the modes are tested too.
		{"runuser -u postern", "runuser -u nobody"},
		{"-g postern", "-g nogroup"},
		{"chgrp postern", "chgrp nogroup"},
		{"postconf ", "postconf -c " + conf + " "},
		{"systemctl reload postfix", "postfix -c " + conf + " reload"},
	}
}

func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	testkit.RequireTool(t, "openssl")
	testkit.RequireTool(t, "runuser")
	testkit.RequireTool(t, "setpriv")
	testkit.RequireTool(t, "bash")
	testkit.RequireSwaksTLS(t)
	testkit.RequireUser(t, "nobody", "the stand-in for the postern user")
	if _, err := user.LookupGroup("nogroup"); err != nil {
		testkit.Missing(t, "group nogroup (the stand-in for the postern group) is missing: %v", err)
	}
	blocks := readmeBlocks(t, "../../README.md")
	e := newReadmeEnv(t)

	used := make([]int, len(e.substitutions()))
	var all strings.Builder
	for i, block := range blocks {
		script := block
		for j, s := range e.substitutions() {
			used[j] += strings.Count(script, s.printed)
			script = strings.ReplaceAll(script, s.printed, s.test)
		}
		all.WriteString(block)
		e.runBlock(t, i+1, block, script)
	}
	for j, s := range e.substitutions() {
		if used[j] == 0 {
			t.Errorf("the substitution of %q matched no README block: the README changed, update the table here and in its HTML comment", s.printed)
		}
	}
	if !strings.Contains(all.String(), readmeServiceStart) {
		t.Fatalf("no README block starts the service with %q", readmeServiceStart)
	}

	// The quick start ends with a message Postfix delivered, sent as
	// printed (swaks), through the service the README started.
	msgs := proxytest.MessagesTo(e.postfix.WaitMessages(t, 1, 30*time.Second), "alice@example.org")
	if len(msgs) != 1 {
		t.Fatalf("Postfix delivered %d messages to alice@example.org, want 1", len(msgs))
	}
	if m := msgs[0]; m.ReturnPath != "alice@example.org" || !strings.Contains(string(m.Data), "by mail.example.org (Postern)") {
		t.Fatalf("the delivered message is not the quick start's (from alice@example.org through Postern as mail.example.org):\n%s", m.Raw)
	}
	// The README's mynetworks is one Postfix takes without complaint
	// (a trailing "# comment" on that line is logged as an error).
	for _, l := range strings.Split(e.postfix.Log(), "\n") {
		if strings.Contains(l, "mynetworks") && (strings.Contains(l, "error") || strings.Contains(l, "warning")) {
			t.Errorf("Postfix complains about the README's mynetworks: %s", l)
		}
	}
}

// newReadmeEnv builds the stand-in machine: a Postfix that delivers
// example.org (the README's domain), the postern binary first on PATH, and
// root/etc and root/run as a system has them.
func newReadmeEnv(t *testing.T) *readmeEnv {
	t.Helper()
	// Not t.TempDir (below a 0700 directory): nobody, as the service and
	// check-config run, must reach every file, as the postern user does
	// on a real system.
	root, err := os.MkdirTemp("", "postern-readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, d := range []string{"", "etc", "run", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vmailbox := filepath.Join(root, "vmailbox")
	writeFile(t, vmailbox, `/@example\.(test|org)$/ `+proxytest.PostfixDomain+"/catchall/\n")
	if err := os.Chmod(vmailbox, 0o644); err != nil {
		t.Fatal(err)
	}
	e := &readmeEnv{
		root:    root,
		bin:     filepath.Join(root, "usr/bin"),
		ctlSock: filepath.Join(root, "run/postern/control.sock"),
		postfix: proxytest.StartPostfix(t, proxytest.PostfixOptions{MainCF: []string{
			"virtual_mailbox_domains = " + proxytest.PostfixDomain + ", example.org",
			"virtual_mailbox_maps = regexp:" + vmailbox,
		}}),
		ports: map[string]string{"587": testkit.FreeAddr(t), "465": testkit.FreeAddr(t), "2525": testkit.FreeAddr(t)},
	}
	// A copy: posternBin's directory is private to root (0700).
	copyExecutable(t, posternBin, filepath.Join(e.bin, "postern"))
	return e
}

// readmeBlocks returns the body of every fenced sh block that follows a
// readmeTestMarker line, in order.
func readmeBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var blocks []string
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != readmeTestMarker {
			continue
		}
		i++
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
		if i >= len(lines) || lines[i] != "```sh" {
			t.Fatalf("%s:%d: %s is not followed by a ```sh block", path, i, readmeTestMarker)
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if i >= len(lines) {
			t.Fatalf("%s: unterminated block after %s", path, readmeTestMarker)
		}
		block := strings.Join(body, "\n") + "\n"
		// bash -e does not stop at a failing command on the left of
		// && or ||: one command per line, so every failure counts.
		if strings.Contains(block, "&&") || strings.Contains(block, "||") {
			t.Fatalf("%s: a block marked %s uses && or ||, which hide a failure from bash -e; one command per line:\n%s", path, readmeTestMarker, block)
		}
		blocks = append(blocks, block)
	}
	if len(blocks) == 0 {
		t.Fatalf("%s marks no block with %s", path, readmeTestMarker)
	}
	return blocks
}

// runBlock runs one block (already substituted) with bash, stopping at the
// first failing command; the service start line is done by the test.
func (e *readmeEnv) runBlock(t *testing.T, n int, printed, script string) {
	t.Helper()
	var pending []string
	flush := func() {
		if len(pending) == 0 {
			return
		}
		e.runShell(t, n, printed, strings.Join(pending, "\n")+"\n")
		pending = nil
	}
	for _, line := range strings.Split(script, "\n") {
		if strings.TrimSpace(line) == readmeServiceStart {
			flush()
			e.startService(t)
			continue
		}
		pending = append(pending, line)
	}
	flush()
}

func (e *readmeEnv) runShell(t *testing.T, n int, printed, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = e.root
	cmd.Env = append(cleanEnv(),
		"PATH="+e.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"POSTERN_CONTROL_SOCKET="+e.ctlSock)
	cmd.Stdin = strings.NewReader(readmePassword + "\n" + readmePassword + "\n")
	out, err := cmd.CombinedOutput()
	t.Logf("README block %d:\n%s\n--- output:\n%s", n, printed, out)
	if err != nil {
		t.Fatalf("README block %d failed (%v); as run:\n%s\n--- output:\n%s", n, err, script, out)
	}
}

// startService does what `systemctl enable --now postern` does with the
// unit in deploy/systemd: RuntimeDirectory=postern (owned by the unit's
// user), User=/Group= (nobody here), POSTERN_CONFIG=/etc/postern/postern.toml,
// ExecStart=postern serve. POSTERN_ACME_CACHE is left out: the quick start
// does no ACME.
func (e *readmeEnv) startService(t *testing.T) {
	t.Helper()
	if e.service != nil {
		t.Fatalf("the README starts the service twice")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	group, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(group.Gid)
	run := filepath.Dir(e.ctlSock) // RuntimeDirectoryMode=0750
	if err := os.Mkdir(run, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(run, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(run, 0o750); err != nil {
		t.Fatal(err)
	}
	// setpriv execs (no child in between), so the PID the test stops is
	// postern's, as systemd's MainPID.
	cmd := exec.Command("setpriv", "--reuid="+nobody.Uid, "--regid="+group.Gid, "--clear-groups", "--",
		filepath.Join(e.bin, "postern"), "serve")
	cmd.Dir = "/"
	cmd.Env = append(cleanEnv(),
		"POSTERN_CONFIG="+filepath.Join(e.root, "etc/postern/postern.toml"),
		"POSTERN_CONTROL_SOCKET="+e.ctlSock)
	e.service = testkit.StartCmd(t, cmd)
	addrs := smtpListenAddrs(t, e.service, 3)
	want := []string{e.ports["587"], e.ports["465"], e.ports["2525"]}
	if strings.Join(addrs, " ") != strings.Join(want, " ") {
		t.Fatalf("the service listens on %v, want the README's listen list %v", addrs, want)
	}
	e.service.WaitOutput(t, "the control socket", 20*time.Second, func(out string) bool {
		return strings.Contains(out, `msg="control socket listening"`)
	})
}

// copyExecutable copies the binary at src to dst, mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(fmt.Errorf("copying %s: %w", src, err))
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
