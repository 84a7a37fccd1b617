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
				t.Logf("  %s %s %s=%s at %s: %s", a.State, a.Kind, a.ScopeType, a.ScopeID, a.DetectedAt.Format("15:04:05"), a.Summary)
			}
		}
	}
	WriteTable(os.Stdout, scores)
}

// TestSuiteOtherSeeds reruns the suite on fleets built from other seeds:
// other ids, other terminals picked to fail, other noise. The detectors
// must not depend on the particular fleet they were tuned on.
func TestSuiteOtherSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three more runs of the suite")
	}
	rules := classify.Default()
	for off := uint64(100); off <= 300; off += 100 {
		for _, s := range Suite() {
			s.Fleet.Seed += off
			sc, alerts, err := Run(s, rules, alerting.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if !sc.Passed() {
				t.Errorf("scenario %s with seed %d failed", s.Name, s.Fleet.Seed)
				WriteTable(os.Stderr, []Score{sc})
				for _, a := range alerts {
					t.Logf("  %s %s %s=%s at %s: %s", a.State, a.Kind, a.ScopeType, a.ScopeID, a.DetectedAt.Format("15:04:05"), a.Summary)
				}
			}
		}
	}
}
