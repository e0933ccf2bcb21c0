package control

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBorders: the package doc's promise, checked on every
// dependency, direct or not.
func TestImportBorders(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, never := range []string{"github.com/urfave/cli", "github.com/postern/postern/proxy", "github.com/postern/postern/cmd/postern/internal/serve"} {
			if dep == never || strings.HasPrefix(dep, never+"/") || (never == "github.com/urfave/cli" && strings.HasPrefix(dep, never)) {
				t.Errorf("internal/control depends on %s", dep)
			}
		}
	}
}
