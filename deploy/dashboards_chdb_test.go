//go:build chdb

package deploy

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/internal/chdbtest"
	"github.com/declinemon/declinemon/storage"
)

// grafanaMacros expands the ClickHouse datasource's macros and the
// dashboards' variables into plain SQL.
func grafanaMacros(sql string) string {
	sql = regexp.MustCompile(`\$__timeFilter\(([a-z_]+)\)`).ReplaceAllString(sql, "$1 >= now() - INTERVAL 6 HOUR AND $1 <= now()")
	sql = regexp.MustCompile(`\$__timeInterval\(([a-z_]+)\)`).ReplaceAllString(sql, "toStartOfInterval($1, INTERVAL 60 second)")
	sql = strings.NewReplacer("$__fromTime", "(now() - INTERVAL 6 HOUR)", "$__toTime", "now()",
		"${merchant}", "M1", "${terminal}", "T1").Replace(sql)
	return sql
}

// TestDashboardQueriesRunOnTheSchema runs every ClickHouse panel and
// variable query of every dashboard against the migrated schema on the
// ClickHouse 26.7 engine.
func TestDashboardQueriesRunOnTheSchema(t *testing.T) {
	c := chdbtest.New(t)
	if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for file, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if _, err := c.QueryStrings(context.Background(), grafanaMacros(v.Query)); err != nil {
				t.Errorf("%s variable %s: %v", file, v.Name, err)
			}
			n++
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.RawSQL == "" {
					continue
				}
				if _, err := c.QueryStrings(context.Background(), grafanaMacros(tg.RawSQL)); err != nil {
					t.Errorf("%s / %s: %v", file, p.Title, err)
				}
				n++
			}
		}
	}
	if n < 15 {
		t.Errorf("only %d queries checked", n)
	}
}
