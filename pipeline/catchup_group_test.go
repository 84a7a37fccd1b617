package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/declinemon/declinemon/ingest"
)

// groupSource is a consumer group member over several partitions in
// memory: messages become available as avail grows, are delivered in runs
// of 7 per partition, and a rejoin re-delivers the partitions it owns from
// their commits. Its partition readers (Backfill) read on their own. Every
// commit is checked against what the store acknowledged.
type groupSource struct {
	mu            sync.Mutex
	parts         map[int][]ingest.Message // partition → messages, offset = index
	avail         map[int]int              // produced so far
	next          map[int]int              // consumer cursor
	owned         map[int]bool
	committed     map[int]int64
	joins         uint64
	rr            int
	commitLog     []string
	backfills     int
	readers       int // open readers
	noBackfill    bool
	readByReaders int
	store         *ackStore
	t             *testing.T
}

func newGroupSource(t *testing.T, store *ackStore, nparts, n int, bad map[int][]int) *groupSource {
	s := &groupSource{parts: map[int][]ingest.Message{}, avail: map[int]int{}, next: map[int]int{}, owned: map[int]bool{},
		committed: map[int]int64{}, store: store, t: t}
	for p := range nparts {
		for i := range n {
			v := fmt.Sprintf(`{"event_id":"p%de%d","ts":"2026-11-27T10:%02d:%02dZ","terminal_id":"T%d","merchant_id":"M1","response_code":"00"}`, p, i, (i/60)%60, i%60, p)
			s.parts[p] = append(s.parts[p], ingest.Message{Value: []byte(v), Topic: "t", Partition: p, Offset: int64(i), HighWaterMark: int64(n), OriginTopic: []byte("t"), OriginPartition: p})
		}
		for _, i := range bad[p] {
			s.parts[p][i].Value = []byte(`{not json`)
		}
		s.owned[p] = true
		s.committed[p] = -1
	}
	return s
}

func (s *groupSource) setAvail(n int) {
	s.mu.Lock()
	for p := range s.parts {
		s.avail[p] = n
	}
	s.mu.Unlock()
}

func (s *groupSource) Fetch(ctx context.Context) (ingest.Message, error) {
	for {
		s.mu.Lock()
		np := len(s.parts)
		for k := range np {
			p := (s.rr + k) % np
			if s.owned[p] && s.next[p] < s.avail[p] {
				m := s.parts[p][s.next[p]]
				s.next[p]++
				// deliver in runs of 7 per partition
				if s.next[p]%7 == 0 {
					s.rr = p + 1
				} else {
					s.rr = p
				}
				s.mu.Unlock()
				return m, nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ingest.Message{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *groupSource) Commit(_ context.Context, positions []ingest.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range positions {
		if stored := s.store.partPrefix(p.Partition, s.parts[p.Partition]); p.Offset > stored {
			s.t.Errorf("committed %d/%d with only up to %d stored", p.Partition, p.Offset, stored)
		}
		s.commitLog = append(s.commitLog, fmt.Sprintf("join%d:p%d@%d", s.joins, p.Partition, p.Offset))
		s.committed[p.Partition] = p.Offset
	}
	return nil
}

func (s *groupSource) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.parts {
		s.next[p] = int(s.committed[p] + 1)
	}
}

// rejoin: the group rebalanced; owned partitions restart from their commits.
func (s *groupSource) rejoin(owned map[int]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joins++
	s.owned = owned
	for p := range s.parts {
		s.next[p] = int(s.committed[p] + 1)
	}
}

func (s *groupSource) Joins() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joins
}

func (s *groupSource) Backfill(topic string, partition int, from int64) (ingest.Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.noBackfill {
		return nil, errors.New("no partition readers")
	}
	s.backfills++
	s.readers++
	return &groupReader{s: s, p: partition, next: int(from)}, nil
}

type groupReader struct {
	s    *groupSource
	p    int
	next int
	once sync.Once
}

func (r *groupReader) Fetch(ctx context.Context) (ingest.Message, error) {
	return pollMessage(ctx, func() (ingest.Message, bool) {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		if r.next >= r.s.avail[r.p] {
			return ingest.Message{}, false
		}
		m := r.s.parts[r.p][r.next]
		r.next++
		r.s.readByReaders++
		return m, true
	})
}

func (r *groupReader) Close() error {
	r.once.Do(func() {
		r.s.mu.Lock()
		r.s.readers--
		r.s.mu.Unlock()
	})
	return nil
}

// setHold makes the next writes wait for a release on g (nil: none).
func (s *ackStore) setHold(g chan struct{}) {
	s.mu.Lock()
	s.hold = g
	s.mu.Unlock()
}

// prefix: highest offset up to which every valid message of partition p is acked.
func (s *ackStore) partPrefix(p int, msgs []ingest.Message) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := int64(-1)
	for int(o+1) < len(msgs) {
		m := msgs[o+1]
		if string(m.Value) != `{not json` && s.byPart[[2]int64{int64(p), o + 1}] == 0 {
			break
		}
		o++
	}
	return o
}

func (s *ackStore) count(p int, o int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byPart[[2]int64{int64(p), o}]
}

func catchUpPipeline(t *testing.T, store Store) *Pipeline {
	p, err := New(Options{Store: store, BatchSize: 10, StoreBatchSize: 25, FlushInterval: 5 * time.Millisecond, Partitions: 3, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var errDown = errors.New("dial tcp 127.0.0.1:9000: connection refused")

// outageThenBack: 3 partitions, first 50 each stored and committed, then an outage
// while 'total' per partition are detected, then storage is back with inserts held at gate.
func outageThenBack(t *testing.T, src *groupSource, store *ackStore, p *Pipeline, total int) {
	src.setAvail(50)
	waitFor(t, "first events committed", 10*time.Second, func() bool { return p.Counters().Committed.Load() == 150 })
	store.set(errDown)
	src.setAvail(total)
	waitFor(t, "detection through the outage", 10*time.Second, func() bool { return p.Counters().Messages.Load() == uint64(3*total) })
	time.Sleep(50 * time.Millisecond)
	gate := make(chan struct{})
	store.setHold(gate)
	store.set(nil)
	// The held batch: let exactly one write through.
	gate <- struct{}{}
}

func waitAllCommitted(t *testing.T, src *groupSource, parts, total int) {
	t.Helper()
	waitFor(t, "everything committed", 10*time.Second, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		for q := range parts {
			if src.committed[q] != int64(total-1) {
				return false
			}
		}
		return true
	})
}

// TestStoreBehindCatchUpRejectsAndStops: rejected messages inside the gap
// (one the last of it) on three partitions, and a shutdown in the middle
// of the catch-up: every commit is stored, no reader is left open, and a
// second run from the commits stores the rest.
func TestStoreBehindCatchUpRejectsAndStops(t *testing.T) {
	const total = 300
	store := &ackStore{}
	src := newGroupSource(t, store, 3, total, map[int][]int{0: {120, 299}, 1: {51}, 2: {200, 201, 202}})
	p := catchUpPipeline(t, store)
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early
	outageThenBack(t, src, store, p, total)
	for range 3 {
		select {
		case store.hold <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatal("no catch-up insert")
		}
	}
	g := store.hold
	go func() { // the final flush's insert
		for range 20 {
			select {
			case g <- struct{}{}:
			case <-time.After(2 * time.Second):
				return
			}
		}
	}()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	if src.readers != 0 || src.backfills != 3 {
		t.Errorf("%d partition readers opened, %d left open: want 3, none", src.backfills, src.readers)
	}
	src.mu.Unlock()
	store.setHold(nil)
	src.Rewind()
	p2 := catchUpPipeline(t, store)
	stop2 := runAsync(p2, src)
	waitAllCommitted(t, src, 3, total)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	for q := range 3 {
		if got := store.partPrefix(q, src.parts[q]); got != total-1 {
			t.Errorf("partition %d stored through %d, want %d", q, got, total-1)
		}
	}
}

// TestStoreBehindCatchUpThroughARebalance: the group rebalances while
// storage catches up. Keeping every partition, each event is stored once
// and detected once. Losing one, this process stops reading, storing and
// committing it (its new owner reads it from the commits): at most the
// insert running at the rebalance lands.
func TestStoreBehindCatchUpThroughARebalance(t *testing.T) {
	const total = 300
	for _, lose := range []bool{false, true} {
		name := "keeps-its-partitions"
		if lose {
			name = "loses-one"
		}
		t.Run(name, func(t *testing.T) {
			store := &ackStore{}
			src := newGroupSource(t, store, 3, total, map[int][]int{1: {140}})
			p := catchUpPipeline(t, store)
			stop := runAsync(p, src)
			defer stop() //nolint:errcheck // when the test fails early
			outageThenBack(t, src, store, p, total)
			store.hold <- struct{}{} // one catch-up insert
			owned := map[int]bool{0: true, 1: !lose, 2: true}
			src.rejoin(owned)
			src.mu.Lock()
			revokedAt := src.committed[1]
			src.mu.Unlock()
			g := store.hold
			store.setHold(nil)
			close(g)
			if !lose {
				waitAllCommitted(t, src, 3, total)
			} else {
				time.Sleep(time.Second)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			src.mu.Lock()
			defer src.mu.Unlock()
			if !lose {
				for q := range 3 {
					for o := range int64(total) {
						if string(src.parts[q][o].Value) == `{not json` {
							continue
						}
						if n := store.count(q, o); n != 1 {
							t.Errorf("partition %d offset %d stored %d times, want once", q, o, n)
						}
					}
				}
				if got := p.Engine().Stats().Observed; got != 3*total-1 {
					t.Errorf("detector observed %d, want each of the %d valid events once", got, 3*total-1)
				}
				return
			}
			stored := 0
			for o := revokedAt + 1; o < total; o++ {
				if store.count(1, o) > 0 {
					stored++
				}
			}
			if stored > 25 {
				t.Errorf("after partition 1 went to another member (committed at %d), this process stored %d more of its events: "+
					"want at most the batch being inserted (25)", revokedAt, stored)
			}
		})
	}
}

// TestStoreBehindCatchUpCommitsNewPartitions: partitions first assigned
// during the outage, where the group holds no offset: while their gap is
// caught up they are committed where this process started them, so a
// restart with start_offset latest does not resume at their end.
func TestStoreBehindCatchUpCommitsNewPartitions(t *testing.T) {
	const total = 300
	store := &ackStore{}
	src := newGroupSource(t, store, 8, total, nil)
	for q := 3; q < 8; q++ {
		src.owned[q] = false
		src.next[q] = 100 // no committed offset, start_offset latest: the consumer starts at 100
		for i := range 100 {
			src.parts[q][i].Value = []byte(`{not json`) // never read
		}
	}
	p := catchUpPipeline(t, store)
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early
	src.setAvail(50)
	src.mu.Lock()
	for q := 3; q < 8; q++ {
		src.avail[q] = 0
	}
	src.mu.Unlock()
	waitFor(t, "first events committed", 10*time.Second, func() bool { return p.Counters().Committed.Load() == 150 })
	store.set(errDown)
	src.mu.Lock()
	for q := range 3 {
		src.avail[q] = total
	}
	src.mu.Unlock()
	waitFor(t, "an insert failed", 10*time.Second, func() bool { st, _ := p.behind.read(); return st.retries > 0 })
	src.mu.Lock()
	for q := range 8 {
		src.avail[q] = total
		src.owned[q] = true
	}
	src.mu.Unlock()
	waitFor(t, "detection through the outage", 10*time.Second, func() bool {
		return p.Counters().Messages.Load() == uint64(3*total+5*(total-100))
	})
	gate := make(chan struct{})
	store.setHold(gate)
	store.set(nil)
	gate <- struct{}{} // the held batch; the catch-up's inserts wait
	waitFor(t, "the new partitions committed", 10*time.Second, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		for q := 3; q < 8; q++ {
			if src.committed[q] != 99 {
				return false
			}
		}
		return true
	})
	close(gate)
	store.setHold(nil)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreBehindCatchUpMemoryBound: 32 partitions have a gap and the
// catch-up's insert hangs. What the readers hold does not grow with the
// partitions: catchUpReaders read at once, each with at most a chunk, and
// the channel holds a batch of chunks.
func TestStoreBehindCatchUpMemoryBound(t *testing.T) {
	const total, parts, batch = 400, 32, 25
	store := &ackStore{}
	src := newGroupSource(t, store, parts, total, nil)
	p := catchUpPipeline(t, store)
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early
	src.setAvail(10)
	waitFor(t, "first events committed", 10*time.Second, func() bool { return p.Counters().Committed.Load() == 10*parts })
	store.set(errDown)
	src.setAvail(total)
	waitFor(t, "detection through the outage", 20*time.Second, func() bool { return p.Counters().Messages.Load() == uint64(parts*total) })
	gate := make(chan struct{})
	store.setHold(gate)
	store.set(nil)
	gate <- struct{}{} // the held batch; the next insert hangs
	time.Sleep(500 * time.Millisecond)
	src.mu.Lock()
	read := src.readByReaders
	src.mu.Unlock()
	st, _ := p.behind.read()
	held := read - st.staged - batch // less what is staged and the running insert
	if bound := (catchUpReaders + 1) * batch; held > bound {
		t.Errorf("%d events held by the readers of %d partitions with the insert hanging: want at most %d (%d readers at once, a batch in the channel)",
			held, parts, bound, catchUpReaders)
	}
	close(gate)
	store.setHold(nil)
}

// rewindCounting counts the pipeline's re-reads from the commits.
type rewindCounting struct {
	*groupSource
	rewinds atomic.Int32
}

func (s *rewindCounting) Rewind() { s.rewinds.Add(1); s.groupSource.Rewind() }

func (s *ackStore) writesNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// TestStoreBehindCatchUpGivenUpWithAnInsertRunning: a rebalance gives the
// catch-up up while one of its inserts runs. The re-read from the commits
// does not stage again what that insert holds: every event is stored once.
func TestStoreBehindCatchUpGivenUpWithAnInsertRunning(t *testing.T) {
	const total = 300
	store := &ackStore{}
	gs := newGroupSource(t, store, 3, total, nil)
	src := &rewindCounting{groupSource: gs}
	p := catchUpPipeline(t, store)
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early
	outageThenBack(t, gs, store, p, total)
	w := store.writesNow()
	waitFor(t, "a catch-up insert waiting", 5*time.Second, func() bool { return store.writesNow() > w })
	gs.rejoin(map[int]bool{0: true, 1: true, 2: true})
	waitFor(t, "the re-read", 5*time.Second, func() bool { return src.rewinds.Load() > 0 })
	time.Sleep(300 * time.Millisecond) // the re-delivery meanwhile
	g := store.hold
	store.setHold(nil)
	close(g)
	waitAllCommitted(t, gs, 3, total)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for q := range 3 {
		for o := range int64(total) {
			if n := store.count(q, o); n != 1 {
				t.Fatalf("partition %d offset %d stored %d times, want once", q, o, n)
			}
		}
	}
}

// TestStoreBehindRebalanceDuringTheOutage: the group rebalances while
// ClickHouse is down and partition 1 goes to another member. When storage
// is back it re-reads from the commits (only what this member owns) rather
// than with partition readers, which would read partition 1 too: at most
// the held batch of it lands here.
func TestStoreBehindRebalanceDuringTheOutage(t *testing.T) {
	const total = 300
	store := &ackStore{}
	src := newGroupSource(t, store, 3, total, nil)
	p := catchUpPipeline(t, store)
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early
	src.setAvail(50)
	waitFor(t, "first events committed", 10*time.Second, func() bool { return p.Counters().Committed.Load() == 150 })
	store.set(errDown)
	src.setAvail(total)
	waitFor(t, "detection through the outage", 10*time.Second, func() bool { return p.Counters().Messages.Load() == 3*total })
	src.rejoin(map[int]bool{0: true, 1: false, 2: true})
	src.mu.Lock()
	revokedAt := src.committed[1]
	src.mu.Unlock()
	waitFor(t, "the re-delivery after the rebalance", 10*time.Second, func() bool { return p.Counters().Redelivered.Load() > 0 })
	store.set(nil)
	waitAllCommittedOf(t, src, []int{0, 2}, total)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for o := revokedAt + 1; o < total; o++ {
		if store.count(1, o) > 0 {
			stored++
		}
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if st, _ := p.behind.read(); st.rereads != 1 || st.catchUps != 0 {
		t.Errorf("recoveries: %d re-reads, %d catch-ups; want one re-read", st.rereads, st.catchUps)
	}
	if stored > 25 || src.backfills != 0 {
		t.Errorf("after partition 1 went to another member (committed at %d), this process stored %d more of its events with %d partition readers: "+
			"want at most the held batch (25), none", revokedAt, stored, src.backfills)
	}
	for _, q := range []int{0, 2} {
		if got := store.partPrefix(q, src.parts[q]); got != total-1 {
			t.Errorf("partition %d stored through %d, want %d", q, got, total-1)
		}
	}
}

func waitAllCommittedOf(t *testing.T, src *groupSource, parts []int, total int) {
	t.Helper()
	waitFor(t, "every owned partition committed", 10*time.Second, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		for _, q := range parts {
			if src.committed[q] != int64(total-1) {
				return false
			}
		}
		return true
	})
}
