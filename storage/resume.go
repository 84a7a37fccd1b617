package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/declinemon/declinemon/event"
)

// OffsetRange is one insert's share of a source partition: every accepted
// event of Topic/Partition with an offset in [Lo, Hi] is stored (the
// ingest_offsets table, filled by a materialized view in the same insert).
type OffsetRange struct {
	Topic     string
	Partition int
	Lo, Hi    int64
}

// RangeReader reads the stored ranges of the given partitions that end at
// or after from. Client implements it; without one the writer stores what
// it is given (a redelivery after a crash is then stored twice).
type RangeReader interface {
	StoredRanges(ctx context.Context, topic string, partitions []int, from int64) ([]OffsetRange, error)
}

type topicPartition struct {
	topic     string
	partition int
}

// partResume is what the writer knows of one partition: the highest
// offset it has handled, and the stored ranges at or beyond it.
type partResume struct {
	last   int64
	stored []OffsetRange // sorted by Lo
}

// claim marks the batch's partitions as being written by this Write. When
// another Write of the same process holds one of them — a rebalance moved
// the partition between two consumers while the old owner's insert was in
// flight — it waits for that Write to end, then forgets what it knew of
// those partitions, so that the lookup that follows sees what the other
// Write stored (even an insert that landed but reported an error). release
// ends the claim.
func (w *Writer) claim(ctx context.Context, batch []event.Classified) (release func(), err error) {
	var parts []topicPartition
	for i := range batch {
		tp := topicPartition{batch[i].Topic, batch[i].Partition}
		if len(parts) == 0 || parts[len(parts)-1] != tp && !slices.Contains(parts, tp) {
			parts = append(parts, tp)
		}
	}
	for {
		w.mu.Lock()
		var busy chan struct{}
		for _, tp := range parts {
			if ch := w.inflight[tp]; ch != nil {
				busy = ch
				break
			}
		}
		if busy == nil {
			if w.inflight == nil {
				w.inflight = map[topicPartition]chan struct{}{}
			}
			done := make(chan struct{})
			for _, tp := range parts {
				w.inflight[tp] = done
			}
			w.mu.Unlock()
			return func() {
				w.mu.Lock()
				for _, tp := range parts {
					delete(w.inflight, tp)
				}
				w.mu.Unlock()
				close(done)
			}, nil
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-busy:
		}
		w.mu.Lock()
		for _, tp := range parts {
			delete(w.resume, tp)
		}
		w.mu.Unlock()
		w.stats.Contended.Add(1)
	}
}

// forget drops what the writer knows of the batch's partitions: the next
// Write of any of them reads its stored ranges again.
func (w *Writer) forget(batch []event.Classified) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range batch {
		delete(w.resume, topicPartition{batch[i].Topic, batch[i].Partition})
	}
}

// Reassigned tells the writer its partitions may have changed hands (the
// consumer joined its group again): another member may have stored
// beyond this one's view, so each partition's ranges are read again when
// it next appears.
func (w *Writer) Reassigned() {
	w.mu.Lock()
	clear(w.resume)
	w.mu.Unlock()
}

// skipStored drops from batch the events already stored. A partition's
// stored ranges are read when it first appears (after a start or
// Reassigned) and when its offsets go back (a redelivery). It returns the
// events to insert (batch itself when nothing is dropped).
func (w *Writer) skipStored(ctx context.Context, batch []event.Classified) ([]event.Classified, error) {
	if w.ranges == nil {
		return batch, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.resume == nil {
		w.resume = map[topicPartition]*partResume{}
	}
	// Partitions to look up, with the lowest offset of each in the batch.
	var need map[string]map[int]int64
	for i := range batch {
		a := &batch[i]
		tp := topicPartition{a.Topic, a.Partition}
		r := w.resume[tp]
		if r != nil && a.Offset > r.last {
			continue
		}
		if need == nil {
			need = map[string]map[int]int64{}
		}
		if need[a.Topic] == nil {
			need[a.Topic] = map[int]int64{}
		}
		if lo, ok := need[a.Topic][a.Partition]; !ok || a.Offset < lo {
			need[a.Topic][a.Partition] = a.Offset
		}
	}
	for topic, parts := range need {
		ids := make([]int, 0, len(parts))
		from := int64(-1)
		for p, lo := range parts {
			ids = append(ids, p)
			if from < 0 || lo < from {
				from = lo
			}
		}
		slices.Sort(ids)
		got, err := w.ranges.StoredRanges(ctx, topic, ids, from)
		if err != nil {
			return nil, fmt.Errorf("reading what is already stored: %w", err)
		}
		for _, p := range ids {
			w.resume[topicPartition{topic, p}] = &partResume{last: parts[p] - 1}
		}
		for _, g := range got {
			// One query serves the topic's partitions from the lowest
			// offset of any: keep each partition's ranges from its own.
			if r := w.resume[topicPartition{g.Topic, g.Partition}]; r != nil && g.Hi > r.last {
				r.stored = append(r.stored, g)
			}
		}
		for _, p := range ids {
			r := w.resume[topicPartition{topic, p}]
			r.stored = mergeRanges(r.stored)
			w.stats.Lookups.Add(1)
		}
	}
	var out []event.Classified // nil until an event is dropped
	for i := range batch {
		a := &batch[i]
		if w.resume[topicPartition{a.Topic, a.Partition}].covers(a.Offset) {
			if out == nil {
				out = append(make([]event.Classified, 0, len(batch)), batch[:i]...)
			}
			w.stats.Skipped.Add(1)
			continue
		}
		if out != nil {
			out = append(out, *a)
		}
	}
	if out == nil {
		return batch, nil
	}
	return out, nil
}

// covers reports whether offset is in a stored range (stored is sorted
// and disjoint: see mergeRanges).
func (r *partResume) covers(offset int64) bool {
	i, _ := slices.BinarySearchFunc(r.stored, offset, func(s OffsetRange, o int64) int {
		if s.Lo <= o {
			return -1
		}
		return 1
	})
	return i > 0 && offset <= r.stored[i-1].Hi
}

// mergeRanges sorts ranges by Lo and merges the overlapping ones (inserts
// follow one another, but ranges backfilled at upgrade, or a re-delivery
// stored twice by an older version, overlap).
func mergeRanges(rs []OffsetRange) []OffsetRange {
	slices.SortFunc(rs, func(a, b OffsetRange) int { return cmp.Compare(a.Lo, b.Lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Lo <= out[n-1].Hi {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// handled records that batch is stored (or was already): the partitions'
// last offsets move on and ranges behind them are forgotten.
func (w *Writer) handled(batch []event.Classified) {
	if w.ranges == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range batch {
		a := &batch[i]
		if r := w.resume[topicPartition{a.Topic, a.Partition}]; r != nil && a.Offset > r.last {
			r.last = a.Offset
		}
	}
	for _, r := range w.resume {
		n := 0
		for _, s := range r.stored {
			if s.Hi > r.last {
				r.stored[n] = s
				n++
			}
		}
		r.stored = r.stored[:n]
	}
}
