package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testkit"
)

// realDovecot is a Dovecot from Debian's dovecot-core, run by the test in
// the foreground with its own configuration directory.
type realDovecot struct {
	dovecot, conf string
	dir, socket   string
	tcpAddr       string
	proc          *testkit.Process
}

// dovecotConfig is the smallest configuration Dovecot 2.3 starts with as an
// auth server only: no mail protocols, no SSL, every path in dir. listen may
// not be empty in 2.3 ("listen can't be set empty"), so it is loopback.
const dovecotConfig = `# written by postern's auth tests
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

func startRealDovecot(t *testing.T) *realDovecot {
	t.Helper()
	d := &realDovecot{dovecot: testkit.RequireTool(t, "dovecot")}
	doveadm := testkit.RequireTool(t, "doveadm")
	d.dir = t.TempDir()
	// Dovecot's auth process runs as default_internal_user and must reach
	// the users file; t.TempDir makes the directory and its parent 0700.
	for _, dir := range []string{d.dir, filepath.Dir(d.dir)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := testkit.FreePort(t)
	d.socket = filepath.Join(d.dir, "auth-client")
	d.tcpAddr = fmt.Sprintf("127.0.0.1:%d", port)

	// As root, Dovecot wants its Debian users; otherwise it can only run as
	// the current user.
	loginUser, internalUser := "dovenull", "dovecot"
	if os.Getuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		loginUser, internalUser = u.Username, u.Username
	}

	users := ""
	for _, u := range []struct{ login, password, scheme string }{
		{"alice@example.org", "alice-secret", "SHA512-CRYPT"},
		{"bob@example.org", "bob-secret", "BLF-CRYPT"},
	} {
		out, err := exec.Command(doveadm, "pw", "-s", u.scheme, "-p", u.password).CombinedOutput()
		if err != nil {
			t.Fatalf("doveadm pw -s %s: %v\n%s", u.scheme, err, out)
		}
		users += u.login + ":" + strings.TrimSpace(string(out)) + "\n"
	}
	if err := os.WriteFile(filepath.Join(d.dir, "users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{dir}}", d.dir, "{{port}}", fmt.Sprint(port),
		"{{login_user}}", loginUser, "{{internal_user}}", internalUser).Replace(dovecotConfig)
	d.conf = filepath.Join(d.dir, "dovecot.conf")
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	return d
}

// start runs `dovecot -F -c CONF` and waits until both listeners accept.
func (d *realDovecot) start(t *testing.T) {
	t.Helper()
	d.proc = testkit.Start(t, d.dovecot, "-F", "-c", d.conf)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			t.Logf("dovecot.log:\n%s", log)
		}
	})
	testkit.WaitTCP(t, d.tcpAddr, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not create %s", d.socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDovecotReal(t *testing.T) {
	dv := startRealDovecot(t)
	clients := map[string]*Dovecot{
		"unix": NewDovecot("unix", dv.socket, DovecotOptions{Timeout: 5 * time.Second}, nil),
		"tcp":  NewDovecot("tcp", dv.tcpAddr, DovecotOptions{Timeout: 5 * time.Second}, nil),
	}
	for _, c := range clients {
		defer c.Close()
	}
	ctx := context.Background()
	// Each wrong guess comes from its own documentation address, so
	// Dovecot's per-rip auth penalty does not slow the test down.
	rip := 0
	req := func(login, password string) Request {
		rip++
		return Request{Login: login, Password: password, Secured: true,
			RemoteIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(rip)})}
	}
	expectOK := func(t *testing.T, c *Dovecot, login, password, want string) {
		t.Helper()
		res, err := c.Authenticate(ctx, req(login, password))
		if err != nil || res.Login != want {
			t.Fatalf("%s: got %+v, %v; want login %q", login, res, err, want)
		}
	}

	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			// Dovecot's canonical user= (auth_username_format = %Lu) is
			// the login, whatever case the client typed.
			expectOK(t, c, "Alice@Example.ORG", "alice-secret", "alice@example.org")
			expectOK(t, c, "bob@example.org", "bob-secret", "bob@example.org") // BLF-CRYPT
			for _, bad := range [][2]string{
				{"alice@example.org", "wrong"},
				{"alice@example.org", "bob-secret"},
				{"nobody@example.org", "alice-secret"},
			} {
				if _, err := c.Authenticate(ctx, req(bad[0], bad[1])); !errors.Is(err, ErrInvalidCredentials) {
					t.Errorf("%s/%s: %v, want ErrInvalidCredentials", bad[0], bad[1], err)
				}
			}
		})
	}

	// Dovecot goes down: a temporary failure, never a wrong password.
	dv.proc.Stop()
	for name, c := range clients {
		_, err := c.Authenticate(ctx, req("alice@example.org", "alice-secret"))
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s with dovecot stopped: %v, want ErrUnavailable", name, err)
		}
	}

	// And back: the same clients reconnect by themselves.
	dv.start(t)
	for name, c := range clients {
		t.Run(name+" after restart", func(t *testing.T) {
			expectOK(t, c, "alice@example.org", "alice-secret", "alice@example.org")
		})
	}
}
