//go:build chdb

// Package chdbtest runs SQL on the ClickHouse engine in-process (chdb's
// libchdb.so via chdb-go) for tests that need nothing but SQL: a session
// that satisfies the storage package's Conn. Inserting tests use a real
// server over the production wire instead (internal/chserver/chtest).
// Build with -tags chdb and CHDB_LIB_PATH set (make test does both).
package chdbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/chdb-io/chdb-go/chdb"
)

// Conn is a chdb session in a temporary directory.
type Conn struct{ s *chdb.Session }

// New opens a session that is closed when the test ends.
func New(t testing.TB) Conn {
	t.Helper()
	s, err := chdb.NewSession(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return Conn{s}
}

// Exec implements storage.Conn.
func (c Conn) Exec(_ context.Context, q string) error {
	_, err := c.s.Query(q, "TSV")
	return err
}

// QueryStrings implements storage.Conn.
func (c Conn) QueryStrings(_ context.Context, q string) ([][]string, error) {
	r, err := c.s.Query(q, "TSV")
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(r.String(), "\n"), "\n") {
		if line != "" {
			out = append(out, strings.Split(line, "\t"))
		}
	}
	return out, nil
}
