// Package proctest reads a process's CPU time and peak memory from /proc,
// for benchmarks that measure the broker and ClickHouse server beside the
// Go process.
package proctest

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is the user+system CPU time a process has used (0 if unknown).
func CPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// PeakRSS is a process's peak resident memory in bytes since the last
// ResetPeakRSS (0 if unknown).
func PeakRSS(pid int) int64 {
	if pid == 0 {
		return 0
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ResetPeakRSS starts a process's peak resident memory afresh.
func ResetPeakRSS(pid int) {
	if pid != 0 {
		_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
	}
}
