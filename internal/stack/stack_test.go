package stack

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/internal/chserver"
)

func TestMain(m *testing.M) {
	chserver.Child() // the ClickHouse server is this binary re-executed
	os.Exit(m.Run())
}

// TestSystem starts the compose topology as local processes (Start),
// plays Day(0) through loadgen into the topic declinemon was started
// before, and checks what each service ends up with:
//
//	topic    declinemon logged that it waits for the topic, /readyz said
//	         so, then it consumed;
//	(a)      every incident of the truth reached Alertmanager, routed to
//	         its receiver, and the terminal alert is inhibited under the
//	         outage over its region; nothing else fired;
//	(b)      ClickHouse rows and rollups match the produced stream, counted
//	         from loadgen generate's output;
//	(c)      every Grafana ClickHouse query returns rows on that day;
//	(d)      every Prometheus recording rule has a sane value;
//	(e)      /readyz is 200 and the committed lag is 0.
//
// DECLINEMON_SYSTEM=1 runs it; DECLINEMON_SYSTEM_SPEED (default 180) is
// loadgen's --speed; DECLINEMON_SYSTEM_DIR keeps configurations and logs.
func TestSystem(t *testing.T) {
	if os.Getenv("DECLINEMON_SYSTEM") != "1" {
		t.Skip("system test (the compose topology as local processes, a few minutes): set DECLINEMON_SYSTEM=1")
	}
	speed := 180.0
	if v := os.Getenv("DECLINEMON_SYSTEM_SPEED"); v != "" {
		var err error
		if speed, err = strconv.ParseFloat(v, 64); err != nil || speed <= 0 {
			t.Fatalf("DECLINEMON_SYSTEM_SPEED=%q", v)
		}
	}
	dir := t.TempDir()
	if keep := os.Getenv("DECLINEMON_SYSTEM_DIR"); keep != "" {
		dir = keep
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	st, err := Start(ctx, Options{Dir: dir, ScrapeInterval: 2 * time.Second, EvaluationInterval: 2 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	timings := append([]Timing(nil), st.Timings...)
	step := func(name string, t0 time.Time) {
		timings = append(timings, Timing{name, time.Since(t0)})
		t.Logf("%s in %s", name, time.Since(t0).Round(time.Millisecond))
	}
	t.Cleanup(func() {
		t0 := time.Now()
		st.Stop()
		step("stopped everything", t0)
		var b strings.Builder
		for _, x := range timings {
			fmt.Fprintf(&b, "  %-70s %8s\n", x.Step, x.Took.Round(100*time.Millisecond))
		}
		fmt.Fprintf(&b, "  %-70s %8s\n", "total", time.Since(began).Round(100*time.Millisecond))
		t.Logf("timings:\n%s", b.String())
		if t.Failed() {
			t.Logf("configurations and logs in %s (set DECLINEMON_SYSTEM_DIR to keep them)\ndeclinemon log tail:\n%s", dir, st.Run.Tail(4000))
		}
	})

	// Before the topic exists: declinemon is up, says it waits, and is
	// not ready.
	t.Run("waits-for-topic", func(t *testing.T) {
		if !waitFor(20*time.Second, func() bool { return strings.Contains(string(st.Run.Output()), "waiting for topics to be created") }) {
			t.Errorf("declinemon, started before %s exists, did not log that it waits for it; log:\n%s", Topic, st.Run.Tail(3000))
		}
		code, body, err := st.Readyz(ctx)
		if err != nil || code != 503 || !strings.Contains(body, Topic) {
			t.Errorf("/readyz before the topic exists: %d %q %v, want 503 naming %s", code, body, err, Topic)
		}
	})

	// The day and its oracle: the same spec, generated to a file.
	t0 := time.Now()
	day := Day(0)
	spec := filepath.Join(dir, "loadgen", "day.json")
	if err := WriteSpec(spec, day); err != nil {
		t.Fatal(err)
	}
	oracle, truth, err := st.Generate(ctx, spec, filepath.Join(dir, "loadgen"))
	if err != nil {
		t.Fatal(err)
	}
	if oracle.Events != truth.Events || len(truth.Incidents) != len(day.Incidents) {
		t.Fatalf("oracle counted %d events, truth says %d (%d incidents)", oracle.Events, truth.Events, len(truth.Incidents))
	}
	step(fmt.Sprintf("loadgen generate: %d events, %d incidents (oracle)", oracle.Events, len(truth.Incidents)), t0)

	// Nothing produces yet: the topic must still be missing a couple of
	// partition_watch_intervals (5s) after declinemon started. The broker
	// creates topics on first use (compose's apache/kafka default), so a
	// consumer whose metadata requests allow auto-creation creates it.
	t.Run("topic-not-created-by-the-consumer", func(t *testing.T) {
		for time.Since(st.RunStarted) < 8*time.Second {
			ok, err := st.TopicExists(ctx, Topic)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				code, body, _ := st.Readyz(ctx)
				t.Errorf("%s was created %s after declinemon started, before anything produced to it (auto.create.topics.enable=true, "+
					"as in compose): declinemon's consumer created its own input topic with the broker's defaults; /readyz now %d %q",
					Topic, time.Since(st.RunStarted).Round(100*time.Millisecond), code, strings.TrimSpace(body))
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	// Play the day as compose's loadgen does (it creates the topic).
	watch := st.WatchAlertmanager(200 * time.Millisecond)
	defer watch.Stop()
	t0 = time.Now()
	prod, err := st.Produce(spec, speed)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 6*time.Minute)
	err = prod.Wait(pctx)
	pcancel()
	if err != nil {
		t.Fatalf("loadgen produce: %v", err)
	}
	messages, events, err := Produced(prod)
	if err != nil {
		t.Fatal(err)
	}
	if messages != oracle.Events || events != oracle.Events {
		t.Errorf("loadgen produced %d messages (%d events); the generated day has %d", messages, events, oracle.Events)
	}
	step(fmt.Sprintf("loadgen produce --speed %g: %d messages (%.0f/s)", speed, messages, float64(messages)/time.Since(t0).Seconds()), t0)

	// The consumer (detection and storage beside it) commits the end
	// offsets: everything is checkpointed and stored.
	t0 = time.Now()
	committed, end, err := st.WaitCaughtUp(ctx, Topic, GroupID, 2*time.Minute)
	if err != nil {
		t.Errorf("group %s: %v", GroupID, err)
	}
	caughtUp := time.Now()
	step(fmt.Sprintf("the group caught up after loadgen finished (%v)", committed), t0)
	code, body, _ := st.Readyz(ctx)
	t.Logf("/readyz when caught up: %d %s", code, strings.TrimSpace(body))

	t.Run("waited-then-consumed", func(t *testing.T) {
		log := string(st.Run.Output())
		w, c := strings.Index(log, "waiting for topics to be created"), strings.Index(log, "all topics exist; consuming")
		if w < 0 || c < w {
			t.Errorf("want the wait logged, then \"all topics exist; consuming\": at %d, %d", w, c)
		}
		if Lag(committed, end) != 0 || len(end) == 0 {
			t.Errorf("not consumed: committed %v, end %v", committed, end)
		}
	})

	// (d) first: the rules' 5m rates still cover the production.
	t0 = time.Now()
	t.Run("d-prometheus-recording-rules", func(t *testing.T) { checkRecordingRules(ctx, t, st) })
	step("(d) prometheus recording rules", t0)

	t0 = time.Now()
	t.Run("a-alertmanager", func(t *testing.T) { checkAlertmanager(ctx, t, st, watch, truth) })
	step("(a) alertmanager", t0)

	t0 = time.Now()
	t.Run("b-clickhouse-matches-stream", func(t *testing.T) { checkClickHouse(ctx, t, st, oracle, truth, messages) })
	step("(b) clickhouse rows and rollups", t0)

	t0 = time.Now()
	t.Run("c-grafana-queries", func(t *testing.T) { checkGrafana(ctx, t, st, day) })
	step("(c) grafana queries", t0)

	t0 = time.Now()
	t.Run("e-ready-and-lag-zero", func(t *testing.T) { checkReady(ctx, t, st, caughtUp) })
	step("(e) readyz and lag", t0)

	t0 = time.Now()
	t.Run("f-ops-console", func(t *testing.T) { checkConsole(ctx, t, st, truth) })
	step("(f) ops console", t0)
}

// checkConsole: declinemon's own console lists every injected incident's
// scope, and a drill-down shows the scope's last 24 hours from the real
// ClickHouse server (through clickhouse-go, as the dashboards would).
func checkConsole(ctx context.Context, t *testing.T, st *Stack, truth scenario.Truth) {
	base := "http://" + st.DeclinemonAddr
	code, body, err := get(ctx, base+"/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /: %d %v", code, err)
	}
	page := string(body)
	for _, inc := range truth.Incidents {
		if !strings.Contains(page, `href="/scope/`+inc.ScopeType+`/`+url.PathEscape(inc.ScopeID)+`"`) {
			t.Errorf("injected %s on %s=%s: not on the console", inc.Type, inc.ScopeType, inc.ScopeID)
		}
	}
	if !strings.Contains(page, "Top failing terminals today") || strings.Contains(page, `class="error"`) {
		t.Errorf("the console's ClickHouse panel is missing or failed")
	}
	inc := truth.Incidents[0]
	for _, i := range truth.Incidents {
		if i.ScopeType == "region" || i.ScopeType == "issuer" {
			inc = i
		}
	}
	code, body, err = get(ctx, base+"/scope/"+inc.ScopeType+"/"+url.PathEscape(inc.ScopeID))
	if err != nil || code != http.StatusOK {
		t.Fatalf("drill-down %s=%s: %d %v", inc.ScopeType, inc.ScopeID, code, err)
	}
	if p := string(body); !strings.Contains(p, "Last 24 hours, by hour") || strings.Contains(p, `class="error"`) || !strings.Contains(p, "<rect") {
		t.Errorf("drill-down %s=%s: no ClickHouse history:\n%s", inc.ScopeType, inc.ScopeID, p)
	}
}

func waitFor(limit time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func incidentKey(e scenario.Expected) string { return e.Kind + " " + e.ScopeType + "=" + e.ScopeID }

// receiverFor is the receiver alertmanager.yml routes each kind to.
var receiverFor = map[string]string{
	"network_outage":    "network-oncall",
	"issuer_outage":     "payments-ops",
	"fraud_attack":      "risk",
	"terminal_hardware": "field-service",
	"data_transmission": "field-service",
}

// groupWaitZero are the kinds whose route notifies at once (group_wait
// 0s): their webhook notification must have arrived.
var groupWaitZero = map[string]bool{"network_outage": true, "issuer_outage": true, "fraud_attack": true}

func checkAlertmanager(ctx context.Context, t *testing.T, st *Stack, watch *AMWatch, truth scenario.Truth) {
	want := map[string]scenario.Expected{}
	for _, inc := range truth.Incidents {
		want[incidentKey(inc)] = inc
	}
	// Deliveries trail the last flush by a post.
	waitFor(30*time.Second, func() bool {
		seen, _, _ := watch.Seen()
		for k := range want {
			if _, ok := seen[k]; !ok {
				return false
			}
		}
		return true
	})
	seen, polls, errs := watch.Seen()
	t.Logf("alertmanager polled %d times (%d errors); saw %d alerts", polls, errs, len(seen))
	var outage, terminal *Seen
	for k, inc := range want {
		s, ok := seen[k]
		if !ok {
			t.Errorf("incident %s (%s..%s) never reached Alertmanager", k, inc.Start.Format("15:04"), inc.End.Format("15:04"))
			continue
		}
		t.Logf("  %-45s states %v receivers %v inhibitedBy %d", k, s.States, keys(s.Receivers), len(s.InhibitedBy))
		if r := receiverFor[inc.Kind]; r != "" && !s.Receivers[r] {
			t.Errorf("%s routed to %v, want %s (alertmanager.yml routes)", k, keys(s.Receivers), r)
		}
		switch {
		case inc.Kind == "network_outage":
			outage = &s
		case inc.ScopeType == "terminal":
			terminal = &s
		}
	}
	for k, s := range seen {
		if _, ok := want[k]; !ok && s.Labels["alert_id"] != "" {
			t.Errorf("declinemon raised %s (%v), not in the truth", k, s.Labels)
		}
		if s.Labels["alert_id"] == "" {
			t.Errorf("Prometheus alert %s fired on a healthy run: %v", s.Labels["alertname"], s.Labels)
		}
	}
	if outage == nil || terminal == nil {
		t.Fatal("the day has no outage over a failing terminal")
	}
	if !terminal.InhibitedBy[outage.Fingerprint] || terminal.States["suppressed"] == 0 {
		t.Errorf("terminal alert %s was never inhibited by the outage %s (fingerprint %s): states %v, inhibitedBy %v",
			terminal.Key, outage.Key, outage.Fingerprint, terminal.States, keys(terminal.InhibitedBy))
	}
	// The outage lasts to the end of the day: both alerts are still there,
	// the terminal's muted by the outage.
	now, err := st.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range now {
		if AlertKey(a.Labels) == terminal.Key {
			found = true
			if a.Status.State != "suppressed" || !contains(a.Status.InhibitedBy, outage.Fingerprint) {
				t.Errorf("at the end the terminal alert is %s inhibited by %v, want suppressed by the outage %s", a.Status.State, a.Status.InhibitedBy, outage.Fingerprint)
			}
		}
		if AlertKey(a.Labels) == outage.Key && a.Status.State != "active" {
			t.Errorf("at the end the outage is %s, want active", a.Status.State)
		}
	}
	if !found {
		t.Errorf("at the end Alertmanager no longer lists the terminal alert")
	}
	// On-call side: the routes that notify at once have notified.
	waitFor(20*time.Second, func() bool {
		got := st.Hooks.Receivers()
		for k, inc := range want {
			if groupWaitZero[inc.Kind] && !contains(got[k], receiverFor[inc.Kind]) {
				return false
			}
		}
		return true
	})
	got := st.Hooks.Receivers()
	for k, inc := range want {
		if groupWaitZero[inc.Kind] && !contains(got[k], receiverFor[inc.Kind]) {
			t.Errorf("webhook %s was not notified of %s (got %v)", receiverFor[inc.Kind], k, got[k])
		}
	}
	t.Logf("webhook notifications by alert: %v", got)
}

func checkClickHouse(ctx context.Context, t *testing.T, st *Stack, o *Oracle, truth scenario.Truth, messages int) {
	one := func(sql string, want int64) {
		t.Helper()
		got, err := st.QueryInt(ctx, sql)
		if err != nil {
			t.Error(err)
			return
		}
		if got != want {
			t.Errorf("%s = %d, want %d (produced stream)", sql, got, want)
		}
	}
	n := int64(o.Events)
	one("SELECT count() FROM declinemon.events", n)
	one("SELECT uniqExact(event_id) FROM declinemon.events", n)
	one("SELECT sum(attempts) FROM declinemon.terminal_minutes", n)
	one("SELECT sum(attempts) FROM declinemon.scope_minutes", n)
	one("SELECT countIf(outcome = 'approved') FROM declinemon.events", int64(o.Approved))
	one("SELECT countIf(outcome = 'declined') FROM declinemon.events", n-int64(o.Approved))
	one("SELECT sumIf(attempts, cause = 'approved') FROM declinemon.terminal_minutes", int64(o.Approved))
	one("SELECT sumIf(attempts, cause = 'approved') FROM declinemon.scope_minutes", int64(o.Approved))
	one(fmt.Sprintf("SELECT countIf(ts < toDateTime64(%d, 3) OR ts > toDateTime64(%d, 3)) FROM declinemon.events", o.First.Unix(), o.Last.Unix()+1), 0)

	by := func(sql string, want map[string]int64) {
		t.Helper()
		got, err := st.QueryCounts(ctx, sql)
		if err != nil {
			t.Error(err)
			return
		}
		if diff := diffCounts(got, want); diff != "" {
			t.Errorf("%s differs from the produced stream: %s", sql, diff)
		}
	}
	by("SELECT merchant_id, count() FROM declinemon.events GROUP BY merchant_id", o.Merchant)
	by("SELECT merchant_id, sum(attempts) FROM declinemon.terminal_minutes GROUP BY merchant_id", o.Merchant)
	by("SELECT terminal_id, count() FROM declinemon.events GROUP BY terminal_id", o.Terminal)
	by("SELECT terminal_id, sum(attempts) FROM declinemon.terminal_minutes GROUP BY terminal_id", o.Terminal)
	by("SELECT toString(minute), sum(attempts) FROM declinemon.terminal_minutes GROUP BY minute", o.Minute)
	by("SELECT toString(minute), sum(attempts) FROM declinemon.scope_minutes GROUP BY minute", o.Minute)
	by("SELECT region, sum(attempts) FROM declinemon.scope_minutes GROUP BY region", o.Region)
	by("SELECT carrier, sum(attempts) FROM declinemon.scope_minutes GROUP BY carrier", o.Carrier)
	by("SELECT host_id, sum(attempts) FROM declinemon.scope_minutes GROUP BY host_id", o.Host)
	by("SELECT issuer_id, sum(attempts) FROM declinemon.scope_minutes GROUP BY issuer_id", o.Issuer)
	by("SELECT network, sum(attempts) FROM declinemon.scope_minutes GROUP BY network", o.Network)
	by("SELECT region, sum(attempts) FROM declinemon.terminal_minutes GROUP BY region", o.Region)
	by("SELECT issuer_id, sum(attempts) FROM declinemon.terminal_minutes GROUP BY issuer_id", o.Issuer)

	// declinemon's own counters agree with the oracle and with its store.
	m, err := st.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"declinemon_messages_total": messages, "declinemon_events_accepted_total": o.Events,
		"declinemon_events_approved_total": o.Approved, "declinemon_events_rejected_total": 0, "declinemon_events_late_total": 0} {
		if m[name] != float64(want) {
			t.Errorf("/metrics %s = %v, want %d", name, m[name], want)
		}
	}
	causes, err := st.QueryCounts(ctx, "SELECT cause, count() FROM declinemon.events WHERE outcome = 'declined' GROUP BY cause")
	if err != nil {
		t.Fatal(err)
	}
	fromMetrics := map[string]int64{}
	for k, v := range m {
		if c, ok := strings.CutPrefix(k, `declinemon_declines_total{cause="`); ok && v > 0 {
			fromMetrics[strings.TrimSuffix(c, `"}`)] = int64(v)
		}
	}
	if diff := diffCounts(causes, fromMetrics); diff != "" {
		t.Errorf("declines by cause in ClickHouse vs declinemon_declines_total: %s", diff)
	}
	t.Logf("declines by cause: %v", causes)

	// The alerts table holds every incident (written in the background).
	var alerts map[string]int64
	waitFor(30*time.Second, func() bool {
		alerts, err = st.QueryCounts(ctx, "SELECT concat(kind, ' ', scope_type, '=', scope_id), count() FROM declinemon.alerts WHERE state = 'firing' GROUP BY 1")
		return err == nil && len(alerts) >= len(truth.Incidents)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, inc := range truth.Incidents {
		if alerts[incidentKey(inc)] == 0 {
			t.Errorf("declinemon.alerts has no firing record of %s (has %v)", incidentKey(inc), alerts)
		}
	}
	if len(alerts) != len(truth.Incidents) {
		t.Errorf("declinemon.alerts has %d firing alerts, the truth %d: %v", len(alerts), len(truth.Incidents), alerts)
	}
}

func checkGrafana(ctx context.Context, t *testing.T, st *Stack, day scenario.Scenario) {
	qs, err := LoadDashboards(st.opts.Root)
	if err != nil {
		t.Fatal(err)
	}
	from, to := day.Start, day.Start.Add(time.Duration(day.Duration))
	vars := map[string]map[string]string{} // dashboard -> variable -> value
	var clockBound []string
	nCH, nProm := 0, 0
	for _, q := range qs {
		where := q.Dashboard + " / " + q.Panel
		switch q.Type {
		case "grafana-clickhouse-datasource":
		case "prometheus":
			nProm++
			res, err := st.PromQuery(ctx, q.Query)
			if err != nil {
				t.Errorf("%s: %v", where, err)
			} else if len(res) == 0 {
				t.Errorf("%s: %s returned no series", where, q.Query)
			}
			continue
		default:
			t.Errorf("%s: datasource type %q", where, q.Type)
			continue
		}
		nCH++
		vs := map[string]string{}
		for k, v := range q.Constants {
			vs[k] = v
		}
		for k, v := range vars[q.Dashboard] {
			vs[k] = v
		}
		sql, err := ExpandMacros(q.Query, from, to, time.Minute, vs)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if UsesClock(sql) {
			// As shipped, on the real clock: a past day shows nothing.
			rows, err := st.Query(ctx, sql)
			if err != nil {
				t.Errorf("%s (real clock): %v\n%s", where, err, sql)
			}
			clockBound = append(clockBound, fmt.Sprintf("%s: %d rows (data: %v) on the real clock", where, len(rows), hasData(rows)))
			sql = AtTime(sql, to)
		}
		rows, err := st.Query(ctx, sql)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, sql)
			continue
		}
		if !hasData(rows) {
			t.Errorf("%s: no data for %s..%s (%v)\n%s", where, from.UTC(), to.UTC(), rows, sql)
			continue
		}
		if q.Variable != "" {
			if vars[q.Dashboard] == nil {
				vars[q.Dashboard] = map[string]string{}
			}
			vars[q.Dashboard][q.Variable] = rows[0][0] // Grafana's default: the first value
		}
		t.Logf("%-70s %5d rows", where, len(rows))
	}
	if nCH < 15 {
		t.Errorf("only %d ClickHouse queries in the dashboards", nCH)
	}
	t.Logf("%d ClickHouse and %d Prometheus dashboard queries; variables %v", nCH, nProm, vars)
	if len(clockBound) > 0 {
		t.Logf("queries that read the server clock (now()/today()) instead of the dashboard range; checked as if viewed at %s:\n  %s",
			to.UTC(), strings.Join(clockBound, "\n  "))
	}
}

func checkRecordingRules(ctx context.Context, t *testing.T, st *Stack) {
	data, err := os.ReadFile(filepath.Join(st.opts.Root, "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatal(err)
	}
	var records []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r.Record)
			}
		}
	}
	if len(records) == 0 {
		t.Fatal("rules.yml records nothing")
	}
	problems := func() []string {
		var out []string
		for _, rec := range records {
			res, err := st.PromQuery(ctx, rec)
			if err != nil {
				out = append(out, err.Error())
				continue
			}
			if len(res) == 0 {
				out = append(out, rec+": no series")
			}
			for _, s := range res {
				switch {
				case !Finite(s.Value):
					out = append(out, fmt.Sprintf("%s%v = %v (not finite)", rec, s.Metric, s.Value))
				case s.Value < 0:
					out = append(out, fmt.Sprintf("%s%v = %v (negative)", rec, s.Metric, s.Value))
				case strings.Contains(rec, ":ratio") && s.Value > 1:
					out = append(out, fmt.Sprintf("%s%v = %v (a ratio above 1)", rec, s.Metric, s.Value))
				}
			}
		}
		return out
	}
	var last []string
	if !waitFor(60*time.Second, func() bool { last = problems(); return len(last) == 0 }) {
		t.Errorf("recording rules after 60s: %s", strings.Join(last, "; "))
	}
	for _, rec := range records {
		res, _ := st.PromQuery(ctx, rec)
		var vals []string
		for _, s := range res {
			vals = append(vals, fmt.Sprintf("%s=%.4g", labelString(s.Metric), s.Value))
		}
		sort.Strings(vals)
		t.Logf("%-40s %s", rec, strings.Join(vals, " "))
	}
	// The rule groups evaluate without errors, and Prometheus reaches
	// both its target and Alertmanager.
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := st.PromGet(ctx, "/api/v1/rules", &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s/%s health %q: %s", g.Name, r.Name, r.Health, r.LastError)
			}
			if r.State == "firing" {
				t.Errorf("health alert %s is firing", r.Name)
			} else if r.State == "pending" {
				t.Logf("health alert %s is pending", r.Name)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules")
	}
	var ams struct {
		Data struct {
			Active []struct {
				URL string `json:"url"`
			} `json:"activeAlertmanagers"`
		} `json:"data"`
	}
	if err := st.PromGet(ctx, "/api/v1/alertmanagers", &ams); err != nil {
		t.Fatal(err)
	}
	if len(ams.Data.Active) != 1 || !strings.HasPrefix(ams.Data.Active[0].URL, st.AlertmanagerURL) {
		t.Errorf("Prometheus's alertmanagers: %+v, want %s", ams.Data.Active, st.AlertmanagerURL)
	}
	up, err := st.PromQuery(ctx, `up{job="declinemon"}`)
	if err != nil || len(up) != 1 || up[0].Value != 1 {
		t.Errorf(`up{job="declinemon"} = %+v %v`, up, err)
	}
}

// idleReady is how long /readyz is watched on the idle topic at the end.
const idleReady = 30 * time.Second

func checkReady(ctx context.Context, t *testing.T, st *Stack, caughtUp time.Time) {
	// The day is over and the topic idle, as after compose's loadgen
	// exits: the service stays ready.
	t0 := time.Now()
	var bad []string
	for time.Since(t0) < idleReady {
		code, body, err := st.Readyz(ctx)
		if err != nil || code != 200 {
			bad = append(bad, fmt.Sprintf("%s after caught up: %d %s %v", time.Since(caughtUp).Round(time.Second), code, strings.TrimSpace(body), err))
		}
		time.Sleep(time.Second)
	}
	if len(bad) > 0 {
		t.Errorf("/readyz on the idle topic was not 200 %d times in %s; first: %s; last: %s", len(bad), idleReady, bad[0], bad[len(bad)-1])
	}
	for _, g := range []string{GroupID} {
		committed, end, err := st.Offsets(ctx, Topic, g)
		if err != nil || Lag(committed, end) != 0 {
			t.Errorf("group %s: committed lag at the end: %d (committed %v, end %v) %v", g, Lag(committed, end), committed, end, err)
		}
	}
	storageLag := -1.0
	if !waitFor(30*time.Second, func() bool {
		m, err := st.Metrics(ctx)
		if err != nil {
			return false
		}
		v, ok := m["declinemon_storage_consumer_lag_messages"]
		storageLag = v
		return ok && v == 0
	}) {
		t.Errorf("declinemon_storage_consumer_lag_messages = %v at the end, want 0", storageLag)
	}
	var gauge float64 = -1
	if !waitFor(30*time.Second, func() bool {
		m, err := st.Metrics(ctx)
		if err != nil {
			return false
		}
		v, ok := m["declinemon_consumer_lag_messages"]
		gauge = v
		return ok && v == 0
	}) {
		t.Errorf("declinemon_consumer_lag_messages = %v at the end, want 0", gauge)
	}
	var rec = math.NaN()
	if !waitFor(30*time.Second, func() bool {
		res, err := st.PromQuery(ctx, "declinemon:consumer_lag:sum")
		if err != nil || len(res) != 1 {
			return false
		}
		rec = res[0].Value
		return rec == 0
	}) {
		t.Errorf("declinemon:consumer_lag:sum = %v at the end, want 0", rec)
	}
}

// hasData reports whether a result shows something: rows, and for a
// single row (an aggregate over nothing still returns one) a non-zero
// finite number in it.
func hasData(rows [][]string) bool {
	if len(rows) != 1 {
		return len(rows) > 1
	}
	for _, f := range rows[0] {
		if v, err := strconv.ParseFloat(f, 64); err == nil && v != 0 && Finite(v) {
			return true
		}
	}
	return false
}

func diffCounts(got, want map[string]int64) string {
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want %d", k, got[k], w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want none", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "; ")
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func labelString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		if k != "__name__" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
