package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/declinemon/declinemon/internal/cardtest"
)

// TestReplayCommandPrintsNoCardData runs `declinemon replay` as an operator
// would on a file mixing a clean fleet with lines carrying card numbers
// (internal/cardtest) and checks everything the command writes — stderr
// (summary and log lines) and the alerts file — for the planted numbers.
func TestReplayCommandPrintsNoCardData(t *testing.T) {
	c := cardtest.NewCorpus(cardtest.Options{Seed: 11})
	dir := t.TempDir()
	in := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(in, c.JSONL(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "alerts.jsonl")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"replay", "--input", in, "--alerts-out", out, "--top", "50"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	alerts, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Finder()
	for _, o := range []struct {
		name string
		data []byte
	}{{"stderr", stderr.Bytes()}, {"alerts file", alerts}} {
		seen := map[string]bool{}
		for _, h := range f.Find(o.data) {
			if !seen[h.Secret] {
				seen[h.Secret] = true
				t.Errorf("%s leaks card data planted as %s: %s", o.name, c.KindOf(h.Secret), h)
			}
		}
	}
	if !bytes.Contains(stderr.Bytes(), []byte("sensitive_data")) {
		t.Errorf("summary does not count the card-data rejects:\n%s", stderr.String())
	}
}
