package alerting_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current engine")

// TestGoldenAlerts pins the full alert records of a few suite scenarios:
// a refactoring of detection must leave them byte for byte unchanged. The
// cases cover greedy attribution across overlapping scopes (a carrier
// failing in every region), MAC errors a merchant claims from its
// terminals, decline_spike's holds, and terminal holds. A deliberate
// change in detection, texts, the scenario generator or the classifier
// rewrites them with go test ./alerting -run TestGoldenAlerts -update, and
// the diff is reviewed.
func TestGoldenAlerts(t *testing.T) {
	rules := classify.Default()
	held := alerting.Config{Rules: map[string]alerting.RuleConfig{"terminal_hardware": {Pending: 2 * time.Minute}}}
	for _, tc := range []struct {
		name, scenario string
		cfg            alerting.Config
	}{
		{"carrier-outage", "carrier-outage", alerting.Config{}},
		{"mac-errors", "mac-errors", alerting.Config{}},
		{"decline-spike", "decline-spike", alerting.Config{}},
		{"failing-terminals-held", "failing-terminals", held},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Find(tc.scenario)
			if err != nil {
				t.Fatal(err)
			}
			_, alerts, err := scenario.Run(s, rules, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for i := range alerts {
				line, err := alerts[i].MarshalJSONLine()
				if err != nil {
					t.Fatal(err)
				}
				got.Write(line)
			}
			path := filepath.Join("testdata", "golden", tc.name+".jsonl")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			gotLines, wantLines := bytes.Split(got.Bytes(), []byte("\n")), bytes.Split(want, []byte("\n"))
			for i := range max(len(gotLines), len(wantLines)) {
				var g, w []byte
				if i < len(gotLines) {
					g = gotLines[i]
				}
				if i < len(wantLines) {
					w = wantLines[i]
				}
				if !bytes.Equal(g, w) {
					t.Fatalf("alert record %d differs from %s:\n got: %s\nwant: %s", i+1, path, g, w)
				}
			}
		})
	}
}

// TestAlertNumbersAgree: in every golden record, firing or resolved,
// the summary sentence and the fields describe the same window: the
// sentence's percentage, "(failures of attempts" and "on N terminals"
// are the record's rate, failures, attempts and affected.
func TestAlertNumbersAgree(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("golden files: %v %v", files, err)
	}
	pctRe := regexp.MustCompile(`: (\d+)% of attempts failing`)
	countRe := regexp.MustCompile(`\((\d+) of (\d+), normal`)
	termRe := regexp.MustCompile(` on (\d+) terminals`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var a alerting.Alert
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			n++
			p, c := pctRe.FindStringSubmatch(a.Summary), countRe.FindStringSubmatch(a.Summary)
			if p == nil || c == nil {
				t.Errorf("%s %s: summary without numbers: %q", f, a.ID, a.Summary)
				continue
			}
			if c[1] != strconv.Itoa(a.Failures) || c[2] != strconv.Itoa(a.Attempts) {
				t.Errorf("%s %s (%s): summary says %s of %s, fields %d of %d", f, a.ID, a.State, c[1], c[2], a.Failures, a.Attempts)
			}
			if want := fmt.Sprintf("%.0f", a.Rate*100); p[1] != want {
				t.Errorf("%s %s (%s): summary says %s%%, rate %v", f, a.ID, a.State, p[1], a.Rate)
			}
			if m := termRe.FindStringSubmatch(a.Summary); m != nil && m[1] != strconv.Itoa(a.Affected) {
				t.Errorf("%s %s (%s): summary says %s terminals, affected %d", f, a.ID, a.State, m[1], a.Affected)
			}
		}
	}
	if n == 0 {
		t.Fatal("no golden records")
	}
}
