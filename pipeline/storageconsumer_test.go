package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/declinemon/declinemon/ingest"
)

func TestStorageConsumerConfig(t *testing.T) {
	var cfg Config
	cfg.Kafka.GroupID = "fleet-a"
	cfg.Kafka.ForwardTopic = "accepted"
	s := StorageConsumerConfig(cfg, "")
	if s.Kafka.GroupID != "fleet-a.storage" || !s.DisableDetection || s.Kafka.ForwardTopic != "" || s.Kafka.MaxBytes != 8<<20 || s.Kafka.BatchSize != 100_000 {
		t.Errorf("storage consumer config %+v", s.Kafka)
	}
	if s := StorageConsumerConfig(cfg, "ch-writers"); s.Kafka.GroupID != "ch-writers" {
		t.Errorf("named group: %s", s.Kafka.GroupID)
	}
	cfg.Kafka.BatchSize = 5000 // set for memory's sake: still the bound
	if s := StorageConsumerConfig(cfg, ""); s.Kafka.BatchSize != 5000 {
		t.Errorf("kafka.batch_size 5000 set, storage flushes %d", s.Kafka.BatchSize)
	}
	cfg.ClickHouse.BatchSize = 20_000
	if s := StorageConsumerConfig(cfg, ""); s.Kafka.BatchSize != 20_000 {
		t.Errorf("clickhouse.batch_size: %d", s.Kafka.BatchSize)
	}
	var defaults Config
	if s := StorageConsumerConfig(defaults, ""); s.Kafka.GroupID != "declinemon.storage" {
		t.Errorf("default group: %s", s.Kafka.GroupID)
	}
	if cfg.Kafka.GroupID != "fleet-a" {
		t.Error("the detection consumer's config was changed")
	}
}

// TestStorageLagIsTheOwners: two members of the storage group both report
// partition 0, the first from before a rebalance moved it away; the gauge
// shows the lag at the latest commit (the owner's), whichever member
// comes first.
func TestStorageLagIsTheOwners(t *testing.T) {
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		var ps [2]*Pipeline
		for i := range ps {
			p, err := New(Options{Config: Config{DisableDetection: true}})
			if err != nil {
				t.Fatal(err)
			}
			ps[i] = p
		}
		ps[0].counters.setLag([]ingest.Position{{Topic: "pos", Partition: 0, Offset: 10, HighWaterMark: 111}}) // stale: 100 behind
		time.Sleep(time.Millisecond)
		ps[1].counters.setLag([]ingest.Position{{Topic: "pos", Partition: 0, Offset: 110, HighWaterMark: 111}}) // the owner: caught up
		reg := prometheus.NewRegistry()
		if err := RegisterStorageConsumerMetrics(reg, ps[order[0]], ps[order[1]]); err != nil {
			t.Fatal(err)
		}
		got, err := testutil.GatherAndCount(reg, "declinemon_storage_consumer_lag_messages")
		if err != nil || got != 1 {
			t.Fatalf("series: %d %v", got, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "declinemon_storage_consumer_lag_messages" {
				if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 0 {
					t.Errorf("members in order %v: lag %v, want the owner's 0", order, v)
				}
			}
		}
	}
}
