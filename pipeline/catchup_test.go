package pipeline

import (
	"errors"

	"go.uber.org/zap/zaptest"
	"testing"
	"time"
)

// TestStoreBehindCatchUpKeepsDetectionLive: inserts fail for a while
// mid-stream; when ClickHouse is back, storage reads what it missed with
// its own reader while the consumer goes on. New messages arriving while
// the catch-up's insert hangs are detected at once (the re-read from the
// commits would reach them only after the whole gap), nothing is
// re-delivered to the consumer, the commits never pass what is stored, and
// in the end every event is acknowledged exactly once. In the second case
// ClickHouse fails again in the middle of the catch-up.
func TestStoreBehindCatchUpKeepsDetectionLive(t *testing.T) {
	for _, failAgain := range []bool{false, true} {
		name := "recovers"
		if failAgain {
			name = "fails-again-while-catching-up"
		}
		t.Run(name, func(t *testing.T) { testCatchUp(t, failAgain) })
	}
}

func testCatchUp(t *testing.T, failAgain bool) {
	const before, after = 400, 300
	all := eventMessages(before + after)
	store := &ackStore{}
	p, err := New(Options{Store: store, BatchSize: 10, StoreBatchSize: 25, FlushInterval: 5 * time.Millisecond, Partitions: 1, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mem := &memSource{msgs: all[:before], block: true, backfill: true}
	src := &storedSource{memSource: mem, t: t, store: store}
	store.holding()
	stop := runAsync(p, src)
	defer stop() //nolint:errcheck // when the test fails early; its own stop checks the error
	// Two inserts land, then ClickHouse is down until detection has seen
	// every message so far (one insert at a time: each waits on hold).
	store.let(2)
	down := errors.New("dial tcp 127.0.0.1:9000: connection refused")
	store.set(down)
	store.hold <- struct{}{}
	waitFor(t, "detection through the outage", 10*time.Second, func() bool { return p.Counters().Accepted.Load() == before })
	// Back: the held batch lands; the catch-up's first insert hangs.
	<-store.waiting
	store.set(nil)
	store.hold <- struct{}{}
	<-store.waiting
	if failAgain {
		store.set(down)
		store.hold <- struct{}{} // the catch-up's insert fails: its readers stop
		<-store.waiting
		store.set(nil)
		store.hold <- struct{}{} // the held batch lands: new readers
		<-store.waiting          // and their first insert hangs
	}
	stored := store.prefix()
	mem.mu.Lock()
	mem.msgs = all
	mem.mu.Unlock()
	waitFor(t, "new messages detected while storage catches up", 10*time.Second, func() bool {
		return p.Counters().Accepted.Load() == before+after
	})
	if st, _ := p.behind.read(); st.catching != 1 {
		t.Errorf("%d partitions catching up (as of the last flush) while the catch-up's insert hangs, want 1", st.catching)
	}
	if got := store.prefix(); got != stored || got >= before {
		t.Errorf("stored through %d, then %d, with the catch-up's insert hanging: want it unchanged, inside the gap", stored, got)
	}
	store.release()
	waitFor(t, "storage to catch up", 20*time.Second, func() bool { return p.Counters().Committed.Load() == before+after })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for o := range int64(before + after) {
		if n := store.acked[o]; n != 1 {
			t.Fatalf("offset %d acknowledged %d times, want once", o, n)
		}
	}
	wantBackfills := 1
	if failAgain {
		wantBackfills = 2
	}
	if mem.rewinds != 0 || mem.backfills != wantBackfills || p.Counters().Redelivered.Load() != 0 {
		t.Errorf("%d re-reads, %d partition readers, %d messages re-delivered: want none, %d, none",
			mem.rewinds, mem.backfills, p.Counters().Redelivered.Load(), wantBackfills)
	}
	if got := p.Engine().Stats().Observed; got != before+after {
		t.Errorf("detector observed %d, want each of the %d once", got, before+after)
	}
	if p.catching != nil {
		t.Error("the catch-up's readers still run after Run returned")
	}
}
