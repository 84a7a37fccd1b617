package alerting

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Silence.
//
// When a region's backbone is cut its terminals cannot ship their logs:
// the stream goes quiet rather than failing (a trickle of timeouts from the
// few still connected), merchants switch to QR payments, and the attempts
// made offline arrive as a backlog hours later. Failure-based tests see
// almost nothing. So each region's attempts are counted per minute, and a
// region is silent when its last two complete minutes hold far fewer
// attempts than its share of the fleet predicts:
//
//	share    = the region's attempts / the fleet's, over the 6 minutes before
//	expected = share × the fleet's attempts in the two minutes judged
//
// The share is the region's own and of the last minutes, so regions that
// keep different hours, nights and holidays (the whole fleet moves) are
// not silences, nor are shops closing over an hour: what is judged is a
// cliff, two thirds of a region's traffic gone from one minute to the
// next, which only a cut does. Silent means at most 35% of expected, with
// at least 40 expected, and a Poisson probability of so few below 1e-9 —
// and the few attempts still coming in must show the cut: at least three
// network failures (timeouts, no route) making at least 5% of them. A
// region that merely goes quiet with nothing failing is shops closing
// together or its logs arriving late, not an outage.
// The alert is a network_outage
// of the region, an incident of the network rule: it explains the region's
// failures as any region outage does (its terminals' and merchants' alerts
// are muted, its carrier-in-region cells are covered). It is confirmed
// while the region stays below 60% of the share it had when it fell
// silent, and resolves after the rule's ClearAfter of traffic back.

// silenceClear is how long a silent region's traffic must be back before
// its incident resolves: a link that drops for three minutes in every
// nine is one incident, not a page every nine minutes.
const silenceClear = 15 * time.Minute

const (
	volMinutes     = 16 // minutes of attempts kept per region and for the fleet
	silenceJudged  = 2  // minutes judged
	silenceHistory = 6  // minutes of share before them
)

// volume counts attempts per minute of event time over the last
// volMinutes minutes.
type volume struct {
	minute int64 // unix minute of the newest slot
	n      [volMinutes]uint32
	f      [volMinutes]uint32 // of n, network-cause failures
}

func (v *volume) add(ts int64, failed bool) {
	m := ts / int64(time.Minute)
	switch {
	case m > v.minute:
		for k := max(v.minute+1, m-volMinutes+1); k <= m; k++ {
			v.n[k%volMinutes], v.f[k%volMinutes] = 0, 0
		}
		v.minute = m
	case m <= v.minute-volMinutes:
		return // older than kept
	}
	v.n[m%volMinutes]++
	if failed {
		v.f[m%volMinutes]++
	}
}

// sum is the attempts and network failures of minutes [from, to).
func (v *volume) sum(from, to int64) (n, f float64) {
	for m := max(from, v.minute-volMinutes+1); m < to && m <= v.minute; m++ {
		n += float64(v.n[m%volMinutes])
		f += float64(v.f[m%volMinutes])
	}
	return n, f
}

// silenceState is what a silence incident keeps: the region's share of
// the fleet's attempts before it fell silent.
type silenceState struct {
	share float64
}

// evalSilence judges every region at tick end T (network rule r): fires a
// silence incident for a region gone quiet, confirms the ones still quiet.
func (e *Engine) evalSilence(r *rule, T int64) {
	M := T / int64(time.Minute) // minutes before M are complete
	judged := M - silenceJudged
	first := judged - silenceHistory
	fleet := &e.fleetVol
	fr, _ := fleet.sum(judged, M)
	fb, _ := fleet.sum(first, judged)
	if fb <= 0 {
		return
	}
	regions := e.silenceBuf[:0]
	for _, s := range e.scopes[event.ScopeRegion] {
		if s.vol != nil {
			regions = append(regions, s)
		}
	}
	// Map order is random; evaluation order decides emission order.
	slices.SortFunc(regions, func(a, b *scope) int { return cmp.Compare(a.id, b.id) })
	e.silenceBuf = regions
	for _, s := range regions {
		v := s.vol
		rr, rf := v.sum(judged, M)
		if inc := s.incident(r.idx); inc != nil {
			if inc.silence != nil && rr <= 0.6*inc.silence.share*fr {
				e.update(inc)
			}
			continue
		}
		rb, _ := v.sum(first, judged)
		if rb < 10*silenceHistory { // under ten attempts a minute: too thin to tell
			continue
		}
		share := rb / fb
		exp := share * fr
		if exp < 40 || rr > 0.35*exp || poissonLow(int(rr), exp) > 1e-9 || rf < 3 || rf < 0.05*rr {
			continue
		}
		if e.explainedElsewhere(r, s, judged*int64(time.Minute), T) {
			continue // a carrier, host or cell outage already firing took its traffic
		}
		s.suspect = e.tickNo
		start := judged * int64(time.Minute)
		n1, _ := v.sum(judged, judged+1)
		if f1, _ := fleet.sum(judged, judged+1); n1 > 0.35*share*f1 {
			start += int64(time.Minute) // the first judged minute still had traffic
		}
		e.fire(r, alarm{kind: KindNetworkOutage, cause: event.CauseNetwork, scope: s, start: start,
			tally:   tally{attempts: int(rr), failures: int(rf), baseline: e.expected(s, int(event.CauseNetwork))},
			silence: &silenceNote{share: share, observed: rr, expected: exp}}, T)
	}
	clear(e.silenceBuf)
}

// explainedElsewhere reports whether most of region s's network failures
// in [from, to) belong to a firing network incident of another scope (its
// carrier, host, carrier-in-region cell...): the region went quiet because
// of that outage, which has already paged.
func (e *Engine) explainedElsewhere(r *rule, s *scope, from, to int64) bool {
	total, explained := 0, 0
	for _, rec := range e.queues[r.cause].live() {
		if rec.dims[event.ScopeRegion] != s || rec.ts < from || rec.ts >= to {
			continue
		}
		total++
		for t, d := range rec.dims {
			if d != nil && d != s && event.ScopeType(t) != event.ScopeTerminal && d.incident(r.idx) != nil {
				explained++
				break
			}
		}
	}
	return total > 0 && 2*explained >= total
}

// poissonLow is P(X <= k) for X ~ Poisson(mean).
func poissonLow(k int, mean float64) float64 {
	if k < 0 {
		return 0
	}
	term := math.Exp(-mean)
	sum := term
	for i := 1; i <= k; i++ {
		term *= mean / float64(i)
		sum += term
	}
	return math.Min(sum, 1)
}

// silenceNote is what a silence alarm reports.
type silenceNote struct {
	share, observed, expected float64
}

// silenceText is a silence alert's summary and remedy.
func silenceText(a *Alert, n *silenceNote, loc *time.Location) (summary, remedy string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: traffic %.0f%% below its usual share of the fleet since %s",
		event.ScopeRegion.Label(), a.ScopeID, 100*(1-n.observed/n.expected), a.StartsAt.In(cmp.Or(loc, time.UTC)).Format(timeLayout))
	fmt.Fprintf(&b, " (%.0f attempts in %d minutes, %.0f expected; %d of them network failures); its terminals cannot reach the host and will upload a backlog once they can",
		n.observed, silenceJudged, n.expected, a.Failures)
	return b.String(), fmt.Sprintf("Check the backbone, power and carrier links serving region %s: its terminals have gone quiet rather than failing. Expect store-and-forward uploads after recovery.", a.ScopeID)
}
