package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// notFlagVariables are the POSTERN_* names in deploy/ that are not a flag's
// environment twin, each with where it belongs. TestDeployVariablesAreFlags
// keeps the list exact.
var notFlagVariables = map[string]string{
	"POSTERN_VERSION":             "compose: the image tag and build argument",
	"POSTERN_SUBMISSION_PORT":     "compose: the host port published for 587",
	"POSTERN_SUBMISSIONS_PORT":    "compose: the host port published for 465",
	"POSTERN_ALT_SUBMISSION_PORT": "compose: the host port published for 2525",
	"POSTERN_ACME_HTTP_PORT":      "compose: the host port published for 80",
	"POSTERN_TLS":                 "haproxy/submission-443.cfg: Postern's tls= listener address",
	"POSTERN_DOCKER_CACHE":        "dockertest: the image cache directory",
	"POSTERN_DOCKERTEST_T0":       "dockertest: the run's start time",
}

// TestDeployVariablesAreFlags reads every POSTERN_* name in deploy/ (compose
// files, manifests, the systemd environment file, scripts, comments): each
// must be a flag's environment twin of `postern serve`, or one of
// notFlagVariables. A flag renamed or removed leaves a stale name that
// postern would only warn about; this fails instead.
func TestDeployVariablesAreFlags(t *testing.T) {
	known := serveFlags(t)
	used := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range regexp.MustCompile(`\bPOSTERN_[A-Z0-9_]*[A-Z0-9]\b`).FindAllString(string(raw), -1) {
			used[name] = true
			flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "POSTERN_")), "_", "-")
			_, other := notFlagVariables[name]
			switch {
			case known[flag] && other:
				t.Errorf("%s: %s is listed in notFlagVariables but is the twin of --%s", path, name, flag)
			case !known[flag] && !other && !pendingFlags[flag]:
				t.Errorf("%s: %s is no flag's environment variable (postern serve has no --%s)", path, name, flag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range notFlagVariables {
		if !used[name] {
			t.Errorf("notFlagVariables lists %s, which no file in deploy/ uses: remove it", name)
		}
	}
}
