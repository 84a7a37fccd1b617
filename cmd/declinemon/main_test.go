package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "e.jsonl")
	os.WriteFile(good, []byte(`{"event_id":"e1","ts":"2026-11-27T10:00:00Z","terminal_id":"T","merchant_id":"M","response_code":"00"}`+"\nnot json\n"), 0o644)
	f := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if got := run(context.Background(), args, &stdout, &stderr); got != want {
			t.Errorf("declinemon %v = %d, want %d; stderr:\n%s", args, got, want, stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	f(2)
	f(2, "frobnicate")
	f(1, "health", "--url", "http://127.0.0.1:1/healthz")
	f(2, "replay", "--bogus")
	f(2, "replay", "--input", good, "extra")
	f(2, "replay")
	f(2, "run", "--log-format", "xml")
	for _, cmd := range []string{"run", "replay", "migrate", "health", "demo"} {
		if out := f(0, cmd, "-h"); !strings.Contains(out, "usage: declinemon "+cmd) {
			t.Errorf("%s -h: %s", cmd, out)
		}
	}
	if out := f(0, "--help"); !strings.Contains(out, "declinemon replay") {
		t.Errorf("--help: %s", out)
	}
	f(1, "replay", "--input", filepath.Join(dir, "missing.jsonl"))
	f(1, "replay", "--input", good, "--config", filepath.Join(dir, "missing.yaml"))
	out := f(0, "replay", "--input", good, "--alerts-out", filepath.Join(dir, "a.jsonl"))
	if !strings.Contains(out, "invalid_json") || !strings.Contains(out, "events read") {
		t.Errorf("summary missing counts:\n%s", out)
	}
}

// TestHelpAndUsageErrors: every command answers -h, --help and
// "declinemon help <command>" with its usage on stdout and exit 0; an
// unknown flag, a stray argument or a missing required flag exits 2 with
// the reason and the usage on stderr.
func TestHelpAndUsageErrors(t *testing.T) {
	names := slices.Sorted(maps.Keys(commands))
	call := func(args ...string) (code int, stdout, stderr string) {
		var o, e bytes.Buffer
		code = run(context.Background(), args, &o, &e)
		return code, o.String(), e.String()
	}
	for _, name := range names {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			code, stdout, stderr := call(args...)
			if code != 0 || !strings.HasPrefix(stdout, "usage: declinemon "+name+" ") || !strings.Contains(stdout, "flags:\n") || stderr != "" {
				t.Errorf("declinemon %v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout only", args, code, stdout, stderr)
			}
		}
		for _, args := range [][]string{{name, "--no-such-flag"}, {name, "stray"}} {
			code, stdout, stderr := call(args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: declinemon "+name+" ") {
				t.Errorf("declinemon %v: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, stdout, stderr)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		if code, stdout, _ := call(args...); code != 0 || !strings.Contains(stdout, "declinemon replay") || !strings.Contains(stdout, "Exit codes") {
			t.Errorf("declinemon %v: exit %d, stdout %q", args, code, stdout)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"help", "frobnicate"}} {
		if code, stdout, stderr := call(args...); code != 2 || stdout != "" || !strings.Contains(stderr, "usage:") {
			t.Errorf("declinemon %v: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, stdout, stderr)
		}
	}
	// replay's --input is required.
	code, stdout, stderr := call("replay", "--top", "3")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "--input is required") || !strings.Contains(stderr, "usage: declinemon replay") {
		t.Errorf("replay without --input: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
