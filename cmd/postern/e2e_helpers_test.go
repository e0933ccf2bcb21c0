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

	"github.com/postern/postern/auth/usersfile"
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
		h, err := usersfile.HashPassword(u[1], "BLF-CRYPT")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u[0], h)
	}
	return b.String()
}

// anyPort is where test instances listen unless a test needs its ports
// before the start: the kernel picks a free port when postern binds, so no
// other process can take it in between (as it can a port picked in advance
// with testkit.FreeAddr); the bound addresses come from the log.
const anyPort = "127.0.0.1:0"

// startPostern runs `postern serve` against upstream with extra flags.
func startPostern(t testing.TB, upstream string, extra ...string) *postern {
	t.Helper()
	return startPosternAt(t, anyPort, anyPort, upstream, extra...)
}

// startPosternAt is startPostern with the STARTTLS and implicit TLS listen
// addresses chosen by the caller.
func startPosternAt(t testing.TB, starttls, implicitTLS, upstream string, extra ...string) *postern {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	p := &postern{
		StartTLS: starttls, TLS: implicitTLS, Dir: dir,
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
	p.run(t, cmd)
	return p
}

// run starts cmd, a `postern serve` with p.StartTLS and p.TLS as its two
// --listen flags in that order, and waits until both listeners accept;
// p.StartTLS and p.TLS become the bound addresses.
func (p *postern) run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	p.proc = testkit.StartCmd(t, cmd)
	addrs := smtpListenAddrs(t, p.proc, 2)
	p.StartTLS, p.TLS = addrs[0], addrs[1]
	waitListening(t, p.proc, p.StartTLS)
	waitListening(t, p.proc, p.TLS)
}

// metricsAddr waits until postern logged its metrics listener (start it
// with "--metrics", anyPort) and returns the bound address.
func (p *postern) metricsAddr(t testing.TB) string {
	t.Helper()
	const line = `msg="metrics listening" addr=`
	p.waitLog(t, line, 10*time.Second)
	// The rest of the line may still be on its way.
	var a string
	p.proc.WaitOutput(t, "the metrics listening line", 10*time.Second, func(out string) bool {
		_, rest, _ := strings.Cut(out, line)
		var whole bool
		a, _, whole = strings.Cut(rest, "\n")
		return whole
	})
	a, _, _ = strings.Cut(a, " ")
	return a
}

// smtpListenAddrs waits until postern logged n SMTP listeners and returns
// their addresses. serve logs one "listening" line per SMTP listener, in
// --listen order (proxy.Server.Addrs), then the autoconfig one with
// serves=.
func smtpListenAddrs(t testing.TB, p *testkit.Process, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var addrs []string
		lines := strings.Split(p.Output(), "\n")
		for _, l := range lines[:len(lines)-1] { // complete lines only
			if !strings.Contains(l, " msg=listening ") || strings.Contains(l, " serves=") {
				continue
			}
			if _, a, ok := strings.Cut(l, " addr="); ok {
				a, _, _ = strings.Cut(a, " ")
				addrs = append(addrs, a)
			}
		}
		if len(addrs) >= n {
			return addrs[:n]
		}
		select {
		case <-p.Done():
			t.Fatalf("postern exited early:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postern did not log %d listeners:\n%s", n, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	// No probe connection: serve logs "listening" only once the socket
	// is bound and listening, so the kernel already queues connections.
	// (A probe with a short dial timeout failed under CI load: a dropped
	// SYN is retransmitted only after a second.)
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
