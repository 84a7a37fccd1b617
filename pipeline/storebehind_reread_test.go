package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

type joinSrc struct {
	*memSource
	joins uint64
}

func (j *joinSrc) Joins() uint64 { return j.joins }

// TestStoreBehindResetDropsStaging: a member that lost its partitions gets
// them back after another member checkpointed, so restore resets its
// detection and positions while it still has events staged. Those are
// dropped: their re-delivery is staged again, and no event is inserted
// twice in one batch (the writer's stored ranges cannot tell a batch's own
// duplicates apart).
func TestStoreBehindResetDropsStaging(t *testing.T) {
	ctx := context.Background()
	cps := &memCheckpoints{}
	store := &ackStore{}
	msgs := eventMessages(20)
	newP := func() *Pipeline {
		p, err := New(Options{Store: store, Checkpoints: cps, CheckpointInterval: time.Hour, BatchSize: 100,
			StoreBatchSize: 100, FlushInterval: time.Hour, Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := newP()
	srcA := &joinSrc{memSource: &memSource{}, joins: 1}
	if !a.ckpt.restoreDue(srcA) {
		t.Fatal("restore not due")
	}
	if err := a.restore(ctx, srcA); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.handle(&msgs[i])
	}
	// B takes over, restores, processes 0..4 and checkpoints (seq 1).
	b := newP()
	srcB := &joinSrc{memSource: &memSource{}, joins: 1}
	b.ckpt.restoreDue(srcB)
	if err := b.restore(ctx, srcB); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		b.handle(&msgs[i])
	}
	if _, err := b.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// A gets the partitions back: a new join; nothing was committed, so
	// delivery starts at 0.
	srcA.joins = 2
	if !a.ckpt.restoreDue(srcA) {
		t.Fatal("recheck not due")
	}
	if err := a.restore(ctx, srcA); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		a.handle(&msgs[i])
	}
	a.final = true
	if err := a.flush(ctx, srcA.memSource); err != nil {
		t.Fatal(err)
	}
	for o, n := range store.acked {
		if n != 1 {
			t.Errorf("offset %d inserted %d times", o, n)
		}
	}
	if len(store.acked) != 12 {
		t.Errorf("%d offsets stored, want the 12 re-delivered", len(store.acked))
	}
}

// latestSource is a group with start_offset latest: Rewind resumes from
// the commits, and a partition without any resumes at its end (here:
// where the consumer is).
type latestSource struct{ *memSource }

func (l *latestSource) Rewind() {
	l.mu.Lock()
	none := len(l.commits) == 0
	l.mu.Unlock()
	if none {
		l.mu.Lock()
		l.rewinds++
		l.mu.Unlock()
		return
	}
	l.memSource.Rewind()
}

// TestStoreBehindReReadNeedsACommit: a new group (start_offset latest)
// meets a ClickHouse outage before anything was stored, so nothing was
// ever committed. When storage is back, the flush that asks for the
// re-read checkpoints and commits where each partition started, so the
// re-read resumes there and not at the partitions' end: every event is
// stored.
func TestStoreBehindReReadNeedsACommit(t *testing.T) {
	const n = 400
	store := &ackStore{}
	p, err := New(Options{Store: store, Checkpoints: &memCheckpoints{}, CheckpointInterval: time.Hour,
		BatchSize: 10, StoreBatchSize: 25, FlushInterval: 5 * time.Millisecond, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs := eventMessages(n)
	src := &latestSource{&memSource{msgs: msgs[:200], block: true}}
	store.set(errors.New("dial tcp 127.0.0.1:9000: connection refused"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	waitFor(t, "detection through the outage", 10*time.Second, func() bool { return p.Counters().Accepted.Load() == 200 })
	store.set(nil)
	waitFor(t, "the re-read", 10*time.Second, func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.rewinds == 1 })
	src.mu.Lock()
	src.msgs = msgs // more traffic
	src.mu.Unlock()
	waitFor(t, "everything accepted", 10*time.Second, func() bool { return p.Counters().Accepted.Load() == n })
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var lost []int64
	for o := range int64(n) {
		if store.acked[o] == 0 {
			lost = append(lost, o)
		}
	}
	last := src.commits[len(src.commits)-1]
	if len(lost) > 0 {
		t.Errorf("%d offsets never stored (%d..%d); committed through %d", len(lost), lost[0], lost[len(lost)-1], last[0].Offset)
	}
}
