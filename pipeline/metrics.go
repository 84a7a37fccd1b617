package pipeline

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// DeliveryStats is what a notifier reports (notify.Stats satisfies it
// through DeliveryCounts).
type DeliveryStats interface {
	DeliveryCounts() (sent, failed, dropped, retries uint64)
}

// Metrics exposes the runner's counters to Prometheus. Values are read
// from the runner's atomics at scrape time, so the hot path pays nothing.
// Labels come only from small fixed sets (reason, cause, kind, state,
// stage, sink, topic/partition) — never terminal or merchant ids.
type Metrics struct {
	stats   *RunStats
	sinks   map[string]DeliveryStats
	stages  *prometheus.HistogramVec
	batches prometheus.Histogram
	descs   map[string]*prometheus.Desc
}

// NewMetrics registers the runner's metrics on reg.
func NewMetrics(reg prometheus.Registerer, stats *RunStats, sinks map[string]DeliveryStats) (*Metrics, error) {
	m := &Metrics{stats: stats, sinks: sinks,
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "declinemon_flush_stage_duration_seconds", Help: "Time per flush stage: store, dead_letters, forward, alerts, commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"stage"}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "declinemon_store_batch_events", Help: "Events per storage batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		descs: map[string]*prometheus.Desc{},
	}
	d := func(name, help string, labels ...string) {
		m.descs[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	d("declinemon_messages_total", "Kafka messages consumed.")
	d("declinemon_message_bytes_total", "Bytes of consumed message values.")
	d("declinemon_events_accepted_total", "Messages accepted as valid events.")
	d("declinemon_events_approved_total", "Accepted events that were approvals.")
	d("declinemon_events_rejected_total", "Messages rejected, by reason.", "reason")
	d("declinemon_events_late_total", "Accepted events beyond the lateness bound (not detected on).")
	d("declinemon_declines_total", "Declined or failed attempts, by cause.", "cause")
	d("declinemon_dead_letters_total", "Messages written to the dead-letter topic.")
	d("declinemon_forwarded_total", "Accepted messages forwarded to the detection stage.")
	d("declinemon_flushes_total", "Successful flushes (each ends with one commit).")
	d("declinemon_flush_retries_total", "Failed flush attempts that were retried (storage, DLQ, commit problems).")
	d("declinemon_committed_messages_total", "Messages whose offsets were committed.")
	d("declinemon_commit_latency_seconds", "Latency of the last offset commit.")
	d("declinemon_last_flush_timestamp_seconds", "Unix time of the last successful flush.")
	d("declinemon_consumer_lag_messages", "Messages behind the partition's high watermark at the last flush.", "topic", "partition")
	d("declinemon_alerts_total", "Alert records raised, by kind and state.", "kind", "state")
	d("declinemon_alerts_active", "Firing alerts, by kind.", "kind")
	d("declinemon_detector_scopes", "Scopes (terminals, merchants, regions...) held by the detector.")
	d("declinemon_detector_failure_records", "Failure records held for attribution.")
	d("declinemon_detector_scopes_evicted_total", "Detector scopes evicted: idle (idle_ttl) or cap (max_scopes reached; rising means ids are flooding in).", "reason")
	d("declinemon_alert_deliveries_total", "Alert deliveries by sink and result (sent, failed, dropped).", "sink", "result")
	for _, c := range []prometheus.Collector{m, m.stages, m.batches} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
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
	s := m.stats
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
	for _, cause := range event.Causes() {
		c("declinemon_declines_total", s.ByCause[cause].Load(), cause.String())
	}
	c("declinemon_dead_letters_total", s.DeadLettered.Load())
	c("declinemon_forwarded_total", s.Forwarded.Load())
	c("declinemon_flushes_total", s.Flushes.Load())
	c("declinemon_flush_retries_total", s.FlushRetries.Load())
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
	g("declinemon_detector_failure_records", float64(s.DetectorRecords.Load()))
	c("declinemon_detector_scopes_evicted_total", s.EvictedIdle.Load(), "idle")
	c("declinemon_detector_scopes_evicted_total", s.EvictedCap.Load(), "cap")
	for name, ds := range m.sinks {
		sent, failed, dropped, _ := ds.DeliveryCounts()
		c("declinemon_alert_deliveries_total", sent, name, "sent")
		c("declinemon_alert_deliveries_total", failed, name, "failed")
		c("declinemon_alert_deliveries_total", dropped, name, "dropped")
	}
}
