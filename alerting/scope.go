package alerting

import "github.com/declinemon/declinemon/event"

// Per-scope state is kept small because there is one per active terminal:
// a ring of event-time buckets and a baseline, about 600 bytes for a
// terminal (see BenchmarkEngineMemory).

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

// baseline is an exponentially weighted count of past attempts and
// failures: rate = f/n weights each bucket by its volume, so quiet nights
// and busy lunches count in proportion to the evidence they carry.
type baseline struct {
	n float32
	f [event.NumCauses]float32
}

func (b *baseline) fold(bk *bucket, decay float32) {
	b.n = b.n*decay + float32(bk.n)
	for i := range b.f {
		b.f[i] = b.f[i]*decay + float32(bk.f[i])
	}
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

	// scratch for one evaluation, valid while gen matches Engine.gen
	gen       uint64
	cand      int32
	k, kRes   int32
	aff       int32
	dirtyTick uint64
	// for merchants: causes whose failures a firing incident elsewhere
	// explains, until explainedUntil (event time)
	explainedUntil  int64
	explainedCauses uint16
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
// the ring are folded into the baseline unless the scope is in an incident,
// so incidents are not learned as normal. It returns false when slot is
// older than the ring holds.
func (s *scope) add(slot int32, cause event.Cause, decay float32) bool {
	b := &s.ring[int(slot)%len(s.ring)]
	if b.slot != slot {
		if b.slot > slot {
			return false
		}
		if b.n > 0 && !s.firingAny() {
			s.base.fold(b, decay)
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

// window sums the buckets with from <= slot < to.
func (s *scope) window(from, to int32) (n int, f [event.NumCauses]int) {
	for i := range s.ring {
		b := &s.ring[i]
		if b.slot >= from && b.slot < to && b.n > 0 {
			n += int(b.n)
			for c := range f {
				f[c] += int(b.f[c])
			}
		}
	}
	return n, f
}

// attempts sums only the attempt counts with from <= slot < to.
func (s *scope) attempts(from, to int32) int {
	n := 0
	for i := range s.ring {
		if b := &s.ring[i]; b.slot >= from && b.slot < to {
			n += int(b.n)
		}
	}
	return n
}

// baselineRate is the scope's own learned rate for counter c, shrunk
// towards the fleet-wide (peer) rate by prior pseudo-attempts, so a young
// scope borrows its peers' behaviour until it has its own.
func (s *scope) baselineRate(c int, pool, prior float64) float64 {
	return (float64(s.base.f[c]) + prior*pool) / (float64(s.base.n) + prior)
}
