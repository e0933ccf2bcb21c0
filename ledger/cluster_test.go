package ledger

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// login is one account of the users file the client sends as.
type login struct{ name, password string }

// ledgerLogins are the accounts the client's workers take turns with.
var ledgerLogins = []login{
	{"ann@example.test", "ann's long passphrase"},
	{"ben@example.test", "ben's long passphrase"},
	{"cid@example.test", "cid's long passphrase"},
	{"dee@example.test", "dee's long passphrase"},
}

// replica is one `postern serve` on a fixed address (HAProxy names it),
// started again on the same address after a kill or a drain. Its log is
// the output of every incarnation, in order.
type replica struct {
	name string // r0, r1, r2: also the first label of its --hostname
	addr string // the STARTTLS listener, 127.0.0.1:PORT
	bin  string
	args []string

	mu    sync.Mutex
	procs []*testkit.Process // one per incarnation, the last one running
}

// hostname is the replica's --hostname: it greets with it and writes it in
// the Received header, so a client reply and a delivered copy name it.
func (r *replica) hostname() string { return r.name + ".ledger.test" }

// startReplicas starts n replicas with the same flags but their names.
func startReplicas(t *testing.T, bin string, n int, upstreams []string, stateURL string) []*replica {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "localhost", "127.0.0.1")
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	users := filepath.Join(dir, "users")
	writeFile(t, cert, string(certPEM))
	writeFile(t, key, string(keyPEM))
	writeFile(t, users, usersFile(t))
	var rs []*replica
	for i := range n {
		r := &replica{name: fmt.Sprintf("r%d", i), addr: testkit.FreeAddr(t), bin: bin}
		r.args = []string{"serve",
			"--hostname", r.hostname(),
			"--listen", "starttls=" + r.addr,
			"--users", users,
			"--tls-cert", cert, "--tls-key", key,
			"--state", stateURL,
			"--proxy-protocol-from", "127.0.0.1/32",
			// A drain (SIGTERM) is one of the faults: short, so the
			// script goes on.
			"--shutdown-timeout", "5s",
			// Every client connects from 127.0.0.1 (PROXY v2 says
			// so): no limit may take the load for abuse.
			"--limit-messages", "*", "--limit-recipients", "*",
			"--max-connections-per-ip", "1000",
			"--auth-max-failures", "100000", "--auth-max-unavailable", "100000",
			// Replies Postern waits for are bounded well below the
			// client's own timeouts.
			"--upstream-timeout", "20s",
			"--upstream-hold-down", "2s",
		}
		// Each replica lists the upstreams in another order (r0: A B,
		// r1: B A, ...): both Postfix instances carry the load, so
		// stopping either one meets transactions in flight.
		for j := range upstreams {
			r.args = append(r.args, "--upstream", upstreams[(i+j)%len(upstreams)])
		}
		r.start(t)
		rs = append(rs, r)
	}
	return rs
}

// usersFile hashes the ledger's logins with the cheapest bcrypt cost.
func usersFile(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, l := range ledgerLogins {
		h, err := bcrypt.GenerateFromPassword([]byte(l.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", l.name, h)
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs a new incarnation and waits until it listens.
func (r *replica) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	cmd.Env = cleanEnv()
	p := testkit.StartCmd(t, cmd)
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	p.WaitOutput(t, r.name+" listening", 30*time.Second, func(out string) bool {
		return strings.Contains(out, "msg=listening addr="+r.addr)
	})
}

// proc is the running (last) incarnation.
func (r *replica) proc() *testkit.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[len(r.procs)-1]
}

// signal sends sig to the running incarnation.
func (r *replica) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.proc().Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", r.name, sig, err)
	}
}

// waitExit waits until the running incarnation has exited.
func (r *replica) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-r.proc().Done():
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v:\n%s", r.name, timeout, r.proc().Output())
	}
}

// log is the output of every incarnation, each after a line naming it.
func (r *replica) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, p := range r.procs {
		fmt.Fprintf(&b, "=== %s incarnation %d (pid %d)\n", r.name, i+1, p.Cmd.Process.Pid)
		b.WriteString(p.Output())
	}
	return b.String()
}

// cleanEnv is the environment without POSTERN_* variables, so a
// developer's shell cannot change what the replicas run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTERN_") {
			env = append(env, kv)
		}
	}
	return env
}
