package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/storage"
)

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Timezone   string `json:"timezone"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			RawSQL string `json:"rawSql"`
			Expr   string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	out := map[string]dashboard{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// TestDashboards checks each dashboard exists, uses only provisioned data
// sources, reads ClickHouse rollups (raw events only in the terminal
// drill-down) and only metrics declinemon exports or records.
func TestDashboards(t *testing.T) {
	ds := map[string]string{}
	var prov struct {
		Datasources []struct{ UID, Type string } `yaml:"datasources"`
	}
	data, _ := os.ReadFile("grafana/provisioning/datasources/datasources.yml")
	if err := yaml.Unmarshal(data, &prov); err != nil {
		t.Fatal(err)
	}
	for _, d := range prov.Datasources {
		ds[d.UID] = d.Type
	}
	dashboards := loadDashboards(t)
	for _, want := range []string{"fleet-overview.json", "merchant.json", "terminal.json", "network.json", "alerts.json", "service-health.json"} {
		if _, ok := dashboards[want]; !ok {
			t.Errorf("missing dashboard %s", want)
		}
	}
	rules, _ := os.ReadFile("prometheus/rules.yml")
	metric := regexp.MustCompile(`\b(declinemon[:_][a-z_:0-9]+)`)
	exported := exportedMetrics(t)
	for file, d := range dashboards {
		if len(d.Panels) == 0 || d.UID == "" {
			t.Errorf("%s: no panels or uid", file)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if typ, ok := ds[tg.Datasource.UID]; !ok || typ != tg.Datasource.Type {
					t.Errorf("%s/%s: datasource %+v is not provisioned", file, p.Title, tg.Datasource)
				}
				if tg.RawSQL != "" && strings.Contains(tg.RawSQL, "declinemon.events") && file != "terminal.json" {
					t.Errorf("%s/%s: dashboards read rollups, not the raw table", file, p.Title)
				}
				for _, m := range metric.FindAllString(tg.Expr, -1) {
					base := strings.TrimSuffix(m, "_bucket")
					if !exported[base] && !strings.Contains(string(rules), "record: "+m) {
						t.Errorf("%s/%s: metric %s is neither exported nor recorded", file, p.Title, m)
					}
				}
			}
		}
	}
}

// TestDashboardsUseTheBusinessZone checks that every dashboard shows time
// in the business zone (its timezone is the business_tz constant, shipped
// as storage.DefaultBusinessTimezone), and that every calendar function in
// a dashboard or cookbook query (day, hour, week, interval starts) is given
// that zone, never the server's: '${business_tz}' in dashboards, '${tz}' in
// the cookbook.
func TestDashboardsUseTheBusinessZone(t *testing.T) {
	for file, d := range loadDashboards(t) {
		if d.Timezone != storage.DefaultBusinessTimezone {
			t.Errorf("%s: timezone %q, want the business zone %q", file, d.Timezone, storage.DefaultBusinessTimezone)
		}
		tz := ""
		for _, v := range d.Templating.List {
			if v.Name == "business_tz" {
				if v.Type != "constant" {
					t.Errorf("%s: business_tz is a %s variable, want constant", file, v.Type)
				}
				tz = v.Query
			}
		}
		clickhouse := false
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.RawSQL == "" {
					continue
				}
				clickhouse = true
				for _, msg := range zoneProblems(tg.RawSQL, "'${business_tz}'") {
					t.Errorf("%s / %s: %s", file, p.Title, msg)
				}
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				for _, msg := range zoneProblems(v.Query, "'${business_tz}'") {
					t.Errorf("%s variable %s: %s", file, v.Name, msg)
				}
			}
		}
		if clickhouse && tz != d.Timezone {
			t.Errorf("%s: business_tz constant %q differs from the dashboard timezone %q", file, tz, d.Timezone)
		}
	}
	files, _ := filepath.Glob("clickhouse/queries/*.sql")
	if len(files) < 6 {
		t.Fatalf("cookbook: %d queries", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range zoneProblems(string(data), "'${tz}'") {
			t.Errorf("%s: %s", f, msg)
		}
	}
}

func TestZoneProblems(t *testing.T) {
	for sql, bad := range map[string]bool{
		"SELECT toStartOfHour(minute, '${tz}') FROM x":                                false,
		"SELECT toDate(minute, '${tz}') = toDate(now(), '${tz}')":                     false,
		"SELECT toStartOfHour(minute) FROM x":                                         true,
		"SELECT toDate(minute) FROM x":                                                true,
		"SELECT toStartOfDay(toTimeZone(minute, '${tz}')) FROM x":                     true,
		"SELECT count() FROM x WHERE minute >= today()":                               true,
		"SELECT $__timeInterval(minute) AS time":                                      true,
		"SELECT toDateTime(detected_at), minute AS time FROM x -- toStartOfDay(x)":    false,
		"SELECT toStartOfInterval(minute, INTERVAL 1 hour, '${tz}') AS h, toHour(ts)": true,
	} {
		if got := len(zoneProblems(sql, "'${tz}'")) > 0; got != bad {
			t.Errorf("%q: problems %v, want %v", sql, zoneProblems(sql, "'${tz}'"), bad)
		}
	}
}

var (
	calendarCall = regexp.MustCompile(`\b(toDate|toDate32|toStartOfDay|toStartOfHour|toStartOfInterval|toStartOfWeek|toMonday|` +
		`toStartOfMonth|toStartOfQuarter|toStartOfYear|toYYYYMM|toYYYYMMDD|toHour|toDayOfWeek|toDayOfMonth|toRelativeDayNum|formatDateTime)\s*\(`)
	serverZoneOnly = regexp.MustCompile(`\b(today|yesterday)\s*\(|\$__timeInterval(_ms)?\(`)
	sqlComment     = regexp.MustCompile(`--[^\n]*`)
)

// zoneProblems lists the calls in sql that would take the server's zone:
// a calendar function whose own arguments do not name zone, today(),
// yesterday(), and the Grafana macro $__timeInterval (UTC-aligned buckets).
func zoneProblems(sql, zone string) []string {
	sql = sqlComment.ReplaceAllString(sql, "")
	var out []string
	for _, m := range serverZoneOnly.FindAllString(sql, -1) {
		out = append(out, m+" takes the server's zone")
	}
	for _, loc := range calendarCall.FindAllStringSubmatchIndex(sql, -1) {
		depth, end := 0, -1
		for i := loc[1] - 1; i < len(sql) && end < 0; i++ {
			switch sql[i] {
			case '(':
				depth++
			case ')':
				if depth--; depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			out = append(out, "unbalanced "+sql[loc[0]:loc[1]])
			continue
		}
		call := sql[loc[0] : end+1]
		// The zone must be the call's own argument, not one of a nested call.
		args, depth := "", 0
		for _, r := range call[loc[1]-loc[0] : len(call)-1] {
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 && r != ')' {
				args += string(r)
			}
		}
		if !strings.Contains(args, zone) {
			out = append(out, call+" does not name the business zone "+zone)
		}
	}
	return out
}

// exportedMetrics reads the metric names declared beside what they count
// (the pipeline's counters, the storage writer).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, file := range []string{"../pipeline/counters.go", "../storage/metrics.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(declinemon_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
	}
	return out
}
