package scenario

import (
	"os"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
)

// TestSuite is the detection-quality gate: every injected incident found
// with the right kind and scope within its goal, maintenance incidents
// non-paging, no false positives, no per-terminal alerts inside outages.
func TestSuite(t *testing.T) {
	rules := classify.Default()
	var scores []Score
	for _, s := range Suite() {
		if testing.Short() && s.Name == "busy-mixed-day" {
			continue
		}
		sc, alerts, err := Run(s, rules, alerting.Config{})
		if err != nil {
			t.Fatal(err)
		}
		scores = append(scores, sc)
		if !sc.Passed() {
			t.Errorf("scenario %s failed", s.Name)
			for _, a := range alerts {
				t.Logf("  %s %s %s=%s det=%s rate=%.2f n=%d k=%d base=%.4f aff=%d %s", a.State, a.Kind, a.ScopeType, a.ScopeID, a.DetectedAt.Format("15:04:05"), a.Rate, a.Attempts, a.Failures, a.BaselineRate, a.Affected, a.Summary)
			}
		}
	}
	WriteTable(os.Stdout, scores)
}
