package serve

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBorders: the package doc's promise, checked on every
// dependency, direct or not: the command line stays cmd/postern's.
func TestImportBorders(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/urfave/cli") {
			t.Errorf("internal/serve depends on %s", dep)
		}
	}
}
