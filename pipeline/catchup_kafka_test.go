package pipeline

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// TestStorageCatchesUpLiveOnARealBrokerAndServer is `run` with detection
// and storage on the real broker and the real ClickHouse server, stopped
// while a fleet day's morning is produced. Once the server is back and
// storing again, the next events produced are detected before storage has
// caught up with the outage's (it reads them with its own partition
// readers; the consumer is not re-delivered anything), and in the end
// events and both rollups hold every event once, without FINAL.
func TestStorageCatchesUpLiveOnARealBrokerAndServer(t *testing.T) {
	const first, outage, after = 20_000, 300_000, 2_000
	br := needBroker(t)
	s := chtest.Start(t)
	client := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	if _, err := storage.Migrate(context.Background(), client, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	topic := newTopic(t, br, 4)
	msgs := fleetDay(t, first+outage+after)
	cfg := runConfig(br, topic, "catch-up-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	cfg.Kafka.BatchSize, cfg.Kafka.FlushInterval = 0, 0 // run's defaults
	cfg.ClickHouse.Addr = []string{s.TCPAddr}
	cfg.ClickHouse.BatchSize = 20_000
	w := storage.NewWriter(client, storage.WriterConfig{})
	counters := &Counters{}
	r, err := NewRunner(RunOptions{Config: RunConfig(cfg), Store: w, Counters: counters, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	produceEvents(t, br, topic, msgs[:first])
	waitFor(t, "the first events stored", time.Minute, func() bool { return w.Stats().Rows.Load() == first })
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	produceEvents(t, br, topic, msgs[first:first+outage])
	waitFor(t, "detection through the outage", 2*time.Minute, func() bool { return counters.Messages.Load() == first+outage })
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "storing again", time.Minute, func() bool { return w.Stats().Rows.Load() > first })
	t0 := time.Now()
	produceEvents(t, br, topic, msgs[first+outage:])
	waitFor(t, "the new events detected", time.Minute, func() bool { return counters.Messages.Load() == first+outage+after })
	detected, storedThen := time.Since(t0), w.Stats().Rows.Load()
	waitFor(t, "storage to catch up", 3*time.Minute, func() bool { return w.Stats().Rows.Load() == first+outage+after })
	caughtUp := time.Since(t0)
	t.Logf("storing again: %d new events produced and detected in %v, with %d of %d events stored; storage caught up after %v",
		after, detected.Round(time.Millisecond), storedThen, first+outage+after, caughtUp.Round(time.Millisecond))
	if storedThen >= first+outage {
		t.Errorf("%d events stored when the new ones were detected: storage had caught up already, the test shows nothing", storedThen)
	}
	if n := counters.Redelivered.Load(); n != 0 {
		t.Errorf("%d messages delivered again to the consumer: storage must read the outage's with its own readers", n)
	}
	waitFor(t, "every offset committed", time.Minute, func() bool { return counters.Committed.Load() == first+outage+after })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := chtest.Query(t, s, `SELECT count(), uniqExact(event_id),
		(SELECT sum(attempts) FROM declinemon.terminal_minutes), (SELECT sum(attempts) FROM declinemon.scope_minutes)
		FROM declinemon.events`)[0]
	n := strconv.Itoa(first + outage + after)
	if want := []string{n, n, n, n}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stored: rows, distinct ids, rollups = %v, want %v (every event once, without FINAL)", got, want)
	}
}
