package deploy_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// The Debian package (`make deb`, deploy/debian/) is installed with dpkg
// into a fresh Debian 12 root, checked there, and removed and purged again.
//
// The root is a debootstrap minbase with the package's dependencies,
// made once (it downloads ~60 MB and takes minutes) and kept in
// debRootCache, then copied for each run, so every run installs into a
// root no earlier run touched. dpkg runs chrooted into it, which needs
// root: the test fails under CI=true without it (skip otherwise), like a
// missing tool.

// debRootCache is where the pristine root is kept between runs
// (POSTERN_DEB_ROOT overrides it). Its name carries what it holds: a root
// made with other packages gets another name.
func debRootCache() string {
	if dir := os.Getenv("POSTERN_DEB_ROOT"); dir != "" {
		return dir
	}
	return "/var/tmp/postern-deb-root-bookworm"
}

// debootstrapArgs make the pristine root: minbase plus the package's
// Depends (adduser; procps for the unit's ExecReload=/bin/kill).
var debootstrapArgs = []string{"--variant=minbase", "--include=adduser,procps", "bookworm"}

const debianMirror = "http://deb.debian.org/debian"

// TestDebianPackage: `make deb`'s package installs with dpkg -i into a
// fresh Debian 12 root (the postern user, /etc/postern 0750 root:postern,
// the unit with RuntimeDirectory=, the fail2ban jail off, the man page),
// its example configuration passes `postern check-config` run as the
// service's user once a certificate and a users file are added, the
// installed unit passes `systemd-analyze verify`, and dpkg -r then dpkg -P
// leave nothing behind but the postern user and group and dpkg's own
// records.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		testkit.Missing(t, "installing the Debian package into a root needs root (chroot)")
	}
	for _, tool := range []string{"dpkg-deb", "debootstrap", "chroot", "systemd-analyze"} {
		testkit.RequireTool(t, tool)
	}
	deb := buildDeb(t)
	root := freshDebianRoot(t)
	before := treeOf(t, root)

	if err := copyFile(deb, filepath.Join(root, "tmp", "postern.deb")); err != nil {
		t.Fatal(err)
	}
	chroot(t, root, nil, "dpkg", "-i", "/tmp/postern.deb")

	// What the package put in place.
	if out := chroot(t, root, nil, "getent", "passwd", "postern"); !strings.Contains(out, ":/var/lib/postern:/usr/sbin/nologin") {
		t.Errorf("postern user: %q, want a system user with home /var/lib/postern and no shell", out)
	}
	wantMode(t, root, "/etc/postern", fs.ModeDir|0o750, "root", "postern")
	wantMode(t, root, "/etc/postern/postern.toml", 0o640, "root", "postern")
	wantMode(t, root, "/usr/bin/postern", 0o755, "root", "root")
	unit := readRoot(t, root, "/usr/lib/systemd/system/postern.service")
	for _, want := range []string{"ExecStart=/usr/bin/postern serve", "RuntimeDirectory=postern", "User=postern"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("installed unit lacks %q", want)
		}
	}
	if jail := readRoot(t, root, "/etc/fail2ban/jail.d/postern.conf"); !strings.Contains(jail, "\nenabled  = false\n") || strings.Contains(jail, "enabled  = true") {
		t.Errorf("the installed fail2ban jail is not off:\n%s", jail)
	}
	if filter := readRoot(t, root, "/etc/fail2ban/filter.d/postern.conf"); !strings.Contains(filter, "failregex") {
		t.Errorf("no fail2ban filter installed")
	}
	conffiles := chroot(t, root, nil, "dpkg-query", "--showformat=${Conffiles}", "--show", "postern")
	for _, f := range []string{"/etc/postern/postern.toml", "/etc/default/postern", "/etc/fail2ban/jail.d/postern.conf", "/etc/fail2ban/filter.d/postern.conf"} {
		if !strings.Contains(conffiles, " "+f+" ") {
			t.Errorf("%s is not a conffile: %q", f, conffiles)
		}
	}
	// Every key of the example, commented out or not, is a flag of serve:
	// uncommenting one never makes an unknown-key error.
	flags := serveFlags(t)
	for _, m := range regexp.MustCompile(`(?m)^#?([a-z0-9-]+) = `).FindAllStringSubmatch(readRoot(t, root, "/etc/postern/postern.toml"), -1) {
		if !flags[m[1]] {
			t.Errorf("the example configuration names %q, which is no flag of postern serve", m[1])
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/man/man8/postern.8.gz")); err != nil {
		t.Errorf("no man page: %v", err)
	}
	if out := chroot(t, root, nil, "postern", "version"); !strings.HasPrefix(out, "postern 0~git") {
		t.Errorf("postern version: %q", out)
	}

	// The example configuration, completed as the README's first run does
	// (a certificate where it points, a users file), passes check-config
	// run as the service runs it: user postern, POSTERN_CONFIG from the unit.
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "mail.example.test")
	writeRootFile(t, root, "/etc/postern/fullchain.pem", certPEM)
	writeRootFile(t, root, "/etc/postern/privkey.pem", keyPEM)
	chroot(t, root, strings.NewReader("a password\n"), "postern", "user", "add", "alice@example.test")
	wantMode(t, root, "/etc/postern/users", 0o640, "root", "postern")
	out, err := chrootRun(root, nil, []string{"POSTERN_CONFIG=/etc/postern/postern.toml"},
		"--userspec=postern:postern", "postern", "check-config")
	if err != nil || !strings.Contains(out, "configuration OK") {
		t.Errorf("check-config of the installed example: %v\n%s", err, out)
	}
	if strings.Contains(out, "world-readable") {
		t.Errorf("check-config warns about the modes the package set:\n%s", out)
	}

	// The installed unit passes systemd-analyze verify with the binaries it
	// names taken from the root (verify checks that they exist; `verify
	// --root=` would need the whole of systemd's units in the root).
	analyze := testkit.RequireTool(t, "systemd-analyze")
	verified := filepath.Join(t.TempDir(), "postern.service")
	unitInRoot := strings.NewReplacer("=/usr/bin/postern ", "="+root+"/usr/bin/postern ",
		"=/bin/kill ", "="+root+"/bin/kill ").Replace(unit)
	if err := os.WriteFile(verified, []byte(unitInRoot), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", verified).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}

	// Remove: the program goes, the configuration stays.
	chroot(t, root, nil, "dpkg", "-r", "postern")
	for _, gone := range []string{"usr/bin/postern", "usr/lib/systemd/system/postern.service", "usr/share/man/man8/postern.8.gz"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("/%s is still there after dpkg -r", gone)
		}
	}
	for _, kept := range []string{"etc/postern/postern.toml", "etc/postern/users", "etc/default/postern"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("/%s is gone after dpkg -r (only a purge removes the configuration): %v", kept, err)
		}
	}

	// Purge: nothing is left but the user and group (Debian policy keeps
	// system accounts) and dpkg's and the tools' own records.
	chroot(t, root, nil, "dpkg", "-P", "postern")
	os.Remove(filepath.Join(root, "tmp", "postern.deb"))
	after := treeOf(t, root)
	var left []string
	for path := range after {
		if _, ok := before[path]; !ok && !ownRecord(path) {
			left = append(left, path)
		}
	}
	slices.Sort(left)
	if len(left) > 0 {
		t.Errorf("left behind after dpkg -P:\n%s", strings.Join(left, "\n"))
	}
	if out := chroot(t, root, nil, "getent", "passwd", "postern"); out == "" {
		t.Errorf("the postern user went with the purge (it stays, per Debian policy)")
	}
}

// ownRecord reports whether a path the purge may leave behind is dpkg's,
// adduser's or the shadow tools' own record, not the package's.
func ownRecord(path string) bool {
	// /run is a tmpfs on a booted system (adduser leaves its lock there).
	for _, prefix := range []string{"/var/lib/dpkg/", "/var/log/", "/var/cache/debconf/", "/run/"} {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	switch path {
	case "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/subuid-", "/etc/subgid-":
		return true
	}
	return false
}

// buildDeb runs `make deb`'s script into a temporary directory and returns
// the package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./debian/build.sh", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("deploy/debian/build.sh: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	deb := strings.TrimSpace(stdout.String())
	if !strings.HasSuffix(deb, ".deb") || filepath.Dir(deb) != out {
		t.Fatalf("build.sh printed %q, want the package's path in %s", deb, out)
	}
	return deb
}

// freshDebianRoot returns a copy of the pristine root (made first if
// needed), removed when the test ends.
func freshDebianRoot(t *testing.T) string {
	t.Helper()
	cache := debRootCache()
	lock, err := os.OpenFile(cache+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	// Another test run may be making it: wait for that one.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Logf("debootstrap %v into %s (once; later runs reuse it)", debootstrapArgs, cache)
		tmp := cache + ".tmp"
		os.RemoveAll(tmp)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		args := append(slices.Clone(debootstrapArgs), tmp, debianMirror)
		if out, err := exec.CommandContext(ctx, testkit.RequireTool(t, "debootstrap"), args...).CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			t.Fatalf("debootstrap %v: %v\n%s", args, err, out)
		}
		if err := os.Rename(tmp, cache); err != nil {
			t.Fatal(err)
		}
	}
	// Under /var/tmp, beside the cache: a root is too big for a /tmp in RAM.
	dir, err := os.MkdirTemp(filepath.Dir(cache), "postern-deb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("cp", "-a", cache, root).CombinedOutput(); err != nil {
		t.Fatalf("copying the Debian root: %v\n%s", err, out)
	}
	return root
}

// chroot runs a command inside root and fails the test on an error.
func chroot(t *testing.T, root string, stdin *strings.Reader, args ...string) string {
	t.Helper()
	out, err := chrootRun(root, stdin, nil, args...)
	if err != nil {
		t.Fatalf("chroot %s %v: %v\n%s", root, args, err, out)
	}
	return out
}

// chrootRun runs `chroot [OPTIONS] ROOT COMMAND...` (args before the
// command that start with "--" are chroot's options) with a plain
// environment plus env, and returns the combined output.
func chrootRun(root string, stdin *strings.Reader, env []string, args ...string) (string, error) {
	var opts []string
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		opts, args = append(opts, args[0]), args[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chroot", append(append(opts, root), args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}, env...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// treeOf lists every path under root (as seen inside it).
func treeOf(t *testing.T, root string) map[string]bool {
	t.Helper()
	paths := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths["/"+strings.TrimPrefix(strings.TrimPrefix(path, root), "/")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// wantMode checks a path's mode and owner inside root, with the names
// looked up in root's own passwd and group files.
func wantMode(t *testing.T, root, path string, mode fs.FileMode, user, group string) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, path))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	gotUser := nameOf(t, root, "/etc/passwd", int(st.Uid))
	gotGroup := nameOf(t, root, "/etc/group", int(st.Gid))
	if fi.Mode() != mode || gotUser != user || gotGroup != group {
		t.Errorf("%s: %v %s:%s, want %v %s:%s", path, fi.Mode(), gotUser, gotGroup, mode, user, group)
	}
}

// nameOf finds the name of an id in a passwd or group file of root.
func nameOf(t *testing.T, root, file string, id int) string {
	t.Helper()
	for _, line := range strings.Split(readRoot(t, root, file), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(id) {
			return f[0]
		}
	}
	return strconv.Itoa(id)
}

func readRoot(t *testing.T, root, path string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// writeRootFile writes a file as an administrator would put it into
// /etc/postern: root:postern, 0640.
func writeRootFile(t *testing.T, root, path string, data []byte) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.WriteFile(full, data, 0o640); err != nil {
		t.Fatal(err)
	}
	chroot(t, root, nil, "chgrp", "postern", path)
}

func copyFile(from, to string) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, raw, 0o644)
}
