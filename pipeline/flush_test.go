package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// memSource is a Source over messages in memory; it records commits.
type memSource struct {
	mu      sync.Mutex
	msgs    []ingest.Message
	next    int
	commits [][]ingest.Position
	block   bool // at the end, block until ctx ends instead of io.EOF
	rewinds int
	// backfill: Backfill reads partitions again (as Kafka does); without
	// it the pipeline falls back to Rewind.
	backfill  bool
	backfills int
}

// Backfill reads the partition's messages from offset from on, then waits
// for more (or for ctx), as a Kafka partition reader does.
func (m *memSource) Backfill(topic string, partition int, from int64) (ingest.Reader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.backfill {
		return nil, errors.New("this source does not read partitions again")
	}
	m.backfills++
	return &memReader{src: m, topic: topic, partition: partition, from: from}, nil
}

// memReader is memSource's partition reader.
type memReader struct {
	src       *memSource
	topic     string
	partition int
	from      int64
	next      int // index into src.msgs
}

func (r *memReader) Fetch(ctx context.Context) (ingest.Message, error) {
	return pollMessage(ctx, func() (ingest.Message, bool) {
		r.src.mu.Lock()
		defer r.src.mu.Unlock()
		for ; r.next < len(r.src.msgs); r.next++ {
			if msg := r.src.msgs[r.next]; msg.Topic == r.topic && msg.Partition == r.partition && msg.Offset >= r.from {
				r.next++
				return msg, true
			}
		}
		return ingest.Message{}, false
	})
}

// pollMessage is a test partition reader's Fetch: next every millisecond
// until it has a message or ctx ends.
func pollMessage(ctx context.Context, next func() (ingest.Message, bool)) (ingest.Message, error) {
	for {
		if m, ok := next(); ok {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return ingest.Message{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (r *memReader) Close() error { return nil }

// Rewind delivers again from the first message past the commits of its
// partition.
func (m *memSource) Rewind() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rewinds++
	committed := map[partitionKey]int64{}
	for _, c := range m.commits {
		for _, p := range c {
			committed[partitionKey{p.Topic, p.Partition}] = p.Offset
		}
	}
	for i, msg := range m.msgs {
		if c, ok := committed[partitionKey{msg.Topic, msg.Partition}]; !ok || msg.Offset > c {
			m.next = min(m.next, i)
			return
		}
	}
}

func (m *memSource) Fetch(ctx context.Context) (ingest.Message, error) {
	m.mu.Lock()
	if m.next < len(m.msgs) {
		msg := m.msgs[m.next]
		m.next++
		m.mu.Unlock()
		return msg, nil
	}
	m.mu.Unlock()
	if m.block {
		<-ctx.Done()
		return ingest.Message{}, ctx.Err()
	}
	return ingest.Message{}, io.EOF
}

func (m *memSource) Commit(_ context.Context, p []ingest.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commits = append(m.commits, p)
	return nil
}

func (m *memSource) committed() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.commits)
}

func eventMessages(n int) []ingest.Message {
	out := make([]ingest.Message, n)
	for i := range out {
		v := fmt.Sprintf(`{"event_id":"e%d","ts":"2026-11-27T10:00:%02dZ","terminal_id":"T1","merchant_id":"M1","response_code":"00"}`, i, i%60)
		out[i] = ingest.Message{Value: []byte(v), Topic: "t", Offset: int64(i), HighWaterMark: int64(n), OriginTopic: []byte("t")}
	}
	return out
}

type failingStore struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (d *failingStore) Write(context.Context, []event.Classified) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.err
}

func (d *failingStore) set(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
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
// storage stage, exactly once per sink across flush retries, and nothing is
// committed while storage fails (storage as a stage of the flush: an
// ingest instance).
func TestAlertsGoOutWhileStorageIsDown(t *testing.T) {
	first, second := &countingSink{}, &countingSink{fail: 1}
	store := &failingStore{err: errors.New("clickhouse: connection refused")}
	p, err := New(Options{Config: ingestOnly(), Store: store, Alerts: []AlertSink{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	src := &memSource{msgs: eventMessages(1)}
	m, _ := src.Fetch(context.Background())
	p.handle(&m)
	p.addAlert(alerting.Alert{ID: "a1"})
	p.addAlert(alerting.Alert{ID: "a2"})
	for i := 0; i < 3; i++ {
		if err := p.flush(context.Background(), src); err == nil {
			t.Fatal("flush succeeded with storage down")
		}
	}
	if first.got != 2 || second.got != 2 {
		t.Errorf("sinks got %d and %d alerts, want 2 each exactly once", first.got, second.got)
	}
	if store.calls != 2 || src.committed() != 0 || p.store.pending() != 1 {
		t.Errorf("store calls %d, commits %d, batch kept %d", store.calls, src.committed(), p.store.pending())
	}
}

// TestAlertsRaisedAfterAFailedFlushReachEverySink: alerts raised after a
// sink failed (the final merger drain at shutdown does this) go to every
// sink, not only to those after the one that failed.
func TestAlertsRaisedAfterAFailedFlushReachEverySink(t *testing.T) {
	first, second := &countingSink{}, &countingSink{fail: 1}
	p, err := New(Options{Alerts: []AlertSink{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	src := &memSource{}
	p.addAlert(alerting.Alert{ID: "a1"})
	if err := p.flush(context.Background(), src); err == nil {
		t.Fatal("flush succeeded with a sink down")
	}
	p.addAlert(alerting.Alert{ID: "a2"}) // raised by the shutdown drain
	if err := p.flush(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if first.got != 2 || second.got != 2 {
		t.Errorf("sinks got %d and %d alerts, want 2 each exactly once", first.got, second.got)
	}
}

type permanentErr struct{ error }

func (permanentErr) Permanent() bool { return true }

// TestPermanentStoreErrorHaltsLoudly: on an ingest instance, an error that
// needs an operator stops consumption without skipping the batch, says why
// (Halted, an ERROR log, the halt counter), retries slowly, and resumes by
// itself once fixed.
func TestPermanentStoreErrorHaltsLoudly(t *testing.T) {
	store := &failingStore{err: permanentErr{errors.New("code 16: no such column cause_v2 in table events")}}
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{Config: ingestOnly(), Store: store, Log: zap.New(core), BatchSize: 10, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.haltRetry = 50 * time.Millisecond
	src := &memSource{msgs: eventMessages(25), block: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	waitFor(t, "the halt", 10*time.Second, func() bool { return p.Counters().Halts.Load() >= 3 })
	if !strings.Contains(p.Halted(), "no such column") || src.committed() != 0 {
		t.Errorf("halted %q with %d commits", p.Halted(), src.committed())
	}
	if n := logs.FilterLevelExact(zap.ErrorLevel).Len(); n == 0 || n >= int(p.Counters().Halts.Load()) {
		t.Errorf("%d ERROR lines for %d halts: want some, rate-limited", n, p.Counters().Halts.Load())
	}
	store.set(nil) // the operator fixed the schema
	waitFor(t, "consumption to resume", 10*time.Second, func() bool { return p.Counters().Committed.Load() == 25 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Halted() != "" || p.Counters().FlushRetries.Load() != 0 {
		t.Errorf("after the fix: halted %q, %d transient retries", p.Halted(), p.Counters().FlushRetries.Load())
	}
}

// TestCommitNeverPassesDetection: events the event-time merge still holds
// (partition 1 has not caught up with partition 0) are not committed; once
// the detector has seen them, they are.
func TestCommitNeverPassesDetection(t *testing.T) {
	p, err := New(Options{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(partition int, offset int64, sec int) ingest.Message {
		v := fmt.Sprintf(`{"event_id":"e%d-%d","ts":"2026-11-27T10:00:%02dZ","terminal_id":"T%d","merchant_id":"M1","response_code":"00"}`, partition, offset, sec, partition)
		return ingest.Message{Value: []byte(v), Topic: "t", Partition: partition, Offset: offset, HighWaterMark: 100, OriginTopic: []byte("t"), OriginPartition: partition}
	}
	src := &memSource{}
	for i := range 10 {
		m := msg(0, int64(i), i)
		p.handle(&m)
	}
	m := msg(1, 0, 3) // partition 1 is behind: partition 0's events after 10:00:03 must wait
	p.handle(&m)
	if err := p.flush(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	low, held := p.merge.minHeld("t", 0)
	if !held {
		t.Fatal("nothing held: the test does not exercise the merge")
	}
	for _, pos := range src.commits[len(src.commits)-1] {
		if pos.Partition == 0 && pos.Offset >= low {
			t.Errorf("committed partition 0 up to %d while offset %d is not yet detected", pos.Offset, low)
		}
	}
	if got := p.Counters().Committed.Load(); got >= 11 {
		t.Errorf("committed %d of 11 messages with some held", got)
	}
	p.merge.release(p.observe, true) // e.g. partition 1 went idle
	if err := p.flush(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if got := p.Counters().Committed.Load(); got != 11 {
		t.Errorf("committed %d of 11 after the detector saw everything", got)
	}
}

// ingestOnly is the configuration of an ingest instance: detection off.
func ingestOnly() Config { return Config{DisableDetection: true} }

// TestRedeliveryToTheSameProcessIsSkipped: after a rebalance kafka-go
// fetches a partition again from its last commit; what an ingest instance
// already processed is not stored or counted twice.
func TestRedeliveryToTheSameProcessIsSkipped(t *testing.T) {
	store := &failingStore{}
	p, err := New(Options{Config: ingestOnly(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	msgs := eventMessages(10)
	for i := range msgs {
		p.handle(&msgs[i])
	}
	for i := 4; i < 10; i++ { // fetched again from offset 4
		p.handle(&msgs[i])
	}
	if got := p.store.pending(); got != 10 {
		t.Errorf("%d events staged for storage, want 10", got)
	}
	if p.Counters().Accepted.Load() != 10 || p.Counters().Redelivered.Load() != 6 {
		t.Errorf("accepted %d, skipped %d", p.Counters().Accepted.Load(), p.Counters().Redelivered.Load())
	}
}
