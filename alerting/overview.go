package alerting

import (
	"cmp"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// The overview is what the ops console shows of the detector: the fleet's
// failures by cause per minute, the scopes the detectors are testing, the
// scopes failing most, and for each firing incident the terminals behind
// it. It is read from the engine's state at one instant of event time and
// copied out, so callers can hold it while the engine runs on.

// TimelineMinutes is how many minutes of event time the fleet timeline keeps.
const TimelineMinutes = 64

// minuteCount is the fleet's attempts and failures (by cause, declines at
// index CauseNone) in one minute of event time.
type minuteCount struct {
	minute int64 // unix minutes
	n      uint64
	f      [event.NumCauses]uint64
}

// countMinute adds one accepted attempt to the fleet timeline.
func (e *Engine) countMinute(ts int64, cause event.Cause) {
	m := ts / int64(time.Minute)
	c := &e.timeline[m%TimelineMinutes]
	if c.minute != m {
		if c.minute > m {
			return // older than the timeline holds
		}
		*c = minuteCount{minute: m}
	}
	c.n++
	if cause != event.CauseNone {
		c.f[declines]++
		c.f[cause]++
	}
}

// Minute is the fleet's attempts and failures in one minute of event time.
type Minute struct {
	Start    time.Time
	Attempts int
	// Failures by cause; index event.CauseNone holds all failures.
	Failures [event.NumCauses]int
}

// ScopeKey names one scope.
type ScopeKey struct {
	Type event.ScopeType
	ID   string
}

// ScopeView is one scope as the detectors see it now.
type ScopeView struct {
	ScopeKey
	// Window is the detection window the counts cover: its buckets up to
	// the one holding the watermark's last instant (so it may include a
	// few events newer than the watermark). Buckets are its slices,
	// oldest first.
	Window   time.Duration
	Attempts int
	// Failures by cause; index event.CauseNone holds all failures.
	Failures [event.NumCauses]int
	// Expected is the failure rate the scope is tested against (its own
	// baseline and its peers').
	Expected float64
	Buckets  []Minute
	// Suspect: a detector tested the scope at one of its last evaluations
	// (enough failures to be a candidate). Firing lists its open incidents.
	Suspect bool
	Firing  []Kind
	Last    time.Time // newest event time seen
	// Dims are a terminal's merchant, region, carrier... as of its latest
	// event (terminals only).
	Dims []ScopeKey
}

// Rate is the failure rate in the window.
func (v *ScopeView) Rate() float64 {
	if v.Attempts == 0 {
		return 0
	}
	return float64(v.Failures[declines]) / float64(v.Attempts)
}

// Affected is the terminals behind one firing incident: failures of the
// incident's cause in its scope's window, most failing first.
type Affected struct {
	AlertID   string
	Terminals []TerminalFailures
	// More counts the terminals beyond the list.
	More int
}

// TerminalFailures is one terminal's failures of an incident's cause.
type TerminalFailures struct {
	Terminal string
	Failures int
	Codes    []string // distinct response codes and terminal errors, first seen first
}

// Overview is the detector's state for the console.
type Overview struct {
	Watermark time.Time // detection has evaluated up to here
	Newest    time.Time // the newest event time seen
	Minutes   []Minute  // the fleet, oldest first, ending at the newest event
	// Suspects are the scopes under suspicion or firing, most failures first.
	Suspects []ScopeView
	// Top are the scopes with most failures in their windows, per type.
	Top [event.NumScopeTypes][]ScopeView
	// Wanted are the views of the scopes asked for that the engine holds.
	Wanted   []ScopeView
	Affected []Affected
	Stats    Stats
	// Taken is the wall-clock time the copy was taken, set by the caller
	// that keeps it (the engine has no clock).
	Taken time.Time
}

// suspectTicks is how many evaluations a candidate stays "under suspicion".
const overviewSuspectTicks = 5

// Overview returns the console's view: at most limit scopes per list, and
// the scopes in want that the engine holds. It walks every scope held, so
// call it every few seconds, not per event.
func (e *Engine) Overview(limit int, want []ScopeKey) Overview {
	o := Overview{Stats: e.Stats()}
	if !e.started {
		return o
	}
	T := e.nextTick - e.tick
	o.Watermark, o.Newest = time.Unix(0, T).UTC(), time.Unix(0, e.maxTs).UTC()
	newest := e.maxTs / int64(time.Minute)
	for m := newest - TimelineMinutes + 1; m <= newest; m++ {
		c := &e.timeline[((m%TimelineMinutes)+TimelineMinutes)%TimelineMinutes]
		mv := Minute{Start: time.Unix(m*60, 0).UTC()}
		if c.minute == m {
			mv.Attempts = int(c.n)
			for i, f := range c.f {
				mv.Failures[i] = int(f)
			}
		}
		o.Minutes = append(o.Minutes, mv)
	}

	var spans [event.NumScopeTypes]span
	for t := range spans {
		spans[t] = e.spanAt(event.ScopeType(t), e.nb[t], T)
	}
	// Only scopes that failed lately or are firing can rank: the failing
	// list (kept by Observe) and the open incidents, not every scope held.
	e.pruneFailing(T)
	var top [event.NumScopeTypes]topK
	suspects := topK{limit: limit}
	for t := range top {
		top[t].limit = limit
	}
	visit := func(s *scope) {
		if s.evicted {
			return
		}
		f := s.failuresIn(spans[s.typ])
		firing := s.firingAny()
		if firing || (s.suspect != 0 && s.suspect+overviewSuspectTicks > e.tickNo) {
			suspects.offer(s, f)
		}
		if f > 0 || firing {
			top[s.typ].offer(s, f)
		}
	}
	for _, s := range e.failing {
		visit(s)
	}
	visited := map[*scope]bool{}
	for _, r := range e.rules {
		for _, inc := range r.active {
			if inc.scope.failSeen == 0 && !visited[inc.scope] { // else visited above
				visited[inc.scope] = true
				visit(inc.scope)
			}
		}
	}
	for _, r := range suspects.list {
		o.Suspects = append(o.Suspects, e.view(r.s, spans[r.s.typ]))
	}
	for t := range top {
		for _, r := range top[t].list {
			o.Top[t] = append(o.Top[t], e.view(r.s, spans[t]))
		}
	}
	for _, k := range want {
		var s *scope
		if k.Type == event.ScopeModel {
			for _, m := range e.models {
				if m.id == k.ID {
					s = m
					break
				}
			}
		} else if k.Type < event.NumScopeTypes {
			s = e.scopes[k.Type][k.ID]
		}
		if s != nil && !s.evicted {
			o.Wanted = append(o.Wanted, e.view(s, spans[s.typ]))
		}
	}
	o.Affected = e.affectedAll(spans, T, limit)
	return o
}

// relistFailing rebuilds the failing list from the buckets (after a
// restore: the list is not part of a snapshot).
func (e *Engine) relistFailing() {
	visit := func(s *scope) {
		newest := int64(0)
		for i := range s.ring {
			if b := &s.ring[i]; b.n > 0 && b.f[declines] > 0 {
				newest = max(newest, slotEpoch+int64(b.slot+1)*e.width[s.typ]-1)
			}
		}
		if newest > 0 && s.failSeen == 0 {
			s.failSeen = newest
			e.failing = append(e.failing, s)
		}
	}
	for t := range e.scopes {
		for _, s := range e.scopes[t] {
			visit(s)
		}
	}
	for _, s := range e.models {
		visit(s)
	}
}

// pruneFailing drops from the failing list the scopes evicted or with no
// failure in the longest detection window before T.
func (e *Engine) pruneFailing(T int64) {
	horizon := int64(0)
	for t := range e.width {
		horizon = max(horizon, e.width[t]*int64(e.ringLen[t]))
	}
	keep := e.failing[:0]
	for _, s := range e.failing {
		if !s.evicted && s.failSeen >= T-horizon {
			keep = append(keep, s)
		} else {
			s.failSeen = 0
		}
	}
	clear(e.failing[len(keep):])
	e.failing = keep
}

// topK keeps the limit scopes with most failures, most first (ties by id).
type topK struct {
	limit int
	list  []ranked
}

type ranked struct {
	s *scope
	f int
}

func (k *topK) offer(s *scope, f int) {
	if k.limit <= 0 {
		return
	}
	before := func(a, b ranked) bool { return a.f > b.f || (a.f == b.f && a.s.id < b.s.id) }
	r := ranked{s, f}
	if len(k.list) == k.limit && !before(r, k.list[len(k.list)-1]) {
		return
	}
	i, _ := slices.BinarySearchFunc(k.list, r, func(x, y ranked) int {
		if before(x, y) {
			return -1
		}
		return 1
	})
	if len(k.list) < k.limit {
		k.list = append(k.list, ranked{})
	}
	copy(k.list[i+1:], k.list[i:len(k.list)-1])
	k.list[i] = r
}

// failuresIn counts the scope's failures in the buckets of sp.
func (s *scope) failuresIn(sp span) int {
	n := 0
	for i := range s.ring {
		if b := &s.ring[i]; sp.hasSlot(b.slot) {
			n += int(b.f[declines])
		}
	}
	return n
}

func (e *Engine) view(s *scope, sp span) ScopeView {
	v := ScopeView{ScopeKey: ScopeKey{s.typ, s.id}, Window: time.Duration(sp.to - sp.from),
		Expected: e.expected(s, declines), Suspect: s.suspect != 0 && s.suspect+overviewSuspectTicks > e.tickNo,
		Last: time.Unix(0, s.last).UTC()}
	n, f := s.window(sp)
	v.Attempts, v.Failures = n, f
	width := e.width[s.typ]
	for slot := sp.fromSlot; slot < sp.toSlot; slot++ {
		m := Minute{Start: time.Unix(0, slotEpoch+int64(slot)*width).UTC()}
		if b := &s.ring[int(slot)%len(s.ring)]; b.slot == slot {
			m.Attempts = int(b.n)
			for c := range m.Failures {
				m.Failures[c] = int(b.f[c])
			}
		}
		v.Buckets = append(v.Buckets, m)
	}
	if s.incidents != nil {
		for _, inc := range s.incidents {
			if inc != nil {
				v.Firing = append(v.Firing, inc.alert.Kind)
			}
		}
	}
	if s.typ == event.ScopeTerminal && s.dims != nil {
		for t, d := range s.dims {
			if d != nil && event.ScopeType(t) != event.ScopeTerminal && !d.evicted {
				v.Dims = append(v.Dims, ScopeKey{event.ScopeType(t), d.id})
			}
		}
	}
	return v
}

// affectedAll lists, for every firing incident, the terminals with
// failures of its cause in its scope's window (its rule's window for the
// scope type). Only attributed causes keep records, so a decline spike
// lists none. One pass over each cause's records serves all of that
// cause's incidents: the cost grows with records plus incidents.
func (e *Engine) affectedAll(spans [event.NumScopeTypes]span, T int64, limit int) []Affected {
	type target struct {
		inc  *incident
		sp   span
		idx  map[*scope]int
		list []TerminalFailures
	}
	var out []Affected
	byCause := map[event.Cause]map[*scope][]*target{}
	var all []*target
	for _, r := range e.rules {
		for _, inc := range r.active {
			sp := spans[inc.scope.typ]
			if nb := r.nb[inc.scope.typ]; nb > 0 {
				sp = e.spanAt(inc.scope.typ, nb, T)
			}
			t := &target{inc: inc, sp: sp, idx: map[*scope]int{}}
			all = append(all, t)
			if e.queues[r.cause] == nil {
				continue
			}
			if byCause[r.cause] == nil {
				byCause[r.cause] = map[*scope][]*target{}
			}
			byCause[r.cause][inc.scope] = append(byCause[r.cause][inc.scope], t)
		}
	}
	for cause, byScope := range byCause {
		var types [event.NumScopeTypes]bool
		for s := range byScope {
			types[s.typ] = true
		}
		for _, rec := range e.queues[cause].live() {
			term := rec.dims[event.ScopeTerminal]
			if term == nil {
				continue
			}
			for st, ok := range types {
				if !ok || rec.dims[st] == nil {
					continue
				}
				for _, t := range byScope[rec.dims[st]] {
					if !t.sp.has(rec.ts) {
						continue
					}
					i, ok := t.idx[term]
					if !ok {
						i = len(t.list)
						t.idx[term] = i
						t.list = append(t.list, TerminalFailures{Terminal: term.id})
					}
					tf := &t.list[i]
					tf.Failures++
					if len(tf.Codes) < 4 && !slices.Contains(tf.Codes, rec.code) {
						tf.Codes = append(tf.Codes, rec.code)
					}
				}
			}
		}
	}
	for _, t := range all {
		a := Affected{AlertID: t.inc.alert.ID}
		list := t.list
		slices.SortFunc(list, func(a, b TerminalFailures) int {
			return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Terminal, b.Terminal))
		})
		if len(list) > limit {
			a.More = len(list) - limit
			list = list[:limit]
		}
		a.Terminals = list
		out = append(out, a)
	}
	return out
}
