// Package chtest starts real ClickHouse servers (chserver) for tests. The
// test binary's TestMain must call chserver.Child first.
package chtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/secret"
	"github.com/declinemon/declinemon/storage"
)

// Required reports whether a missing engine library fails tests instead of
// skipping them (make test sets DECLINEMON_CLICKHOUSE_REQUIRED=1).
func Required() bool { return os.Getenv("DECLINEMON_CLICKHOUSE_REQUIRED") == "1" }

// Start starts a server in a temporary directory, killed when the test
// ends. Without the library it skips (fails when Required).
func Start(tb testing.TB, users ...chserver.User) *chserver.Server {
	tb.Helper()
	if os.Getenv(chserver.LibEnv) == "" {
		if Required() {
			tb.Fatalf("%s is not set and DECLINEMON_CLICKHOUSE_REQUIRED=1 (make chdb-lib fetches it)", chserver.LibEnv)
		}
		tb.Skipf("%s not set: no ClickHouse server", chserver.LibEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: tb.TempDir(), Users: users})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// Config is the storage section that reaches s as user (empty: default).
func Config(s *chserver.Server, user chserver.User) storage.Config {
	return storage.Config{Addr: []string{s.TCPAddr}, Username: user.Name, Password: secret.String(user.Password),
		DialTimeout: 5 * time.Second}
}

// Open connects to s through storage.Open (clickhouse-go/v2, native
// protocol, LZ4), closed when the test ends.
func Open(tb testing.TB, s *chserver.Server, user chserver.User, schema storage.SchemaConfig) *storage.Client {
	tb.Helper()
	cfg := Config(s, user)
	cfg.SchemaConfig = schema
	c, err := storage.Open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
