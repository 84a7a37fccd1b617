package pipeline

import (
	"cmp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StorageConsumerConfig is the configuration of the storage consumers that
// run beside detection: no detection, their own group (group
// "<kafka.group_id>.storage" unless named), clickhouse.batch_size events
// per flush (else kafka.batch_size when set, else 100000), and 8 MiB
// fetches unless kafka.max_bytes is set — detection keeps 1 MiB so that
// its partitions stay close in event time, storage wants fewer, larger
// fetches and inserts (README, Performance).
func StorageConsumerConfig(cfg Config, group string) Config {
	cfg.DisableDetection = true
	cfg.Kafka.ForwardTopic = "" // the detection consumer forwards, once
	if group == "" {
		group = cfg.Kafka.WithDefaults().GroupID + ".storage"
	}
	cfg.Kafka.GroupID = group
	return storageSized(cfg)
}

// IngestConfig is the configuration of `run`'s consumers when detection is
// off and storage on (an ingest instance): kafka.group_id, forwarding
// when kafka.forward_topic is set, and the storage consumers' batch and
// fetch sizes (StorageConsumerConfig). Other configurations are returned
// as they are.
func IngestConfig(cfg Config) Config {
	if !cfg.DisableDetection || !cfg.ClickHouse.Enabled() {
		return cfg
	}
	return storageSized(cfg)
}

// storageSized gives storage's consumers clickhouse.batch_size events per
// flush (else kafka.batch_size when set, else 100000) and 8 MiB fetches
// unless kafka.max_bytes is set.
func storageSized(cfg Config) Config {
	if cfg.Kafka.MaxBytes == 0 {
		cfg.Kafka.MaxBytes = 8 << 20
	}
	// A kafka.batch_size set for memory's sake still bounds storage.
	cfg.Kafka.BatchSize = cmp.Or(cfg.ClickHouse.BatchSize, cfg.Kafka.BatchSize, 100_000)
	return cfg
}

// storageConsumerMetrics are the health of the storage consumer when it
// runs beside detection in one process (see `declinemon run`): its own
// group, so its own lag, flushes and halts. Events are counted once, by
// the detection consumer's metrics.
type storageConsumerMetrics struct {
	ps                                           []*Pipeline
	lag, committed, retries, halts, halted, last *prometheus.Desc
}

// RegisterStorageConsumerMetrics registers the declinemon_storage_* series
// of the storage consumers ps (members of one group: summed).
func RegisterStorageConsumerMetrics(reg prometheus.Registerer, ps ...*Pipeline) error {
	m := &storageConsumerMetrics{ps: ps,
		lag: prometheus.NewDesc("declinemon_storage_consumer_lag_messages",
			"Messages the storage consumer is behind the partition's high watermark at its last commit (ClickHouse is this far behind detection's input).", []string{"topic", "partition"}, nil),
		committed: prometheus.NewDesc("declinemon_storage_committed_messages_total", "Messages whose offsets the storage consumer committed (stored in ClickHouse).", nil, nil),
		retries:   prometheus.NewDesc("declinemon_storage_flush_retries_total", "Failed storage flush attempts that were retried (ClickHouse or dead-letter problems).", nil, nil),
		halts:     prometheus.NewDesc("declinemon_storage_flush_halts_total", "Storage flush attempts that failed with an error needing an operator.", nil, nil),
		halted:    prometheus.NewDesc("declinemon_storage_flush_halted", "1 while storage is halted by a permanent error (see /readyz for the reason).", nil, nil),
		last:      prometheus.NewDesc("declinemon_storage_last_flush_timestamp_seconds", "Unix time of the storage consumer's last successful flush.", nil, nil),
	}
	return reg.Register(m)
}

func (m *storageConsumerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.lag, m.committed, m.retries, m.halts, m.halted, m.last} {
		ch <- d
	}
}

func (m *storageConsumerMetrics) Collect(ch chan<- prometheus.Metric) {
	var committed, retries, halts uint64
	halted, last := 0.0, int64(0)
	lags := map[string]LagAt{}
	for _, p := range m.ps {
		s := p.counters
		for tp, lag := range s.PartitionLagAt() {
			if lag.At.After(lags[tp].At) {
				lags[tp] = lag
			}
		}
		committed += s.Committed.Load()
		retries += s.FlushRetries.Load()
		halts += s.Halts.Load()
		if p.Halted() != "" {
			halted = 1
		}
		last = max(last, s.LastFlush.Load())
	}
	for tp, lag := range lags {
		i := strings.LastIndexByte(tp, '/')
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(lag.Lag), tp[:i], tp[i+1:])
	}
	ch <- prometheus.MustNewConstMetric(m.committed, prometheus.CounterValue, float64(committed))
	ch <- prometheus.MustNewConstMetric(m.retries, prometheus.CounterValue, float64(retries))
	ch <- prometheus.MustNewConstMetric(m.halts, prometheus.CounterValue, float64(halts))
	ch <- prometheus.MustNewConstMetric(m.halted, prometheus.GaugeValue, halted)
	if last > 0 {
		ch <- prometheus.MustNewConstMetric(m.last, prometheus.GaugeValue, float64(time.Duration(last).Seconds()))
	}
}
