package pipeline

import (
	"reflect"
	"testing"
)

func TestRunConfig(t *testing.T) {
	var cfg Config
	cfg.DisableDetection = true
	cfg.Kafka.GroupID = "fleet-a"
	cfg.Kafka.ForwardTopic = "accepted"
	cfg.ClickHouse.Addr = []string{"127.0.0.1:9000"}
	s := RunConfig(cfg)
	if s.Kafka.GroupID != "fleet-a" || s.Kafka.ForwardTopic != "accepted" || s.Kafka.MaxBytes != 8<<20 || s.Kafka.BatchSize != 100_000 {
		t.Errorf("ingest config %+v", s.Kafka)
	}
	cfg.Kafka.BatchSize = 5000 // set for memory's sake: still the bound
	if s := RunConfig(cfg); s.Kafka.BatchSize != 5000 {
		t.Errorf("kafka.batch_size 5000 set, storage flushes %d", s.Kafka.BatchSize)
	}
	cfg.ClickHouse.BatchSize = 20_000
	if s := RunConfig(cfg); s.Kafka.BatchSize != 20_000 {
		t.Errorf("clickhouse.batch_size: %d", s.Kafka.BatchSize)
	}
	cfg.Kafka.MaxBytes = 1 << 20
	if s := RunConfig(cfg); s.Kafka.MaxBytes != 1<<20 {
		t.Errorf("kafka.max_bytes set: %d", s.Kafka.MaxBytes)
	}
	for _, c := range []Config{{}, {DisableDetection: true}} {
		if s := RunConfig(c); !reflect.DeepEqual(s, c) {
			t.Errorf("no storage: config changed to %+v", s.Kafka)
		}
	}
	cfg.DisableDetection = false // detection and storage: the fetch size alone
	cfg.Kafka.MaxBytes, cfg.Kafka.BatchSize = 0, 0
	if s := RunConfig(cfg); s.Kafka.MaxBytes != 8<<20 || s.Kafka.BatchSize != 0 {
		t.Errorf("detection with storage: max_bytes %d, batch_size %d; want 8 MiB and detection's own", s.Kafka.MaxBytes, s.Kafka.BatchSize)
	}
}
