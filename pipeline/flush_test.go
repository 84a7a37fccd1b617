package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
)

type downStore struct{ calls int }

func (d *downStore) Write(context.Context, []event.Classified) error {
	d.calls++
	return errors.New("clickhouse: connection refused")
}

type countingSink struct {
	got  int
	fail int // fail this many calls first
}

func (c *countingSink) Send(_ context.Context, a []alerting.Alert) error {
	if c.fail > 0 {
		c.fail--
		return errors.New("sink down")
	}
	c.got += len(a)
	return nil
}

// TestAlertsGoOutWhileStorageIsDown: alerts are delivered before the
// storage step, exactly once per sink across flush retries, and nothing is
// committed while storage fails.
func TestAlertsGoOutWhileStorageIsDown(t *testing.T) {
	cfg := Config{Kafka: KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}}}
	first, second := &countingSink{}, &countingSink{fail: 1}
	store := &downStore{}
	r, err := NewRunner(RunOptions{Config: cfg, Store: store, Alerts: []AlertSink{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	r.alerts = []alerting.Alert{{ID: "a1"}, {ID: "a2"}}
	r.accepted = []event.Classified{{Event: event.Event{ID: "e1"}}}
	r.pending = 1
	for i := 0; i < 3; i++ {
		if err := r.flush(context.Background()); err == nil {
			t.Fatal("flush succeeded with storage down")
		}
	}
	if first.got != 2 || second.got != 2 {
		t.Errorf("sinks got %d and %d alerts, want 2 each exactly once", first.got, second.got)
	}
	if store.calls != 2 || r.stats.Committed.Load() != 0 || len(r.accepted) != 1 {
		t.Errorf("store calls %d, committed %d, batch kept %d", store.calls, r.stats.Committed.Load(), len(r.accepted))
	}
}

// TestAlertsRaisedAfterAFailedFlushReachEverySink: alerts raised after a
// sink failed (the final merger drain at shutdown does this) go to every
// sink, not only to those after the one that failed.
func TestAlertsRaisedAfterAFailedFlushReachEverySink(t *testing.T) {
	cfg := Config{Kafka: KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}}}
	first, second := &countingSink{}, &countingSink{fail: 1}
	r, err := NewRunner(RunOptions{Config: cfg, Store: &downStore{}, Alerts: []AlertSink{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	r.accepted = []event.Classified{{Event: event.Event{ID: "e1"}}}
	r.pending = 1
	r.alerts = []alerting.Alert{{ID: "a1"}}
	if err := r.flush(context.Background()); err == nil {
		t.Fatal("flush succeeded with a sink down")
	}
	r.alerts = append(r.alerts, alerting.Alert{ID: "a2"}) // raised by the shutdown drain
	if err := r.flush(context.Background()); err == nil || !strings.Contains(err.Error(), "storing") {
		t.Fatalf("want the store step to fail after the alerts went out, got %v", err)
	}
	if first.got != 2 || second.got != 2 {
		t.Errorf("sinks got %d and %d alerts, want 2 each exactly once", first.got, second.got)
	}
}
