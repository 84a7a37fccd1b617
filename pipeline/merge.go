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
	known     int       // sources known up front (0: discovered), e.g. 1 for a file
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
}

func newMerger(max int, idleAfter time.Duration, known int) *merger {
	return &merger{sources: map[string]map[int]*source{}, max: max, idleAfter: idleAfter, now: time.Now, known: known}
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

// push holds one event from a source and releases whatever is now in order.
func (m *merger) push(topic []byte, partition int, ev *event.Event, cause event.Cause, observe func(*event.Event, event.Cause)) {
	s := m.source(topic, partition)
	s.items = append(s.items, held{ev: *ev, cause: cause})
	s.lastSeen = m.now()
	if m.started.IsZero() {
		m.started = s.lastSeen
	}
	m.buffered++
	m.release(observe, false)
}

// release observes heads in event-time order while it is safe to; with
// force it drains everything (shutdown).
func (m *merger) release(observe func(*event.Event, event.Cause), force bool) {
	now := m.now()
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
