package alerting

import "github.com/declinemon/declinemon/event"

// record is one failure kept for attribution: when, which code, and every
// scope the attempt belonged to. dims never point at an evicted scope:
// eviction clears them (forgetEvicted).
type record struct {
	ts   int64
	code string
	dims [event.NumScopeTypes]*scope
}

// recordCauses are the causes whose failures are attributed across scopes.
var recordCauses = [...]event.Cause{event.CauseNetwork, event.CauseMaintenance, event.CauseHardware, event.CauseDataTransmission, event.CauseFraudRisk}

// recordQueue holds the failure records of one cause, oldest first, for as
// long as the widest window of a rule of that cause can see them.
type recordQueue struct {
	recs      []record
	head      int
	retention int64
}

func (q *recordQueue) live() []record { return q.recs[q.head:] }

// push appends rec, first dropping the oldest record when limit are held.
// It returns how many records were dropped.
func (q *recordQueue) push(rec record, limit int) (dropped int) {
	if held := len(q.recs) - q.head; held >= limit {
		q.prune(q.recs[q.head].ts + 1)
		dropped = held - (len(q.recs) - q.head)
	}
	q.recs = append(q.recs, rec)
	return dropped
}

// prune drops the records older than before, compacting the queue once
// most of its backing array is dropped records.
func (q *recordQueue) prune(before int64) {
	for q.head < len(q.recs) && q.recs[q.head].ts < before {
		q.recs[q.head] = record{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.recs) {
		n := copy(q.recs, q.recs[q.head:])
		clear(q.recs[n:])
		q.recs = q.recs[:n]
		q.head = 0
	}
}
