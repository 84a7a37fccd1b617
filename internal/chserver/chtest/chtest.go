// Package chtest starts real ClickHouse servers (chserver) for tests. The
// test binary's TestMain must call chserver.Child first.
package chtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	return StartWith(tb, nil, users...)
}

// QueryLog turns on system.query_log (off in the engine's defaults),
// flushed every half second and by SYSTEM FLUSH LOGS: a StartWith file.
var QueryLog = map[string]string{"config.d/query_log.xml": "<clickhouse><query_log><database>system</database><table>query_log</table>" +
	"<flush_interval_milliseconds>500</flush_interval_milliseconds></query_log></clickhouse>\n"}

// ProfileDefaults sets settings in the default profile (every user's): a
// StartWith file, for a server whose defaults differ from ClickHouse's.
func ProfileDefaults(settings map[string]string) map[string]string {
	var b strings.Builder
	b.WriteString("<clickhouse><profiles><default>")
	for k, v := range settings {
		fmt.Fprintf(&b, "<%s>%s</%s>", k, v, k)
	}
	b.WriteString("</default></profiles></clickhouse>\n")
	return map[string]string{"users.d/profile_defaults.xml": b.String()}
}

// StartWith is Start with extra server configuration: files maps paths in
// the server's directory to XML, merged by ClickHouse into its
// configuration ("config.d/x.xml") or its users ("users.d/x.xml").
func StartWith(tb testing.TB, files map[string]string, users ...chserver.User) *chserver.Server {
	tb.Helper()
	if os.Getenv(chserver.LibEnv) == "" {
		if Required() {
			tb.Fatalf("%s is not set and DECLINEMON_CLICKHOUSE_REQUIRED=1 (make chdb-lib fetches it)", chserver.LibEnv)
		}
		tb.Skipf("%s not set: no ClickHouse server", chserver.LibEnv)
	}
	dir := tb.TempDir()
	for name, xml := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: dir, Users: users})
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

// Query runs q on s over HTTP (POST; GET is read-only) as the default user
// and returns the rows as TSV fields; any column type is fine. A server
// error fails the test.
func Query(tb testing.TB, s *chserver.Server, q string) [][]string {
	tb.Helper()
	rows, err := TryQuery(s, q)
	if err != nil {
		tb.Fatalf("%s: %v", firstLine(q), err)
	}
	return rows
}

// TryQuery is Query returning the server's error instead of failing.
func TryQuery(s *chserver.Server, q string) ([][]string, error) {
	body, err := s.Query(context.Background(), chserver.User{}, "TabSeparated", q)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		if line != "" {
			out = append(out, strings.Split(line, "\t"))
		}
	}
	return out, nil
}

// Value runs a query of one value (one row, one column).
func Value(tb testing.TB, s *chserver.Server, q string) string {
	tb.Helper()
	rows := Query(tb, s, q)
	if len(rows) != 1 || len(rows[0]) != 1 {
		tb.Fatalf("%s: want one value, got %v", firstLine(q), rows)
	}
	return rows[0][0]
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i] + " …"
	}
	return q
}
