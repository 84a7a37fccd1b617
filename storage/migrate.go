// Package storage keeps declinemon's data in ClickHouse: schema migrations
// (deploy/clickhouse/*.sql), the column layout of the events table, and a
// batching writer that is the pipeline's Store (offsets commit only after
// ClickHouse acknowledges). The wire (clickhouse-go/v2) sits behind two
// small interfaces so everything else is tested against a real ClickHouse
// engine in-process (chdb) and against fakes.
package storage

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	schema "github.com/declinemon/declinemon/deploy/clickhouse"
)

// Conn is what migrations need: run a statement, read rows as strings.
type Conn interface {
	Exec(ctx context.Context, query string) error
	QueryStrings(ctx context.Context, query string) ([][]string, error)
}

// SchemaConfig names the database and retention.
type SchemaConfig struct {
	Database      string `yaml:"database"`        // default declinemon
	EventsTTLDays int    `yaml:"events_ttl_days"` // raw events, default 90
	RollupTTLDays int    `yaml:"rollup_ttl_days"` // rollups and alerts, default 730
	// BusinessTimezone is where "today" and "this hour" are, for the
	// cookbook queries and dashboards (IANA name, default Asia/Shanghai).
	// Timestamps are stored in UTC whatever it is. declinemon fills it
	// from the top-level business_timezone (pipeline.Config), the one
	// zone for people; this key is its older name.
	BusinessTimezone string `yaml:"business_timezone"`
}

// DefaultBusinessTimezone is the fleet's zone when none is configured.
const DefaultBusinessTimezone = "Asia/Shanghai"

func (c SchemaConfig) withDefaults() SchemaConfig {
	if c.Database == "" {
		c.Database = "declinemon"
	}
	if c.EventsTTLDays == 0 {
		c.EventsTTLDays = 90
	}
	if c.RollupTTLDays == 0 {
		c.RollupTTLDays = 730
	}
	if c.BusinessTimezone == "" {
		c.BusinessTimezone = DefaultBusinessTimezone
	}
	return c
}

// Migration is one versioned file.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations reads the embedded schema files in version order, with
// placeholders filled from cfg.
func Migrations(cfg SchemaConfig) ([]Migration, error) {
	cfg = cfg.withDefaults()
	names, err := fs.Glob(schema.Migrations, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	slices.Sort(names)
	repl := strings.NewReplacer("${db}", cfg.Database,
		"${events_ttl_days}", strconv.Itoa(cfg.EventsTTLDays), "${rollup_ttl_days}", strconv.Itoa(cfg.RollupTTLDays), "${tz}", cfg.BusinessTimezone)
	var out []Migration
	for _, n := range names {
		v, err := strconv.Atoi(strings.SplitN(n, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its version number", n)
		}
		data, err := fs.ReadFile(schema.Migrations, n)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", n, err)
		}
		m := Migration{Version: v, Name: strings.TrimSuffix(n, ".sql")}
		for _, stmt := range splitStatements(repl.Replace(string(data))) {
			m.Statements = append(m.Statements, stmt)
		}
		out = append(out, m)
	}
	return out, nil
}

// splitStatements splits on ";" at the end of a line; comment-only chunks
// are dropped.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = appendStmt(out, cur.String())
			cur.Reset()
		}
	}
	return appendStmt(out, cur.String())
}

func appendStmt(out []string, s string) []string {
	var body []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
			body = append(body, l)
		}
	}
	if len(body) == 0 {
		return out
	}
	return append(out, strings.TrimSuffix(strings.TrimSpace(strings.Join(body, "\n")), ";"))
}

// Migrate creates the database and applies, in order, every migration not
// yet recorded in schema_migrations. Re-running is a no-op. It returns the
// names applied now.
func Migrate(ctx context.Context, conn Conn, cfg SchemaConfig) ([]string, error) {
	cfg = cfg.withDefaults()
	migs, err := Migrations(cfg)
	if err != nil {
		return nil, err
	}
	db := cfg.Database
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("preparing schema_migrations: %w", err)
		}
	}
	rows, err := conn.QueryStrings(ctx, "SELECT toString(version) FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading schema version: %w", err)
	}
	done := map[int]bool{}
	for _, r := range rows {
		v, _ := strconv.Atoi(r[0])
		done[v] = true
	}
	var applied []string
	for _, m := range migs {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return applied, fmt.Errorf("migration %s, statement %d: %w", m.Name, i+1, err)
			}
		}
		q := fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name) VALUES (%d, '%s')", db, m.Version, m.Name)
		if err := conn.Exec(ctx, q); err != nil {
			return applied, fmt.Errorf("recording migration %s: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
	}
	return applied, nil
}

// Version returns the highest applied migration (0 for none).
func Version(ctx context.Context, conn Conn, cfg SchemaConfig) (int, error) {
	cfg = cfg.withDefaults()
	rows, err := conn.QueryStrings(ctx, "SELECT toString(max(version)) FROM "+cfg.Database+".schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	v, _ := strconv.Atoi(rows[0][0])
	return v, nil
}

// Latest is the highest migration version shipped in this binary.
func Latest() int {
	migs, _ := Migrations(SchemaConfig{})
	if len(migs) == 0 {
		return 0
	}
	return migs[len(migs)-1].Version
}

// CookbookQuery returns the analyst cookbook query name
// (deploy/clickhouse/queries/<name>.sql) with the business time zone and
// the database filled in.
func CookbookQuery(name string, cfg SchemaConfig) (string, error) {
	cfg = cfg.withDefaults()
	data, err := fs.ReadFile(schema.Queries, "queries/"+name+".sql")
	if err != nil {
		return "", fmt.Errorf("cookbook query %s: %w", name, err)
	}
	return strings.NewReplacer("${db}", cfg.Database, "${tz}", cfg.BusinessTimezone, "declinemon.", cfg.Database+".").Replace(string(data)), nil
}
