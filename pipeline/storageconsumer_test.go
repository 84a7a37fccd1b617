package pipeline

import "testing"

func TestStorageConsumerConfig(t *testing.T) {
	var cfg Config
	cfg.Kafka.GroupID = "fleet-a"
	cfg.Kafka.ForwardTopic = "accepted"
	s := StorageConsumerConfig(cfg, "")
	if s.Kafka.GroupID != "fleet-a.storage" || !s.DisableDetection || s.Kafka.ForwardTopic != "" || s.Kafka.MaxBytes != 8<<20 {
		t.Errorf("storage consumer config %+v", s.Kafka)
	}
	if s := StorageConsumerConfig(cfg, "ch-writers"); s.Kafka.GroupID != "ch-writers" {
		t.Errorf("named group: %s", s.Kafka.GroupID)
	}
	var defaults Config
	if s := StorageConsumerConfig(defaults, ""); s.Kafka.GroupID != "declinemon.storage" {
		t.Errorf("default group: %s", s.Kafka.GroupID)
	}
	if cfg.Kafka.GroupID != "fleet-a" {
		t.Error("the detection consumer's config was changed")
	}
}
