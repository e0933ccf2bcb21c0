package testkit

import (
	"context"
	"fmt"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// A tool can be installed while a part a test needs is not: `make deps`
// installs without Debian's Recommends, and Debian puts some parts there
// (swaks's TLS is libnet-ssleay-perl). A test that finds the tool but not
// the part would fail later with an unclear error, or pass for the wrong
// reason; these checks fail it up front under CI=true (skip otherwise) and
// name the package that carries the part.

// Missing fails the test under CI=true and skips it otherwise: something the
// test needs is not installed (`make deps` installs it).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (run `make deps`)", msg)
	}
	t.Skipf("%s; run `make deps` (CI=true makes this a failure)", msg)
}

// RequirePart returns the path of the named tool after checking that
// `name args...` prints something matching want (exit status aside: some
// tools exit non-zero when they list what they lack). part says what the
// check is for, and which package carries it.
func RequirePart(t testing.TB, name, part string, want *regexp.Regexp, args ...string) string {
	t.Helper()
	path := RequireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if !want.Match(out) {
		Missing(t, "%s is installed without %s: `%s %q` printed no match for %q (%v):\n%s",
			name, part, name, args, want, err, out)
	}
	return path
}

// RequireSwaksTLS returns swaks's path if it can do STARTTLS and TLS.
func RequireSwaksTLS(t testing.TB) string {
	t.Helper()
	return RequirePart(t, "swaks", "TLS (Net::SSLeay: package libnet-ssleay-perl)",
		regexp.MustCompile(`(?m)^=== TLS supported`), "--support")
}

// RequireMsmtpTLS returns msmtp's path if it was built with a TLS library.
func RequireMsmtpTLS(t testing.TB) string {
	t.Helper()
	return RequirePart(t, "msmtp", "a TLS library",
		regexp.MustCompile(`TLS/SSL library: (GnuTLS|OpenSSL|LibreSSL)`), "--version")
}

// RequirePythonSSL returns python3's path if its ssl module loads (smtplib's
// starttls needs it).
func RequirePythonSSL(t testing.TB) string {
	t.Helper()
	return RequirePart(t, "python3", "the ssl module",
		regexp.MustCompile(`(?m)^ssl OpenSSL \d`), "-c", "import ssl; print('ssl', ssl.OPENSSL_VERSION)")
}

// RequireOpenSSL returns the path of an OpenSSL 3 command line tool: the
// tests rely on its s_client options and @SECLEVEL syntax.
func RequireOpenSSL(t testing.TB) string {
	t.Helper()
	return RequirePart(t, "openssl", "OpenSSL 3", regexp.MustCompile(`^OpenSSL [3-9]\.`), "version")
}

// RequireFile checks that a file matching the filepath.Glob pattern exists
// (a pattern, for paths with the multiarch triplet); what says what needs it
// and which package carries it.
func RequireFile(t testing.TB, pattern, what string) {
	t.Helper()
	if m, err := filepath.Glob(pattern); err != nil || len(m) == 0 {
		Missing(t, "%s is missing: no file matches %s (%v)", what, pattern, err)
	}
}

// RequireUser checks that the system user or group name exists (a package's
// postinst creates it; a daemon started as root switches to it).
func RequireUser(t testing.TB, name, what string) {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		Missing(t, "user %q (%s) is missing: %v", name, what, err)
	}
}

// RequireRedis returns redis-server's path if it is Redis 5 or later (the
// state store's scripts read the server's clock, which needs Redis ≥ 5's
// script effects replication). Package redis-server.
func RequireRedis(t testing.TB) string {
	t.Helper()
	return RequirePart(t, "redis-server", "Redis ≥ 5 (package redis-server)",
		regexp.MustCompile(`v=([5-9]|\d\d)\.`), "--version")
}
