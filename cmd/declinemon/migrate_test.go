package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

func TestMain(m *testing.M) {
	chserver.Child()
	os.Exit(m.Run())
}

// TestMigrateCommandOnAFreshServer: `declinemon migrate` as a new user runs
// it, against a real ClickHouse server with no declinemon database, as
// compose's user with a password: it creates the schema (exit 0), again is
// a no-op, and the schema is at this build's version. A wrong password
// exits 1 saying so.
func TestMigrateCommandOnAFreshServer(t *testing.T) {
	user := chserver.User{Name: "declinemon", Password: "declinemon"}
	s := chtest.Start(t, user)
	dir := t.TempDir()
	write := func(name, password string) string {
		p := filepath.Join(dir, name)
		cfg := fmt.Sprintf("clickhouse:\n  addr: [%q]\n  username: declinemon\n  password: %s\n", s.TCPAddr, password)
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "declinemon")
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--config", good}, &stdout, &stderr); code != 0 {
			t.Fatalf("migrate #%d exited %d:\n%s", i+1, code, stderr.String())
		}
		if i == 0 && !strings.Contains(stderr.String(), "001_events") {
			t.Errorf("the first migrate did not say what it applied:\n%s", stderr.String())
		}
	}
	c := chtest.Open(t, s, user, storage.SchemaConfig{})
	if v, err := storage.Version(context.Background(), c, storage.SchemaConfig{}); err != nil || v != storage.Latest() {
		t.Fatalf("schema version %d (%v), want %d", v, err, storage.Latest())
	}

	// A rejected handshake takes this kind of server down: its own.
	s2 := chtest.Start(t, user)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(fmt.Sprintf("clickhouse:\n  addr: [%q]\n  username: declinemon\n  password: wrong\n", s2.TCPAddr)), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--config", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("migrate with a wrong password exited %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "516") && !strings.Contains(strings.ToLower(stderr.String()), "authentication") {
		t.Errorf("the failure does not say authentication failed:\n%s", stderr.String())
	}
}
