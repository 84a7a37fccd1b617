// Package gctune sets the Go garbage collector for a long-running
// streaming process: collect less often (GOGC 400 instead of 100; README,
// Performance), and keep the heap under a soft limit — 80% of the
// container's cgroup v2 memory.max, or half the machine's memory outside
// a container — so the extra headroom never turns into an out-of-memory
// kill: near the limit the collector runs as often as it must. The GOGC
// and GOMEMLIMIT environment variables, when set, win.
package gctune

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// GCPercent is the collector target used when GOGC is not set.
const GCPercent = 400

// Settings is what Apply chose (-1: left to the environment or unset).
type Settings struct {
	GCPercent   int
	MemoryLimit int64
}

// Apply sets the collector; cgroupMax is the path of memory.max (empty:
// /sys/fs/cgroup/memory.max), meminfo of /proc/meminfo (empty: that).
func Apply(cgroupMax, meminfo string) Settings {
	s := Settings{GCPercent: -1, MemoryLimit: -1}
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(GCPercent)
		s.GCPercent = GCPercent
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		if limit := containerLimit(cgroupMax); limit > 0 {
			s.MemoryLimit = limit * 8 / 10
		} else if total := machineMemory(meminfo); total > 0 {
			s.MemoryLimit = total / 2
		}
		if s.MemoryLimit > 0 {
			debug.SetMemoryLimit(s.MemoryLimit)
		}
	}
	return s
}

// containerLimit reads cgroup v2's memory.max (0 when unlimited or
// unknown).
func containerLimit(path string) int64 {
	if path == "" {
		path = "/sys/fs/cgroup/memory.max"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 {
		return 0 // "max": no limit
	}
	return v
}

// machineMemory reads MemTotal from /proc/meminfo (0 when unknown).
func machineMemory(path string) int64 {
	if path == "" {
		path = "/proc/meminfo"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
