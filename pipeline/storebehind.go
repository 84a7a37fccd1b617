package pipeline

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Storage beside detection. When a pipeline both detects and stores (the
// default `run` with ClickHouse), one fetch and one decode feed both, and
// storage runs behind detection instead of inside its flush:
//
//   - Events are staged for storage as they are handled, and a batch is
//     handed to an insert running in the background once it holds
//     clickhouse.batch_size events or its oldest is a flush interval old.
//     One insert runs at a time; the next batch fills meanwhile, so
//     decoding and detection overlap the insert.
//   - A batch records, per partition, the offset handled when it was cut
//     (its cut): once its insert is acknowledged, every message of the
//     partition up to the cut is stored (delivery is contiguous, and every
//     batch before it was stored). Offsets are committed only up to what
//     is stored, as well as checkpointed: the group's committed offsets
//     never pass what ClickHouse holds.
//   - When an insert fails (ClickHouse down, or an error needing an
//     operator), or is still running when the next batch has waited for it
//     for 10 s, detection goes on: the batch is held and retried with
//     backoff (every 15 s for errors needing an operator), nothing new is
//     staged, and commits stop at the last stored offset, so Kafka keeps
//     what is not stored yet. Memory stays at one batch.
//   - When the held batch is stored, storage catches up with its own
//     partition readers while the consumer goes on live (catchup.go). A
//     source without them re-reads instead: a flush checkpoints and
//     commits what is stored in every partition, then the consumer
//     re-reads from the committed offsets (Rewinder), nothing staged in
//     between, and new events are detected once the re-read has passed
//     the outage's.
//
// Messages delivered again to the consumer (a rebalance, a restored
// checkpoint covering what was not stored before a crash, the re-read)
// skip detection, the dead letters and the counters and are stored only if
// they are not staged or stored already; the writer skips the ones
// ClickHouse holds (its stored offset ranges), so rows and rollups hold
// each event once.

// Rewinder is a source that can deliver again from its committed offsets
// (ingest.KafkaSource).
type Rewinder interface {
	Rewind()
}

// unknownOffset marks a partition position not known yet (a partition
// restored from a checkpoint before its first message).
const unknownOffset = math.MinInt64

// storeCut is how far one partition was handled when a batch was cut.
type storeCut struct {
	key    partitionKey
	st     *partitionState
	offset int64
}

// storeJob is one batch's insert: running while done is open, finished
// once it is closed, held (failed, waiting for its retry) when done is nil.
type storeJob struct {
	events []event.Classified
	cuts   []storeCut
	err    error
	took   time.Duration
	done   chan struct{}
}

func (j *storeJob) running() bool {
	if j == nil || j.done == nil {
		return false
	}
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

func (j *storeJob) finished() bool { return j != nil && j.done != nil && !j.running() }

// storeBehind is the storage of a pipeline that also detects.
type storeBehind struct {
	store Store
	ctx   context.Context // the inserts' context: shutdown does not cancel them (the final flush bounds the wait)
	batch int
	every time.Duration
	// stall bounds how long detection waits for a running insert before
	// the next batch: past it, storage is degraded as if the insert had
	// failed (a server that hangs, or the writer's retries against one
	// that is down), and detection goes on.
	stall time.Duration

	staging []event.Classified
	since   time.Time // when the oldest staged event was staged
	spare   []event.Classified
	job     *storeJob // the insert running or finished, or the failed batch held
	failed  bool      // job failed: nothing is staged until it is stored
	nextTry time.Time
	backoff time.Duration

	mu     sync.Mutex // guards what the metrics and readiness read
	status storeStatus
	lags   map[string]LagAt
}

// storeStatus is what the storage metrics and readiness report.
type storeStatus struct {
	stored         uint64 // offsets stored (the cuts' advances)
	retries, halts uint64
	halted         string // the error needing an operator, while it lasts
	lastStored     time.Time
	staged, held   int // events staged, and in the batch held for a retry (as of the last flush)
	catching       int // partitions storage's readers are catching up (as of the last flush)
	// Recoveries after an outage: caught up with partition readers, or
	// re-read from the commits.
	catchUps, rereads uint64
}

func newStoreBehind(store Store, batch int, every time.Duration) *storeBehind {
	b := &storeBehind{store: store, ctx: context.Background(), batch: max(batch, 1), every: every, stall: insertStall}
	b.status.lastStored = time.Now() // DeclinemonStorageBehind counts from the start until the first insert
	return b
}

// insertStall is storeBehind.stall.
const insertStall = 10 * time.Second

// drop forgets what is staged: the partitions it came from changed hands
// or were reset, and their messages are delivered again (or were stored by
// their other owner, whose commits never pass what it stored).
func (b *storeBehind) drop() {
	clear(b.staging)
	b.staging = b.staging[:0]
}

// open reports whether events are staged (not while a failed batch waits).
func (b *storeBehind) open() bool { return !b.failed }

func (b *storeBehind) add(c *event.Classified) {
	if len(b.staging) == 0 {
		b.since = time.Now()
	}
	b.staging = append(b.staging, *c)
}

// due reports whether the staged batch is to be cut.
func (b *storeBehind) due(now time.Time) bool {
	return len(b.staging) >= b.batch || len(b.staging) > 0 && now.Sub(b.since) >= b.every
}

// step runs at each flush. It collects the insert that finished, retries
// a held batch when due, and hands the staged batch to a new insert when
// it is full or old enough (one insert at a time: a due batch waits for
// the running one). The final flush waits for its inserts, but does not
// retry a held batch: what is not stored is not committed, and the next
// run re-reads it. It reports whether the consumer must re-read from its
// committed offsets (a held batch was just stored).
func (b *storeBehind) step(ctx context.Context, p *Pipeline, final bool) (rewind bool) {
	now := time.Now()
	// The consumer waits for the running insert once the next batch is
	// due. While storage catches up, the readers keep the next batch full,
	// and the consumer waits only once what it staged itself would fill a
	// second one: detection stays live at insert speed.
	wait := b.due(now)
	if p.catching != nil {
		wait = len(b.staging) >= 2*b.batch
	}
	if b.job.running() && !b.failed && (final || wait) {
		var stalled <-chan time.Time
		if !final {
			t := time.NewTimer(b.stall)
			defer t.Stop()
			stalled = t.C
		}
		select {
		case <-b.job.done:
		case <-stalled:
			b.mu.Lock()
			b.degrade(p, b.job)
			b.mu.Unlock()
			p.flushLog.Warn("an insert has been running for too long: detection goes on, nothing new is staged and the committed "+
				"offsets stay at what is stored until it ends", "store_stalled", zap.Duration("waited", b.stall), zap.Int("events", len(b.job.events)))
			return false
		case <-ctx.Done():
			return false
		}
	}
	if b.job.finished() {
		rewind = b.collect(p)
	}
	switch {
	case b.failed:
		if final || b.job.running() || now.Before(b.nextTry) {
			return rewind
		}
		b.start(b.job) // the held batch again
	case b.job == nil && len(b.staging) > 0 && (final || b.due(now)):
		j := &storeJob{events: b.staging}
		for k, st := range p.partitions {
			switch {
			case st.catchUp: // as far as its reader got
				j.cuts = append(j.cuts, storeCut{k, st, st.staged})
			case st.handled != unknownOffset:
				// Everything handled, and what a reader staged beyond.
				j.cuts = append(j.cuts, storeCut{k, st, max(st.handled, st.staged)})
			}
		}
		b.staging, b.spare = b.spare[:0], nil
		b.start(j)
	default:
		return rewind
	}
	if final {
		select {
		case <-b.job.done:
			rewind = b.collect(p) || rewind
		case <-ctx.Done():
		}
	}
	return rewind
}

func (b *storeBehind) start(j *storeJob) {
	j.err, j.done = nil, make(chan struct{})
	b.job = j
	go func() {
		defer close(j.done)
		t0 := time.Now()
		j.err = b.store.Write(b.ctx, j.events)
		j.took = time.Since(t0)
	}()
}

// collect takes the finished insert's result. Stored: the cuts advance
// and the batch's buffer is kept for the next one. Failed: the batch is
// held for a retry, staging stops and what was staged is dropped (Kafka
// keeps it: commits stop at what is stored).
func (b *storeBehind) collect(p *Pipeline) (rewind bool) {
	j := b.job
	b.mu.Lock()
	defer b.mu.Unlock()
	if j.err != nil {
		j.done = nil
		if !b.failed {
			b.degrade(p, j)
		}
		if permanent(j.err) {
			b.status.halts++
			b.status.halted = j.err.Error()
			b.nextTry = time.Now().Add(p.haltRetry)
			p.flushLog.Error("storing events needs an operator: detection goes on, nothing new is staged and the committed offsets "+
				"stay at what is stored; the batch is retried every 15s", "store_halted", zap.Error(j.err), zap.Int("events", len(j.events)))
		} else {
			b.status.retries++
			b.status.halted = ""
			b.nextTry = time.Now().Add(b.backoff)
			b.backoff = min(2*b.backoff, 5*time.Second)
			p.flushLog.Warn("storing events failed: detection goes on, nothing new is staged and the committed offsets stay at "+
				"what is stored; the batch is retried", "store_failed", zap.Error(j.err), zap.Int("events", len(j.events)))
		}
		return false
	}
	for _, c := range j.cuts {
		if p.partitions[c.key] != c.st {
			continue // the partition was reset since the cut
		}
		if c.offset > c.st.stored {
			if c.st.stored != unknownOffset {
				b.status.stored += uint64(c.offset - c.st.stored)
			}
			c.st.stored = c.offset
		}
	}
	b.status.lastStored = time.Now()
	b.status.halted = ""
	p.obs.ObserveStage("store", j.took)
	p.obs.ObserveBatch(len(j.events))
	clear(j.events)
	if b.spare == nil && cap(j.events) > 0 {
		b.spare = j.events[:0]
	}
	b.job = nil
	if !b.failed {
		return false
	}
	// Stored again: what was not staged meanwhile is read by the catch-up
	// readers (catchup.go), or else again from the committed offsets.
	b.failed = false
	return true
}

// degrade stops staging after j failed or stalled: what was staged after
// it is dropped (it is staged again when it is re-read), and j is held.
// b.mu is held.
func (b *storeBehind) degrade(p *Pipeline, j *storeJob) {
	b.failed = true
	b.drop()
	b.backoff = 500 * time.Millisecond
	p.stopCatchUp(false)
	for _, st := range p.partitions {
		st.catchUp = false
	}
	resetStaged(p, j)
}

// resetStaged sets what is staged back to what is stored, but for what j
// (an insert running or held, nil: none) holds: it is not staged again.
func resetStaged(p *Pipeline, j *storeJob) {
	for _, st := range p.partitions {
		st.staged = st.stored
	}
	if j == nil {
		return
	}
	for _, c := range j.cuts {
		if p.partitions[c.key] == c.st {
			c.st.staged = max(c.st.staged, c.offset)
		}
	}
}

// markJoin records, at a rebalance, how far each partition was handled,
// and reports whether any of it is not stored yet.
func markJoin(p *Pipeline) (gap bool) {
	for _, st := range p.partitions {
		st.atJoin = st.handled
		if st.stored != unknownOffset && st.handled > st.stored {
			gap = true
		}
	}
	return gap
}

// storedSinceJoin reports whether everything handled before the last
// rebalance is stored.
func storedSinceJoin(p *Pipeline) bool {
	for _, st := range p.partitions {
		if st.stored != unknownOffset && st.atJoin > st.stored {
			return false
		}
	}
	return true
}

// counted adds one to a recovery counter.
func (b *storeBehind) counted(n *uint64) {
	b.mu.Lock()
	*n++
	b.mu.Unlock()
}

// snapshot refreshes what the metrics read: per partition, the messages
// behind its high watermark that are not stored.
func (b *storeBehind) snapshot(p *Pipeline) {
	lags := make(map[string]LagAt, len(p.partitions))
	now := time.Now()
	for k, st := range p.partitions {
		if st.processed.Topic == "" || st.processed.HighWaterMark < 0 || st.stored == unknownOffset {
			continue
		}
		pos := st.processed
		pos.Offset = st.stored
		lags[k.topic+"/"+strconv.Itoa(k.partition)] = LagAt{Lag: pos.Lag(), At: now}
	}
	b.mu.Lock()
	b.lags = lags
	b.status.staged, b.status.held, b.status.catching = len(b.staging), 0, 0
	for _, st := range p.partitions {
		if st.catchUp {
			b.status.catching++
		}
	}
	if b.failed {
		b.status.held = len(b.job.events)
	}
	b.mu.Unlock()
}

func (b *storeBehind) read() (storeStatus, map[string]LagAt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status, b.lags
}

// ready fails while storage is halted by an error needing an operator.
func (b *storeBehind) ready() error {
	if s, _ := b.read(); s.halted != "" {
		return errors.New("storage halted, detection goes on: " + s.halted)
	}
	return nil
}

// restage stores a message this pipeline processed before (a re-read
// after a storage outage or a rejoin, or what a restored checkpoint
// covers) and has not staged since: decoded and classified for storage
// only. What is staged, being inserted or stored is not staged twice.
func (p *Pipeline) restage(m *ingest.Message, st *partitionState) {
	if !p.behind.open() || p.rewindDue {
		return
	}
	st.staged = m.Offset
	if p.decode(m) != nil {
		return
	}
	c := classified(m, &p.ev, p.rules.Classify(&p.ev))
	p.behind.add(&c)
}
