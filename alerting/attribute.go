package alerting

import (
	"cmp"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// candidate statistics for one scope in one evaluation
type candStats struct {
	n     int     // attempts in the scope's window
	p0    float64 // baseline rate of the rule's cause
	k     int     // failures attributed when chosen
	nRes  int
	aff   int
	start int64
	// confirmed: passed the test this tick (a firing scope may be taken
	// for coverage without passing)
	confirmed bool
	pending   bool // passed, but must keep passing for Pending before firing
}

// narrowness orders scope types from narrowest to widest, to break exact
// ties in attribution (a host serving exactly one region is reported as
// the host: that is where ops act).
var narrowness = [event.NumScopeTypes]int{
	event.ScopeTerminal: 0, event.ScopeModel: 1, event.ScopeMerchant: 2, event.ScopeHost: 3,
	event.ScopeCarrier: 4, event.ScopeIssuer: 5, event.ScopeRegion: 6, event.ScopeNetwork: 7, event.ScopeAcquirer: 8,
}

// evalRule runs one record-based detector at tick end T.
//
// Attribution is greedy: among the scopes whose residual failures pass the
// test, take the one with the largest surprise (the most concentrated
// failures), mark its failures explained, and repeat on what is left. A
// carrier failing in every region wins over each region, because inside
// the carrier nearly every attempt fails while each region is diluted by
// its healthy carriers; once the carrier's failures are explained the
// regions are back to normal and raise nothing. Scopes already firing are
// taken first so an incident keeps its scope while it lasts.
func (e *Engine) evalRule(r *rule, T int64) {
	q := e.queues[r.cause]
	recs := q.live()
	var from, to [event.NumScopeTypes]int64
	var slotTo [event.NumScopeTypes]int32
	for _, t := range r.scopes {
		slotTo[t] = e.slot(t, T-1) + 1
		from[t] = slotEpoch + int64(slotTo[t]-r.nb[t])*e.width[t]
		to[t] = slotEpoch + int64(slotTo[t])*e.width[t]
	}
	in := func(rec *record, t event.ScopeType) bool { return rec.ts >= from[t] && rec.ts < to[t] }
	e.gen++
	g := e.gen
	e.touched = e.touched[:0]
	for i := range recs {
		rec := &recs[i]
		for _, t := range r.scopes {
			s := rec.dims[t]
			if s == nil || !in(rec, t) {
				continue
			}
			if s.gen != g {
				s.gen, s.k, s.cand = g, 0, -1
				e.touched = append(e.touched, s)
			}
			s.k++
		}
	}
	hold := max(1, r.cfg.MinFailures/2)
	cands := e.cands[:0]
	for _, s := range e.touched {
		if int(s.k) >= hold || s.incident(r.idx) != nil {
			s.cand = int32(len(cands))
			s.suspect = e.tickNo
			cands = append(cands, s)
		}
	}
	for _, inc := range r.active {
		s := inc.scope
		if s.gen != g {
			s.gen, s.k = g, 0
			s.cand = int32(len(cands))
			cands = append(cands, s)
		}
	}
	e.cands = cands
	stats := make([]candStats, len(cands))
	for i, s := range cands {
		st := &stats[i]
		st.n = s.attempts(slotTo[s.typ]-r.nb[s.typ], slotTo[s.typ])
		st.p0 = e.expected(s, int(r.cause))
	}
	e.chosen = slices.Grow(e.chosen[:0], len(cands))[:len(cands)]
	clear(e.chosen)
	e.covered = slices.Grow(e.covered[:0], len(recs))[:len(recs)]
	clear(e.covered)

	var picked []int
	for len(cands) > 0 {
		for _, s := range cands {
			s.kRes, s.aff = 0, 0
		}
		clear(e.pairs)
		for i := range recs {
			if e.covered[i] {
				continue
			}
			rec := &recs[i]
			term := rec.dims[event.ScopeTerminal]
			for _, t := range r.scopes {
				s := rec.dims[t]
				if s == nil || s.gen != g || s.cand < 0 || e.chosen[s.cand] || !in(rec, t) {
					continue
				}
				s.kRes++
				if t == event.ScopeTerminal {
					s.aff = 1
				} else if _, dup := e.pairs[[2]*scope{s, term}]; !dup {
					e.pairs[[2]*scope{s, term}] = struct{}{}
					s.aff++
				}
			}
		}
		best, bestFiring, bestScore := -1, false, 0.0
		for i, s := range cands {
			if e.chosen[i] {
				continue
			}
			st := &stats[i]
			k := int(s.kRes)
			n := max(st.n-int(s.k-s.kRes), k)
			firing := s.incident(r.idx) != nil
			ok := e.passes(r, s.typ, k, n, int(s.aff), st.p0, firing)
			if !ok && !firing {
				continue
			}
			// A firing incident that no longer passes is still taken: until
			// it resolves it explains its scope's failures, so narrower
			// scopes with longer windows do not re-alert on them.
			score := surprise(k, n, st.p0)
			if !ok {
				score = -1
			}
			better := best < 0 ||
				(firing && !bestFiring) ||
				(firing == bestFiring && (score > bestScore ||
					(score == bestScore && narrowness[s.typ] < narrowness[cands[best].typ])))
			if better {
				best, bestFiring, bestScore = i, firing, score
			}
		}
		if best < 0 {
			break
		}
		s := cands[best]
		e.chosen[best] = true
		st := &stats[best]
		st.confirmed = bestScore >= 0
		st.k = int(s.kRes)
		st.nRes = max(st.n-int(s.k-s.kRes), st.k)
		st.aff = int(s.aff)
		picked = append(picked, best)
		if st.confirmed && s.incident(r.idx) == nil && e.holding(r, s, T) {
			// Pending: leave its failures unexplained so a wider scope
			// can still claim them this tick.
			st.pending = true
			continue
		}
		// The chosen scope explains all its failures, also those older
		// than its own window that a wider-windowed scope would still see.
		for i := range recs {
			rec := &recs[i]
			if !e.covered[i] && rec.dims[s.typ] == s {
				e.covered[i] = true
				if m := rec.dims[event.ScopeMerchant]; m != nil {
					e.markExplained(m, r.cause, T)
				}
			}
		}
	}

	seen := make(map[*scope]bool, len(picked))
	for _, i := range picked {
		s, st := cands[i], &stats[i]
		if !st.confirmed {
			continue // not re-confirmed: settle decides
		}
		if st.pending {
			if e.mostlyCovered(recs, s, from[s.typ], to[s.typ]) {
				continue // a wider scope explains it: never fires
			}
			if _, ok := r.pending[s]; !ok {
				r.pending[s] = T
			}
			seen[s] = true
			continue
		}
		if inc := s.incident(r.idx); inc != nil {
			e.update(inc, st.k, st.nRes, st.aff)
			continue
		}
		if s.typ == event.ScopeTerminal && e.underNetworkOutage(s) {
			e.stats.Inhibited++
			continue
		}
		// Onset: the change point over the scope's buckets, refined to the
		// first failure at or after it.
		onsetAt := e.onset(s, int(r.cause), max(r.cfg.MinRate/2, 2*st.p0), slotTo[s.typ]-r.nb[s.typ], slotTo[s.typ])
		st.start = onsetAt
		found := false
		for i := range recs {
			if rec := &recs[i]; rec.dims[s.typ] == s && in(rec, s.typ) && rec.ts >= onsetAt && (!found || rec.ts < st.start) {
				st.start, found = rec.ts, true
			}
		}
		ev := e.evidence(recs, r, s, from[s.typ], to[s.typ])
		e.fire(r, r.kindFor(s.typ), s, T, st, ev)
	}
	for s := range r.pending {
		if !seen[s] {
			delete(r.pending, s)
		}
	}
	e.settle(r, T)
}

// holding reports whether a new terminal-scope candidate of r must wait:
// it fires only after passing for the rule's Pending time, so that a wider
// scope (the merchant after a key change) gets the chance to explain it.
func (e *Engine) holding(r *rule, s *scope, T int64) bool {
	if r.cfg.Pending <= 0 || s.typ != event.ScopeTerminal {
		return false
	}
	since, ok := r.pending[s]
	return !ok || T-since < int64(r.cfg.Pending)
}

// mostlyCovered reports whether most of s's failures in its window are
// already explained by another scope chosen this tick.
func (e *Engine) mostlyCovered(recs []record, s *scope, from, to int64) bool {
	total, covered := 0, 0
	for i := range recs {
		if rec := &recs[i]; rec.dims[s.typ] == s && rec.ts >= from && rec.ts < to {
			total++
			if e.covered[i] {
				covered++
			}
		}
	}
	return total > 0 && 2*covered >= total
}

// passes applies the rule's test. A firing scope only has to stay clearly
// abnormal (half the thresholds, no significance test) to keep firing;
// this is the hysteresis that stops a flapping scope from opening a new
// incident every minute.
func (e *Engine) passes(r *rule, t event.ScopeType, k, n, aff int, p0 float64, firing bool) bool {
	if n <= 0 || k <= 0 {
		return false
	}
	rate := float64(k) / float64(n)
	c := r.cfg
	if firing {
		return k >= max(1, c.MinFailures/2) && rate >= c.MinRate/2 && rate >= c.MinRatio/2*p0
	}
	if k < c.MinFailures || rate < c.MinRate || rate < c.MinRatio*p0 {
		return false
	}
	if t == event.ScopeTerminal {
		return binomTail(k, n, p0) <= e.cfg.TerminalAlpha
	}
	if aff < c.MinAffected {
		return false
	}
	return binomTail(k, n, p0) <= e.cfg.Alpha
}

// underNetworkOutage reports whether any scope of the terminal has a firing
// network outage: its terminal alerts are inhibited.
func (e *Engine) underNetworkOutage(term *scope) bool {
	if term.dims == nil {
		return false
	}
	for _, s := range term.dims {
		if s != nil && s != term && s.incident(ruleNetwork) != nil {
			return true
		}
	}
	return false
}

// settle resolves incidents of r that were not re-confirmed at T once they
// have looked normal for ClearAfter.
func (e *Engine) settle(r *rule, T int64) {
	keep := r.active[:0]
	for _, inc := range r.active {
		if inc.confirmed == e.tickNo {
			keep = append(keep, inc)
			continue
		}
		if inc.quietSince == 0 {
			inc.quietSince = T
		}
		if T-inc.quietSince >= int64(r.cfg.ClearAfter) {
			e.resolve(inc, inc.quietSince)
			continue
		}
		keep = append(keep, inc)
	}
	clear(r.active[len(keep):])
	r.active = keep
}

// evalDeclineSpike tests merchants whose overall decline rate departs from
// their baseline. A spike whose excess is mostly one cause owned by a more
// specific detector (fraud, MAC/key at the merchant) or explained this tick
// by a firing incident elsewhere (a network outage over the merchant's
// terminals) is left to that detector.
func (e *Engine) evalDeclineSpike(r *rule, T int64) {
	t := event.ScopeMerchant
	slotTo := e.slot(t, T-1) + 1
	fromSlot := slotTo - r.nb[t]
	cands := e.dirtyMerchants
	for _, inc := range r.active {
		if inc.scope.dirtyTick != e.tickNo {
			cands = append(cands, inc.scope)
		}
	}
	waiting := len(cands)
	for s := range r.pending {
		if s.dirtyTick != e.tickNo {
			cands = append(cands, s)
		}
	}
	// Map order is random; evaluation order decides emission order.
	slices.SortFunc(cands[waiting:], func(a, b *scope) int { return cmp.Compare(a.id, b.id) })
	e.gen++
	for _, s := range cands {
		if s.gen == e.gen || s.evicted {
			continue
		}
		s.gen, s.cand = e.gen, -1
		n, f := s.window(fromSlot, slotTo)
		k := f[declines]
		p0 := e.expected(s, declines)
		inc := s.incident(r.idx)
		if !e.passes(r, t, k, n, 1, p0, inc != nil) {
			continue
		}
		s.suspect = e.tickNo
		// Dominant cause: the largest excess over its own baseline.
		dom, domExcess := event.CauseUnknown, -1.0
		for c := event.CauseHardware; c < event.NumCauses; c++ {
			pc := s.baselineRate(int(c), e.poolRate(int(c)), e.cfg.PriorWeight)
			if x := float64(f[c]) - float64(n)*pc; x > domExcess {
				dom, domExcess = c, x
			}
		}
		if inc == nil {
			owned := dom == event.CauseFraudRisk || dom == event.CauseDataTransmission
			explained := s.explainedUntil >= T && s.explainedCauses&(1<<dom) != 0
			if owned || explained || s.firingAny() {
				e.stats.Suppressed++
				continue
			}
			if since, ok := r.pending[s]; !ok || T-since < int64(r.cfg.Pending) {
				// The least specific kind waits, giving the specific
				// detectors time to claim the merchant's failures.
				if !ok {
					r.pending[s] = T
				}
				s.cand = 1 // still pending
				continue
			}
			delete(r.pending, s)
			st := &candStats{n: n, p0: p0, k: k, nRes: n, aff: e.merchantTerminals(s, fromSlot)}
			st.start = e.onset(s, declines, max(r.cfg.MinRate/2, 2*p0), fromSlot, slotTo)
			e.fire(r, r.kind, s, T, st, evidence{dominant: dom})
		} else {
			e.update(inc, k, n, inc.alert.Affected)
		}
	}
	for s := range r.pending {
		if s.gen != e.gen || s.cand != 1 {
			delete(r.pending, s)
		}
	}
	e.dirtyMerchants = e.dirtyMerchants[:0]
	e.settle(r, T)
}

// merchantTerminals counts the merchant's terminals with declines in the
// window (bounded scan of the failure records).
func (e *Engine) merchantTerminals(m *scope, fromSlot int32) int {
	since := slotEpoch + int64(fromSlot)*e.width[event.ScopeMerchant]
	seen := map[*scope]struct{}{}
	for _, c := range recordCauses {
		for i := range e.queues[c].live() {
			rec := &e.queues[c].recs[e.queues[c].head+i]
			if t := rec.dims[event.ScopeTerminal]; rec.dims[event.ScopeMerchant] == m && t != nil && rec.ts >= since {
				seen[t] = struct{}{}
			}
		}
	}
	return max(len(seen), 1)
}

// onset estimates when the current anomaly began, as a change point: the
// bucket start from which the excess of failures over threshold, summed up
// to now, is largest. Quiet buckets before the onset subtract from the
// sum, so an isolated noisy bucket earlier in the window does not pull the
// onset back, and one approved attempt inside the anomaly does not push it
// forward.
func (e *Engine) onset(s *scope, c int, threshold float64, fromSlot, toSlot int32) int64 {
	bySlot := make(map[int32]*bucket, len(s.ring))
	for i := range s.ring {
		if b := &s.ring[i]; b.slot >= fromSlot && b.slot < toSlot && b.n > 0 {
			bySlot[b.slot] = b
		}
	}
	best, bestSum, sum := toSlot-1, 0.0, 0.0
	for slot := toSlot - 1; slot >= fromSlot; slot-- {
		b, ok := bySlot[slot]
		if !ok {
			continue
		}
		sum += float64(b.f[c]) - threshold*float64(b.n)
		if sum > bestSum {
			best, bestSum = slot, sum
		}
	}
	return slotEpoch + int64(best)*e.width[s.typ]
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

// evidence is what the alert text says about a new incident.
type evidence struct {
	codes    []string                    // most frequent codes, most frequent first
	spread   [event.NumScopeTypes]int    // distinct values per dimension among its failures
	single   [event.NumScopeTypes]string // the value when spread is 1
	dominant event.Cause
}

func (e *Engine) evidence(recs []record, r *rule, s *scope, from, to int64) evidence {
	ev := evidence{dominant: r.cause}
	codes := map[string]int{}
	var seen [event.NumScopeTypes]map[*scope]struct{}
	for i := range recs {
		rec := &recs[i]
		if rec.dims[s.typ] != s || rec.ts < from || rec.ts >= to {
			continue
		}
		codes[rec.code]++
		for t, d := range rec.dims {
			if d == nil {
				continue
			}
			if seen[t] == nil {
				seen[t] = map[*scope]struct{}{}
			}
			seen[t][d] = struct{}{}
			ev.single[t] = d.id
		}
	}
	for t := range seen {
		ev.spread[t] = len(seen[t])
	}
	for c := range codes {
		ev.codes = append(ev.codes, c)
	}
	slices.SortFunc(ev.codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(codes[b], codes[a]), cmp.Compare(a, b))
	})
	if len(ev.codes) > 3 {
		ev.codes = ev.codes[:3]
	}
	return ev
}

func (e *Engine) fire(r *rule, k Kind, s *scope, T int64, st *candStats, ev evidence) {
	start := time.Unix(0, st.start).UTC()
	if st.start == 0 {
		start = time.Unix(0, T).UTC()
	}
	detected := time.Unix(0, T).UTC()
	cause := r.cause
	if r.cause == event.CauseNone {
		cause = ev.dominant
	}
	a := Alert{
		ID:         alertID(k, s.typ.String(), s.id, cause.String(), start),
		State:      StateFiring,
		Kind:       k,
		Cause:      cause.String(),
		ScopeType:  s.typ.String(),
		ScopeID:    s.id,
		StartsAt:   start,
		DetectedAt: detected,
		Labels:     e.labels(r, k, s, detected),
	}
	setCounts(&a, st.k, st.nRes, st.aff, st.p0)
	// Dimension labels let a router (Alertmanager inhibition) relate a
	// terminal alert to an outage of its region, carrier, host...
	if s.typ == event.ScopeTerminal && s.dims != nil {
		for t, d := range s.dims {
			if d != nil && event.ScopeType(t) != event.ScopeTerminal {
				a.Labels[dimLabel(event.ScopeType(t))] = d.id
			}
		}
	} else {
		a.Labels[dimLabel(s.typ)] = s.id
	}
	a.Summary, a.Remedy = describe(&a, ev)
	inc := &incident{alert: a, rule: r, scope: s, confirmed: e.tickNo}
	s.setIncident(r.idx, inc)
	r.active = append(r.active, inc)
	e.stats.Fired++
	e.emit(a)
}

// dimLabel is the label carrying a dimension's value; merchant_id rather
// than merchant, as in the event.
func dimLabel(t event.ScopeType) string {
	if t == event.ScopeMerchant {
		return "merchant_id"
	}
	return t.String()
}

func setCounts(a *Alert, k, n, aff int, p0 float64) {
	a.Attempts, a.Failures, a.Affected = n, k, aff
	if n > 0 {
		a.Rate = round4(float64(k) / float64(n))
	}
	a.BaselineRate = round4(p0)
}

func round4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }

// update re-confirms a firing incident with the latest window, keeping the
// peak failures and affected count so the resolved record tells how bad it
// got.
func (e *Engine) update(inc *incident, k, n, aff int) {
	inc.confirmed, inc.quietSince = e.tickNo, 0
	a := &inc.alert
	if k >= a.Failures {
		setCounts(a, k, n, max(aff, a.Affected), a.BaselineRate)
	}
}

func (e *Engine) resolve(inc *incident, at int64) {
	a := inc.alert
	a.State = StateResolved
	end := time.Unix(0, at).UTC()
	a.EndsAt = &end
	inc.scope.setIncident(inc.rule.idx, nil)
	e.stats.Resolved++
	e.emit(a)
}

func (e *Engine) labels(r *rule, k Kind, s *scope, at time.Time) map[string]string {
	cfg := e.cfg.Rules[k.String()]
	l := make(map[string]string, len(e.cfg.Labels)+4)
	for key, v := range e.cfg.Labels {
		l[key] = v
	}
	l["severity"] = cfg.Severity
	l["team"] = cfg.Team
	l["paging"] = "true"
	for _, m := range e.cfg.Maintenance {
		if m.ScopeType == s.typ.String() && m.ScopeID == s.id && !at.Before(m.Start) && at.Before(m.End) {
			l["maintenance"] = "true"
			l["paging"] = "false"
			l["severity"] = "info"
			if m.Note != "" {
				l["maintenance_note"] = m.Note
			}
		}
	}
	return l
}
