package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
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
