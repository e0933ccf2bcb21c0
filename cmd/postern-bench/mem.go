package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memInfo is a process's resident memory from /proc/PID/status, in KiB.
type memInfo struct {
	RSS int64 // VmRSS
	HWM int64 // VmHWM: peak RSS
}

func readMem(pid int) (memInfo, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, fmt.Errorf("--rss-pid: %w", err)
	}
	defer f.Close()
	return parseStatus(bufio.NewScanner(f))
}

func parseStatus(sc *bufio.Scanner) (memInfo, error) {
	var m memInfo
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing %s: %w", key, err)
		}
		*dst = n
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in status (a kernel thread or gone?)")
	}
	return m, sc.Err()
}
