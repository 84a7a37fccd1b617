package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DashboardQuery is one query of a provisioned Grafana dashboard.
type DashboardQuery struct {
	Dashboard string // file name
	Panel     string // panel title, or "variable NAME"
	Variable  string // the variable's name for a template variable query
	Type      string // datasource type: grafana-clickhouse-datasource or prometheus
	Query     string // rawSql or expr, as shipped
	// Constants are the dashboard's constant (and custom, textbox)
	// variables' values, which Grafana substitutes as they are.
	Constants map[string]string
}

// LoadDashboards reads every query of deploy/grafana/dashboards/*.json:
// per file, template variable queries first (panels need their values),
// then panel targets.
func LoadDashboards(root string) ([]DashboardQuery, error) {
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []DashboardQuery
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Templating struct {
				List []struct {
					Name       string          `json:"name"`
					Type       string          `json:"type"`
					Query      json.RawMessage `json:"query"`
					Datasource struct {
						Type string `json:"type"`
					} `json:"datasource"`
					Current struct {
						Value json.RawMessage `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Datasource struct {
						Type string `json:"type"`
					} `json:"datasource"`
					RawSQL string `json:"rawSql"`
					Expr   string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		name := filepath.Base(f)
		consts := map[string]string{}
		var queries []DashboardQuery
		for _, v := range d.Templating.List {
			q := rawString(v.Query)
			switch v.Type {
			case "query":
				queries = append(queries, DashboardQuery{Dashboard: name, Panel: "variable " + v.Name, Variable: v.Name, Type: v.Datasource.Type, Query: q})
			case "constant", "textbox":
				consts[v.Name] = q
			case "custom":
				if cur := rawString(v.Current.Value); cur != "" {
					consts[v.Name] = cur
				} else {
					consts[v.Name], _, _ = strings.Cut(q, ",")
				}
			}
		}
		for _, p := range d.Panels {
			for _, t := range p.Targets {
				q := t.RawSQL
				if q == "" {
					q = t.Expr
				}
				if q == "" {
					continue
				}
				queries = append(queries, DashboardQuery{Dashboard: name, Panel: p.Title, Type: t.Datasource.Type, Query: q})
			}
		}
		for i := range queries {
			queries[i].Constants = consts
		}
		out = append(out, queries...)
	}
	return out, nil
}

// rawString reads a JSON string, or the query text of the object form
// newer Grafana writes ({"query": ...} or {"rawSql": ...}).
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Query  string `json:"query"`
		RawSQL string `json:"rawSql"`
	}
	json.Unmarshal(raw, &obj)
	return obj.Query + obj.RawSQL
}

var (
	timeFilter   = regexp.MustCompile(`\$__timeFilter\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)`)
	timeInterval = regexp.MustCompile(`\$__timeInterval\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)`)
	variableRef  = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z][A-Za-z0-9_]*)`)
)

// ExpandMacros rewrites the ClickHouse data source plugin's macros the way
// the plugin does for a dashboard time range [from, to] and panel
// interval, and the dashboard variables from vars. A macro or variable it
// does not know is an error (the query would not run in Grafana either).
func ExpandMacros(sql string, from, to time.Time, interval time.Duration, vars map[string]string) (string, error) {
	f, t := strconv.FormatInt(from.Unix(), 10), strconv.FormatInt(to.Unix(), 10)
	sql = timeFilter.ReplaceAllString(sql, "$1 >= toDateTime("+f+") AND $1 <= toDateTime("+t+")")
	sql = timeInterval.ReplaceAllString(sql, "toStartOfInterval(toDateTime($1), INTERVAL "+strconv.Itoa(int(interval/time.Second))+" second)")
	secs := strconv.Itoa(int(interval / time.Second))
	sql = strings.NewReplacer("$__fromTime", "toDateTime("+f+")", "$__toTime", "toDateTime("+t+")",
		"$__interval_ms", strconv.Itoa(int(interval/time.Millisecond)), "$__interval_s", secs, "${__interval_s}", secs,
		"$__interval", secs+"s").Replace(sql)
	var missing []string
	if i := strings.Index(sql, "$__"); i >= 0 {
		missing = append(missing, sql[i:min(len(sql), i+20)])
	}
	sql = variableRef.ReplaceAllStringFunc(sql, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		missing = append(missing, m)
		return m
	})
	if len(missing) > 0 {
		return sql, fmt.Errorf("unexpanded macros or variables %v", missing)
	}
	return sql, nil
}

// AtTime evaluates a query as if the clock read at: now() and today()
// become that instant and its date. Queries that use them directly
// ("today so far", variables listing the last day) show a past day only
// this way: viewed while the day was live.
func AtTime(sql string, at time.Time) string {
	ts := "toDateTime(" + strconv.FormatInt(at.Unix(), 10) + ")"
	return strings.NewReplacer("now()", ts, "today()", "toDate("+ts+")").Replace(sql)
}

// UsesClock reports whether a query reads the server's clock (now(),
// today()) rather than only the dashboard's time range.
func UsesClock(sql string) bool {
	return strings.Contains(sql, "now()") || strings.Contains(sql, "today()")
}
