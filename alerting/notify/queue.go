// Package notify delivers alert records to the tools on-call engineers
// already run: Alertmanager (v2 API) and generic JSON webhooks. Delivery
// never blocks the pipeline: Send only enqueues into a bounded queue, a
// background goroutine delivers with retries, and what does not fit is
// dropped and counted.
package notify

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// Stats count deliveries.
type Stats struct {
	Sent, Failed, Dropped, Retries atomic.Uint64
}

// queue runs deliver for batches in the background.
type queue struct {
	ch       chan []alerting.Alert
	deliver  func(ctx context.Context, batch []alerting.Alert) error
	attempts int
	backoff  time.Duration
	log      *zap.Logger
	stats    *Stats
	wg       sync.WaitGroup
	stop     context.CancelFunc
	ctx      context.Context
}

func newQueue(size, attempts int, backoff time.Duration, log *zap.Logger, stats *Stats, deliver func(context.Context, []alerting.Alert) error) *queue {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue{ch: make(chan []alerting.Alert, max(size, 1)), deliver: deliver, attempts: max(attempts, 1),
		backoff: backoff, log: log, stats: stats, stop: cancel, ctx: ctx}
	q.wg.Add(1)
	go q.run()
	return q
}

// enqueue never blocks; a full queue drops the batch and counts it.
func (q *queue) enqueue(batch []alerting.Alert) {
	cp := append([]alerting.Alert(nil), batch...)
	select {
	case q.ch <- cp:
	default:
		q.stats.Dropped.Add(uint64(len(batch)))
		q.log.Warn("alert delivery queue full: dropping alerts", zap.Int("alerts", len(batch)))
	}
}

func (q *queue) run() {
	defer q.wg.Done()
	for {
		select {
		case <-q.ctx.Done():
			return
		case batch, ok := <-q.ch:
			if !ok {
				return
			}
			q.send(batch)
		}
	}
}

func (q *queue) send(batch []alerting.Alert) {
	wait := q.backoff
	for attempt := 1; ; attempt++ {
		err := q.deliver(q.ctx, batch)
		if err == nil {
			q.stats.Sent.Add(uint64(len(batch)))
			return
		}
		if attempt >= q.attempts || q.ctx.Err() != nil {
			q.stats.Failed.Add(uint64(len(batch)))
			q.log.Warn("alert delivery failed", zap.Error(err), zap.Int("attempts", attempt), zap.Int("alerts", len(batch)))
			return
		}
		q.stats.Retries.Add(1)
		select {
		case <-q.ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// close delivers what is queued, waiting at most until ctx ends.
func (q *queue) close(ctx context.Context) {
	close(q.ch)
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.stop()
		<-done
	}
}

// DeliveryCounts reports sent, failed, dropped and retried deliveries.
func (s *Stats) DeliveryCounts() (sent, failed, dropped, retries uint64) {
	return s.Sent.Load(), s.Failed.Load(), s.Dropped.Load(), s.Retries.Load()
}
