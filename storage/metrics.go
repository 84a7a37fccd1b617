package storage

import "github.com/prometheus/client_golang/prometheus"

var (
	descBatches   = prometheus.NewDesc("declinemon_store_batches_total", "Batches written to ClickHouse.", nil, nil)
	descRows      = prometheus.NewDesc("declinemon_store_rows_total", "Event rows written to ClickHouse.", nil, nil)
	descRetries   = prometheus.NewDesc("declinemon_store_retries_total", "Insert attempts retried after a transient error.", nil, nil)
	descSkipped   = prometheus.NewDesc("declinemon_store_redelivered_skipped_total", "Re-delivered events not inserted because ingest_offsets shows them stored (after a crash or a rebalance).", nil, nil)
	descLookups   = prometheus.NewDesc("declinemon_store_offset_lookups_total", "Partitions whose stored offset ranges were read (at start, after a rebalance, after a re-delivery).", nil, nil)
	descContended = prometheus.NewDesc("declinemon_store_contended_total", "Inserts that waited for another consumer of this process to finish inserting the same partition (a rebalance moved it mid-insert).", nil, nil)
	descFailures  = prometheus.NewDesc("declinemon_store_failures_total", "Batches that failed: transient (retries used up) or permanent (needs an operator).", []string{"kind"}, nil)
)

// Describe implements prometheus.Collector: the writer's counters.
func (w *Writer) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBatches
	ch <- descRows
	ch <- descRetries
	ch <- descFailures
	ch <- descSkipped
	ch <- descLookups
	ch <- descContended
}

// Collect implements prometheus.Collector.
func (w *Writer) Collect(ch chan<- prometheus.Metric) {
	s := &w.stats
	ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(s.Batches.Load()))
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.Rows.Load()))
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries.Load()))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Failures.Load()), "transient")
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Permanent.Load()), "permanent")
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(s.Skipped.Load()))
	ch <- prometheus.MustNewConstMetric(descLookups, prometheus.CounterValue, float64(s.Lookups.Load()))
	ch <- prometheus.MustNewConstMetric(descContended, prometheus.CounterValue, float64(s.Contended.Load()))
}
