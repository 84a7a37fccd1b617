package alerting

import (
	"time"

	"github.com/declinemon/declinemon/event"
)

// holds are a rule's candidates that passed its test but must keep passing
// for the rule's Pending time before they fire, so that a wider scope (the
// merchant after a key change) or a more specific kind gets the chance to
// explain their failures first.
//
// A hold lasts only while every evaluation renews it: an evaluation renews
// the holds of the candidates that still pass and are still waiting, then
// expire drops the others, also those that fired.
type holds struct {
	since   map[*scope]int64 // tick end at which the scope first passed
	renewed map[*scope]struct{}
}

func newHolds() holds {
	return holds{since: map[*scope]int64{}, renewed: map[*scope]struct{}{}}
}

// waiting reports whether s has yet to pass for d since it was first held
// at or before tick end T; a scope not held yet is waiting.
func (h *holds) waiting(s *scope, T int64, d time.Duration) bool {
	since, ok := h.since[s]
	return !ok || T-since < int64(d)
}

// renew holds s for one more evaluation, from T if it was not held.
func (h *holds) renew(s *scope, T int64) {
	if _, ok := h.since[s]; !ok {
		h.since[s] = T
	}
	h.renewed[s] = struct{}{}
}

// expire drops the holds not renewed since the last expire.
func (h *holds) expire() {
	for s := range h.since {
		if _, ok := h.renewed[s]; !ok {
			delete(h.since, s)
		}
	}
	clear(h.renewed)
}

// holding reports whether a new candidate s of r must wait before it
// fires. Only single terminals wait: it is for them that a wider scope
// may turn out to explain the failures.
func (r *rule) holding(s *scope, T int64) bool {
	if r.cfg.Pending <= 0 || s.typ != event.ScopeTerminal {
		return false
	}
	return r.holds.waiting(s, T, r.cfg.Pending)
}
