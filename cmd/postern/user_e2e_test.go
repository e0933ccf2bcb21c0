package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/usersfile"
	"github.com/postern/postern/internal/testkit"
)

// `postern user add|passwd|del` writes the users file itself (issue 23,
// trap 3): a mistyped password, a bad or taken login write nothing; the
// file is replaced whole with the right mode; concurrent adds lose no line.

// runUser runs `postern user ARGS...` with stdin and returns the combined
// output and exit code.
func runUser(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	return runCLI(t, nil, stdin, append([]string{"user"}, args...)...)
}

// loadUsers parses the users file as postern does and checks that login
// has password.
func loadUsers(t *testing.T, path, login, password string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	users, err := usersfile.Parse(bytes.NewReader(raw), path)
	if err != nil {
		t.Fatalf("the users file does not load: %v\n%s", err, raw)
	}
	res, err := users.Authenticate(context.Background(), auth.Request{Login: login, Password: password})
	if err != nil || res.Login != login {
		t.Errorf("%s with its password: %+v, %v", login, res, err)
	}
}

// wantUnchanged checks that path still holds before, and that no
// temporary file was left beside it.
func wantUnchanged(t *testing.T, what, path string, before []byte) {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("%s: the users file changed (%v):\n%s", what, err, after)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s: left beside the users file: %v", what, names)
	}
}

func TestUserAddE2E(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "etc-postern")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	// The directory's group becomes a new file's group (root:postern in
	// the package); any group other than the process's shows it.
	const dirGID = 8 // "mail" on Debian; a number is enough
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 0, dirGID); err != nil {
			t.Fatal(err)
		}
	}
	users := filepath.Join(dir, "users")

	out, code := runUser(t, "first secret\n", "add", "--users", users, "alice@example.test")
	if code != 0 {
		t.Fatalf("user add: exit %d: %s", code, out)
	}
	fi, err := os.Stat(users)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("new users file mode %v, want 0640", fi.Mode().Perm())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; os.Geteuid() == 0 && gid != dirGID {
		t.Errorf("new users file group %d, want the directory's %d", gid, dirGID)
	}
	loadUsers(t, users, "alice@example.test", "first secret")
	// check-config loads it without the world-readable warning.
	_, flags := validConfig(t)
	if out, code := runCLI(t, nil, "", append(append([]string{"check-config"}, flags...), "--users", users)...); code != 0 || strings.Contains(out, "world-readable") {
		t.Errorf("check-config with the written file: exit %d\n%s", code, out)
	}

	// An existing file keeps its mode (and owner and group).
	if err := os.Chmod(users, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runUser(t, "bob secret\n", "add", "--users", users, "--scheme", "argon2id", "bob@example.test"); code != 0 {
		t.Fatalf("second add: exit %d: %s", code, out)
	}
	if fi, _ := os.Stat(users); fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v after an add, want its 0600 kept", fi.Mode().Perm())
	}
	loadUsers(t, users, "bob@example.test", "bob secret")
	loadUsers(t, users, "alice@example.test", "first secret")

	before, _ := os.ReadFile(users)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"taken login (any case)", "x\n", []string{"add", "--users", users, "ALICE@example.test"}, 1, "already in"},
		{"colon in login", "x\n", []string{"add", "--users", users, "eve:x"}, 2, "field separator"},
		{"comment login", "x\n", []string{"add", "--users", users, "#eve"}, 2, "comment"},
		{"space in login", "x\n", []string{"add", "--users", users, "eve x"}, 2, "whitespace"},
		{"empty login", "x\n", []string{"add", "--users", users, ""}, 2, "empty login"},
		{"no login", "x\n", []string{"add", "--users", users}, 2, "usage"},
		{"empty password", "", []string{"add", "--users", users, "eve@example.test"}, 1, "empty password"},
		{"unknown scheme", "x\n", []string{"add", "--users", users, "--scheme", "MD5", "eve@example.test"}, 1, "MD5"},
		{"passwd of an unknown login", "x\n", []string{"passwd", "--users", users, "eve@example.test"}, 1, "not in"},
		{"del of an unknown login", "", []string{"del", "--users", users, "eve@example.test"}, 1, "not in"},
	} {
		out, code := runUser(t, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s", tc.name, code, tc.code, tc.want, out)
		}
		wantUnchanged(t, tc.name, users, before)
	}

	// Two different passwords typed on a terminal: refused, nothing written.
	out, code = runOnTerminal(t, "one password\nanother one\n", "user", "add", "--users", users, "eve@example.test")
	if code == 0 || !strings.Contains(out, "differ") {
		t.Errorf("mismatched passwords on a terminal: exit %d:\n%s", code, out)
	}
	wantUnchanged(t, "mismatched passwords", users, before)
	// The same twice: added.
	if out, code := runOnTerminal(t, "eve secret\neve secret\n", "user", "add", "--users", users, "eve@example.test"); code != 0 {
		t.Errorf("matching passwords on a terminal: exit %d:\n%s", code, out)
	}
	loadUsers(t, users, "eve@example.test", "eve secret")

	// passwd keeps the line's extra fields; del removes the line only.
	raw, _ := os.ReadFile(users)
	raw = bytes.Replace(raw, []byte("\neve@example.test:"), []byte("\n# eve's line\neve@example.test:"), 1)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	lines[len(lines)-1] += "::::::userdb_quota=1G"
	if err := os.WriteFile(users, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runUser(t, "new eve\n", "passwd", "--users", users, "Eve@Example.test"); code != 0 {
		t.Fatalf("passwd: exit %d: %s", code, out)
	}
	loadUsers(t, users, "eve@example.test", "new eve")
	if raw, _ := os.ReadFile(users); !strings.Contains(string(raw), "::::::userdb_quota=1G\n") || !strings.Contains(string(raw), "# eve's line\n") {
		t.Errorf("passwd lost the extra fields or the comment:\n%s", raw)
	}
	if out, code := runUser(t, "", "del", "--users", users, "bob@example.test"); code != 0 {
		t.Fatalf("del: exit %d: %s", code, out)
	}
	raw, _ = os.ReadFile(users)
	if strings.Contains(string(raw), "bob@") || strings.Count(string(raw), "\n") != 3 {
		t.Errorf("after del bob:\n%s", raw)
	}
}

// TestUserAddSymlinkE2E: a users file that is a symlink stays one; the
// file it names gets the line.
func TestUserAddSymlinkE2E(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real-users")
	writeFile(t, real, "")
	link := filepath.Join(dir, "users")
	if err := os.Symlink("real-users", link); err != nil {
		t.Fatal(err)
	}
	if out, code := runUser(t, "pw\n", "add", "--users", link, "alice@example.test"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, out)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != os.ModeSymlink {
		t.Errorf("the users file is no longer a symlink: %v %v", fi.Mode(), err)
	}
	loadUsers(t, real, "alice@example.test", "pw")
}

// TestUserAddConcurrentE2E: parallel adds to one file each keep their
// line (the file is locked while it is read, edited and replaced).
func TestUserAddConcurrentE2E(t *testing.T) {
	t.Parallel()
	users := filepath.Join(t.TempDir(), "users")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(posternBin, "user", "add", "--users", users, "--scheme", "argon2id", fmt.Sprintf("user%d@example.test", i))
			cmd.Env = cleanEnv()
			cmd.Stdin = strings.NewReader("pw" + strconv.Itoa(i) + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("user%d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i := range n {
		loadUsers(t, users, fmt.Sprintf("user%d@example.test", i), "pw"+strconv.Itoa(i))
	}
	if entries, _ := os.ReadDir(filepath.Dir(users)); len(entries) != 1 {
		t.Errorf("%d files in the users file's directory, want 1", len(entries))
	}
}

// runOnTerminal runs postern with a pseudo-terminal as stdin (so it
// prompts and reads without echo) and types input into it.
func runOnTerminal(t *testing.T, input string, args ...string) (string, int) {
	t.Helper()
	ptm, pts := openPTY(t)
	defer ptm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, posternBin, args...)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	// The terminal's echo (before postern turns it off) goes nowhere.
	go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(ptm) }()
	if _, err := ptm.WriteString(input); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// openPTY opens a pseudo-terminal pair (/dev/ptmx; no cgo, no library).
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testkit.Missing(t, "no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}
