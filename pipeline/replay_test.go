package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

const pan = "6228480402564890018"

func writeFile(t *testing.T, name string, lines []string, gz bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	if gz {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(data)
		zw.Close()
		data = zb.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReplayBadInputIsCountedNeverFatalNeverLeaksCardData(t *testing.T) {
	good := `{"event_id":"e%d","ts":"2026-11-27T10:00:0%dZ","terminal_id":"T1","merchant_id":"M1","response_code":"00","scheme":"cup"}`
	lines := []string{
		strings.Replace(good, "%d", "1", 2),
		"this is not json",
		`{"event_id":"e2","ts":"2026-11-27T10:00:02Z","terminal_id":"T1"`,                                        // truncated
		`{"event_id":"e3","ts":"2026-11-27T10:00:03Z","terminal_id":"T1","merchant_id":"M1","response_code":51}`, // wrong type
		`{"event_id":"e4","ts":"2026-11-27T10:00:04Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","pan":"` + pan + `"}`,
		`{"event_id":"e5","ts":"2026-11-27T10:00:05Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","card_bin":"` + pan + `"}`,
		`{"pan":"` + pan + `","ts":`, // truncated and card data
		`{"event_id":"e6","ts":"27/11/2026","terminal_id":"T1","merchant_id":"M1","response_code":"00"}`,
		`{"event_id":"e7","ts":"2026-11-27T10:00:07Z","terminal_id":"T1","merchant_id":"M1"}`,
		`{"event_id":"e8","ts":"2026-11-27T10:00:08Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","x":"` + strings.Repeat("y", 70000) + `"}`,
		"",
		strings.Replace(good, "%d", "9", 2),
		`{"event_id":"e10","ts":"2026-11-27T10:00:10Z","terminal_id":"T1","merchant_id":"M1","response_code":"Q9","scheme":"cup"}`,
	}
	for _, gz := range []bool{false, true} {
		path := writeFile(t, "events.jsonl", lines, gz)
		out := filepath.Join(t.TempDir(), "alerts.jsonl")
		var stderr bytes.Buffer
		sum, err := Replay(context.Background(), ReplayOptions{Input: path, AlertsOut: out, Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		if err := sum.Write(&stderr); err != nil {
			t.Fatal(err)
		}
		c := sum.Counts
		want := map[ingest.Reason]uint64{
			ingest.ReasonInvalidJSON: 2, ingest.ReasonBadType: 1, ingest.ReasonSensitiveData: 3,
			ingest.ReasonBadTimestamp: 1, ingest.ReasonMissingField: 1, ingest.ReasonTooLarge: 1,
		}
		for r := ingest.Reason(0); r < ingest.NumReasons; r++ {
			if c.Rejected[r] != want[r] {
				t.Errorf("gz=%v rejected %s = %d, want %d", gz, r, c.Rejected[r], want[r])
			}
		}
		if c.Accepted != 3 || c.Messages != 12 || c.UnknownCodes["Q9"] != 1 {
			t.Errorf("gz=%v accepted %d of %d, unknown %v", gz, c.Accepted, c.Messages, c.UnknownCodes)
		}
		if _, err := os.Stat(out); err != nil {
			t.Errorf("alerts file not created: %v", err)
		}
		text := stderr.String()
		for _, s := range []string{"sensitive_data", "too_large", "invalid_json", "Q9"} {
			if !strings.Contains(text, s) {
				t.Errorf("summary lacks %q:\n%s", s, text)
			}
		}
		if regexp.MustCompile(`\d{12,}`).MatchString(text) && strings.Contains(text, "62284804") {
			t.Errorf("summary prints card data:\n%s", text)
		}
	}
}

func TestReplayUnusableArguments(t *testing.T) {
	if _, err := Replay(context.Background(), ReplayOptions{}); err == nil {
		t.Error("missing --input accepted")
	}
	if _, err := Replay(context.Background(), ReplayOptions{Input: "/nonexistent/events.jsonl"}); err == nil {
		t.Error("unreadable input accepted")
	}
	path := writeFile(t, "e.jsonl", nil, false)
	if _, err := Replay(context.Background(), ReplayOptions{Input: path, AlertsOut: "/nonexistent/dir/a.jsonl"}); err == nil {
		t.Error("unwritable output accepted")
	}
	if _, err := Replay(context.Background(), ReplayOptions{Input: path, RulesPath: "/nonexistent/rules.tsv"}); err == nil {
		t.Error("missing rules file accepted")
	}
}

// TestReplayScenarioMatchesDirectRun checks that replaying a generated file
// (encode → JSONL → decode) raises exactly the alerts of the in-memory
// scenario run, and that the summary counts agree with the truth.
func TestReplayScenarioMatchesDirectRun(t *testing.T) {
	s, err := scenario.Find("regional-outage")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "events.jsonl.gz")
	f, _ := os.Create(path)
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriter(zw)
	var buf []byte
	truth, err := s.Generate(func(ev *event.Event) {
		buf = event.AppendJSON(buf[:0], ev)
		bw.Write(append(buf, '\n'))
	})
	if err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	zw.Close()
	f.Close()

	out := filepath.Join(t.TempDir(), "alerts.jsonl")
	sum, err := Replay(context.Background(), ReplayOptions{Input: path, AlertsOut: out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts.Accepted != uint64(truth.Events) {
		t.Errorf("accepted %d, generated %d", sum.Counts.Accepted, truth.Events)
	}
	data, _ := os.ReadFile(out)
	var fromFile []alerting.Alert
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var a alerting.Alert
		if err := json.Unmarshal(l, &a); err != nil {
			t.Fatalf("alerts file line %q: %v", l, err)
		}
		fromFile = append(fromFile, a)
	}
	score := scenario.Evaluate(truth, fromFile)
	if !score.Passed() {
		t.Errorf("replayed alerts do not match the truth: %+v", score)
	}
	// The summary gives each incident its remedy, and full dates.
	var text bytes.Buffer
	if err := sum.Write(&text); err != nil {
		t.Fatal(err)
	}
	for _, a := range fromFile {
		if a.State == alerting.StateFiring && !strings.Contains(text.String(), "-> "+a.Remedy) {
			t.Errorf("summary lacks the remedy of %s %s:\n%s", a.Kind, a.ScopeID, text.String())
		}
	}
	// Times in the business time zone (default Asia/Shanghai), with the
	// date and the offset shown; codes named for what they are.
	for _, want := range []string{"alerts (times in Asia/Shanghai)", "detected 2026-11-27 ", " +08:00, resolved 2026-11-27 ", "with terminal errors "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
	for _, a := range fromFile {
		if !strings.Contains(a.Summary, " +08:00 (") {
			t.Errorf("alert summary not in the business time zone: %q", a.Summary)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`
default_scheme: cup
detection:
  tick: 5s
  lateness: 1m
  rules:
    network_outage: {min_affected: 10}
  maintenance:
    - scope_type: issuer
      scope_id: ABC
      start: 2026-11-27T02:00:00+08:00
      end: 2026-11-27T04:00:00+08:00
  labels: {env: prod}
`), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultScheme != "cup" || c.Detection.Tick.Seconds() != 5 || c.Detection.Lateness.Minutes() != 1 ||
		c.Detection.Rules["network_outage"].MinAffected != 10 || len(c.Detection.Maintenance) != 1 || c.Detection.Labels["env"] != "prod" {
		t.Errorf("config %+v", c)
	}
	os.WriteFile(path, []byte("detection:\n  tikc: 5s\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "tikc") {
		t.Errorf("unknown key: %v", err)
	}
	os.WriteFile(path, []byte("default_scheme: visa\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "default_scheme") {
		t.Errorf("bad scheme: %v", err)
	}
	t.Setenv("DECLINEMON_DEFAULT_SCHEME", "iso8583")
	if c, _ := LoadConfig(path); c.DefaultScheme != "iso8583" {
		t.Error("env override not applied")
	}
}

// TestReplayDeliversAsAlertsHappenAndReportsFailures: alerts reach the
// webhook while the file is being read, one request per record; a webhook
// that refuses every request makes replay fail with the failure in the
// summary.
func TestReplayDeliversAsAlertsHappenAndReportsFailures(t *testing.T) {
	s, err := scenario.Find("regional-outage")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	if _, err := s.Generate(func(ev *event.Event) { lines = append(lines, string(event.AppendJSON(nil, ev))) }); err != nil {
		t.Fatal(err)
	}
	input := writeFile(t, "events.jsonl", lines, false)
	var mu sync.Mutex
	got := 0
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got++
		mu.Unlock()
	}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	cfgFile := func(url string) string {
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte("webhooks:\n  - url: "+url+"\n    attempts: 1\n"), 0o644)
		return path
	}

	sum, err := Replay(context.Background(), ReplayOptions{Input: input, ConfigPath: cfgFile(ok.URL)})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got != len(sum.Alerts) || got == 0 {
		t.Errorf("webhook received %d records, replay raised %d", got, len(sum.Alerts))
	}
	mu.Unlock()

	sum, err = Replay(context.Background(), ReplayOptions{Input: input, ConfigPath: cfgFile(down.URL)})
	if err == nil || !strings.Contains(err.Error(), "delivering alerts") {
		t.Fatalf("replay with a failing webhook: %v", err)
	}
	var text bytes.Buffer
	sum.Write(&text)
	if !strings.Contains(text.String(), "alert delivery") || !regexp.MustCompile(`failed [1-9]`).MatchString(text.String()) {
		t.Errorf("summary does not report the failed deliveries:\n%s", text.String())
	}
}
