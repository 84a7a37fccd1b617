package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// ackStore records the offsets whose insert it acknowledged. Writes wait
// for a release while hold is set, then fail if failing is set.
type ackStore struct {
	mu      sync.Mutex
	acked   map[int64]int    // offset → acknowledged inserts of it (one partition)
	byPart  map[[2]int64]int // (partition, offset) → acknowledged inserts of it
	writes  int
	failing error
	hold    chan struct{}
	waiting chan struct{} // a write waits on hold
}

func (s *ackStore) Write(ctx context.Context, batch []event.Classified) error {
	s.mu.Lock()
	s.writes++
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case s.waiting <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing != nil {
		return s.failing
	}
	if s.acked == nil {
		s.acked, s.byPart = map[int64]int{}, map[[2]int64]int{}
	}
	for i := range batch {
		s.acked[batch[i].Offset]++
		s.byPart[[2]int64{int64(batch[i].Partition), batch[i].Offset}]++
	}
	return nil
}

// prefix is the highest offset up to which every offset is acknowledged.
func (s *ackStore) prefix() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := int64(-1)
	for s.acked[o+1] > 0 {
		o++
	}
	return o
}

// holding makes every write wait for a release on hold, telling waiting.
func (s *ackStore) holding() {
	s.mu.Lock()
	s.hold, s.waiting = make(chan struct{}), make(chan struct{}, 1)
	s.mu.Unlock()
}

// let lets n writes through, one at a time, then waits until the next one
// waits.
func (s *ackStore) let(n int) {
	for range n {
		<-s.waiting
		s.hold <- struct{}{}
	}
	<-s.waiting
}

// release lets the waiting write go on and stops holding.
func (s *ackStore) release() {
	s.mu.Lock()
	h := s.hold
	s.hold = nil
	s.mu.Unlock()
	close(h)
}

func (s *ackStore) set(fail error) {
	s.mu.Lock()
	s.failing = fail
	s.mu.Unlock()
}

// runAsync runs p on src in the background; stop ends it (once) and
// returns Run's error.
func runAsync(p *Pipeline, src Source) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}

// storedSource checks at every commit that the committed offsets are
// stored (one partition, every message valid).
type storedSource struct {
	*memSource
	t     *testing.T
	store *ackStore
}

func (s *storedSource) Commit(ctx context.Context, positions []ingest.Position) error {
	for _, p := range positions {
		if stored := s.store.prefix(); p.Offset > stored {
			s.t.Errorf("committed offset %d with only up to %d stored", p.Offset, stored)
		}
	}
	return s.memSource.Commit(ctx, positions)
}

// TestStoreBehindOutage: with detection and storage in one pipeline,
// inserts fail for a while mid-stream. Detection goes on through every
// message meanwhile, nothing is staged, commits never pass what is
// stored; once an insert succeeds storage catches up with a partition
// reader (or, from a source without one, the source re-reads from its
// commits), and in the end every event is stored, detected once and
// committed.
func TestStoreBehindOutage(t *testing.T) {
	for _, backfill := range []bool{true, false} {
		name := "catch-up"
		if !backfill {
			name = "re-read"
		}
		t.Run(name, func(t *testing.T) { testStoreBehindOutage(t, backfill) })
	}
}

func testStoreBehindOutage(t *testing.T, backfill bool) {
	const n = 400
	store := &ackStore{}
	p, err := New(Options{Store: store, BatchSize: 10, StoreBatchSize: 25, FlushInterval: 5 * time.Millisecond, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := &storedSource{memSource: &memSource{msgs: eventMessages(n), block: true, backfill: backfill}, t: t, store: store}
	// Fail from the third insert on until detection has seen everything.
	store.holding()
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early; its own stop checks the error
	store.let(2)
	store.set(errors.New("dial tcp 127.0.0.1:9000: connection refused"))
	store.release() // the third fails, and every one after it
	waitFor(t, "detection through the outage", 10*time.Second, func() bool { return p.Counters().Accepted.Load() == n })
	frozen := p.Counters().Committed.Load()
	time.Sleep(50 * time.Millisecond)
	if got := p.Counters().Committed.Load(); got != frozen || got >= n {
		t.Errorf("committed %d, then %d, of %d messages while storage is down: want the commits to stop", frozen, got, n)
	}
	if st, _ := p.behind.read(); st.staged != 0 || st.held == 0 {
		t.Errorf("%d events staged, %d held while storage is down: want none staged, the failed batch held", st.staged, st.held)
	}
	store.set(nil)
	waitFor(t, "storage to catch up", 20*time.Second, func() bool { return p.Counters().Committed.Load() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for o := range int64(n) {
		if store.acked[o] == 0 {
			t.Fatalf("offset %d never stored", o)
		}
	}
	st, _ := p.behind.read()
	if rereads := src.rewinds + src.backfills; st.retries == 0 || rereads != 1 {
		t.Errorf("%d failed inserts, %d re-reads: want some and one", st.retries, rereads)
	}
	if backfill && p.Counters().Redelivered.Load() != 0 {
		t.Errorf("%d messages delivered again to the consumer: want none (storage reads its own)", p.Counters().Redelivered.Load())
	}
	if p.Engine().Stats().Observed != n || p.Counters().Accepted.Load() != n {
		t.Errorf("detector observed %d, accepted %d: want each of the %d once", p.Engine().Stats().Observed, p.Counters().Accepted.Load(), n)
	}
	if st.stored != n {
		t.Errorf("storage status counts %d stored, want %d", st.stored, n)
	}
}

// TestStoreBehindOverlapsOneInsert: while an insert runs, detection goes
// on into the next batch, and waits once that batch is due (one insert at
// a time, memory bounded by two batches); nothing is committed before the
// insert is acknowledged.
func TestStoreBehindOverlapsOneInsert(t *testing.T) {
	const n, batch = 500, 50
	store := &ackStore{hold: make(chan struct{}), waiting: make(chan struct{}, 1)}
	p, err := New(Options{Store: store, BatchSize: 10, StoreBatchSize: batch, FlushInterval: 200 * time.Millisecond, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := &storedSource{memSource: &memSource{msgs: eventMessages(n), block: true}, t: t, store: store}
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early; its own stop checks the error
	<-store.waiting
	time.Sleep(100 * time.Millisecond) // let it run into the wait
	if got := p.Counters().Accepted.Load(); got < 2*batch || got > 2*batch+10 {
		t.Errorf("accepted %d events while the first insert of %d runs: want the next batch of %d and no more than a flush beyond", got, batch, batch)
	}
	if src.committed() != 0 {
		t.Error("committed before the insert was acknowledged")
	}
	store.release()
	waitFor(t, "everything committed", 10*time.Second, func() bool { return p.Counters().Committed.Load() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := store.prefix(); got != n-1 {
		t.Errorf("stored through %d, want %d", got, n-1)
	}
}

// TestStoreBehindRedeliveryStagesOnce: messages fetched again (a rejoin
// re-delivers from the commits) are staged for storage only if they are
// not staged, being inserted or stored already: ClickHouse's stored
// ranges cannot tell a batch's own duplicates apart.
func TestStoreBehindRedeliveryStagesOnce(t *testing.T) {
	store := &ackStore{}
	p, err := New(Options{Store: store, BatchSize: 100, StoreBatchSize: 100, FlushInterval: time.Hour, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs := eventMessages(20)
	for i := range 10 {
		p.handle(&msgs[i])
	}
	for i := 4; i < 10; i++ { // fetched again while staged
		p.handle(&msgs[i])
	}
	if got := len(p.behind.staging); got != 10 {
		t.Fatalf("%d events staged, want 10", got)
	}
	src := &memSource{}
	p.final = true // cut and insert now
	if err := p.flush(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	p.final = false
	for i := range 15 { // fetched again once stored, and five new ones
		p.handle(&msgs[i])
	}
	if got := len(p.behind.staging); got != 5 {
		t.Errorf("%d events staged after the re-delivery of stored ones, want the 5 new", got)
	}
	if p.Counters().Accepted.Load() != 15 || p.Counters().Redelivered.Load() != 16 {
		t.Errorf("accepted %d, re-delivered %d; want 15 and 16", p.Counters().Accepted.Load(), p.Counters().Redelivered.Load())
	}
	for o, n := range store.acked {
		if n != 1 {
			t.Errorf("offset %d inserted %d times", o, n)
		}
	}
}

// TestStoreBehindStalledInsertKeepsDetecting: an insert that does not end
// (a server that hangs, or the writer's retries against one that is down)
// holds detection up for the stall bound only: then storage stops staging
// and detection goes on through every message, with nothing committed.
// When the insert ends, the consumer re-reads what was not staged, and
// every event is stored and committed.
func TestStoreBehindStalledInsertKeepsDetecting(t *testing.T) {
	const n = 400
	store := &ackStore{hold: make(chan struct{}), waiting: make(chan struct{}, 1)}
	p, err := New(Options{Store: store, BatchSize: 10, StoreBatchSize: 25, FlushInterval: 5 * time.Millisecond, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.behind.stall = 50 * time.Millisecond
	src := &storedSource{memSource: &memSource{msgs: eventMessages(n), block: true}, t: t, store: store}
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early; its own stop checks the error
	<-store.waiting
	waitFor(t, "detection past the stalled insert", 10*time.Second, func() bool { return p.Counters().Accepted.Load() == n })
	if st, _ := p.behind.read(); st.staged != 0 || st.held == 0 || src.committed() != 0 {
		t.Errorf("while the insert hangs: %d staged, %d held, %d commits; want none staged, the batch held, nothing committed", st.staged, st.held, src.committed())
	}
	store.release()
	waitFor(t, "storage to catch up", 10*time.Second, func() bool { return p.Counters().Committed.Load() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := store.prefix(); got != n-1 || src.rewinds != 1 {
		t.Errorf("stored through %d with %d re-reads; want %d and one", got, src.rewinds, n-1)
	}
}
