package storage_test

// Storage against a real ClickHouse 26.7 server (chserver): the production
// wire — storage.Open, clickhouse-go/v2, native protocol, LZ4.

import (
	"context"
	"os"
	"testing"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

func TestMain(m *testing.M) {
	chserver.Child()
	os.Exit(m.Run())
}

// TestMigrateOnAFreshServer: the first thing a new user runs. The database
// does not exist yet; migrate creates it, and again is a no-op.
func TestMigrateOnAFreshServer(t *testing.T) {
	s := chtest.Start(t)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	ctx := context.Background()
	applied, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil {
		t.Fatalf("migrate on a fresh server: %v", err)
	}
	if len(applied) != storage.Latest() {
		t.Fatalf("applied %v", applied)
	}
	if again, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil || len(again) != 0 {
		t.Fatalf("second migrate: %v, %v", again, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after migrate: %v", err)
	}
}
