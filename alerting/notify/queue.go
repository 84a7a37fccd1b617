package notify

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// queue delivers records one at a time, in the order Send gave them, in
// the background. It holds at most size records: enqueue waits for room,
// so a slow receiver slows the caller instead of losing records.
type queue struct {
	deliver  func(ctx context.Context, a *alerting.Alert) error
	size     int
	attempts int
	backoff  time.Duration
	log      *zap.Logger
	stats    *Stats

	mu      sync.Mutex
	items   []queued // FIFO
	seq     uint64   // sequence number of the last record accepted
	settled uint64   // every record up to this one is delivered, failed or dropped
	closed  bool
	// down: the last record failed all its attempts. A full queue then
	// drops new records (counted, logged) instead of holding up the
	// caller's pipeline for hours behind a dead endpoint.
	down     bool
	lastDrop time.Time
	changed  signal // room freed, a record settled, or closed
	report   flushReport

	ctx  context.Context // ends when Close gives up: deliveries abort
	stop context.CancelFunc
	done chan struct{}
}

type queued struct {
	seq uint64
	a   alerting.Alert
}

// outcome of one record's delivery.
type outcome uint8

const (
	outcomeSent outcome = iota
	outcomeFailed
	outcomeDropped
)

func newQueue(size, attempts int, backoff time.Duration, log *zap.Logger, stats *Stats, deliver func(context.Context, *alerting.Alert) error) *queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue{deliver: deliver, size: max(size, 1), attempts: max(attempts, 1), backoff: backoff,
		log: log, stats: stats, ctx: ctx, stop: cancel, done: make(chan struct{})}
	go q.run()
	return q
}

// enqueue accepts all of alerts or none. It waits, until ctx ends, while
// the queue has no room for them; a batch larger than the whole queue is
// let in once the queue is empty (the caller holds it in memory anyway).
// All-or-nothing lets a caller that retries after an error resend the
// same batch without duplicating records.
func (q *queue) enqueue(ctx context.Context, alerts []alerting.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	q.mu.Lock()
	logged := false
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if len(q.items) == 0 || len(q.items)+len(alerts) <= q.size {
			break
		}
		if q.down {
			q.stats.Dropped.Add(uint64(len(alerts)))
			if time.Since(q.lastDrop) > 10*time.Second {
				q.lastDrop = time.Now()
				q.log.Error("alert receiver down and its queue full: dropping alert records (see declinemon_alert_deliveries_total{result=\"dropped\"})",
					zap.Int("queued", len(q.items)), zap.Int("dropped", len(alerts)))
			}
			q.mu.Unlock()
			return nil
		}
		if !logged {
			logged = true
			q.log.Warn("alert delivery queue full: waiting for the receiver",
				zap.Int("queued", len(q.items)), zap.Int("alerts", len(alerts)))
		}
		ch := q.changed.wait()
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for room in the alert delivery queue: %w", ctx.Err())
		case <-ch:
		}
		q.mu.Lock()
	}
	for i := range alerts {
		q.seq++
		q.items = append(q.items, queued{seq: q.seq, a: alerts[i]})
	}
	q.changed.broadcast()
	q.mu.Unlock()
	return nil
}

func (q *queue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.items) == 0 {
			if q.closed || q.ctx.Err() != nil {
				q.mu.Unlock()
				return
			}
			ch := q.changed.wait()
			q.mu.Unlock()
			select {
			case <-ch:
			case <-q.ctx.Done():
			}
			q.mu.Lock()
		}
		it := q.items[0]
		q.items[0] = queued{}
		q.items = q.items[1:]
		q.changed.broadcast() // room for a waiting enqueue
		q.mu.Unlock()

		res := q.send(&it.a)

		q.mu.Lock()
		q.down = res == outcomeFailed
		switch res {
		case outcomeSent:
			q.stats.Sent.Add(1)
		case outcomeFailed:
			q.stats.Failed.Add(1)
		case outcomeDropped:
			q.stats.Dropped.Add(1)
		}
		q.settled = it.seq
		if q.ctx.Err() != nil && len(q.items) > 0 {
			q.log.Warn("alert delivery stopped: dropping queued alerts", zap.Int("alerts", len(q.items)))
			q.stats.Dropped.Add(uint64(len(q.items)))
			q.items = nil
			q.settled = q.seq
		}
		q.changed.broadcast()
		q.mu.Unlock()
	}
}

// send delivers one record, retrying up to the configured attempts.
func (q *queue) send(a *alerting.Alert) outcome {
	wait := q.backoff
	for attempt := 1; ; attempt++ {
		err := q.deliver(q.ctx, a)
		if err == nil {
			return outcomeSent
		}
		if q.ctx.Err() != nil {
			return outcomeDropped
		}
		if attempt >= q.attempts {
			q.log.Warn("alert delivery failed", zap.String("alert_id", a.ID), zap.String("state", a.State),
				zap.Int("attempts", attempt), zap.Error(err))
			return outcomeFailed
		}
		q.stats.Retries.Add(1)
		select {
		case <-q.ctx.Done():
			return outcomeDropped
		case <-time.After(wait):
		}
		wait = nextBackoff(wait)
	}
}

// flush waits until every record accepted before the call is settled.
func (q *queue) flush(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	target := q.seq
	for q.settled < target {
		ch := q.changed.wait()
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			q.mu.Lock()
			if q.settled < target {
				return q.report.take(q.stats, target-q.settled, ctx.Err())
			}
		case <-ch:
			q.mu.Lock()
		}
	}
	return q.report.take(q.stats, 0, nil)
}

// close stops accepting records and delivers the queued ones, waiting at
// most until ctx ends; what is left then is dropped and counted.
func (q *queue) close(ctx context.Context) {
	q.mu.Lock()
	q.closed = true
	q.changed.broadcast()
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-ctx.Done():
		q.stop()
		<-q.done
	}
	q.stop()
}
