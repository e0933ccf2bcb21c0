package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// comm with a space and a parenthesis, as a process may name itself.
	line := "4242 (nginx: w) rker) S 4200 4200 4200 0 -1 4194624 100 0 0 0 250 40 7 3 20 0 1 0 1000 1000 100\n"
	ps, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if ps.pid != 4242 || ps.ppid != 4200 || ps.ticks != 250+40+7+3 {
		t.Fatalf("got %+v", ps)
	}
	for _, bad := range []string{"", "12 no comm", "12 (x) S 1 2", "x (y) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestTreeTicks: a root, a child, a grandchild and an unrelated process;
// only the tree counts.
func TestTreeTicks(t *testing.T) {
	procs := []procStat{
		{pid: 10, ppid: 1, ticks: 5},
		{pid: 11, ppid: 10, ticks: 7},
		{pid: 12, ppid: 11, ticks: 11},
		{pid: 20, ppid: 1, ticks: 1000},
		{pid: 30, ppid: 1, ticks: 3},
	}
	if got := treeTicks(procs, []int{10}); got != 23 {
		t.Errorf("tree of 10: %d ticks, want 23", got)
	}
	if got := treeTicks(procs, []int{10, 30, 99}); got != 26 {
		t.Errorf("trees of 10, 30 and a gone 99: %d ticks, want 26", got)
	}
}

// TestCPUSamplerSelf samples this process through a fake /proc that
// mirrors the real one for our PID only.
func TestCPUSamplerSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		// The CPU figures come from /proc: on Linux (CI, the bench
		// machines) its absence is a failure, elsewhere there is nothing
		// to sample.
		if runtime.GOOS == "linux" {
			t.Fatalf("no /proc on Linux: %v", err)
		}
		t.Skip("no /proc:", err)
	}
	ps, err := parseProcStat(string(b))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pdir := filepath.Join(dir, "4242")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "stat"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := cpuSampler{proc: dir, roots: []int{ps.pid}}.sample()
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(ps.ticks) * 10; got != want {
		t.Errorf("sample %.0f ms, want %.0f", got, want)
	}
	if _, err := parsePIDs("1, 2,x"); err == nil {
		t.Error("parsePIDs accepted x")
	}
	if p, err := parsePIDs("3,4 5"); err != nil || len(p) != 3 {
		t.Errorf("parsePIDs: %v %v", p, err)
	}
}
