package pipeline

import (
	"cmp"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// merger feeds the detector in event-time order across sources (Kafka
// partitions). Each partition is in event-time order (producers key by
// terminal), but a consumer reads partitions at different speeds — by whole
// fetches, and during a catch-up by minutes of event time — so observing
// in arrival order would push the watermark ahead of the slower partitions
// and count their events as late. The merger holds events per source and
// releases the oldest head only while every source that is not idle has
// something buffered. A source is idle when it has delivered nothing for
// idleAfter (wall-clock: a quiet partition must not stall detection).
// Memory is bounded: beyond max buffered events the oldest head goes out
// regardless.
type merger struct {
	sources   map[string]map[int]*source
	order     []*source
	buffered  int
	max       int
	idleAfter time.Duration
	now       func() time.Time
	started   time.Time // first push: sources are still being discovered for idleAfter
	lastPush  time.Time // any source
	known     int       // sources known up front (0: discovered), e.g. 1 for a file
	// consumed tracks what is held per consumed partition, so the
	// pipeline commits only offsets whose events the detector has seen.
	consumed map[partitionKey]*heldOffsets
}

// heldOffsets are the offsets of one consumed partition's events still
// held, in arrival order (= offset order): the first not yet released is
// the lowest offset the detector has not seen.
type heldOffsets struct {
	key      partitionKey
	offsets  []int64
	released []bool
	base     int // absolute index of offsets[0]
	head     int // local index of the first unreleased
}

func (h *heldOffsets) hold(offset int64) int {
	h.offsets = append(h.offsets, offset)
	h.released = append(h.released, false)
	return h.base + len(h.offsets) - 1
}

func (h *heldOffsets) release(i int) {
	h.released[i-h.base] = true
	for h.head < len(h.offsets) && h.released[h.head] {
		h.head++
	}
	if h.head == len(h.offsets) {
		h.base += len(h.offsets)
		h.offsets, h.released, h.head = h.offsets[:0], h.released[:0], 0
	} else if h.head >= 1024 && 2*h.head >= len(h.offsets) {
		n := copy(h.offsets, h.offsets[h.head:])
		copy(h.released, h.released[h.head:])
		h.offsets, h.released = h.offsets[:n], h.released[:n]
		h.base += h.head
		h.head = 0
	}
}

// minHeld is the lowest offset of the partition still held, if any.
func (m *merger) minHeld(topic string, partition int) (int64, bool) {
	h := m.consumed[partitionKey{topic, partition}]
	if h == nil || h.head == len(h.offsets) {
		return 0, false
	}
	return h.offsets[h.head], true
}

type source struct {
	topic     string
	partition int
	items     []held
	head      int
	lastSeen  time.Time
}

type held struct {
	ev    event.Event
	cause event.Cause
	from  *heldOffsets // the consumed partition it was read from
	index int          // its place there
}

// maxSources bounds the sources the merger orders across.
const maxSources = 4096

func newMerger(max int, idleAfter time.Duration, known int) *merger {
	return &merger{sources: map[string]map[int]*source{}, max: max, idleAfter: idleAfter, now: time.Now, known: known,
		consumed: map[partitionKey]*heldOffsets{}}
}

func (m *merger) source(topic []byte, partition int) *source {
	parts := m.sources[string(topic)] // no allocation for the lookup
	if parts == nil {
		parts = map[int]*source{}
		m.sources[string(topic)] = parts
	}
	s := parts[partition]
	if s == nil {
		s = &source{topic: string(topic), partition: partition}
		parts[partition] = s
		m.order = append(m.order, s)
		slices.SortFunc(m.order, func(a, b *source) int {
			return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
		})
	}
	return s
}

// push holds one event from a source (its origin partition), read at
// offset of consumed partition from, and releases whatever is now in order.
func (m *merger) push(topic []byte, partition int, from partitionKey, offset int64, ev *event.Event, cause event.Cause, observe func(*event.Event, event.Cause)) {
	if m.known == 1 && m.buffered == 0 {
		observe(ev, cause) // one source (a file): already in order, nothing to hold
		return
	}
	if len(m.order) >= maxSources && m.sources[string(topic)][partition] == nil {
		// Origins come from headers any producer can set: beyond a sane
		// number, order by the partition actually consumed.
		topic, partition = []byte(from.topic), from.partition
	}
	s := m.source(topic, partition)
	h := m.consumed[from]
	if h == nil {
		h = &heldOffsets{key: from}
		m.consumed[from] = h
	}
	s.items = append(s.items, held{ev: *ev, cause: cause, from: h, index: h.hold(offset)})
	now := m.now()
	if m.started.IsZero() || now.Sub(m.lastPush) > m.idleAfter {
		// First data, or the first after a stall of the whole stream (a
		// broker outage, a rebalance): every source gets idleAfter to
		// deliver again before any counts as idle, as at start.
		m.started = now
		for _, o := range m.order {
			o.lastSeen = now
		}
	}
	m.lastPush = now
	s.lastSeen = now
	m.buffered++
	m.releaseAt(observe, false, now)
}

// each calls f for every held event, in the order of the consumed
// partitions' offsets (the order they must be pushed again in).
func (m *merger) each(f func(origin *source, from partitionKey, offset int64, h *held)) {
	type ref struct {
		s *source
		h *held
	}
	var refs []ref
	for _, s := range m.order {
		for i := s.head; i < len(s.items); i++ {
			refs = append(refs, ref{s, &s.items[i]})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(cmp.Compare(a.h.from.key.topic, b.h.from.key.topic), cmp.Compare(a.h.from.key.partition, b.h.from.key.partition),
			cmp.Compare(a.h.index, b.h.index))
	})
	for _, r := range refs {
		f(r.s, r.h.from.key, r.h.from.offsets[r.h.index-r.h.from.base], r.h)
	}
}

// release observes heads in event-time order while it is safe to; with
// force it drains everything (shutdown).
func (m *merger) release(observe func(*event.Event, event.Cause), force bool) {
	m.releaseAt(observe, force, m.now())
}

func (m *merger) releaseAt(observe func(*event.Event, event.Cause), force bool, now time.Time) {
	discovering := m.known == 0 || len(m.order) < m.known
	if !force && discovering && m.buffered <= m.max && now.Sub(m.started) < m.idleAfter {
		return // other partitions may not have delivered their first fetch yet
	}
	for m.buffered > 0 {
		var best *source
		waiting := false
		for _, s := range m.order {
			if s.head == len(s.items) {
				if now.Sub(s.lastSeen) < m.idleAfter {
					waiting = true
				}
				continue
			}
			if best == nil || s.items[s.head].ev.Time.Before(best.items[best.head].ev.Time) {
				best = s
			}
		}
		if best == nil || (waiting && !force && m.buffered <= m.max) {
			return
		}
		h := &best.items[best.head]
		observe(&h.ev, h.cause)
		h.from.release(h.index)
		best.items[best.head] = held{}
		best.head++
		m.buffered--
		switch {
		case best.head == len(best.items):
			best.items, best.head = best.items[:0], 0
		case best.head >= 1024 && 2*best.head >= len(best.items):
			// A source that never drains must not grow without bound.
			n := copy(best.items, best.items[best.head:])
			clear(best.items[n:])
			best.items, best.head = best.items[:n], 0
		}
	}
}
