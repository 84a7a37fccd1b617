package gctune

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	dir := t.TempDir()
	limited := filepath.Join(dir, "memory.max")
	os.WriteFile(limited, []byte("1073741824\n"), 0o644)
	unlimited := filepath.Join(dir, "unlimited")
	os.WriteFile(unlimited, []byte("max\n"), 0o644)
	meminfo := filepath.Join(dir, "meminfo")
	os.WriteFile(meminfo, []byte("MemTotal:       25165824 kB\nMemFree:        1000 kB\n"), 0o644)

	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	s := Apply(limited, meminfo)
	if s.GCPercent != GCPercent || debug.SetGCPercent(-1) != GCPercent {
		t.Errorf("GC percent %d", s.GCPercent)
	}
	debug.SetGCPercent(GCPercent)
	if s.MemoryLimit != 858993459 || debug.SetMemoryLimit(-1) != 858993459 {
		t.Errorf("memory limit %d, want 80%% of 1 GiB", s.MemoryLimit)
	}
	if s := Apply(unlimited, meminfo); s.MemoryLimit != 12<<30 {
		t.Errorf("outside a container: limit %d, want half of 24 GiB", s.MemoryLimit)
	}
	if s := Apply(unlimited, filepath.Join(dir, "none")); s.MemoryLimit != -1 {
		t.Errorf("nothing known gave a limit of %d", s.MemoryLimit)
	}
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "2GiB")
	if s := Apply(limited, meminfo); s.GCPercent != -1 || s.MemoryLimit != -1 {
		t.Errorf("the environment was overridden: %+v", s)
	}
}
