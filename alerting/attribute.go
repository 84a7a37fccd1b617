package alerting

import (
	"slices"

	"github.com/declinemon/declinemon/event"
)

// Attribution is greedy: among the scopes whose residual failures pass the
// test, take the one with the largest surprise (the most concentrated
// failures), mark its failures explained, and repeat on what is left. A
// carrier failing in every region wins over each region, because inside
// the carrier nearly every attempt fails while each region is diluted by
// its healthy carriers; once the carrier's failures are explained the
// regions are back to normal and raise nothing. Scopes already firing are
// taken first so an incident keeps its scope while it lasts.

// narrowness orders scope types from narrowest to widest, to break exact
// ties in attribution (a host serving exactly one region is reported as
// the host: that is where ops act).
var narrowness = [event.NumScopeTypes]int{
	event.ScopeTerminal: 0, event.ScopeModel: 1, event.ScopeMerchant: 2, event.ScopeHost: 3, event.ScopeRegionCarrier: 4,
	event.ScopeCarrier: 5, event.ScopeIssuer: 6, event.ScopeRegion: 7, event.ScopeNetwork: 8, event.ScopeAcquirer: 9,
}

// verdict is what attribution decided about a candidate.
type verdict uint8

const (
	verdictOpen verdict = iota // not taken (yet)
	// verdictKept: firing and taken without passing. Until its incident
	// resolves it explains its scope's failures, so narrower scopes with
	// longer windows do not re-alert on them.
	verdictKept
	// verdictHeld: passed, but new and waiting out the rule's Pending time.
	// Its failures stay unexplained so a wider scope can still claim them.
	verdictHeld
	verdictConfirmed // passed: fires, or re-confirms its incident
)

// candidate is a scope one rule tests at one tick.
type candidate struct {
	s        *scope
	firing   bool    // has an incident of the rule
	failures int     // of the rule's cause in the scope's window
	attempts int     // in the scope's window
	baseline float64 // expected rate of the cause

	// Recounted every round over the failures no taken scope explains yet.
	residual int // failures
	affected int // distinct terminals with them

	verdict verdict
	tally   tally // set when taken
	// bySeq: passed on its sequential evidence alone, whose run (set by
	// seqPasses) the alert reports.
	bySeq bool
	run   tally
}

// residualAttempts is the window's attempts less the failures that scopes
// taken before explain.
func (c *candidate) residualAttempts() int {
	return max(c.attempts-(c.failures-c.residual), c.residual)
}

// attribute decides which scopes explain the rule's failures, leaving the
// decisions in ev.cands and the order they were taken in ev.taken.
func (ev *evaluation) attribute(e *Engine) {
	ev.gather(e)
	if len(ev.cands) == 0 {
		return
	}
	for {
		ev.countResidual()
		best, passed := ev.best(e)
		if best < 0 {
			return
		}
		ev.take(e, best, passed)
	}
}

// gather counts the failures of every scope in its window and makes
// candidates of the scopes with enough of them to be tested and of every
// firing scope. It resolves each record's scopes to candidates once, so
// the rounds that follow index instead of looking up.
func (ev *evaluation) gather(e *Engine) {
	r, recs := ev.rule, ev.recs
	ns := len(r.scopes)
	ev.recCand = slices.Grow(ev.recCand[:0], len(recs)*ns)[:len(recs)*ns]
	for i := range recs {
		rec := &recs[i]
		for j, t := range r.scopes {
			id := int32(-1)
			if s := rec.dims[t]; s != nil && ev.span[t].has(rec.ts) {
				id = ev.see(s)
				ev.seen[id].failures++
			}
			ev.recCand[i*ns+j] = id
		}
	}
	hold := max(1, r.cfg.MinFailures/2)
	for id := range ev.seen {
		sc := &ev.seen[id]
		sc.cand = -1
		if sequential(r, sc.s.typ) {
			e.seqCatchUp(sc.s, e.slot(sc.s.typ, ev.T))
		}
		if sc.failures >= hold || sc.s.incident(r.idx) != nil || (sequential(r, sc.s.typ) && sc.s.seqAlarm()) {
			sc.cand = int32(len(ev.cands))
			sc.s.suspect = e.tickNo
			ev.cands = append(ev.cands, candidate{s: sc.s, failures: sc.failures})
		}
	}
	for k, id := range ev.recCand {
		if id >= 0 {
			ev.recCand[k] = ev.seen[id].cand
		}
	}
	// A firing scope is a candidate even without failures in its window:
	// kept, it still explains its older failures until it resolves.
	for _, inc := range r.active {
		if _, ok := ev.index[inc.scope]; !ok {
			ev.cands = append(ev.cands, candidate{s: inc.scope})
		}
	}
	for i := range ev.cands {
		c := &ev.cands[i]
		c.firing = c.s.incident(r.idx) != nil
		c.attempts = c.s.attempts(ev.span[c.s.typ])
		c.baseline = e.expected(c.s, int(r.cause))
	}
}

// see returns the index of s in ev.seen, adding it when new.
func (ev *evaluation) see(s *scope) int32 {
	id, ok := ev.index[s]
	if !ok {
		id = int32(len(ev.seen))
		ev.index[s] = id
		ev.seen = append(ev.seen, seenScope{s: s})
	}
	return id
}

// countResidual recounts, for every candidate not taken, the failures and
// distinct failing terminals that no taken scope explains.
func (ev *evaluation) countResidual() {
	for i := range ev.cands {
		ev.cands[i].residual, ev.cands[i].affected = 0, 0
	}
	clear(ev.pairs)
	scopes := ev.rule.scopes
	ns := len(scopes)
	for i := range ev.recs {
		if ev.covered[i] {
			continue
		}
		term := ev.recs[i].dims[event.ScopeTerminal]
		for j, t := range scopes {
			ci := ev.recCand[i*ns+j]
			if ci < 0 || ev.cands[ci].verdict != verdictOpen {
				continue
			}
			c := &ev.cands[ci]
			c.residual++
			if t == event.ScopeTerminal {
				c.affected = 1
			} else if p := (termPair{ci, term}); !ev.hasPair(p) {
				ev.pairs[p] = struct{}{}
				c.affected++
			}
		}
	}
}

func (ev *evaluation) hasPair(p termPair) bool {
	_, ok := ev.pairs[p]
	return ok
}

// best returns the candidate to take next, -1 when none is left, and
// whether it passed the test. Firing candidates come first, then the
// largest surprise, then the narrowest scope type.
func (ev *evaluation) best(e *Engine) (best int, passed bool) {
	best, bestFiring, bestScore := -1, false, 0.0
	for i := range ev.cands {
		c := &ev.cands[i]
		if c.verdict != verdictOpen {
			continue
		}
		k, n := c.residual, c.residualAttempts()
		ok := e.passes(ev.rule, c.s.typ, k, n, c.affected, c.baseline, c.firing)
		c.bySeq = !ok && ev.seqPasses(e, c)
		ok = ok || c.bySeq
		if !ok && !c.firing {
			continue
		}
		score := -1.0 // a firing candidate that no longer passes
		if ok {
			score = surprise(k, n, c.baseline)
		}
		better := best < 0 ||
			(c.firing && !bestFiring) ||
			(c.firing == bestFiring && (score > bestScore ||
				(score == bestScore && narrowness[c.s.typ] < narrowness[ev.cands[best].s.typ])))
		if better {
			best, bestFiring, bestScore = i, c.firing, score
		}
	}
	return best, bestScore >= 0
}

// take decides candidate i and, unless it is held, marks its failures
// explained.
func (ev *evaluation) take(e *Engine, i int, passed bool) {
	c := &ev.cands[i]
	ev.taken = append(ev.taken, int32(i))
	c.tally = tally{failures: c.residual, attempts: c.residualAttempts(), affected: c.affected, baseline: c.baseline}
	if c.bySeq && passed {
		c.tally = c.run
	}
	switch {
	case !passed:
		c.verdict = verdictKept
	case !c.firing && ev.rule.holding(c.s, ev.T):
		c.verdict = verdictHeld
		return
	default:
		c.verdict = verdictConfirmed
	}
	ev.cover(e, c.s)
}

// cover marks all of s's failures explained, also those older than its
// own window that a wider-windowed scope would still see.
func (ev *evaluation) cover(e *Engine, s *scope) {
	for i := range ev.recs {
		rec := &ev.recs[i]
		if !ev.covered[i] && rec.dims[s.typ] == s {
			ev.covered[i] = true
			if m := rec.dims[event.ScopeMerchant]; m != nil {
				e.markExplained(m, ev.rule.cause, ev.T)
			}
		}
	}
}

// mostlyCovered reports whether most of s's failures in its window are
// explained by other scopes taken.
func (ev *evaluation) mostlyCovered(s *scope) bool {
	sp := ev.span[s.typ]
	total, covered := 0, 0
	for i := range ev.recs {
		if rec := &ev.recs[i]; rec.dims[s.typ] == s && sp.has(rec.ts) {
			total++
			if ev.covered[i] {
				covered++
			}
		}
	}
	return total > 0 && 2*covered >= total
}
