package alerting

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Silence is an outage too. When a backbone or a carrier's access network
// fails, terminals cannot ship their logs: a region's traffic collapses,
// with at most a trickle of timeouts, and the attempts they approved
// offline arrive after recovery with their original times. The failure
// detectors see nothing (no failures to count), so this one watches
// volume: each fleet scope's traffic in the group window against its
// usual share of its peers' traffic now. Comparing with the peers' traffic
// now keeps nights, weekends and holidays quiet (everyone drops or rises
// together); the usual share comes from the scope's baseline, which stops
// learning while it is silent. The backlog after recovery raises nothing:
// it is late, and a surge is not silence.

const (
	// silenceShare: a scope is silent below this share of the traffic its
	// usual share of the fleet's predicts; it stays silent (hysteresis)
	// until it is back above silenceClear.
	silenceShare = 0.3
	silenceClear = 0.6
	// silenceMinExpected: the window must predict at least this many
	// attempts, so a quiet scope at night is never judged on a handful.
	silenceMinExpected = 40
	// silenceHistory: how many windows' worth of a scope's traffic its
	// baseline must hold before its share is trusted.
	silenceHistory = 30
)

// evalSilence runs the volume detector at tick end T on the group scopes.
func (e *Engine) evalSilence(r *rule, T int64) {
	alpha := e.cfg.Alpha
	for _, t := range r.scopes {
		sp := e.spanAt(t, e.nb[t], T)
		var share float64
		fleet := 0
		for _, s := range e.scopes[t] {
			share += float64(s.base.n)
			fleet += s.attempts(sp)
		}
		// Shares are only known after a while: at least 30 windows of
		// the fleet's current traffic folded into the baselines.
		if share <= 0 || fleet == 0 || share < silenceHistory*float64(fleet) {
			continue
		}
		for _, s := range e.scopes[t] {
			if s.evicted || s.base.n <= 0 {
				continue
			}
			lambda := float64(fleet) * float64(s.base.n) / share
			if lambda < silenceMinExpected || float64(s.base.n) < silenceHistory*lambda {
				continue
			}
			n, f := s.window(sp)
			if inc := s.incident(r.idx); inc != nil {
				if float64(n) < silenceClear*lambda {
					e.update(inc, tally{})
				}
				continue
			}
			if float64(n) >= silenceShare*lambda || poissonCDF(n, lambda) >= alpha {
				continue
			}
			if s.incident(ruleNetwork) != nil {
				continue // the failure detector has it already
			}
			expected := int(math.Round(lambda))
			e.fire(r, alarm{kind: KindNetworkOutage, cause: event.CauseNetwork, scope: s, start: sp.from,
				tally: tally{attempts: n, failures: f[event.CauseNetwork], baseline: e.expected(s, int(event.CauseNetwork))},
				text:  func(a *Alert) (string, string) { return silenceText(a, s.typ, n, expected, sp, e.cfg.Location) }}, T)
		}
	}
	e.settle(r, T)
}

// silenceText is a silent scope's summary and first action.
func silenceText(a *Alert, st event.ScopeType, n, expected int, sp span, loc *time.Location) (string, string) {
	if loc == nil {
		loc = time.UTC
	}
	window := time.Duration(sp.to - sp.from)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s went quiet: %d attempts in %s where its usual share of the fleet's traffic is ~%d (-%.0f%%)",
		scopeLabel[st], a.ScopeID, n, window, expected, 100*(1-float64(n)/float64(max(expected, 1))))
	if a.Failures > 0 {
		fmt.Fprintf(&b, "; %d of those timed out or lost the link", a.Failures)
	}
	fmt.Fprintf(&b, "; since %s", a.StartsAt.In(loc).Format(timeLayout))
	remedy := fmt.Sprintf("Terminals of %s %s cannot reach the host or cannot ship their logs: check the backbone, carrier links and power there; merchants may be taking other payments meanwhile, and the attempts the terminals stored offline will arrive late once the link is back.",
		strings.ToLower(scopeLabel[st]), a.ScopeID)
	return b.String(), remedy
}

// poissonCDF is P(X <= k) for X ~ Poisson(lambda), summed in log space.
func poissonCDF(k int, lambda float64) float64 {
	if k < 0 {
		return 0
	}
	sum, term := 0.0, math.Exp(-lambda)
	if term == 0 {
		// Underflow: work in logs.
		logTerm, logSum := -lambda, math.Inf(-1)
		for i := 0; i <= k; i++ {
			if i > 0 {
				logTerm += math.Log(lambda) - math.Log(float64(i))
			}
			hi := math.Max(logSum, logTerm)
			logSum = hi + math.Log(math.Exp(logSum-hi)+math.Exp(logTerm-hi))
		}
		return math.Exp(logSum)
	}
	for i := 0; i <= k; i++ {
		if i > 0 {
			term *= lambda / float64(i)
		}
		sum += term
	}
	return math.Min(sum, 1)
}
