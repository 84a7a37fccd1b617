package alerting

import (
	"cmp"
	"math"
	"math/bits"
	"slices"

	"github.com/declinemon/declinemon/event"
)

// Eviction keeps the detector's state bounded. Idle scopes go after IdleTTL
// (evict, every 60 ticks). A producer sending made-up ids creates scopes
// far faster than that, so their number is also capped (Config.MaxScopes):
// when an event takes it past the cap, sweep evicts down to 90% of it. The
// sweep is O(scopes + failure records) but runs at most once per
// MaxScopes/10 new scopes, and never on a fleet that fits under the cap,
// so Observe stays cheap.
//
// Eviction order at the cap: a scope under suspicion is never evicted —
// one with a firing incident of any rule, a pending alert, or one that was
// a candidate (enough failures of a rule's cause to be tested, or a
// merchant passing the decline-spike test) at either of the latest two
// evaluations. Among the rest the least recently seen in event time go
// first, ties broken by scope type then id, so a replay evicts the same
// scopes. When more than 90% of the cap is under suspicion the sweep
// cannot get under it; the next sweep then waits for another tenth of the
// cap of new scopes, so sweeping stays amortised.

// sweepBins is the resolution of a histogram pass of the sweep's search
// for its cut, and sweepSort the most scopes it sorts to place it exactly.
const (
	sweepBins = 1024
	sweepSort = 16384
)

// suspectTicks is for how many evaluations a candidate is kept from the
// cap sweep: a candidate is re-marked at every evaluation it stays one.
const suspectTicks = 2

// evictable reports whether s may be evicted: not already gone and not
// under suspicion.
func (e *Engine) evictable(s *scope) bool {
	return !s.evicted && !s.firingAny() && (s.suspect == 0 || s.suspect+suspectTicks <= e.tickNo)
}

// drop accounts for one evicted scope; the caller deletes it from its map.
func (e *Engine) drop(s *scope, atCap bool) {
	s.evicted = true
	e.nScopes--
	e.stats.EvictedScopes++
	if atCap {
		e.stats.EvictedAtCap++
	}
}

// evict lets go of the scopes idle since before T-IdleTTL.
func (e *Engine) evict(T int64) {
	before := T - int64(e.cfg.IdleTTL)
	var types uint16
	for t, m := range e.scopes {
		for id, s := range m {
			if s.last < before && e.evictable(s) {
				e.drop(s, false)
				delete(m, id)
				types |= 1 << t
			}
		}
	}
	for k, s := range e.models {
		if s.last < before && e.evictable(s) {
			e.drop(s, false)
			delete(e.models, k)
			types |= 1 << event.ScopeModel
		}
	}
	e.forgetEvicted(types)
	e.pruneFailing(T)
}

// sweep evicts down to 90% of MaxScopes in the order described above.
func (e *Engine) sweep() {
	e.stats.CapSweeps++
	lo, hi, rest := e.sweepCut(e.nScopes - (e.cfg.MaxScopes - e.cfg.MaxScopes/10))
	// Evict every evictable scope last seen before lo, and the first rest
	// of those seen in [lo, hi].
	type tiedScope struct {
		s   *scope
		key [2]string // for models, keyed by model and firmware rather than id
	}
	var tied []tiedScope
	var types uint16
	for t, m := range e.scopes {
		for id, s := range m {
			if s.last > hi || !e.evictable(s) {
				continue
			}
			if s.last < lo {
				e.drop(s, true)
				delete(m, id)
				types |= 1 << t
			} else if rest > 0 {
				tied = append(tied, tiedScope{s: s})
			}
		}
	}
	for k, s := range e.models {
		if s.last > hi || !e.evictable(s) {
			continue
		}
		if s.last < lo {
			e.drop(s, true)
			delete(e.models, k)
			types |= 1 << event.ScopeModel
		} else if rest > 0 {
			tied = append(tied, tiedScope{s: s, key: k})
		}
	}
	slices.SortFunc(tied, func(a, b tiedScope) int {
		return cmp.Or(cmp.Compare(a.s.last, b.s.last), cmp.Compare(a.s.typ, b.s.typ), cmp.Compare(a.s.id, b.s.id))
	})
	for _, v := range tied[:rest] {
		e.drop(v.s, true)
		types |= 1 << v.s.typ
		if v.s.typ == event.ScopeModel {
			delete(e.models, v.key)
		} else {
			delete(e.scopes[v.s.typ], v.s.id)
		}
	}
	e.forgetEvicted(types)
	if e.started {
		e.pruneFailing(e.nextTick - e.tick)
	}
	e.sweepAt = max(e.cfg.MaxScopes, e.nScopes+max(1, e.cfg.MaxScopes/10))
}

// sweepCut places the cut between the need evictable scopes least recently
// seen and the rest: all those last seen before lo, and rest more of those
// seen in [lo, hi], at most sweepSort of them unless they share one event
// time. It narrows the range with histograms of event time rather than
// sorting every scope, so it takes no memory in proportion to the scopes
// held, and in the common case one pass: the first histogram is of age
// (time before the newest event), in bins within 1/64 of their age wide.
func (e *Engine) sweepCut(need int) (lo, hi int64, rest int) {
	var ages [ageBins]int
	cnt := 0
	e.eachScope(func(s *scope) {
		if e.evictable(s) {
			ages[ageBin(e.maxTs-s.last)]++
			cnt++
		}
	})
	if cnt <= need {
		return math.MaxInt64, math.MaxInt64, 0 // everything evictable goes
	}
	b := ageBins - 1
	for ages[b] <= need { // oldest first
		need -= ages[b]
		b--
	}
	aLo, aHi := ageRange(b)
	lo, hi, cnt = e.maxTs-aHi, e.maxTs-aLo, ages[b]
	// Invariant: the evictable scopes seen before lo are taken, need more
	// are to be taken from the cnt > need seen in [lo, hi].
	for need > 0 && cnt > sweepSort && lo < hi {
		var hist [sweepBins]int
		width := (hi-lo)/sweepBins + 1
		e.eachScope(func(s *scope) {
			if s.last >= lo && s.last <= hi && e.evictable(s) {
				hist[(s.last-lo)/width]++
			}
		})
		b := 0
		for hist[b] <= need {
			need -= hist[b]
			b++
		}
		start := lo + int64(b)*width
		if hi-start >= width {
			hi = start + width - 1
		}
		lo, cnt = start, hist[b]
	}
	return lo, hi, need
}

// The age histogram counts in units of 2^20 ns (about 1 ms): one bin per
// unit below 128, then 64 bins per doubling of age, up to the 2^63 ns an
// int64 holds (2^43 units: exponents up to 36).
const ageBins = 37 << 7

func ageBin(age int64) int {
	a := uint64(max(age, 0)) >> 20
	exp := max(bits.Len64(a)-7, 0)
	return exp<<7 | int(a>>exp)
}

// ageRange returns the ages (ns) bin b counts, inclusive.
func ageRange(b int) (lo, hi int64) {
	exp, m := uint(b>>7), uint64(b&127)
	return int64(m << exp << 20), int64((m+1)<<exp<<20 - 1)
}

func (e *Engine) eachScope(f func(*scope)) {
	for _, m := range e.scopes {
		for _, s := range m {
			f(s)
		}
	}
	for _, s := range e.models {
		f(s)
	}
}

// forgetEvicted removes the references to evicted scopes of the given
// types (a bit set) from the failure records. Otherwise the records would
// keep evicted scopes in memory for their retention — under a flood of new
// ids, up to MaxRecords times the scopes of a record — and an id seen
// again would have its failures split between its old and new scope.
func (e *Engine) forgetEvicted(types uint16) {
	if types == 0 {
		return
	}
	for _, c := range recordCauses {
		recs := e.queues[c].live()
		for i := range recs {
			d := &recs[i].dims
			for t, s := range d {
				if s != nil && types&(1<<t) != 0 && s.evicted {
					d[t] = nil
				}
			}
		}
	}
}
