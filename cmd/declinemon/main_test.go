package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
