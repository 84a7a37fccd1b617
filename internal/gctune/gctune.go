// Package gctune sets the Go garbage collector for a long-running
// streaming process: collect less often (GOGC 400 instead of 100; README,
// Performance), and keep the heap under a soft limit — 80% of the
// process's cgroup memory limit (v2 memory.max or v1
// memory.limit_in_bytes), or half the machine's memory without one — so the extra headroom never turns into an out-of-memory
// kill: near the limit the collector runs as often as it must. The GOGC
// and GOMEMLIMIT environment variables, when set, win.
package gctune

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
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

// Apply sets the collector; cgroupMax is the file holding the memory
// limit (empty: the process's cgroup, v2 or v1), meminfo the path of
// /proc/meminfo (empty: that).
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

// containerLimit is the memory limit of the process's cgroup (0 when
// unlimited or unknown): path when given, else cgroup v2's memory.max or
// v1's memory.limit_in_bytes of the cgroup /proc/self/cgroup names, or of
// the mount's root (inside a cgroup namespace).
func containerLimit(path string) int64 {
	candidates := []string{path}
	if path == "" {
		candidates = cgroupLimitFiles()
	}
	for _, c := range candidates {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 {
			continue // "max", or v1's "no limit" (a page-rounded MaxInt64)
		}
		return v
	}
	return 0
}

func cgroupLimitFiles() []string {
	var out []string
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			out = append(out, filepath.Join("/sys/fs/cgroup", f[2], "memory.max"))
		case slices.Contains(strings.Split(f[1], ","), "memory"):
			out = append(out, filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.limit_in_bytes"))
		}
	}
	return append(out, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
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
