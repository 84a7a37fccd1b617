package pipeline

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Counters are the pipeline's one set of counters: the replay summary
// prints them and /metrics exports them (Metrics reads them at scrape
// time, so the hot path pays one atomic add). Safe to read while Run runs.
type Counters struct {
	Messages, Bytes, Accepted, Approved atomic.Uint64
	Rejected                            [ingest.NumReasons]atomic.Uint64
	Late                                atomic.Uint64 // accepted, beyond the lateness bound: not detected on
	ClockSkew                           atomic.Uint64 // accepted, dated off the fleet's clock: not detected on
	Redelivered                         atomic.Uint64 // fetched again, already processed: not counted in Messages, stored only if storage lacks them
	ByCause                             [event.NumCauses]atomic.Uint64
	DeadLettered, Forwarded             atomic.Uint64
	Flushes, FlushRetries, Halts        atomic.Uint64
	Committed                           atomic.Uint64 // messages whose offsets were committed
	CommitNanos                         atomic.Int64  // latency of the last commit
	Lag                                 atomic.Int64  // the source's total lag at the last flush
	LastFlush                           atomic.Int64  // unix nanos of the last successful flush
	Alerts                              atomic.Uint64
	AlertsByKind                        [alerting.NumKinds][2]atomic.Uint64 // [kind][0 firing, 1 resolved]
	ActiveByKind                        [alerting.NumKinds]atomic.Int64
	DetectorScopes, DetectorRecords     atomic.Int64
	DetectorObserved                    atomic.Uint64 // events the detector has counted, across restores
	DetectorRestored                    atomic.Uint64 // of DetectorObserved, those a restored checkpoint brought
	EvictedIdle, EvictedCap             atomic.Uint64 // detector scopes evicted, by reason
	Checkpoints, CheckpointRestores     atomic.Uint64
	CheckpointBytes, CheckpointNanos    atomic.Int64  // size and duration of the last checkpoint
	AlertsAlreadyDelivered              atomic.Uint64 // raised again after a restore, delivered before it: not re-sent

	mu           sync.Mutex
	partitionLag map[string]LagAt // "topic/partition" → messages behind, at the last commit
}

// LagAt is a partition's lag at a commit and when that commit was.
type LagAt struct {
	Lag int64
	At  time.Time
}

// PartitionLag returns, per "topic/partition", how many messages were
// behind the partition's high watermark at the last commit.
func (c *Counters) PartitionLag() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.partitionLag))
	for k, v := range c.partitionLag {
		out[k] = v.Lag
	}
	return out
}

// PartitionLagAt is PartitionLag with each commit's time: where several
// consumers of one group report a partition (one of them before a
// rebalance moved it), the latest is the owner's.
func (c *Counters) PartitionLagAt() map[string]LagAt {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]LagAt, len(c.partitionLag))
	for k, v := range c.partitionLag {
		out[k] = v
	}
	return out
}

func (c *Counters) setLag(positions []ingest.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partitionLag == nil {
		c.partitionLag = map[string]LagAt{}
	}
	now := time.Now()
	for _, p := range positions {
		if p.HighWaterMark >= 0 {
			c.partitionLag[p.Topic+"/"+strconv.Itoa(p.Partition)] = LagAt{p.Lag(), now}
		}
	}
}

// forgetLag drops the lag of every partition (they were handed to
// another member).
func (c *Counters) forgetLag() {
	c.mu.Lock()
	clear(c.partitionLag)
	c.mu.Unlock()
}

func (c *Counters) setEngine(s alerting.Stats) {
	c.DetectorObserved.Store(s.Observed)
	c.DetectorScopes.Store(int64(s.Scopes))
	c.DetectorRecords.Store(int64(s.Records))
	c.EvictedIdle.Store(s.EvictedScopes - s.EvictedAtCap)
	c.EvictedCap.Store(s.EvictedAtCap)
}

// summaryCounts are what only the summary shows: unbounded by nature
// (codes, currencies), so kept off /metrics. Written by Run's goroutine.
type summaryCounts struct {
	unknownCodes   map[string]uint64
	amountDeclined Amounts
}

// maxUnknownCodes bounds the unknown-code table: a garbage feed must not
// grow it without limit. Codes beyond it are counted under "(other)".
const maxUnknownCodes = 1000

func (s *summaryCounts) decline(ev *event.Event, known bool) {
	s.amountDeclined.Add(ev.Currency, ev.AmountMinor)
	if !known {
		code := ev.Code()
		if _, ok := s.unknownCodes[code]; !ok && len(s.unknownCodes) >= maxUnknownCodes {
			code = "(other)"
		}
		s.unknownCodes[code]++
	}
}

// DeliveryStats is what a notifier reports (notify.Stats).
type DeliveryStats interface {
	DeliveryCounts() (sent, failed, dropped, retries uint64)
}

// Metrics exports Counters to Prometheus. Labels come only from small
// fixed sets (reason, cause, kind, state, stage, sink, topic/partition) —
// never terminal or merchant ids.
type Metrics struct {
	c       *Counters
	halted  func() string
	sinks   map[string]DeliveryStats
	stages  *prometheus.HistogramVec
	batches prometheus.Histogram
	descs   map[string]*prometheus.Desc
}

// RegisterMetrics registers the metrics of p on reg and makes them its
// flush observer; sinks are the notifiers' delivery counts by name. The
// members are other pipelines of p's group in this process that share its
// Counters (Options.Counters): they observe into the same metrics, and
// consumption is halted when any of them is.
func RegisterMetrics(reg prometheus.Registerer, p *Pipeline, sinks map[string]DeliveryStats, members ...*Pipeline) (*Metrics, error) {
	all := append([]*Pipeline{p}, members...)
	for _, q := range members {
		if q.counters != p.counters {
			return nil, errors.New("the members of one consumer's metrics must share its counters")
		}
	}
	halted := func() string {
		for _, q := range all {
			if h := q.Halted(); h != "" {
				return h
			}
		}
		return ""
	}
	m := newMetrics(p.counters, halted, sinks)
	if err := m.register(reg); err != nil {
		return nil, err
	}
	for _, q := range all {
		q.SetObserver(m)
	}
	return m, nil
}

func newMetrics(c *Counters, halted func() string, sinks map[string]DeliveryStats) *Metrics {
	m := &Metrics{c: c, halted: halted, sinks: sinks,
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "declinemon_flush_stage_duration_seconds", Help: "Time per flush stage: alerts, store, dead_letters, forward, commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"stage"}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "declinemon_store_batch_events", Help: "Events per storage batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		descs: map[string]*prometheus.Desc{},
	}
	d := func(name, help string, labels ...string) {
		m.descs[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	d("declinemon_messages_total", "Messages consumed (each once: those fetched again are declinemon_redelivered_skipped_total).")
	d("declinemon_message_bytes_total", "Bytes of consumed message values (each message once).")
	d("declinemon_events_accepted_total", "Messages accepted as valid events.")
	d("declinemon_events_approved_total", "Accepted events that were approvals.")
	d("declinemon_events_rejected_total", "Messages rejected, by reason.", "reason")
	d("declinemon_events_late_total", "Accepted events beyond the lateness bound (not detected on).")
	d("declinemon_events_clock_skew_total", "Accepted events dated off the fleet's clock (a wrong terminal clock): stored, not detected on.")
	d("declinemon_redelivered_skipped_total", "Messages fetched again that this process had already processed (a rebalance, a restored checkpoint, storage catching up): not counted, dead-lettered or detected on again; stored if storage did not hold them.")
	d("declinemon_declines_total", "Declined or failed attempts, by cause.", "cause")
	d("declinemon_dead_letters_total", "Messages written to the dead-letter topic.")
	d("declinemon_forwarded_total", "Accepted events forwarded to the detection stage.")
	d("declinemon_flushes_total", "Successful flushes (each ends with one commit).")
	d("declinemon_flush_retries_total", "Failed flush attempts that were retried (storage, DLQ, commit problems).")
	d("declinemon_flush_halts_total", "Flush attempts that failed with an error needing an operator (consumption halted).")
	d("declinemon_flush_halted", "1 while consumption is halted by a permanent error (see /readyz for the reason).")
	d("declinemon_committed_messages_total", "Messages whose offsets were committed.")
	d("declinemon_commit_latency_seconds", "Latency of the last offset commit.")
	d("declinemon_last_flush_timestamp_seconds", "Unix time of the last successful flush.")
	d("declinemon_consumer_lag_messages", "Messages behind the partition's high watermark at the last commit.", "topic", "partition")
	d("declinemon_alerts_total", "Alert records raised, by kind and state.", "kind", "state")
	d("declinemon_alerts_active", "Firing alerts, by kind.", "kind")
	d("declinemon_detector_scopes", "Scopes (terminals, merchants, regions...) held by the detector.")
	d("declinemon_detector_events_observed_total", "Events this process's detector has counted into its windows (not those a restored checkpoint had counted).")
	d("declinemon_detector_failure_records", "Failure records held for attribution.")
	d("declinemon_detector_scopes_evicted_total", "Detector scopes evicted: idle (idle_ttl) or cap (max_scopes reached; rising means ids are flooding in).", "reason")
	d("declinemon_checkpoints_total", "Detector checkpoints made durable (offsets are committed only with one).")
	d("declinemon_checkpoint_restores_total", "Detector checkpoints restored (at start or on a standby's takeover).")
	d("declinemon_checkpoint_bytes", "Size of the last detector checkpoint.")
	d("declinemon_checkpoint_duration_seconds", "Time the last detector checkpoint took (encode and write).")
	d("declinemon_alerts_already_delivered_total", "Alert records the restored detector raised again that had been delivered before the restart (not sent twice).")
	d("declinemon_alert_deliveries_total", "Alert deliveries by sink and result (sent, failed, dropped).", "sink", "result")
	return m
}

func (m *Metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m, m.stages, m.batches} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ObserveStage implements FlushObserver.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	m.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// ObserveBatch implements FlushObserver.
func (m *Metrics) ObserveBatch(n int) { m.batches.Observe(float64(n)) }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.c
	c := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	g := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	c("declinemon_messages_total", s.Messages.Load())
	c("declinemon_message_bytes_total", s.Bytes.Load())
	c("declinemon_events_accepted_total", s.Accepted.Load())
	c("declinemon_events_approved_total", s.Approved.Load())
	for r := ingest.Reason(0); r < ingest.NumReasons; r++ {
		c("declinemon_events_rejected_total", s.Rejected[r].Load(), r.String())
	}
	c("declinemon_events_late_total", s.Late.Load())
	c("declinemon_events_clock_skew_total", s.ClockSkew.Load())
	c("declinemon_redelivered_skipped_total", s.Redelivered.Load())
	for _, cause := range event.Causes() {
		c("declinemon_declines_total", s.ByCause[cause].Load(), cause.String())
	}
	c("declinemon_dead_letters_total", s.DeadLettered.Load())
	c("declinemon_forwarded_total", s.Forwarded.Load())
	c("declinemon_flushes_total", s.Flushes.Load())
	c("declinemon_flush_retries_total", s.FlushRetries.Load())
	c("declinemon_flush_halts_total", s.Halts.Load())
	halted := 0.0
	if m.halted != nil && m.halted() != "" {
		halted = 1
	}
	g("declinemon_flush_halted", halted)
	c("declinemon_committed_messages_total", s.Committed.Load())
	g("declinemon_commit_latency_seconds", time.Duration(s.CommitNanos.Load()).Seconds())
	if t := s.LastFlush.Load(); t > 0 {
		g("declinemon_last_flush_timestamp_seconds", float64(t)/1e9)
	}
	for tp, lag := range s.PartitionLag() {
		i := strings.LastIndexByte(tp, '/')
		g("declinemon_consumer_lag_messages", float64(lag), tp[:i], tp[i+1:])
	}
	for k := alerting.Kind(0); k < alerting.NumKinds; k++ {
		c("declinemon_alerts_total", s.AlertsByKind[k][0].Load(), k.String(), alerting.StateFiring)
		c("declinemon_alerts_total", s.AlertsByKind[k][1].Load(), k.String(), alerting.StateResolved)
		g("declinemon_alerts_active", float64(s.ActiveByKind[k].Load()), k.String())
	}
	g("declinemon_detector_scopes", float64(s.DetectorScopes.Load()))
	c("declinemon_detector_events_observed_total", s.DetectorObserved.Load()-s.DetectorRestored.Load())
	g("declinemon_detector_failure_records", float64(s.DetectorRecords.Load()))
	c("declinemon_detector_scopes_evicted_total", s.EvictedIdle.Load(), "idle")
	c("declinemon_detector_scopes_evicted_total", s.EvictedCap.Load(), "cap")
	c("declinemon_checkpoints_total", s.Checkpoints.Load())
	c("declinemon_checkpoint_restores_total", s.CheckpointRestores.Load())
	g("declinemon_checkpoint_bytes", float64(s.CheckpointBytes.Load()))
	g("declinemon_checkpoint_duration_seconds", time.Duration(s.CheckpointNanos.Load()).Seconds())
	c("declinemon_alerts_already_delivered_total", s.AlertsAlreadyDelivered.Load())
	for name, ds := range m.sinks {
		sent, failed, dropped, _ := ds.DeliveryCounts()
		c("declinemon_alert_deliveries_total", sent, name, "sent")
		c("declinemon_alert_deliveries_total", failed, name, "failed")
		c("declinemon_alert_deliveries_total", dropped, name, "dropped")
	}
}
