package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// A flush is an ordered list of named durable stages. Each stage holds
// what was staged for it since its last successful flush (its own cursor):
// a retry resumes every stage where it stopped, and a stage that already
// succeeded is not repeated. Only when all succeeded does the source
// commit. Order matters: alerts first, so on-call hears about incidents
// while storage is down; then storage, dead letters, forwards; the commit
// last.

// policy is what a stage's failure means.
type policy uint8

const (
	// retry with backoff: an outage that passes (broker, network).
	retry policy = iota
	// halt loudly: retrying cannot fix it without an operator (schema
	// drift, authentication). Consumption stops, readiness fails with the
	// reason, an ERROR is logged at a bounded rate, and the stage is
	// retried slowly so a fix resumes it by itself. Nothing is skipped.
	halt
)

// stage is one durable step of a flush.
type stage interface {
	name() string
	pending() int
	flush(ctx context.Context) error
}

// batchStage buffers items for one sink.
type batchStage[T any] struct {
	label string
	items []T
	write func(ctx context.Context, items []T) ([]T, error)
	done  func(n int) // counts what became durable
}

func (s *batchStage[T]) name() string { return s.label }
func (s *batchStage[T]) pending() int { return len(s.items) }
func (s *batchStage[T]) add(v T)      { s.items = append(s.items, v) }

func (s *batchStage[T]) flush(ctx context.Context) error {
	n := len(s.items)
	rest, err := s.write(ctx, s.items)
	if err != nil {
		// Keep only what is left to retry, in order.
		k := copy(s.items, rest)
		clear(s.items[k:])
		s.items = s.items[:k]
		if s.done != nil {
			s.done(n - k)
		}
		return err
	}
	s.drop()
	if s.done != nil {
		s.done(n)
	}
	return nil
}

// drop forgets what is staged, keeping the buffer.
func (s *batchStage[T]) drop() {
	clear(s.items)
	s.items = s.items[:0]
}

// allOrNothing adapts a sink that writes a whole batch or fails.
func allOrNothing[T any](write func(context.Context, []T) error) func(context.Context, []T) ([]T, error) {
	return func(ctx context.Context, items []T) ([]T, error) {
		if err := write(ctx, items); err != nil {
			return items, err
		}
		return nil, nil
	}
}

// stageError is a failed stage with the policy its error calls for.
type stageError struct {
	stage  string
	policy policy
	err    error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// permanent reports errors that say retrying cannot fix them (storage's
// PermanentError implements it).
func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// flusher holds the stages of one pipeline.
type flusher struct {
	counters *Counters
	stages   []stage
	alerts   []*batchStage[alerting.Alert]
	// journalStage records the alerts delivered (checkpoint.go): after the
	// alert stages, so only what was delivered is journaled.
	journalStage *batchStage[ingest.JournalEntry]
	store        *batchStage[event.Classified]
	dead         *batchStage[ingest.DeadLetter]
	fwd          *batchStage[ingest.Forward]
	obs          FlushObserver

	haltRetry time.Duration

	mu     sync.Mutex
	halted string // the reason consumption is halted, "" when flowing
}

// FlushObserver is told how long each stage took and how big the storage
// batch was (the metrics implement it).
type FlushObserver interface {
	ObserveStage(stage string, d time.Duration)
	ObserveBatch(events int)
}

type nopObserver struct{}

func (nopObserver) ObserveStage(string, time.Duration) {}
func (nopObserver) ObserveBatch(int)                   {}

func (f *flusher) init(c *Counters, o Options) {
	f.counters, f.obs, f.haltRetry = c, nopObserver{}, haltRetry
	for _, sink := range o.Alerts {
		st := &batchStage[alerting.Alert]{label: "alerts", write: allOrNothing(sink.Send)}
		f.alerts = append(f.alerts, st)
		f.stages = append(f.stages, st)
	}
	if o.Checkpoints != nil && !o.Config.DisableDetection {
		journal := func(ctx context.Context, entries []ingest.JournalEntry) error {
			awaitDelivery(ctx, o.Alerts, journalDeliveryWait)
			return o.Checkpoints.Journal(ctx, entries)
		}
		f.journalStage = &batchStage[ingest.JournalEntry]{label: "journal", write: allOrNothing(journal)}
		f.stages = append(f.stages, f.journalStage)
	}
	if o.Store != nil {
		f.store = &batchStage[event.Classified]{label: "store", write: allOrNothing(o.Store.Write)}
		f.stages = append(f.stages, f.store)
	}
	if o.DeadLetters != nil {
		f.dead = &batchStage[ingest.DeadLetter]{label: "dead_letters", write: o.DeadLetters.Write,
			done: func(n int) { c.DeadLettered.Add(uint64(n)) }}
		f.stages = append(f.stages, f.dead)
	}
	if o.Forward != nil {
		f.fwd = &batchStage[ingest.Forward]{label: "forward", write: o.Forward.Write,
			done: func(n int) { c.Forwarded.Add(uint64(n)) }}
		f.stages = append(f.stages, f.fwd)
	}
}

// journalDeliveryWait bounds how long the journal waits for sinks that
// queue (Alertmanager, webhooks) to post what they were sent.
const journalDeliveryWait = 2 * time.Second

// awaitDelivery gives the sinks that deliver in the background up to wait
// to post what they hold, so that the journal records alerts delivered,
// not merely queued. A sink that is down does not hold the flush up for
// longer: its records stay in its retry queue (and Alertmanager's state
// is re-sent after a restart, see AlertAdopter).
func awaitDelivery(ctx context.Context, sinks []AlertSink, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for _, s := range sinks {
		if f, ok := s.(interface{ Flush(context.Context) error }); ok {
			_ = f.Flush(ctx) // failures are the sink's to count and log
		}
	}
}

// SetObserver sets the flush observer (the metrics); call before Run.
func (f *flusher) SetObserver(o FlushObserver) { f.obs = o }

func (f *flusher) addAlert(a alerting.Alert) {
	for _, st := range f.alerts {
		st.add(a)
	}
}

// runStages flushes every stage in order, stopping at the first failure.
func (f *flusher) runStages(ctx context.Context) error {
	for _, st := range f.stages {
		if st.pending() == 0 {
			continue
		}
		n := st.pending()
		t0 := time.Now()
		if err := st.flush(ctx); err != nil {
			pol := retry
			if permanent(err) {
				pol = halt
			}
			return &stageError{stage: st.name(), policy: pol, err: fmt.Errorf("%d records: %w", n, err)}
		}
		f.obs.ObserveStage(st.name(), time.Since(t0))
		if st == stage(f.store) {
			f.obs.ObserveBatch(n)
		}
	}
	return nil
}

func (f *flusher) setHalted(reason string) {
	f.mu.Lock()
	f.halted = reason
	f.mu.Unlock()
}

// Halted is why consumption is halted ("" while it flows).
func (f *flusher) Halted() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

// flush runs the stages, refreshes the detector's gauges and commits.
func (p *Pipeline) flush(ctx context.Context, src Source) error {
	p.tellReassigned(src)
	if err := p.runStages(ctx); err != nil {
		return err
	}
	if p.behind != nil {
		p.drainCatchUp()
		// After a rebalance with events handled but not stored, partition
		// readers could read a partition that is now another member's: the
		// re-read from the commits delivers only what this one owns.
		if p.behind.step(ctx, p, p.final) && !p.final && (p.rejoinedBehind || !p.startCatchUp(src)) {
			// Before the source re-reads from the group's offsets, every
			// partition must have one, at what is stored: a partition never
			// committed would resume at start_offset (latest: its end).
			p.log.Info("storage is back: re-reading from the committed offsets what was not stored meanwhile (detection skips it)")
			p.rewindDue = true
		}
	}
	if p.engine != nil {
		active := p.engine.Active()
		var byKind [alerting.NumKinds]int64
		for _, a := range active {
			byKind[a.Kind]++
		}
		for k := range byKind {
			p.counters.ActiveByKind[k].Store(byKind[k])
		}
		p.active.set(active)
		p.counters.setEngine(p.engine.Stats())
		p.takeOverview(p.final)
	}
	positions := p.commitPositions()
	if p.ckpt.store != nil {
		// Commit only what a durable checkpoint covers.
		positions = nil
		if p.checkpointDue(p.final || p.rewindDue) {
			covered, err := p.checkpoint(ctx)
			if err != nil {
				return &stageError{stage: "checkpoint", policy: retry, err: err}
			}
			for _, pos := range covered {
				if pos.Offset > p.partitions[partitionKey{pos.Topic, pos.Partition}].committed {
					positions = append(positions, pos)
				}
			}
		}
	}
	if p.behind != nil {
		positions = p.storedPositions(positions)
	}
	if len(positions) > 0 {
		t0 := time.Now()
		if err := src.Commit(ctx, positions); err != nil {
			return &stageError{stage: "commit", policy: retry, err: err}
		}
		p.obs.ObserveStage("commit", time.Since(t0))
		p.counters.CommitNanos.Store(int64(time.Since(t0)))
		p.counters.setLag(positions)
		for _, pos := range positions {
			st := p.partitions[partitionKey{pos.Topic, pos.Partition}]
			p.counters.Committed.Add(uint64(pos.Offset - st.committed))
			st.committed, st.committedHere = pos.Offset, true
		}
	}
	if p.rewindDue && !p.final {
		if r, ok := src.(Rewinder); ok {
			r.Rewind()
		}
		p.behind.counted(&p.behind.status.rereads)
		p.rewindDue, p.rejoinedBehind = false, false
		for _, st := range p.partitions { // delivered again from the commits
			st.handled = st.stored
		}
		resetStaged(p, p.behind.job)
	}
	if p.rejoinedBehind && p.behind != nil && storedSinceJoin(p) {
		p.rejoinedBehind = false
	}
	if p.behind != nil {
		p.behind.snapshot(p)
	}
	p.counters.LastFlush.Store(time.Now().UnixNano())
	p.counters.Flushes.Add(1)
	if l, ok := src.(interface{ Lag() int64 }); ok {
		p.counters.Lag.Store(l.Lag())
	}
	p.pending = 0
	return nil
}

// tellReassigned acts on the consumer having joined its group again since
// the last flush (partitions may have changed hands): the lag of
// partitions it may no longer own is forgotten, and a store that keeps
// per-partition state (the ClickHouse writer's stored ranges) is told.
func (p *Pipeline) tellReassigned(src Source) {
	j, ok := src.(interface{ Joins() uint64 })
	if !ok {
		return
	}
	n := j.Joins()
	if n == p.joins {
		return
	}
	p.joins = n
	if p.catching != nil {
		p.abandonCatchUp("the group rebalanced")
	}
	if p.behind != nil {
		p.rejoinedBehind = markJoin(p) || p.rejoinedBehind
	}
	p.counters.forgetLag()
	if r, ok := p.o.Store.(interface{ Reassigned() }); ok {
		r.Reassigned()
	}
}

// commitPositions is what may be committed now, per partition, without
// checkpoints: what was processed, but never past an event the event-time
// merge still holds — the detector has not seen it, so a crash must
// re-deliver it.
func (p *Pipeline) commitPositions() []ingest.Position {
	var positions []ingest.Position
	for _, st := range p.partitions {
		pos := st.processed
		if p.merge != nil {
			if low, ok := p.merge.minHeld(pos.Topic, pos.Partition); ok && low-1 < pos.Offset {
				pos.Offset = low - 1
			}
		}
		if pos.Offset > st.committed {
			positions = append(positions, pos)
		}
	}
	sortPositions(positions)
	return positions
}

// storedPositions caps positions at what is stored (storage beside
// detection): the committed offsets never pass what ClickHouse holds.
func (p *Pipeline) storedPositions(positions []ingest.Position) []ingest.Position {
	out := positions[:0]
	for _, pos := range positions {
		st := p.partitions[partitionKey{pos.Topic, pos.Partition}]
		if st == nil || st.stored == unknownOffset {
			continue
		}
		pos.Offset = min(pos.Offset, st.stored)
		// Before a re-read, and while storage catches up, a partition this
		// process never committed is committed where it started, so that
		// the group holds an offset (a partition never committed would
		// resume at start_offset: with latest, its end).
		if pos.Offset > st.committed || (p.rewindDue || st.catchUp) && !st.committedHere && pos.Offset == st.committed {
			out = append(out, pos)
		}
	}
	return out
}

// sortPositions orders positions by topic and partition.
func sortPositions(positions []ingest.Position) {
	slices.SortFunc(positions, func(a, b ingest.Position) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}

// haltRetry is how often a halted stage is tried again.
const haltRetry = 15 * time.Second

// flushRetrying retries a failed flush until it succeeds or ctx ends.
// Fetching waits meanwhile: an outage stops consumption (backpressure)
// instead of growing memory or losing data.
func (p *Pipeline) flushRetrying(ctx context.Context, src Source) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.flush(ctx, src)
		if err == nil {
			if p.Halted() != "" {
				p.log.Info("flush succeeds again; consumption resumes")
				p.setHalted("")
			}
			return nil
		}
		var se *stageError
		errors.As(err, &se)
		wait := backoff
		switch {
		case se != nil && se.stage == "commit" && attempt >= 3 && p.ckpt.store != nil:
			// The checkpoint holding these positions is durable: whoever
			// resumes restores it and skips what it covers. The positions
			// stay, so later checkpoints keep covering every partition.
			p.log.Warn("giving up on this commit; the checkpoint covering it is durable and the next one commits again", zap.Error(err))
			p.pending = 0
			return nil
		case se != nil && se.stage == "commit" && attempt >= 3 && p.behind != nil:
			// With storage, what is handled but not stored yet is staged or
			// to be re-read: forgetting the partitions' state would let the
			// next commit pass it (the consumer usually keeps its
			// partitions). The positions stay, capped at what is stored,
			// and the next flush commits again; a rebalance is handled as
			// any other (tellReassigned).
			p.log.Warn("giving up on this commit; the next flush commits again, never past what is stored", zap.Error(err))
			p.pending = 0
			return nil
		case se != nil && se.stage == "commit" && attempt >= 3:
			// Detection alone, without checkpoints. Typically a rebalance
			// took the partitions away: the new owner re-reads from the
			// last committed offset (at-least-once).
			p.log.Warn("giving up on this commit; the partitions' new owner will re-read these messages", zap.Error(err))
			clear(p.partitions)
			p.counters.forgetLag()
			p.last = nil
			p.pending = 0
			return nil
		case se != nil && se.policy == halt:
			p.setHalted(err.Error())
			p.counters.Halts.Add(1)
			p.flushLog.Error("flush halted: this needs an operator; consumption is stopped and retried every 15s", se.stage,
				zap.String("stage", se.stage), zap.Error(err))
			wait = p.haltRetry
		default:
			p.counters.FlushRetries.Add(1)
			p.flushLog.Warn("flush failed, retrying", "flush", zap.Error(err))
			backoff = min(2*backoff, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
