package alerting_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
)

// TestOverviewListsAScopeOnce: a scope with two open incidents that has had no
// failure for longer than the failing list's horizon is visited once per
// incident, so it is listed twice.
func TestOverviewListsAScopeOnce(t *testing.T) {
	var fired []alerting.Alert
	e, err := alerting.NewEngine(alerting.Config{}, func(a alerting.Alert) { fired = append(fired, a) })
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	n := 0
	obs := func(ts time.Time, term, code string) {
		ev := mkEvent(fmt.Sprintf("e%d", n), ts, term, code)
		n++
		e.Observe(&ev, rules.Classify(&ev).Cause)
	}
	dups := 0
	for sec := 0; sec < 90*60; sec += 2 {
		ts := base.Add(time.Duration(sec) * time.Second)
		obs(ts, fmt.Sprintf("T%02d", (sec/2)%40), "00")
		if sec >= 30*60 && sec < 42*60 && sec%6 == 0 {
			code := "CHIP_READ_FAIL"
			if sec%12 == 0 {
				code = "30"
			}
			obs(ts, "TBAD", code)
		}
		if sec%60 == 0 {
			o := e.Overview(12, nil)
			check := func(name string, l []alerting.ScopeView) {
				seen := map[alerting.ScopeKey]bool{}
				for _, v := range l {
					if seen[v.ScopeKey] {
						dups++
						if dups < 6 {
							t.Errorf("%s: %s listed twice in %s (firing %v)", ts.Format("15:04"), v.ID, name, v.Firing)
						}
					}
					seen[v.ScopeKey] = true
				}
			}
			check("Suspects", o.Suspects)
			for st, l := range o.Top {
				check("Top["+event.ScopeType(st).String()+"]", l)
			}
		}
	}
}

// TestOverviewRankingSurvivesRestore: the restored engine's overview must list the
// same failing terminals as the engine it was snapshotted from.
func TestOverviewRankingSurvivesRestore(t *testing.T) {
	for j := 0; j < 11; j++ {
		for k := 0; k < 12; k++ {
			e := ovEngine(t, alerting.Config{})
			base := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC).Add(time.Duration(j) * 90 * time.Second)
			n := 0
			obs := func(ts time.Time, term, code string) {
				ev := mkEvent(fmt.Sprintf("e%d", n), ts, term, code)
				n++
				e.Observe(&ev, rules.Classify(&ev).Cause)
			}
			second := 40*60 + k*90
			for sec := 0; sec <= second+30; sec += 5 {
				ts := base.Add(time.Duration(sec) * time.Second)
				obs(ts, fmt.Sprintf("T%02d", (sec/5)%20), "00")
				if sec == 0 || sec == second {
					obs(ts, "TX", "51")
				}
			}
			has := func(o alerting.Overview) bool {
				for _, v := range o.Top[event.ScopeTerminal] {
					if v.ID == "TX" {
						return true
					}
				}
				return false
			}
			snap := e.AppendSnapshot(nil)
			r := ovEngine(t, alerting.Config{})
			if err := r.Restore(snap); err != nil {
				t.Fatal(err)
			}
			a, b := e.Overview(12, nil), r.Overview(12, nil)
			if has(a) != has(b) {
				t.Errorf("first failure at %s, second %s after: TX in Top[terminal]: original %v, restored %v", base.Format("15:04:05"), time.Duration(second)*time.Second, has(a), has(b))
			}
		}
	}
}
