package alerting

import (
	"cmp"
	"slices"

	"github.com/declinemon/declinemon/event"
)

// decline_spike tests merchants whose overall decline rate departs from
// their baseline. It keeps no failure records: it reads the merchant's
// buckets, and only merchants with a decline since the last evaluation,
// an incident or a hold are tested. A spike whose excess is mostly one
// cause owned by a more specific detector (fraud, MAC/key at the merchant)
// or explained by a firing incident elsewhere (a network outage over the
// merchant's terminals, see markExplained) is left to that detector.

// merchantSet is the merchants with a decline since the last evaluation,
// in the order of their first decline, which is the order they are tested
// in.
type merchantSet struct {
	list []*scope
	in   map[*scope]struct{}
}

func (m *merchantSet) add(s *scope) {
	if _, ok := m.in[s]; !ok {
		m.in[s] = struct{}{}
		m.list = append(m.list, s)
	}
}

func (m *merchantSet) has(s *scope) bool {
	_, ok := m.in[s]
	return ok
}

// reset empties the set, keeping its buffers.
func (m *merchantSet) reset() {
	clear(m.list)
	m.list = m.list[:0]
	clear(m.in)
}

func (e *Engine) evalDeclineSpike(r *rule, T int64) {
	ev := &e.eval
	ev.begin(e, r, T)
	sp := ev.span[event.ScopeMerchant]
	for _, s := range ev.spikeMerchants(e) {
		if !s.evicted {
			e.testSpike(r, s, sp, T)
		}
	}
	r.holds.expire()
	e.settle(r, T)
	ev.release()
}

// spikeMerchants lists the merchants to test: those with a decline since
// the last evaluation, then those with an incident or a hold, which are
// tested also when they have none.
func (ev *evaluation) spikeMerchants(e *Engine) []*scope {
	r := ev.rule
	m := append(ev.merchants[:0], e.changed.list...)
	for _, inc := range r.active {
		if !e.changed.has(inc.scope) {
			m = append(m, inc.scope)
		}
	}
	held := len(m)
	for s := range r.holds.since {
		if !e.changed.has(s) {
			m = append(m, s)
		}
	}
	// Map order is random; evaluation order decides emission order.
	slices.SortFunc(m[held:], func(a, b *scope) int { return cmp.Compare(a.id, b.id) })
	ev.merchants = m
	return m
}

// testSpike tests merchant s over sp, and fires, holds, updates or leaves
// its decline spike.
func (e *Engine) testSpike(r *rule, s *scope, sp span, T int64) {
	n, f := s.window(sp)
	k := f[declines]
	p0 := e.expected(s, declines)
	inc := s.incident(r.idx)
	if !e.passes(r, event.ScopeMerchant, k, n, 1, p0, inc != nil) {
		return
	}
	s.suspect = e.tickNo
	if inc != nil {
		e.update(inc)
		return
	}
	dom := e.dominantCause(s, n, f)
	owned := dom == event.CauseFraudRisk || dom == event.CauseDataTransmission
	explained := s.explainedUntil >= T && s.explainedCauses&(1<<dom) != 0
	if owned || explained || s.firingAny() {
		e.stats.Suppressed++
		return
	}
	if r.holds.waiting(s, T, r.cfg.Pending) {
		// The least specific kind waits, giving the specific detectors
		// time to claim the merchant's failures.
		r.holds.renew(s, T)
		return
	}
	e.fire(r, alarm{
		kind: r.kind, cause: dom, scope: s,
		start: e.onset(s, declines, max(r.cfg.MinRate/2, 2*p0), sp),
		tally: tally{failures: k, attempts: n, affected: e.merchantTerminals(s, sp), baseline: p0},
	}, T)
}

// dominantCause is the cause with the largest excess over the merchant's
// own baseline among n attempts with failures f.
func (e *Engine) dominantCause(s *scope, n int, f [event.NumCauses]int) event.Cause {
	dom, domExcess := event.CauseUnknown, -1.0
	for c := event.CauseHardware; c < event.NumCauses; c++ {
		pc := s.baselineRate(int(c), e.poolRate(int(c)), e.cfg.PriorWeight)
		if x := float64(f[c]) - float64(n)*pc; x > domExcess {
			dom, domExcess = c, x
		}
	}
	return dom
}

// merchantTerminals counts the merchant's terminals with failure records
// in sp (bounded scan of the records).
func (e *Engine) merchantTerminals(m *scope, sp span) int {
	seen := map[*scope]struct{}{}
	for _, c := range recordCauses {
		recs := e.queues[c].live()
		for i := range recs {
			rec := &recs[i]
			if t := rec.dims[event.ScopeTerminal]; rec.dims[event.ScopeMerchant] == m && t != nil && rec.ts >= sp.from {
				seen[t] = struct{}{}
			}
		}
	}
	return max(len(seen), 1)
}

// markExplained notes that merchant m's failures of cause c are explained
// by a firing incident, for as long as they stay in the merchant's window.
func (e *Engine) markExplained(m *scope, c event.Cause, T int64) {
	if m.explainedUntil < T {
		m.explainedCauses = 0
	}
	m.explainedCauses |= 1 << c
	m.explainedUntil = T + e.width[event.ScopeMerchant]*int64(e.nb[event.ScopeMerchant])
}
