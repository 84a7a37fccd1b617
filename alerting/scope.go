package alerting

import (
	"time"

	"github.com/declinemon/declinemon/event"
)

// Per-scope state is kept small because there is one per active terminal:
// a ring of event-time buckets and a baseline, about 580 bytes for a
// terminal (see BenchmarkEngineMemory). It holds only what lasts from one
// evaluation to the next; what an evaluation works out about a scope lives
// in the evaluation (see evaluation).

// declines is the counter index holding all non-approved attempts; the
// other indexes are event.Cause values. CauseNone never counts as a
// failure, so its slot is free for the total.
const declines = int(event.CauseNone)

// bucket counts attempts and failures by cause in one slice of event time.
// Per-cause counts saturate at 65535 per bucket.
type bucket struct {
	slot int32
	n    uint32
	f    [event.NumCauses]uint16
}

// scope is the state of one value of one dimension (a terminal, a region...).
//
// The fields the cap sweep reads of every scope come first, side by side,
// because the sweep is bound by fetching them.
type scope struct {
	typ event.ScopeType
	// evicted is set when the engine lets go of the scope: a terminal's
	// dims may still point at it until the terminal's next event, which
	// looks the id up again.
	evicted bool
	// suspect is the last evaluation (Engine.tickNo) at which the scope was
	// a candidate of some rule; 0 if never. The cap sweep keeps recent
	// suspects.
	suspect uint64
	last    int64 // newest event time seen, unix ns
	// incidents holds the firing incident per rule, allocated on first use.
	incidents *[numRules]*incident

	id   string
	ring []bucket
	// dims is, for terminals only, the terminal's scopes as of its latest
	// event, so repeat lookups of its region, carrier... are pointer hops.
	dims *[event.NumScopeTypes]*scope
	base baseline

	// For merchants: causes whose failures a firing incident elsewhere
	// explains, until explainedUntil (event time). See markExplained.
	explainedUntil  int64
	explainedCauses uint16

	// failSeen is the event time of the scope's latest failure while it is
	// on the engine's failing list (0: not on it). See overview.go.
	failSeen int64

	// seq is the sequential evidence of a hardware fault (terminals and
	// model cohorts, see sequential.go); peer is a cohort's peers' rate.
	seq   seqState
	peer  float32
	probe *probation
	// vol is, for regions, the attempts per minute (see silence.go).
	vol *volume
}

func (s *scope) incident(r int) *incident {
	if s.incidents == nil {
		return nil
	}
	return s.incidents[r]
}

func (s *scope) setIncident(r int, inc *incident) {
	if s.incidents == nil {
		if inc == nil {
			return
		}
		s.incidents = new([numRules]*incident)
	}
	s.incidents[r] = inc
}

func (s *scope) firingAny() bool {
	if s.incidents == nil {
		return false
	}
	for _, inc := range s.incidents {
		if inc != nil {
			return true
		}
	}
	return false
}

// add counts one attempt in the bucket of slot. Buckets that fall out of
// the ring are learned (see learn), hold being the probation in slots. It returns false when slot is
// older than the ring holds.
func (s *scope) add(slot int32, cause event.Cause, decay float32, hold int32) bool {
	b := &s.ring[int(slot)%len(s.ring)]
	if b.slot != slot {
		if b.slot > slot {
			return false
		}
		if b.n > 0 {
			s.learn(b, decay, hold)
		}
		*b = bucket{slot: slot}
	}
	b.n++
	if cause != event.CauseNone {
		if b.f[declines] < 0xffff {
			b.f[declines]++
		}
		if b.f[cause] < 0xffff {
			b.f[cause]++
		}
	}
	return true
}

// window sums the buckets of sp.
func (s *scope) window(sp span) (n int, f [event.NumCauses]int) {
	for i := range s.ring {
		b := &s.ring[i]
		if sp.hasSlot(b.slot) && b.n > 0 {
			n += int(b.n)
			for c := range f {
				f[c] += int(b.f[c])
			}
		}
	}
	return n, f
}

// attempts sums only the attempt counts of the buckets of sp.
func (s *scope) attempts(sp span) int {
	n := 0
	for i := range s.ring {
		if b := &s.ring[i]; sp.hasSlot(b.slot) {
			n += int(b.n)
		}
	}
	return n
}

// slotEpoch keeps bucket slots small enough for int32 at 1 s buckets
// until the 2080s.
var slotEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func (e *Engine) slot(t event.ScopeType, ts int64) int32 {
	return int32((ts - slotEpoch) / e.width[t])
}

// span is a detection window of one scope type: the buckets with
// fromSlot <= slot < toSlot, which hold the event times [from, to).
type span struct {
	fromSlot, toSlot int32
	from, to         int64
}

// spanAt returns the window of nb buckets of scope type t that ends with the
// bucket holding the last instant before tick end T.
func (e *Engine) spanAt(t event.ScopeType, nb int32, T int64) span {
	to := e.slot(t, T-1) + 1
	from := to - nb
	return span{
		fromSlot: from, toSlot: to,
		from: slotEpoch + int64(from)*e.width[t],
		to:   slotEpoch + int64(to)*e.width[t],
	}
}

func (sp span) hasSlot(slot int32) bool { return slot >= sp.fromSlot && slot < sp.toSlot }
func (sp span) has(ts int64) bool       { return ts >= sp.from && ts < sp.to }

func (e *Engine) newScope(t event.ScopeType, id string) *scope {
	e.nScopes++
	return &scope{typ: t, id: id, ring: make([]bucket, e.ringLen[t])}
}

func (e *Engine) lookup(t event.ScopeType, id string) *scope {
	m := e.scopes[t]
	s, ok := m[id]
	if !ok {
		s = e.newScope(t, id)
		m[id] = s
	}
	return s
}

func (e *Engine) lookupModel(model, firmware string) *scope {
	k := [2]string{model, firmware}
	s, ok := e.models[k]
	if !ok {
		id := model
		if firmware != "" {
			id = model + "/" + firmware
		}
		s = e.newScope(event.ScopeModel, id)
		e.models[k] = s
	}
	return s
}
