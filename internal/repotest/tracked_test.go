package repotest

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testkit"
)

// maxTrackedSize is the largest file the repository may hold: source,
// documentation and configuration are far smaller; a bigger file is a build
// output, a dump or data that belongs elsewhere.
const maxTrackedSize = 1 << 20 // 1 MiB

// TestNoBuildOutputsTracked: no tracked file is an executable binary (ELF,
// Mach-O, PE) or over 1 MiB. Test data and fuzz corpora (under testdata/)
// are exempt. A committed binary (a 10.9 MB cmd/postern-bench/postern-bench
// once was) bloats every clone forever and can differ from its source.
func TestNoBuildOutputsTracked(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testkit.Missing(t, "git not found")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		testkit.Missing(t, "not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00")
	if len(files) < 100 {
		t.Fatalf("git ls-files listed %d files: the listing is broken", len(files))
	}
	for _, name := range files {
		if exempt(name) {
			continue
		}
		problem, err := checkTracked(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if problem != "" {
			t.Errorf("%s is tracked but %s: git rm --cached it (build outputs are in .gitignore)", name, problem)
		}
	}
}

// exempt reports whether a tracked path is test data (fuzz corpora are
// under testdata/fuzz/), which may be binary or large.
func exempt(name string) bool {
	return strings.HasPrefix(name, "testdata/") || strings.Contains(name, "/testdata/")
}

// checkTracked returns what is wrong with the file at path ("" if
// nothing). A file deleted from the work tree but not yet from the index
// is not checked.
func checkTracked(path string) (string, error) {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", nil // a symlink or a submodule
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	if kind := executableKind(head[:n]); kind != "" {
		return "an executable binary (" + kind + ")", nil
	}
	if fi.Size() > maxTrackedSize {
		return "over 1 MiB", nil
	}
	return "", nil
}

// executableKind names the executable format whose magic number starts
// head ("" if none): ELF, Mach-O (32/64-bit, either byte order, or
// universal) or PE (an MZ header pointing at a "PE\0\0" signature).
func executableKind(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return "ELF"
	case len(head) >= 4:
		switch binary.BigEndian.Uint32(head) {
		case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe:
			return "Mach-O"
		case 0xcafebabe:
			// Also a Java class file; neither belongs in the repository.
			return "Mach-O universal"
		}
	}
	if len(head) >= 0x40 && bytes.HasPrefix(head, []byte("MZ")) {
		off := int(binary.LittleEndian.Uint32(head[0x3c:]))
		if off >= 0 && off+4 <= len(head) && bytes.Equal(head[off:off+4], []byte("PE\x00\x00")) {
			return "PE"
		}
	}
	return ""
}

// TestExecutableKind: the magic numbers of the formats the test refuses,
// and text that starts alike is not refused.
func TestExecutableKind(t *testing.T) {
	pe := make([]byte, 0x80)
	copy(pe, "MZ")
	binary.LittleEndian.PutUint32(pe[0x3c:], 0x40)
	copy(pe[0x40:], "PE\x00\x00")
	for _, tt := range []struct {
		name, want string
		head       []byte
	}{
		{"ELF", "ELF", []byte("\x7fELF\x02\x01\x01")},
		{"Mach-O 64 little-endian", "Mach-O", []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}},
		{"Mach-O 32 big-endian", "Mach-O", []byte{0xfe, 0xed, 0xfa, 0xce}},
		{"universal", "Mach-O universal", []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2}},
		{"PE", "PE", pe},
		{"MZ text", "", []byte("MZ is a text file that happens to start like a DOS header, and is long enough to look at.")},
		{"Go source", "", []byte("package main\n")},
		{"empty", "", nil},
		{"short", "", []byte("\x7fE")},
	} {
		if got := executableKind(tt.head); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
