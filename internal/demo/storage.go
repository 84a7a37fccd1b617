package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/storage"
)

// DefaultLib is where `make chdb-lib` (and so `make demo`) puts the
// ClickHouse engine library.
func DefaultLib() string {
	if p := os.Getenv(chserver.LibEnv); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "declinemon", "chdb-26.7.3", "package", "libchdb.so")
}

// DatedForToday dates s to end now, so that the cookbook's "today" and
// "last 24 hours" find it — but to start no earlier than midnight in the
// business time zone, so that just after midnight "today" is not empty
// (the scenario then runs into the next hours).
func DatedForToday(s scenario.Scenario, now time.Time) scenario.Scenario {
	start := now.UTC().Truncate(time.Minute).Add(-time.Duration(s.Duration))
	if loc, err := time.LoadLocation(storage.DefaultBusinessTimezone); err == nil {
		l := now.In(loc)
		if midnight := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc); start.Before(midnight) {
			start = midnight.UTC()
		}
	}
	s.Start = start
	return s
}

// Storage is the demo's ClickHouse: a real server in a child process (the
// engine library's own listeners, see internal/chserver), the schema, the
// writer and the alerts table. Analysts query it over HTTP while the demo
// runs.
type Storage struct {
	Server *chserver.Server
	Client *storage.Client
	Writer *storage.Writer
	Alerts *storage.AlertTable
	dir    string
}

// StartStorage starts the server on the engine library lib, migrates and
// returns the writer; (nil, nil) when lib does not exist.
func StartStorage(ctx context.Context, lib string, log *zap.Logger) (*Storage, error) {
	if lib == "" {
		return nil, nil
	}
	if _, err := os.Stat(lib); err != nil {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "declinemon-demo-clickhouse-")
	if err != nil {
		return nil, err
	}
	s := &Storage{dir: dir}
	if s.Server, err = chserver.Start(ctx, chserver.Options{Lib: lib, Dir: dir}); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting the demo's ClickHouse server: %w", err)
	}
	cfg := storage.Config{Addr: []string{s.Server.TCPAddr}, DialTimeout: 5 * time.Second}
	if s.Client, err = storage.Open(cfg); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := storage.Migrate(ctx, s.Client, storage.SchemaConfig{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrating the demo's ClickHouse: %w", err)
	}
	s.Writer = storage.NewWriter(s.Client, storage.WriterConfig{})
	s.Alerts = storage.NewAlertTable(s.Client, log)
	return s, nil
}

// Curl is a command an analyst can paste to query the server.
func (s *Storage) Curl() string {
	return fmt.Sprintf("curl -s 'http://%s/' --data-binary 'SELECT cause, count() AS attempts FROM declinemon.events GROUP BY cause ORDER BY attempts DESC FORMAT PrettyCompact'",
		s.Server.HTTPAddr)
}

// Query runs q over HTTP and returns the server's PrettyCompact table.
func (s *Storage) Query(ctx context.Context, q string) (string, error) {
	body, err := s.Server.Query(ctx, chserver.User{}, "PrettyCompactMonoBlock", q)
	return string(body), err
}

// Cookbook runs the named cookbook queries and writes their results.
func (s *Storage) Cookbook(ctx context.Context, w io.Writer, names ...string) error {
	for _, name := range names {
		q, err := storage.CookbookQuery(name, storage.SchemaConfig{})
		if err != nil {
			return err
		}
		out, err := s.Query(ctx, "SELECT * FROM (\n"+strings.TrimRight(strings.TrimSpace(q), ";")+"\n) LIMIT 10")
		if err != nil {
			return fmt.Errorf("cookbook query %s: %w", name, err)
		}
		fmt.Fprintf(w, "\ncookbook: %s (deploy/clickhouse/queries/%s.sql, first 10 rows)\n%s", strings.ReplaceAll(name, "_", " "), name, out)
	}
	return nil
}

// Close writes the queued alert records and stops the server.
func (s *Storage) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.Alerts != nil {
		s.Alerts.Close(ctx)
	}
	if s.Client != nil {
		s.Client.Close()
	}
	if s.Server != nil {
		s.Server.Stop(10 * time.Second)
	}
	os.RemoveAll(s.dir)
}
