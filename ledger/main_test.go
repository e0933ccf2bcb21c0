package ledger

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// posternBin is the binary under test, built once by TestMain with the race
// detector, as cmd/postern's end-to-end tests build it.
var posternBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postern-ledger-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	posternBin = filepath.Join(dir, "postern")
	build := exec.Command("go", "build", "-race", "-o", posternBin, "github.com/postern/postern/cmd/postern")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building postern:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
