package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procStat is what /proc/PID/stat says about CPU time and parentage.
type procStat struct {
	pid, ppid int
	// ticks is utime+stime+cutime+cstime: the process's own CPU time and
	// that of its children it has reaped (Postfix's smtpd processes,
	// nginx workers that were replaced), in clock ticks.
	ticks int64
}

// parseProcStat reads one /proc/PID/stat line. The command name (field 2)
// is in parentheses and may hold spaces and parentheses itself: the fields
// after it start after the last ')'.
func parseProcStat(line string) (procStat, error) {
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("stat line without (comm): %q", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procStat{}, fmt.Errorf("stat pid: %w", err)
	}
	// After ')': state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(line[closing+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat line of pid %d: %d fields after comm", pid, len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat ppid of %d: %w", pid, err)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("stat times of %d: %w", pid, err)
		}
		ticks += n
	}
	return procStat{pid: pid, ppid: ppid, ticks: ticks}, nil
}

// readProcs reads every process's stat; processes that vanish meanwhile
// are skipped.
func readProcs(proc string) ([]procStat, error) {
	dirs, err := filepath.Glob(filepath.Join(proc, "[0-9]*", "stat"))
	if err != nil {
		return nil, err
	}
	out := make([]procStat, 0, len(dirs))
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		if ps, err := parseProcStat(string(b)); err == nil {
			out = append(out, ps)
		}
	}
	return out, nil
}

// treeTicks sums the CPU ticks of the roots and all their descendants.
// A descendant that exits between two samples moves its time into its
// parent's cutime/cstime once reaped, so the sum stays comparable.
func treeTicks(procs []procStat, roots []int) int64 {
	children := map[int][]int{}
	byPID := map[int]procStat{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
		byPID[p.pid] = p
	}
	var sum int64
	seen := map[int]bool{}
	stack := append([]int(nil), roots...)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if p, ok := byPID[pid]; ok {
			sum += p.ticks
		}
		stack = append(stack, children[pid]...)
	}
	return sum
}

// cpuSampler measures the CPU time of the process trees of --cpu-pids.
type cpuSampler struct {
	proc  string // "/proc"
	roots []int
}

// sample returns the trees' CPU time so far, in milliseconds.
func (c cpuSampler) sample() (float64, error) {
	procs, err := readProcs(c.proc)
	if err != nil {
		return 0, fmt.Errorf("--cpu-pids: %w", err)
	}
	return float64(treeTicks(procs, c.roots)) * 1000 / clockTicks, nil
}

// parsePIDs reads --cpu-pids: PIDs separated by commas or spaces.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--cpu-pids: %q is not a PID", f)
		}
		pids = append(pids, n)
	}
	return pids, nil
}
