// Package authtest starts the real authentication servers Postern's tests talk
// to: a Dovecot auth server (Debian's dovecot-core) with a passwd-file of
// `doveadm pw` hashes, and an OpenLDAP slapd (Debian's slapd) with helpers to
// seed it. Each instance lives in the test's own directory, listens on free
// loopback ports, and is stopped by PID when the test ends. A missing tool
// fails the test under CI=true and skips it otherwise (testkit.RequireTool).
package authtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// User is one entry of the Dovecot passwd-file.
type User struct {
	Login    string
	Password string
	// Scheme is the `doveadm pw -s` scheme; default SHA512-CRYPT.
	Scheme string
	// Extra is the passwd-file's extra-fields column, e.g.
	// "user=carol@example.test" to make Dovecot answer with another
	// canonical name (passdb extra field user).
	Extra string
}

// Dovecot is a Dovecot 2.3 running only as an auth server, in the
// foreground (dovecot -F), with its own configuration directory.
type Dovecot struct {
	// Socket is the auth-client unix listener (mode 0666).
	Socket string
	// TCPAddr is the inet_listener of service auth, "127.0.0.1:PORT".
	TCPAddr string
	// Dir holds the configuration, the users file and the log.
	Dir string

	t       testing.TB
	dovecot string
	conf    string

	mu   sync.Mutex
	proc *testkit.Process
}

// dovecotConfig is the smallest configuration Dovecot 2.3 starts with as an
// auth server only: no mail protocols, no SSL, every path in dir. listen may
// not be empty in 2.3 ("listen can't be set empty"), so it is loopback.
const dovecotConfig = `# written by postern's authtest
base_dir = {{dir}}/run
state_dir = {{dir}}/state
log_path = {{dir}}/dovecot.log
instance_name = postern-test-{{port}}
protocols =
listen = 127.0.0.1
ssl = no
default_login_user = {{login_user}}
default_internal_user = {{internal_user}}
auth_mechanisms = plain login
# Canonical names: Dovecot lower-cases the login and answers with user=.
auth_username_format = %Lu
# Fail fast in tests (default 2s per failed request).
auth_failure_delay = 0
# One "passwd-file(...): Password mismatch" / "unknown user" line per failure.
auth_verbose = yes
passdb {
  driver = passwd-file
  args = {{dir}}/users
}
userdb {
  driver = static
  args = uid={{internal_user}} gid={{internal_user}} home={{dir}}/home
}
service auth {
  unix_listener auth-client {
    path = {{dir}}/auth-client
    mode = 0666
  }
  inet_listener {
    address = 127.0.0.1
    port = {{port}}
  }
}
`

// StartDovecot writes a passwd-file with `doveadm pw` hashes of users and a
// configuration, starts Dovecot and waits until both listeners accept. The
// configuration has auth_username_format = %Lu (the canonical user= is the
// login lower-cased), auth_failure_delay = 0 and auth_verbose = yes.
func StartDovecot(t testing.TB, users []User) *Dovecot {
	t.Helper()
	d := &Dovecot{t: t, dovecot: testkit.RequireTool(t, "dovecot")}
	doveadm := testkit.RequireTool(t, "doveadm")
	d.Dir = t.TempDir()
	// Dovecot's auth process runs as default_internal_user and must reach
	// the users file; t.TempDir makes the directory and its parent 0700.
	for _, dir := range []string{d.Dir, filepath.Dir(d.Dir)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := testkit.FreePort(t)
	d.Socket = filepath.Join(d.Dir, "auth-client")
	d.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port)

	// As root, Dovecot wants its Debian users; otherwise it can only run as
	// the current user.
	loginUser, internalUser := "dovenull", "dovecot"
	if os.Getuid() == 0 {
		testkit.RequireUser(t, loginUser, "created by dovecot-core's postinst")
		testkit.RequireUser(t, internalUser, "created by dovecot-core's postinst")
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		loginUser, internalUser = u.Username, u.Username
	}

	var file strings.Builder
	for _, u := range users {
		scheme := u.Scheme
		if scheme == "" {
			scheme = "SHA512-CRYPT"
		}
		out, err := exec.Command(doveadm, "pw", "-s", scheme, "-p", u.Password).CombinedOutput()
		if err != nil {
			t.Fatalf("doveadm pw -s %s: %v\n%s", scheme, err, out)
		}
		// login:password:uid:gid:gecos:home:shell:extra_fields
		fmt.Fprintf(&file, "%s:%s", u.Login, strings.TrimSpace(string(out)))
		if u.Extra != "" {
			fmt.Fprintf(&file, "::::::%s", u.Extra)
		}
		file.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "users"), []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{dir}}", d.Dir, "{{port}}", fmt.Sprint(port),
		"{{login_user}}", loginUser, "{{internal_user}}", internalUser).Replace(dovecotConfig)
	d.conf = filepath.Join(d.Dir, "dovecot.conf")
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot.log:\n%s", d.Log())
		}
	})
	d.Start()
	return d
}

// Start runs `dovecot -F -c CONF` and waits until the unix socket and the
// TCP listener (the same path and port every time) accept connections.
func (d *Dovecot) Start() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.t.Fatal("authtest: dovecot already running")
	}
	// A socket file left behind by the previous run would make the wait
	// below succeed too early.
	_ = os.Remove(d.Socket)
	d.proc = testkit.Start(d.t, d.dovecot, "-F", "-c", d.conf)
	testkit.WaitTCP(d.t, d.TCPAddr, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(d.Socket); err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dovecot did not create %s", d.Socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates Dovecot (SIGTERM to its process group, by PID) and waits
// until it has exited. Start brings it back on the same socket and port.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.proc.Stop()
		d.proc = nil
	}
}

// Log returns Dovecot's log file (log_path) so far.
func (d *Dovecot) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
	return string(b)
}
