package alerting

import (
	"slices"

	"github.com/declinemon/declinemon/event"
)

// evaluation is the working state of one rule at one tick end: its
// windows, its candidates and what attribution decided about them. Nothing
// in it outlives the rule's evaluation; the Engine keeps one only so that
// its buffers are reused from tick to tick, and release drops its scope
// pointers so that it pins no evicted scope in between.
type evaluation struct {
	rule *rule
	T    int64
	span [event.NumScopeTypes]span // per scope type of the rule
	recs []record                  // the failure records of the rule's cause

	cands []candidate
	taken []int32 // indexes into cands, in the order attribution took them

	// Attribution's bookkeeping.
	index   map[*scope]int32 // scope with failures in its window → index into seen
	seen    []seenScope
	recCand []int32 // per record and scope type of the rule: index into cands, or -1
	covered []bool  // per record: explained by a scope taken
	pairs   map[termPair]struct{}

	// decline_spike: the merchants to test, in order.
	merchants []*scope
}

// seenScope is a scope with failures in its window.
type seenScope struct {
	s        *scope
	failures int
	cand     int32 // index into cands, or -1
}

// termPair is a candidate and a terminal with a failure in it, counted
// once towards the candidate's affected terminals.
type termPair struct {
	cand int32
	term *scope
}

// tally is what an alert reports of its scope's window.
type tally struct {
	failures, attempts, affected int
	baseline                     float64
}

// begin sets ev up for rule r at tick end T.
func (ev *evaluation) begin(e *Engine, r *rule, T int64) {
	if ev.index == nil {
		ev.index = map[*scope]int32{}
		ev.pairs = map[termPair]struct{}{}
	}
	ev.rule, ev.T = r, T
	for _, t := range r.scopes {
		ev.span[t] = e.spanAt(t, r.nb[t], T)
	}
	if r.cause != event.CauseNone {
		ev.recs = e.queues[r.cause].live()
	}
	ev.covered = slices.Grow(ev.covered[:0], len(ev.recs))[:len(ev.recs)]
	clear(ev.covered)
}

// release forgets the evaluation, keeping its buffers.
func (ev *evaluation) release() {
	clear(ev.cands)
	clear(ev.seen)
	clear(ev.merchants)
	clear(ev.index)
	clear(ev.pairs)
	*ev = evaluation{
		cands: ev.cands[:0], taken: ev.taken[:0],
		index: ev.index, seen: ev.seen[:0], recCand: ev.recCand[:0], covered: ev.covered[:0], pairs: ev.pairs,
		merchants: ev.merchants[:0],
	}
}
