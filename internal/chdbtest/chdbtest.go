//go:build chdb

// Package chdbtest runs SQL on the ClickHouse engine in-process (chdb's
// libchdb.so via chdb-go) for tests: a session that satisfies the storage
// package's Conn and Inserter. Build with -tags chdb and CHDB_LIB_PATH set
// (make test does both).
package chdbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chdb-io/chdb-go/chdb"

	"github.com/declinemon/declinemon/storage"
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

// Insert implements storage.Inserter: the columns the clickhouse-go layer
// appends, sent as JSONEachRow with the same deduplication settings.
func (c Conn) Insert(_ context.Context, cols *storage.Columns, token string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO declinemon.events (%s) SETTINGS insert_deduplicate = 1, insert_deduplication_token = '%s', deduplicate_blocks_in_dependent_materialized_views = 1 FORMAT JSONEachRow\n",
		strings.Join(storage.ColumnNames, ", "), token)
	vals := cols.Values()
	for i := 0; i < cols.Len(); i++ {
		row := make(map[string]any, len(storage.ColumnNames))
		for j, name := range storage.ColumnNames {
			v := reflect.ValueOf(vals[j]).Index(i).Interface()
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format("2006-01-02 15:04:05.000")
			}
			row[name] = v
		}
		line, _ := json.Marshal(row)
		b.Write(line)
		b.WriteByte('\n')
	}
	_, err := c.s.Query(b.String(), "TSV")
	return err
}
