package storage

import (
	"context"
	"errors"
	"fmt"
	"github.com/declinemon/declinemon/event"
	"sync"
	"sync/atomic"
	"time"
)

// Inserter sends one events batch with its deduplication token: the wire.
// The clickhouse-go implementation is Client; tests use chdb and fakes.
type Inserter interface {
	Insert(ctx context.Context, cols *Columns, token string) error
}

// PermanentError marks a failure that retrying cannot fix (schema
// mismatch, unknown table, authentication): it needs an operator.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent storage error: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent tells the pipeline to halt, not retry (its flush policy).
func (e *PermanentError) Permanent() bool { return true }

// WriterConfig tunes retries. Batching by size and time is the runner's
// (kafka.batch_size, kafka.flush_interval): one Write per flush.
type WriterConfig struct {
	Attempts   int           `yaml:"attempts"`    // per batch before giving the error to the runner, default 5
	Backoff    time.Duration `yaml:"backoff"`     // first retry delay, default 200ms
	MaxBackoff time.Duration `yaml:"max_backoff"` // default 5s
}

// WriterStats count the writer's work.
type WriterStats struct {
	Batches, Rows, Retries, Failures, Permanent atomic.Uint64
	// Skipped counts re-delivered events found already stored; Lookups
	// the partitions whose stored ranges were read.
	Skipped, Lookups atomic.Uint64
	// Contended counts Writes that waited for another consumer's insert
	// of the same partition (a rebalance inside the process).
	Contended atomic.Uint64
}

// Writer is the pipeline's Store for ClickHouse: it turns a batch into
// columns, inserts it with a deduplication token, and retries transient
// failures with backoff. Exactly once: events a crash or a rebalance
// re-delivers are dropped when ingest_offsets shows them stored (see
// skipStored), and a retried batch repeats its token. Write returns nil only once ClickHouse has
// acknowledged the batch; until then the runner neither commits offsets
// nor fetches more (backpressure, memory bounded by one batch).
type Writer struct {
	ins    Inserter
	ranges RangeReader // nil: no exactly-once resume
	mu     sync.Mutex
	resume map[topicPartition]*partResume
	// inflight: partitions a Write is inserting now (see claim).
	inflight map[topicPartition]chan struct{}
	cfg      WriterConfig
	// free holds column buffers reused from batch to batch (consumers of
	// one process share the writer and insert concurrently). Not a
	// sync.Pool: the collector empties those, and regrowing 50K-row
	// columns every few batches was a fifth of the writer's allocations.
	free  []*Columns
	stats WriterStats
	sleep func(context.Context, time.Duration) error
}

// NewWriter returns a writer over ins.
func NewWriter(ins Inserter, cfg WriterConfig) *Writer {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	w := &Writer{ins: ins, cfg: cfg, sleep: sleepCtx}
	w.ranges, _ = ins.(RangeReader)
	return w
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Ping reports storage readiness when the wire can tell (Client can).
func (w *Writer) Ping(ctx context.Context) error {
	if p, ok := w.ins.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *WriterStats { return &w.stats }

// columns takes a column buffer off the free list (or a new one), empty.
func (w *Writer) columns() *Columns {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.free); n > 0 {
		c := w.free[n-1]
		w.free = w.free[:n-1]
		c.Reset()
		return c
	}
	return new(Columns)
}

// maxFreeColumns bounds the buffers kept: one per concurrent insert is
// enough.
const maxFreeColumns = 4

// release keeps c for the next batch, unless the batch it held was under
// a quarter of what it has room for (traffic fell since a peak): then the
// collector gets it back, and the memory kept follows the recent batches.
func (w *Writer) release(c *Columns) {
	if n := cap(c.EventID); n > 16<<10 && 4*c.Len() < n {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.free) < maxFreeColumns {
		w.free = append(w.free, c)
	}
}

// Write implements pipeline.Store.
func (w *Writer) Write(ctx context.Context, batch []event.Classified) (err error) {
	if len(batch) == 0 {
		return nil
	}
	all := batch
	if w.ranges != nil {
		release, err := w.claim(ctx, batch)
		if err != nil {
			return fmt.Errorf("inserting %d events: %w", len(batch), err)
		}
		defer release()
	}
	defer func() {
		if err != nil {
			// An insert may have landed though it reported an error: what
			// this writer knows of the batch's partitions is stale.
			w.forget(all)
		}
	}()
	batch, err = w.skipStored(ctx, batch)
	if err != nil {
		var perm *PermanentError
		if errors.As(err, &perm) {
			w.stats.Permanent.Add(1)
		} else {
			w.stats.Failures.Add(1)
		}
		return err
	}
	if len(batch) == 0 {
		w.handled(all)
		return nil
	}
	cols := w.columns()
	defer w.release(cols)
	for i := range batch {
		cols.Append(&batch[i])
	}
	token := Token(batch)
	wait := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := w.ins.Insert(ctx, cols, token)
		if err == nil {
			w.stats.Batches.Add(1)
			w.stats.Rows.Add(uint64(len(batch)))
			w.handled(all)
			return nil
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			w.stats.Permanent.Add(1)
			return err
		}
		if attempt >= w.cfg.Attempts {
			w.stats.Failures.Add(1)
			return fmt.Errorf("inserting %d events after %d attempts: %w", len(batch), attempt, err)
		}
		w.stats.Retries.Add(1)
		if err := w.sleep(ctx, wait); err != nil {
			return fmt.Errorf("inserting %d events: %w", len(batch), err)
		}
		wait = min(2*wait, w.cfg.MaxBackoff)
	}
}
