package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/auth/usersfile"
	"github.com/postern/postern/internal/testkit"
)

// runPostern runs the built binary to completion and returns its combined
// output and exit code.
func runCLI(t *testing.T, env []string, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(posternBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running postern: %v", err)
	}
	return string(out), 0
}

// validConfig writes a users file and a certificate and returns the flags
// of a configuration check-config accepts.
func validConfig(t *testing.T) (dir string, flags []string) {
	t.Helper()
	dir = t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	users := filepath.Join(dir, "users")
	writeFile(t, users, usersFileContent(t))
	return dir, []string{"--hostname", "mail.example.test", "--upstream", "127.0.0.1:25",
		"--users", users, "--tls-cert", certFile, "--tls-key", keyFile}
}

func TestCheckConfigAcceptsValid(t *testing.T) {
	t.Parallel()
	_, flags := validConfig(t)
	out, code := runCLI(t, nil, "", append([]string{"check-config"}, flags...)...)
	if code != 0 || !strings.Contains(out, "configuration OK") || !strings.Contains(out, "certificate static") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestBadConfigurations: every broken setting makes the binary exit non-zero
// with a message naming the problem (like chasquid's t-20-bad_configs).
func TestBadConfigurations(t *testing.T) {
	t.Parallel()
	dir, flags := validConfig(t)
	without := func(name string) []string {
		var out []string
		for i := 0; i < len(flags); i += 2 {
			if flags[i] != name {
				out = append(out, flags[i], flags[i+1])
			}
		}
		return out
	}
	brokenUsers := filepath.Join(dir, "broken-users")
	writeFile(t, brokenUsers, "alice@example.test:not-a-hash\n")
	otherDir := t.TempDir()
	_, otherKey := writeTestCert(t, otherDir)
	badMap := filepath.Join(dir, "bad-map")
	writeFile(t, badMap, "lonely@example.test\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no upstream", without("--upstream"), "--upstream is required"},
		{"no auth backend", without("--users"), "no authentication backend"},
		{"no certificate", without("--tls-cert"), "no certificate"},
		{"mismatched key", append(without("--tls-key"), "--tls-key", otherKey), "does not match"},
		{"bad listen", append(flags, "--listen", "smtp=:25"), "mode must be starttls or tls"},
		{"bad received", append(flags, "--received", "partial"), "received mode"},
		{"bad mynetworks", append(flags, "--mynetworks", "10.0.0.0/33"), "--mynetworks"},
		{"broken users file", append(without("--users"), "--users", brokenUsers), "broken-users:1"},
		{"missing users file", append(without("--users"), "--users", filepath.Join(dir, "nope")), "nope"},
		{"bad sender map", append(flags, "--sender-map", badMap), "has no owner"},
		{"unknown flag", append(flags, "--no-such-flag"), "no-such-flag"},
		{"bad upstream tls", append(flags, "--upstream-tls", "maybe"), "upstream TLS mode"},
		{"upstream auth without TLS", append(flags, "--upstream-auth-file", brokenUsers), "needs --upstream-tls"},
		{"bad log format", append(flags, "--log-format", "xml"), "log format"},
		{"negative connection limit", append(flags, "--max-connections-per-ip", "-1"), "must not be negative"},
		{"no HTTP connection cap", append(flags, "--max-http-connections", "0"), "--max-http-connections must be at least 1"},
		{"negative auth concurrency", append(flags, "--auth-concurrency", "-1"), "--auth-concurrency -1 must not be negative"},
		{"bad message limit", append(flags, "--limit-messages", "200"), "--limit-messages: rate \"200\": want N/WINDOW"},
		{"bad recipient limit", append(flags, "--limit-recipients", "0/1h"), "--limit-recipients: rate \"0/1h\""},
		{"bad limit file", append(flags, "--limit-file", badMap), "bad-map:1: lonely@example.test: no limits"},
		{"bad rejected ratio", append(flags, "--suspend-rejected-ratio", "150%"), "--suspend-rejected-ratio"},
		{"negative suspend-after", append(flags, "--suspend-after", "-1"), "--suspend-after must not be negative"},
		{"bad header check", append(flags, "--check-header-from", "strict"), "want off, warn or enforce"},
		{"bad webhook", append(flags, "--alert-webhook", "ftp://x"), "want an http:// or https:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runCLI(t, nil, "", append([]string{"check-config"}, tt.args...)...)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want non-zero with %q:\n%s", code, tt.want, out)
			}
		})
	}
}

// An unknown command is a usage error: exit 2 and its name, from main (the
// only place that exits).
func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	if out, code := runCLI(t, nil, "", "no-such-command"); code != 2 || !strings.Contains(out, `unknown command "no-such-command"`) {
		t.Fatalf("exit %d, want 2 naming the command:\n%s", code, out)
	}
	if out, code := runCLI(t, nil, ""); code != 0 || !strings.Contains(out, "COMMANDS") {
		t.Fatalf("no command: exit %d, want 0 and the help:\n%s", code, out)
	}
}

func TestConfigFileAndEnvironment(t *testing.T) {
	t.Parallel()
	dir, flags := validConfig(t)
	get := func(name string) string {
		for i := 0; i < len(flags); i += 2 {
			if flags[i] == name {
				return flags[i+1]
			}
		}
		return ""
	}
	conf := filepath.Join(dir, "postern.toml")
	writeFile(t, conf, `hostname = "mail.example.test"
upstream = "127.0.0.1:25"
users = "`+get("--users")+`"
tls-cert = "`+get("--tls-cert")+`"
tls-key = "`+get("--tls-key")+`"
listen = ["starttls=127.0.0.1:1587", "tls=127.0.0.1:1465"]
max-recipients = 50
`)
	if out, code := runCLI(t, nil, "", "check-config", "--config", conf); code != 0 {
		t.Fatalf("config file not accepted (%d):\n%s", code, out)
	}
	// The command line wins over the file.
	if out, code := runCLI(t, nil, "", "check-config", "--config", conf, "--received", "bogus"); code == 0 || !strings.Contains(out, "bogus") {
		t.Fatalf("flag did not override the file (%d):\n%s", code, out)
	}
	// Environment twins: POSTERN_<NAME>.
	if out, code := runCLI(t, []string{"POSTERN_RECEIVED=bogus"}, "", "check-config", "--config", conf); code == 0 || !strings.Contains(out, "bogus") {
		t.Fatalf("POSTERN_RECEIVED ignored (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, []string{"POSTERN_UPSTREAM=127.0.0.1:2525"}, "", append([]string{"check-config"}, flags[2:]...)...); code != 0 {
		t.Fatalf("POSTERN_UPSTREAM not used (%d):\n%s", code, out)
	}
	// An unknown key is an error that names it.
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, "upstream = \"127.0.0.1:25\"\nmax-recipeints = 5\n")
	if out, code := runCLI(t, nil, "", "check-config", "--config", bad); code == 0 || !strings.Contains(out, `unknown key "max-recipeints"`) {
		t.Fatalf("unknown key accepted (%d):\n%s", code, out)
	}
}

func TestHashPasswordFromStdin(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"BLF-CRYPT", "ARGON2ID"} {
		out, code := runCLI(t, nil, "my secret\n", "hash-password", "--scheme", scheme)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", scheme, code, out)
		}
		hash := strings.TrimSpace(out)
		if !strings.HasPrefix(hash, "{"+scheme+"}") {
			t.Fatalf("%s: got %q", scheme, hash)
		}
		if ok, err := usersfile.VerifyPassword(hash, "my secret"); !ok || err != nil {
			t.Fatalf("%s: hash does not verify: %v", scheme, err)
		}
	}
	if out, code := runCLI(t, nil, "", "hash-password"); code == 0 {
		t.Fatalf("empty stdin accepted: %s", out)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, code := runCLI(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(out, "postern ") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestDemo runs `postern demo` as a newcomer would: paste the printed swaks
// command and find the message in the directory it names; Ctrl-C exits 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	testkit.RequireSwaksTLS(t) // the printed command uses --tls
	dir := t.TempDir()
	cmd := exec.Command(posternBin, "demo", "--dir", dir)
	cmd.Env = cleanEnv()
	p := testkit.StartCmd(t, cmd)
	var swaksLine string
	for deadline := time.Now().Add(20 * time.Second); swaksLine == "" && time.Now().Before(deadline); {
		for _, line := range strings.Split(p.Output(), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "swaks --server") {
				swaksLine = line
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if swaksLine == "" {
		t.Fatalf("no swaks command printed")
	}
	if !regexp.MustCompile(`^swaks --server 127\.0\.0\.1:\d+ --tls --auth-user \S+ --auth-password \S+ --from \S+ --to \S+$`).MatchString(swaksLine) {
		t.Fatalf("unexpected swaks command: %q", swaksLine)
	}
	out, code := swaks(t, strings.Fields(swaksLine)[1:]...)
	if code != 0 || !strings.Contains(out, "250 2.0.0 Ok: queued as DEMO0001") {
		t.Fatalf("swaks (%d):\n%s", code, out)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "message-0001.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(msg), "Received: from [127.0.0.1] (localhost [127.0.0.1])") {
		t.Fatalf("stored message:\n%s", msg)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not exit after Ctrl-C")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("demo exited %d:\n%s", code, p.Output())
	}
}

// The demo builds its instance the way serve does, so it has serve's
// default limits: the 51st connection from one address gets 421 4.7.0
// (--max-connections-per-ip 50).
func TestDemoConnectionLimit(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(posternBin, "demo", "--dir", t.TempDir())
	cmd.Env = cleanEnv()
	p := testkit.StartCmd(t, cmd)
	re := regexp.MustCompile(`STARTTLS submission: (127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no address printed:\n%s", p.Output())
	}
	greeting := func() string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the greeting: %v", err)
		}
		return line
	}
	for i := range 50 {
		if g := greeting(); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("connection %d: %q, want 220", i+1, g)
		}
	}
	if g := greeting(); !strings.HasPrefix(g, "421 4.7.0") {
		t.Fatalf("connection 51: %q, want 421 4.7.0 (the default --max-connections-per-ip)", g)
	}
}
