package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequireSwaksTLS runs RequireSwaksTLS (in a child test process) against
// a fake swaks that prints what Debian's swaks prints with and without
// libnet-ssleay-perl.
func TestRequireSwaksTLS(t *testing.T) {
	if os.Getenv("TESTKIT_CHILD") == "1" {
		t.Logf("swaks: %s", RequireSwaksTLS(t))
		return
	}
	without := "*** TLS not available: requires Net::SSLeay"
	with := "=== TLS supported"
	for _, c := range []struct {
		name, support, ci string
		fail              bool
		want              string
	}{
		{"without TLS, CI", without, "true", true, "libnet-ssleay-perl"},
		{"without TLS, not CI", without, "", false, "SKIP"},
		{"with TLS, CI", with, "true", false, "swaks: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			script := "#!/bin/sh\necho '=== Basic AUTH supported'\necho '" + c.support + "'\nexit 0\n"
			if err := os.WriteFile(filepath.Join(dir, "swaks"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestRequireSwaksTLS$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTKIT_CHILD=1", "CI="+c.ci, "PATH="+dir)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != c.fail || !strings.Contains(string(out), c.want) {
				t.Errorf("child failed: %v (want %v), output lacks %q or:\n%s", err, c.fail, c.want, out)
			}
		})
	}
}
