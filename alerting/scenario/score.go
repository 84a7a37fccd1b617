package scenario

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// Targets are the time-to-detect goals per alert kind, in event time.
var Targets = map[string]time.Duration{
	"network_outage":    60 * time.Second,
	"issuer_outage":     2 * time.Minute,
	"terminal_hardware": 15 * time.Minute,
	"fraud_attack":      5 * time.Minute,
	"data_transmission": 15 * time.Minute,
	"decline_spike":     15 * time.Minute,
}

// Outcome is how one expected incident fared.
type Outcome struct {
	Expected
	Found       bool
	TTD         time.Duration // detected_at - start
	Resolved    bool          // a resolved record followed
	NonPaging   bool          // alert carried paging=false
	WithinGoal  bool
	AlertID     string
	Affected    int
	Description string
}

// Score is a scenario's result.
type Score struct {
	Scenario       string
	Events         int
	Alerts         int
	Outcomes       []Outcome
	FalsePositives []alerting.Alert
	// TerminalAlertsInOutage counts per-terminal alerts raised for
	// terminals inside a network outage (must be 0: inhibition).
	TerminalAlertsInOutage int
}

// Passed reports whether every incident was found on time with the right
// kind and scope, maintenance incidents and customer-side notices did not
// page (and everything else did), and nothing else fired.
func (s Score) Passed() bool {
	for _, o := range s.Outcomes {
		if !o.Found || !o.WithinGoal || (o.Maintenance || o.Notice) != o.NonPaging {
			return false
		}
	}
	return len(s.FalsePositives) == 0 && s.TerminalAlertsInOutage == 0
}

// Run generates the scenario, pushes it through classification and
// detection exactly as replay does, and scores the alerts.
func Run(s Scenario, rules *classify.Rules, cfg alerting.Config) (Score, []alerting.Alert, error) {
	var alerts []alerting.Alert
	cfg.Maintenance = append(cfg.Maintenance, maintenanceOf(s)...)
	eng, err := alerting.NewEngine(cfg, func(a alerting.Alert) { alerts = append(alerts, a) })
	if err != nil {
		return Score{}, nil, err
	}
	truth, err := s.Generate(func(ev *event.Event) {
		eng.Observe(ev, rules.Classify(ev).Cause)
	})
	if err != nil {
		return Score{}, nil, err
	}
	eng.Flush()
	return Evaluate(truth, alerts), alerts, nil
}

// maintenanceOf computes the declared windows without generating events.
func maintenanceOf(s Scenario) []alerting.MaintenanceWindow {
	short := s
	short.Duration = 0
	t, err := short.Generate(func(*event.Event) {})
	if err != nil {
		return nil
	}
	return t.Maintenance
}

// Evaluate matches alerts to the truth.
func Evaluate(truth Truth, alerts []alerting.Alert) Score {
	sc := Score{Scenario: truth.Scenario, Events: truth.Events}
	matched := map[string]bool{}
	resolved := map[string]bool{}
	for _, a := range alerts {
		if a.State == alerting.StateResolved {
			resolved[a.ID] = true
		}
	}
	for _, exp := range truth.Incidents {
		o := Outcome{Expected: exp}
		for _, a := range alerts {
			if a.State != alerting.StateFiring || matched[a.ID] {
				continue
			}
			if a.Kind.String() != exp.Kind || a.ScopeType != exp.ScopeType || a.ScopeID != exp.ScopeID {
				continue
			}
			if a.DetectedAt.Before(exp.Start) || a.DetectedAt.After(exp.End.Add(15*time.Minute)) {
				continue
			}
			if !o.Found {
				o.Found = true
				o.TTD = a.DetectedAt.Sub(exp.Start)
				// A declared maintenance incident must be recorded and
				// not page; how fast does not matter to anyone.
				o.WithinGoal = o.TTD <= Targets[exp.Kind] || exp.Maintenance
				o.NonPaging = a.Labels["paging"] == "false"
				o.Resolved = resolved[a.ID]
				o.AlertID = a.ID
				o.Affected = a.Affected
				o.Description = a.Summary
			}
			matched[a.ID] = true // a re-opened duplicate also counts as matched, see below
		}
		sc.Outcomes = append(sc.Outcomes, o)
	}
	for _, a := range alerts {
		if a.State != alerting.StateFiring {
			continue
		}
		sc.Alerts++
		if matched[a.ID] {
			continue
		}
		sc.FalsePositives = append(sc.FalsePositives, a)
		if a.ScopeType == "terminal" {
			for _, exp := range truth.Incidents {
				if exp.Kind == "network_outage" && !a.DetectedAt.Before(exp.Start) && a.DetectedAt.Before(exp.End.Add(5*time.Minute)) {
					sc.TerminalAlertsInOutage++
					break
				}
			}
		}
	}
	// More than one firing record for one incident is a storm, not a match.
	for i, o := range sc.Outcomes {
		n := 0
		for _, a := range alerts {
			if a.State == alerting.StateFiring && a.Kind.String() == o.Kind && a.ScopeType == o.ScopeType && a.ScopeID == o.ScopeID &&
				!a.DetectedAt.Before(o.Start) && !a.DetectedAt.After(o.End.Add(15*time.Minute)) {
				n++
			}
		}
		if n > 1 {
			sc.Outcomes[i].WithinGoal = false
			sc.Outcomes[i].Description = fmt.Sprintf("%d separate incidents opened (flapping)", n)
		}
	}
	return sc
}

// WriteTable prints one line per expected incident and per false positive.
func WriteTable(w io.Writer, scores []Score) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tevents\tincident\texpected alert\tfound\ttime to detect\tgoal\taffected\tfalse pos.")
	for _, s := range scores {
		if len(s.Outcomes) == 0 {
			fmt.Fprintf(tw, "%s\t%d\t(none)\t-\t-\t-\t-\t-\t%d\n", s.Scenario, s.Events, len(s.FalsePositives))
		}
		for i, o := range s.Outcomes {
			found, ttd := "MISSED", "-"
			if o.Found {
				found, ttd = "yes", o.TTD.String()
				if o.Maintenance || o.Notice {
					found = "yes (non-paging)"
					if !o.NonPaging {
						found = "yes (PAGED)"
					}
				} else if o.NonPaging {
					found = "yes (DID NOT PAGE)"
				}
			}
			fp := ""
			if i == 0 {
				fp = fmt.Sprint(len(s.FalsePositives))
			}
			goal := Targets[o.Kind].String()
			if o.Maintenance {
				goal = "(no page)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s %s=%s\t%s\t%s\t%s\t%d/%d\t%s\n", s.Scenario, s.Events, o.Type, o.Kind, o.ScopeType, o.ScopeID,
				found, ttd, goal, o.Affected, o.Terminals, fp)
		}
		for _, a := range s.FalsePositives {
			fmt.Fprintf(tw, "%s\t\tFALSE POSITIVE\t%s %s=%s\t\t%s\t\t\t\n", s.Scenario, a.Kind, a.ScopeType, a.ScopeID, strings.TrimSpace(a.DetectedAt.Format(time.TimeOnly)))
		}
	}
	return tw.Flush()
}
