package storage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/internal/ratelog"
)

// AlertTable writes alert records into the alerts table in the background,
// so that a ClickHouse outage never holds detection up: Send queues, a
// goroutine inserts with retries. Records are rows of a ReplacingMergeTree
// keyed by (alert_id, state), so one sent twice is one row.
type AlertTable struct {
	send func(context.Context, []alerting.Alert) error
	max  int
	log  *ratelog.Logger

	mu      sync.Mutex
	pending []alerting.Alert
	wake    chan struct{}
	idle    chan struct{} // closed while nothing is pending or in flight
	flying  int

	// Written, Retries and Dropped count rows inserted, failed insert
	// attempts, and records dropped because the queue was full.
	Written, Retries, Dropped atomic.Uint64

	stop context.CancelFunc
	done chan struct{}
}

// alertTableQueue bounds the records held while ClickHouse is away (about
// 100 MB at the most; a fleet raises far fewer alerts in an outage).
const alertTableQueue = 100_000

// NewAlertTable starts the background writer over c.
func NewAlertTable(c *Client, log *zap.Logger) *AlertTable {
	return newAlertTable(c.Send, alertTableQueue, log)
}

func newAlertTable(send func(context.Context, []alerting.Alert) error, max int, log *zap.Logger) *AlertTable {
	ctx, cancel := context.WithCancel(context.Background())
	t := &AlertTable{send: send, max: max, log: ratelog.New(log, 10*time.Second), wake: make(chan struct{}, 1),
		idle: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	close(t.idle)
	go t.loop(ctx)
	return t
}

// Send implements the pipeline's AlertSink: it only queues.
func (t *AlertTable) Send(_ context.Context, alerts []alerting.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	t.mu.Lock()
	if len(t.pending) == 0 && t.flying == 0 {
		t.idle = make(chan struct{})
	}
	t.pending = append(t.pending, alerts...)
	if over := len(t.pending) - t.max; over > 0 {
		t.pending = t.pending[over:]
		t.Dropped.Add(uint64(over))
		t.log.Error("alerts table queue full while ClickHouse is unavailable: oldest records dropped (Alertmanager and webhooks still have them)", "alerts_table",
			zap.Int("dropped", over))
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return nil
}

func (t *AlertTable) loop(ctx context.Context) {
	defer close(t.done)
	backoff := 200 * time.Millisecond
	for {
		t.mu.Lock()
		batch := t.pending
		t.pending, t.flying = nil, len(batch)
		t.mu.Unlock()
		if len(batch) > 0 {
			if err := t.send(ctx, batch); err != nil {
				t.Retries.Add(1)
				t.log.Warn("writing alert records to ClickHouse failed; retrying (alerts are still delivered to Alertmanager and webhooks)", "alerts_table",
					zap.Int("records", len(batch)), zap.Error(err))
				t.mu.Lock()
				t.pending, t.flying = append(batch, t.pending...), 0
				t.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			t.Written.Add(uint64(len(batch)))
			backoff = 200 * time.Millisecond
		}
		t.mu.Lock()
		t.flying = 0
		empty := len(t.pending) == 0
		if empty {
			select {
			case <-t.idle:
			default:
				close(t.idle)
			}
		}
		t.mu.Unlock()
		if !empty {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		}
	}
}

// Drain waits until every queued record is written or ctx ends. (Not
// Flush: the pipeline's journal waits on sinks that Flush, and the
// alerts table must never hold detection up.)
func (t *AlertTable) Drain(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued (until ctx ends) and stops; what is left
// is counted as dropped and returned.
func (t *AlertTable) Close(ctx context.Context) int {
	_ = t.Drain(ctx)
	t.stop()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	left := len(t.pending) + t.flying
	t.Dropped.Add(uint64(left))
	return left
}
