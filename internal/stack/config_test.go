package stack

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/pipeline"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{root(t)}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRewrites: the shipped files still contain what the stack rewrites,
// the results name no compose service, and declinemon loads its config.
func TestRewrites(t *testing.T) {
	dm, err := DeclinemonYAML(read(t, "deploy", "compose", "declinemon.yaml"), "127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:3", "127.0.0.1:4")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "declinemon.yaml")
	if err := os.WriteFile(path, dm, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DECLINEMON_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	cfg, err := pipeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Brokers[0] != "127.0.0.1:1" || cfg.ClickHouse.Addr[0] != "127.0.0.1:2" || cfg.HTTP.Listen != "127.0.0.1:4" ||
		cfg.Kafka.Topics[0] != Topic || cfg.Kafka.GroupID != GroupID || cfg.ClickHouse.Username != User {
		t.Errorf("rewritten config read as %+v %+v %+v", cfg.Kafka, cfg.ClickHouse, cfg.HTTP)
	}
	if !strings.Contains(string(dm), "env: compose") || !strings.Contains(string(dm), "http://127.0.0.1:4/alerts") {
		t.Errorf("rewrite lost something:\n%s", dm)
	}

	prom, err := PrometheusYAML(read(t, "deploy", "prometheus", "prometheus.yml"), "127.0.0.1:5", "127.0.0.1:6", 2*time.Second, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Global struct {
			Scrape string `yaml:"scrape_interval"`
			Eval   string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(prom, &p); err != nil {
		t.Fatal(err)
	}
	if p.Global.Scrape != "2s" || p.Global.Eval != "1500ms" || len(p.RuleFiles) != 1 || p.RuleFiles[0] != "rules.yml" ||
		!strings.Contains(string(prom), `"127.0.0.1:5"`) || !strings.Contains(string(prom), `"127.0.0.1:6"`) {
		t.Errorf("prometheus.yml rewritten as:\n%s", prom)
	}

	shipped := read(t, "deploy", "alertmanager", "alertmanager.yml")
	am, err := AlertmanagerYAML(shipped, "http://127.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(am), "http://127.0.0.1:7/hooks/") != strings.Count(string(shipped), "/hooks/") {
		t.Errorf("alertmanager.yml rewritten as:\n%s", am)
	}
	// Only the receivers' address changes: routes and inhibit rules stay.
	if strings.ReplaceAll(string(am), "127.0.0.1:7", "127.0.0.1:9094") != string(shipped) {
		t.Error("alertmanager.yml changed beyond the webhook address")
	}

	if _, err := rewrite("x", []byte("a: [kafka:9092]\nb: http://grafana:3000\n"), "[kafka:9092]", "[127.0.0.1:1]"); err == nil {
		t.Error("a compose address left over went unnoticed")
	}
	if _, err := rewrite("x", []byte("a: 1\n"), "[kafka:9092]", "[127.0.0.1:1]"); err == nil {
		t.Error("a missing rewrite went unnoticed")
	}
}

// TestDashboardMacros: every dashboard query expands to plain SQL (or is
// PromQL), with the time range in epoch seconds.
func TestDashboardMacros(t *testing.T) {
	qs, err := LoadDashboards(root(t))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	to := from.Add(3 * time.Hour)
	vars := map[string]string{"merchant": "M-1", "terminal": "T-1"}
	nCH, nVars := 0, 0
	for _, q := range qs {
		if q.Type != "grafana-clickhouse-datasource" {
			continue
		}
		nCH++
		if q.Variable != "" {
			nVars++
		}
		all := map[string]string{}
		for k, v := range q.Constants {
			all[k] = v
		}
		for k, v := range vars {
			all[k] = v
		}
		sql, err := ExpandMacros(q.Query, from, to, time.Minute, all)
		if err != nil {
			t.Errorf("%s / %s: %v", q.Dashboard, q.Panel, err)
		}
		if strings.Contains(sql, "$") {
			t.Errorf("%s / %s: %s", q.Dashboard, q.Panel, sql)
		}
		if strings.Contains(q.Query, "$__timeFilter") && !strings.Contains(sql, ">= toDateTime("+strconv.FormatInt(from.Unix(), 10)+") AND") {
			t.Errorf("%s / %s: time filter expanded as %s", q.Dashboard, q.Panel, sql)
		}
	}
	if nCH < 15 || nVars < 2 {
		t.Errorf("%d ClickHouse queries, %d variables: dashboards not read", nCH, nVars)
	}
	if got := AtTime("x >= now() - INTERVAL 1 DAY", to); got != "x >= toDateTime("+strconv.FormatInt(to.Unix(), 10)+") - INTERVAL 1 DAY" {
		t.Errorf("AtTime: %s", got)
	}
}

// TestDayInReplay: the stack's day, replayed in-process as `declinemon
// replay` does, raises exactly the truth's incidents, the terminal alert
// first and then the outage over its region: the situation the deployed
// inhibit rule is for.
func TestDayInReplay(t *testing.T) {
	s := Day(0)
	sc, alerts, err := scenario.Run(s, classify.Default(), alerting.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Passed() {
		t.Errorf("replay of %s: %+v", s.Name, sc)
	}
	var term, outage int = -1, -1
	for i, a := range alerts {
		if a.State != alerting.StateFiring {
			continue
		}
		switch a.Kind.String() {
		case "terminal_hardware":
			term = i
		case "network_outage":
			outage = i
		}
	}
	if term < 0 || outage < 0 || term > outage {
		t.Errorf("want the terminal alert before the outage: %+v", alerts)
	}
	truth, err := s.Generate(func(*event.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	var termID, region string
	for _, inc := range truth.Incidents {
		switch inc.Type {
		case "failing_terminal":
			termID = inc.ScopeID
		case "region_outage":
			region = inc.ScopeID
		}
	}
	for _, tm := range s.Terminals() {
		if tm.ID == termID && tm.Region != region {
			t.Errorf("terminal %s is in region %s, the outage in %s", termID, tm.Region, region)
		}
	}
}
