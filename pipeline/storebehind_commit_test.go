package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/declinemon/declinemon/ingest"
)

type flakyCommitSrc struct {
	*memSource
	fails int
}

func (s *flakyCommitSrc) Commit(ctx context.Context, p []ingest.Position) error {
	if s.fails > 0 {
		s.fails--
		return errors.New("coordinator not available")
	}
	return s.memSource.Commit(ctx, p)
}

// TestStoreBehindReReadAfterAFailedCommit: storage comes back, but the
// commit of the flush that asks for the re-read fails three times and
// flushRetrying gives up on it. Consumption goes on, and nothing is
// staged until a flush has committed and the source re-reads: the re-read
// then stages everything not stored, and every event is stored.
func TestStoreBehindReReadAfterAFailedCommit(t *testing.T) {
	ctx := context.Background()
	store := &ackStore{}
	p, err := New(Options{Store: store, Checkpoints: &memCheckpoints{}, CheckpointInterval: time.Hour, BatchSize: 1000,
		StoreBatchSize: 5, FlushInterval: time.Hour, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := &flakyCommitSrc{memSource: &memSource{}}
	p.ckpt.restoreDue(src)
	if err := p.restore(ctx, src); err != nil {
		t.Fatal(err)
	}
	msgs := eventMessages(20)
	wait := func() {
		for p.behind.job.running() {
			time.Sleep(time.Millisecond)
		}
	}
	store.set(errors.New("connection refused"))
	for i := range 5 {
		p.handle(&msgs[i])
	}
	if err := p.flush(ctx, src); err != nil { // cuts 0..4, insert fails
		t.Fatal(err)
	}
	wait()
	for i := 5; i < 10; i++ {
		p.handle(&msgs[i])
	}
	if err := p.flush(ctx, src); err != nil { // collects the failure: held, not staging
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		p.handle(&msgs[i])
	}
	store.set(nil)
	p.behind.nextTry = time.Time{}
	if err := p.flush(ctx, src); err != nil { // retries the held batch
		t.Fatal(err)
	}
	wait()
	src.fails = 3
	if err := p.flushRetrying(ctx, src); err != nil { // stored again: rewind due, commit given up
		t.Fatal(err)
	}
	for i := 15; i < 20; i++ { // consumption goes on, not re-read
		p.handle(&msgs[i])
	}
	if err := p.flush(ctx, src); err != nil { // cuts 15..19; commits 4; rewinds
		t.Fatal(err)
	}
	for i := 5; i < 20; i++ { // the re-read from offset 5
		p.handle(&msgs[i])
	}
	wait()
	p.final = true
	if err := p.flush(ctx, src); err != nil {
		t.Fatal(err)
	}
	var lost []int64
	for o := range int64(20) {
		if store.acked[o] == 0 {
			lost = append(lost, o)
		}
	}
	st := p.partitions[partitionKey{msgs[0].Topic, msgs[0].Partition}]
	last := src.commits[len(src.commits)-1]
	if len(lost) > 0 {
		t.Errorf("never stored: %v; stored=%d, committed through %d", lost, st.stored, last[0].Offset)
	}
}

// TestStoreBehindCommitGivenUpWithoutCheckpoints: without detector
// checkpoints, a commit that fails three times is given up while events
// are staged but not stored, and the consumer keeps its partition and
// goes on. Nothing may be committed past what is stored: the staged
// events are stored later, or re-read.
func TestStoreBehindCommitGivenUpWithoutCheckpoints(t *testing.T) {
	ctx := context.Background()
	store := &ackStore{}
	p, err := New(Options{Store: store, BatchSize: 1000, StoreBatchSize: 5, FlushInterval: time.Hour, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := &flakyCommitSrc{memSource: &memSource{}}
	msgs := eventMessages(20)
	wait := func() {
		for p.behind.job.running() {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 5 {
		p.handle(&msgs[i])
	}
	if err := p.flush(ctx, src); err != nil { // cuts 0..4
		t.Fatal(err)
	}
	wait()
	for i := 5; i < 8; i++ { // staged, not due
		p.handle(&msgs[i])
	}
	src.fails = 3
	if err := p.flushRetrying(ctx, src); err != nil { // 0..4 stored; the commit is given up
		t.Fatal(err)
	}
	for i := 8; i < 20; i++ { // the consumer goes on
		p.handle(&msgs[i])
		if err := p.flush(ctx, src); err != nil {
			t.Fatal(err)
		}
		wait()
	}
	if src.rewinds > 0 { // a re-read delivers again from the last commit
		for i := 5; i < 20; i++ {
			p.handle(&msgs[i])
		}
	}
	p.final = true
	if err := p.flush(ctx, src); err != nil {
		t.Fatal(err)
	}
	last := src.commits[len(src.commits)-1][0].Offset
	var lost []int64
	for o := range last {
		if store.acked[o] == 0 {
			lost = append(lost, o)
		}
	}
	if len(lost) > 0 {
		t.Errorf("committed through %d, never stored: %v", last, lost)
	}
}
