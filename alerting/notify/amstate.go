package notify

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// amMaxBatch bounds the alerts in one POST (Prometheus' default).
const amMaxBatch = 256

// amAlert is the desired state of one alert in Alertmanager.
type amAlert struct {
	p          postable // what to post: the latest record, mapped
	resolved   bool
	last       uint64    // sequence number of the latest record
	queued     bool      // the latest record waits for its first post
	delivered  bool      // the latest record reached an Alertmanager
	resolvedAt time.Time // when the resolve was delivered; retention runs from here
}

// Send records the alerts' new states for delivery; it never blocks. A
// record replaces a not yet posted record of the same alert_id (counted
// as superseded), so a resolve is never stuck behind, or overtaken by,
// the firing record it ends. After Close it returns ErrClosed.
func (am *Alertmanager) Send(_ context.Context, alerts []alerting.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	now := am.now()
	am.mu.Lock()
	defer am.mu.Unlock()
	if am.closed {
		return ErrClosed
	}
	for i := range alerts {
		a := &alerts[i]
		e := am.alerts[a.ID]
		if e == nil {
			e = &amAlert{}
			am.alerts[a.ID] = e
		}
		if e.queued {
			am.stats.Superseded.Add(1)
		}
		am.seq++
		*e = amAlert{p: am.toPostable(a, now), resolved: a.State == alerting.StateResolved, last: am.seq, queued: true}
	}
	am.changed.broadcast() // a superseded record is settled
	select {
	case am.wake <- struct{}{}:
	default:
	}
	return nil
}

// Adopt takes over alert records delivered before a restart (the firing
// incidents of a restored detector checkpoint, records the restored
// detector raised again): they are not posted as new, but their state is
// re-sent every resend interval like any delivered record, so
// Alertmanager keeps a firing alert alive and a resolved one resolved. A
// record waiting to be posted is left alone.
func (am *Alertmanager) Adopt(alerts []alerting.Alert) {
	now := am.now()
	am.mu.Lock()
	defer am.mu.Unlock()
	for i := range alerts {
		a := &alerts[i]
		if e := am.alerts[a.ID]; e != nil && e.queued {
			continue
		}
		am.seq++
		am.alerts[a.ID] = &amAlert{p: am.toPostable(a, now), resolved: a.State == alerting.StateResolved, last: am.seq, delivered: true,
			resolvedAt: now}
	}
}

// run is the only goroutine that posts, so posts of one alert never
// overtake each other.
func (am *Alertmanager) run() {
	defer close(am.done)
	tick := time.NewTicker(am.cfg.ResendInterval)
	defer tick.Stop()
	for am.ctx.Err() == nil {
		if am.deliverQueued() {
			continue
		}
		am.mu.Lock()
		closed := am.closed
		am.mu.Unlock()
		if closed {
			break
		}
		select {
		case <-am.ctx.Done():
		case <-am.wake:
		case <-tick.C:
			am.resend()
		}
	}
	am.mu.Lock()
	var n uint64
	for _, e := range am.alerts {
		if e.queued {
			e.queued = false
			n++
		}
	}
	if n > 0 {
		am.stats.Dropped.Add(n)
		am.log.Warn("alert delivery stopped: dropping queued alerts", zap.Uint64("alerts", n))
	}
	am.changed.broadcast()
	am.mu.Unlock()
}

// deliverQueued posts up to amMaxBatch queued records, oldest first, with
// retries; false when none was queued.
func (am *Alertmanager) deliverQueued() bool {
	type item struct {
		id  string
		seq uint64
	}
	am.mu.Lock()
	var items []item
	for id, e := range am.alerts {
		if e.queued {
			items = append(items, item{id, e.last})
		}
	}
	if len(items) == 0 {
		am.mu.Unlock()
		return false
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.seq, b.seq) })
	items = items[:min(len(items), amMaxBatch)]
	now := am.now()
	ps := make([]postable, len(items))
	for i, it := range items {
		e := am.alerts[it.id]
		e.queued = false
		if !e.resolved {
			e.p.EndsAt = now.Add(am.lease())
		}
		ps[i] = e.p
		am.inflight = append(am.inflight, it.seq)
	}
	am.mu.Unlock()

	attempts, err := am.postRetrying(ps)

	am.mu.Lock()
	defer am.mu.Unlock()
	now = am.now()
	for _, it := range items {
		switch {
		case err == nil:
			am.stats.Sent.Add(1)
			if e := am.alerts[it.id]; e != nil && e.last == it.seq {
				e.delivered = true
				if e.resolved {
					e.resolvedAt = now
				}
			}
		case am.ctx.Err() != nil:
			am.stats.Dropped.Add(1)
		default:
			am.stats.Failed.Add(1)
		}
	}
	if err != nil {
		msg := "alert delivery failed; the alerts' state is re-sent every resend interval until delivered"
		if am.ctx.Err() != nil {
			msg = "alert delivery stopped: dropping alerts being posted"
		}
		am.log.Warn(msg, zap.Int("alerts", len(items)), zap.Int("attempts", attempts), zap.Error(err))
	}
	am.inflight = am.inflight[:0]
	am.changed.broadcast()
	return true
}

// postRetrying posts ps up to the configured attempts, with backoff.
func (am *Alertmanager) postRetrying(ps []postable) (attempt int, err error) {
	wait := 500 * time.Millisecond
	for attempt = 1; ; attempt++ {
		err = am.postAll(am.ctx, ps)
		if err == nil || attempt >= am.cfg.Attempts || am.ctx.Err() != nil {
			return attempt, err
		}
		am.stats.Retries.Add(1)
		select {
		case <-am.ctx.Done():
			return attempt, err
		case <-time.After(wait):
		}
		wait = nextBackoff(wait)
	}
}

// resend re-posts the state of every alert not waiting for its first
// post: firing ones with a renewed lease, resolved ones until delivered
// and for ResolvedRetention after. It forgets resolves past retention.
// A failed resend is retried at the next tick.
func (am *Alertmanager) resend() {
	type item struct {
		id  string
		seq uint64
	}
	am.mu.Lock()
	now := am.now()
	var items []item
	var ps []postable
	for id, e := range am.alerts {
		if e.queued {
			continue
		}
		if e.resolved && e.delivered && now.Sub(e.resolvedAt) >= am.cfg.ResolvedRetention {
			delete(am.alerts, id)
			continue
		}
		if !e.resolved {
			e.p.EndsAt = now.Add(am.lease())
		}
		items = append(items, item{id, e.last})
		ps = append(ps, e.p)
	}
	am.mu.Unlock()

	for len(ps) > 0 {
		n := min(len(ps), amMaxBatch)
		err := am.postAll(am.ctx, ps[:n])
		if err != nil {
			am.stats.Retries.Add(1)
			am.log.Warn("re-sending alerts failed; retrying at the next resend interval", zap.Int("alerts", len(ps)), zap.Error(err))
			return
		}
		am.mu.Lock()
		late := 0
		for _, it := range items[:n] {
			if e := am.alerts[it.id]; e != nil && e.last == it.seq && !e.delivered {
				e.delivered = true
				if e.resolved {
					e.resolvedAt = now
				}
				late++
			}
		}
		am.mu.Unlock()
		if late > 0 {
			am.log.Info("alerts delivered on resend after failing earlier", zap.Int("alerts", late))
		}
		ps, items = ps[n:], items[n:]
	}
}

// pendingLocked counts records up to seq target that are neither
// delivered, failed, dropped nor superseded.
func (am *Alertmanager) pendingLocked(target uint64) uint64 {
	var n uint64
	for _, e := range am.alerts {
		if e.queued && e.last <= target {
			n++
		}
	}
	for _, s := range am.inflight {
		if s <= target {
			n++
		}
	}
	return n
}

// Flush waits, until ctx ends, for every record sent before the call to
// be posted (or given up after Attempts), and returns an
// *UndeliveredError if any record failed or was dropped since the
// previous Flush (or is still pending when ctx ends). A failed alert's
// state keeps being re-sent in the background.
func (am *Alertmanager) Flush(ctx context.Context) error {
	am.mu.Lock()
	defer am.mu.Unlock()
	target := am.seq
	for am.pendingLocked(target) > 0 {
		ch := am.changed.wait()
		am.mu.Unlock()
		select {
		case <-ctx.Done():
			am.mu.Lock()
			if n := am.pendingLocked(target); n > 0 {
				return am.report.take(&am.stats, n, ctx.Err())
			}
		case <-ch:
			am.mu.Lock()
		}
	}
	return am.report.take(&am.stats, 0, nil)
}

// Close stops accepting records and posts the queued ones, waiting at
// most until ctx ends; records still unposted then are counted as
// dropped. It does not wait for resolved alerts' retention.
func (am *Alertmanager) Close(ctx context.Context) {
	am.mu.Lock()
	am.closed = true
	am.mu.Unlock()
	select {
	case am.wake <- struct{}{}:
	default:
	}
	select {
	case <-am.done:
	case <-ctx.Done():
		am.stop()
		<-am.done
	}
	am.stop()
}
