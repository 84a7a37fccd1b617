package pipeline

import (
	"cmp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// RunConfig is the configuration of `run`'s consumers. With storage, fetches
// are 8 MiB unless kafka.max_bytes is set: at 1 MiB, fetching costs 15%
// more CPU per event in the broker and in kafka-go, and partitions
// interleave message by message whatever the size (README, Performance).
// An ingest instance (detection off) also flushes clickhouse.batch_size
// events (else kafka.batch_size when set, else 100000): ClickHouse does
// best with few, large inserts. Other configurations are returned as they
// are.
func RunConfig(cfg Config) Config {
	if !cfg.ClickHouse.Enabled() {
		return cfg
	}
	if cfg.Kafka.MaxBytes == 0 {
		cfg.Kafka.MaxBytes = 8 << 20
	}
	if cfg.DisableDetection {
		// A kafka.batch_size set for memory's sake still bounds storage.
		cfg.Kafka.BatchSize = cmp.Or(cfg.ClickHouse.BatchSize, cfg.Kafka.BatchSize, 100_000)
	}
	return cfg
}

// storageMetrics are the health of storage beside detection (see
// storebehind.go): how far ClickHouse is behind the stream, failed and
// halted inserts. Events are counted once, by the pipeline's metrics.
type storageMetrics struct {
	b                                            *storeBehind
	lag, committed, retries, halts, halted, last *prometheus.Desc
	catching, recoveries                         *prometheus.Desc
}

// RegisterStorageMetrics registers the declinemon_storage_* series of p's
// storage beside detection; nothing when p has none.
func RegisterStorageMetrics(reg prometheus.Registerer, p *Pipeline) error {
	if p.behind == nil {
		return nil
	}
	m := &storageMetrics{b: p.behind,
		lag: prometheus.NewDesc("declinemon_storage_consumer_lag_messages",
			"Messages of the partition behind its high watermark that are not stored in ClickHouse yet (as of the last flush).", []string{"topic", "partition"}, nil),
		committed: prometheus.NewDesc("declinemon_storage_committed_messages_total", "Messages stored in ClickHouse (offsets whose storage was acknowledged).", nil, nil),
		retries:   prometheus.NewDesc("declinemon_storage_flush_retries_total", "Failed inserts of a batch (ClickHouse unreachable or failing) that were retried; detection went on.", nil, nil),
		halts:     prometheus.NewDesc("declinemon_storage_flush_halts_total", "Inserts that failed with an error needing an operator.", nil, nil),
		halted:    prometheus.NewDesc("declinemon_storage_flush_halted", "1 while storage is halted by an error needing an operator (see /readyz for the reason; detection goes on).", nil, nil),
		last:      prometheus.NewDesc("declinemon_storage_last_flush_timestamp_seconds", "Unix time of the last insert ClickHouse acknowledged (before the first: the start).", nil, nil),
		catching: prometheus.NewDesc("declinemon_storage_catching_up_partitions",
			"Partitions whose messages not stored during an outage storage's own readers are reading (detection goes on live).", nil, nil),
		recoveries: prometheus.NewDesc("declinemon_storage_recoveries_total",
			"Recoveries after a storage outage, by how what was not stored meanwhile was read again: catch_up (partition readers, detection live) or re_read (the consumer from its commits).", []string{"how"}, nil),
	}
	return reg.Register(m)
}

func (m *storageMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.lag, m.committed, m.retries, m.halts, m.halted, m.last, m.catching, m.recoveries} {
		ch <- d
	}
}

func (m *storageMetrics) Collect(ch chan<- prometheus.Metric) {
	s, lags := m.b.read()
	for tp, lag := range lags {
		i := strings.LastIndexByte(tp, '/')
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(lag.Lag), tp[:i], tp[i+1:])
	}
	halted := 0.0
	if s.halted != "" {
		halted = 1
	}
	ch <- prometheus.MustNewConstMetric(m.committed, prometheus.CounterValue, float64(s.stored))
	ch <- prometheus.MustNewConstMetric(m.retries, prometheus.CounterValue, float64(s.retries))
	ch <- prometheus.MustNewConstMetric(m.halts, prometheus.CounterValue, float64(s.halts))
	ch <- prometheus.MustNewConstMetric(m.halted, prometheus.GaugeValue, halted)
	ch <- prometheus.MustNewConstMetric(m.catching, prometheus.GaugeValue, float64(s.catching))
	ch <- prometheus.MustNewConstMetric(m.recoveries, prometheus.CounterValue, float64(s.catchUps), "catch_up")
	ch <- prometheus.MustNewConstMetric(m.recoveries, prometheus.CounterValue, float64(s.rereads), "re_read")
	if !s.lastStored.IsZero() {
		ch <- prometheus.MustNewConstMetric(m.last, prometheus.GaugeValue, float64(s.lastStored.UnixNano())/1e9)
	}
}
