package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// posternBin is the binary under test, built once by TestMain.
var posternBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postern-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	posternBin = filepath.Join(dir, "postern")
	// Tests run the binary under the race detector; benchmarks measure the
	// binary users run (the race detector multiplies memory and CPU).
	flag.Parse()
	args := []string{"build", "-race", "-o", posternBin, "."}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		args = []string{"build", "-o", posternBin, "."}
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building postern:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test users: a login that is an address (so it owns itself without a
// sender map), and its password.
const (
	aliceLogin = "alice@example.test"
	alicePass  = "correct horse battery staple"
	bobLogin   = "bob@example.test"
	bobPass    = "hunter2hunter2"
)

// postern is one running `postern serve` started by a test.
type postern struct {
	StartTLS  string // 127.0.0.1:port of the starttls listener
	TLS       string // 127.0.0.1:port of the implicit TLS listener
	Dir       string
	UsersFile string
	proc      *testkit.Process
}

// writeTestCert writes a throw-away certificate for localhost and returns the paths.
func writeTestCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "localhost", "127.0.0.1")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(certPEM))
	writeFile(t, keyFile, string(keyPEM))
	return certFile, keyFile
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// usersFileContent hashes the test users with the cheapest bcrypt Postern
// writes, as `postern hash-password` would.
func usersFileContent(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, u := range [][2]string{{aliceLogin, alicePass}, {bobLogin, bobPass}} {
		h, err := auth.HashPassword(u[1], "BLF-CRYPT")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u[0], h)
	}
	return b.String()
}

// startPostern runs `postern serve` against upstream with extra flags.
func startPostern(t testing.TB, upstream string, extra ...string) *postern {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	p := &postern{
		StartTLS: testkit.FreeAddr(t), TLS: testkit.FreeAddr(t), Dir: dir,
		UsersFile: filepath.Join(dir, "users"),
	}
	writeFile(t, p.UsersFile, usersFileContent(t))
	args := []string{"serve",
		"--hostname", "submission.test",
		"--listen", "starttls=" + p.StartTLS, "--listen", "tls=" + p.TLS,
		"--upstream", upstream,
		"--users", p.UsersFile,
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--shutdown-timeout", "5s",
	}
	args = append(args, extra...)
	cmd := exec.Command(posternBin, args...)
	cmd.Env = cleanEnv()
	p.proc = testkit.StartCmd(t, cmd)
	waitListening(t, p.proc, p.StartTLS)
	waitListening(t, p.proc, p.TLS)
	return p
}

// cleanEnv is the environment without POSTERN_* variables, so a developer's
// shell cannot change what a test runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTERN_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitListening(t testing.TB, p *testkit.Process, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.Output(), addr) {
		select {
		case <-p.Done():
			t.Fatalf("postern exited early:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postern is not listening on %s:\n%s", addr, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	testkit.WaitTCP(t, addr, 5*time.Second)
}

// Log returns what postern logged so far.
func (p *postern) Log() string { return p.proc.Output() }

// swaks runs swaks with args and returns its transcript and exit code.
func swaks(t testing.TB, args ...string) (string, int) {
	t.Helper()
	bin := testkit.RequireTool(t, "swaks")
	// Without its TLS part swaks prints "TLS not available" and exits
	// non-zero, which a test expecting a refusal could take for one.
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "tls") }) {
		bin = testkit.RequireSwaksTLS(t)
	}
	cmd := exec.Command(bin, append([]string{"--timeout", "30"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running swaks: %v", err)
	}
	return string(out), code
}

// swaksAuth is the common swaks invocation of an authenticated STARTTLS submission.
func (p *postern) swaksAuth(login, password string, more ...string) []string {
	return append([]string{"--server", p.StartTLS, "--tls", "--auth", "PLAIN",
		"--auth-user", login, "--auth-password", password}, more...)
}
