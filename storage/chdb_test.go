//go:build chdb

// These tests need nothing but SQL: they run the schema on the ClickHouse
// engine (26.7) in-process (chdb's libchdb.so, driven by chdb-go). What
// inserts goes over the production wire to a real server instead
// (server_test.go). Run with: CHDB_LIB_PATH=/path/libchdb.so go test -tags chdb ./storage
// (make test fetches the library and does this).
package storage_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/internal/chdbtest"
	"github.com/declinemon/declinemon/storage"
)

func TestMigrateOnChdb(t *testing.T) {
	c := chdbtest.New(t)
	ctx := context.Background()
	applied, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != storage.Latest() {
		t.Fatalf("applied %v on a fresh database", applied)
	}
	again, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil || len(again) != 0 {
		t.Fatalf("re-run applied %v, %v", again, err)
	}
	if v, err := storage.Version(ctx, c, storage.SchemaConfig{}); err != nil || v != storage.Latest() {
		t.Fatalf("version %d, %v", v, err)
	}
	rows, _ := c.QueryStrings(ctx, "SELECT toString(count()) FROM declinemon.schema_migrations")
	if rows[0][0] != strconv.Itoa(storage.Latest()) {
		t.Errorf("schema_migrations has %s rows", rows[0][0])
	}
}

// TestColumnTypesMatchSchema checks the Go side of the wire against the
// table: every inserted column exists with a type its Go slice can fill,
// and every column without a default is inserted.
func TestColumnTypesMatchSchema(t *testing.T) {
	c := chdbtest.New(t)
	ctx := context.Background()
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	rows, err := c.QueryStrings(ctx, "DESCRIBE TABLE declinemon.events")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	defaulted := map[string]bool{}
	for _, r := range rows {
		types[r[0]] = r[1]
		defaulted[r[0]] = r[2] != ""
	}
	compatible := map[string][]string{
		"[]string":    {"String", "LowCardinality(String)", "Enum8("},
		"[]time.Time": {"DateTime64("},
		"[]bool":      {"Bool"},
		"[]int64":     {"Int64"},
		"[]int32":     {"Int32"},
		"[]int16":     {"Int16"},
		"[]int8":      {"Int8"},
		"[]uint16":    {"UInt16"},
	}
	var cols storage.Columns
	inserted := map[string]bool{}
	for i, v := range cols.Values() {
		name := storage.ColumnNames[i]
		inserted[name] = true
		goType := reflect.TypeOf(v).String()
		chType, ok := types[name]
		if !ok {
			t.Errorf("column %s is not in the table", name)
			continue
		}
		match := false
		for _, prefix := range compatible[goType] {
			if strings.HasPrefix(chType, prefix) {
				match = true
			}
		}
		if !match {
			t.Errorf("column %s: Go %s cannot fill ClickHouse %s", name, goType, chType)
		}
	}
	for name := range types {
		if !inserted[name] && !defaulted[name] {
			t.Errorf("table column %s has no default and is not inserted", name)
		}
	}
}
