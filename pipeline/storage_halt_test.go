package pipeline

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// metricValue is the value of the series name{labels} in reg (-1 when
// absent).
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

// withoutEventsTable starts a real server with the schema migrated and the
// events table dropped, and a writer over it.
func withoutEventsTable(t *testing.T) (*chserver.Server, *storage.Client, *storage.Writer) {
	t.Helper()
	s := chtest.Start(t)
	client := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	if _, err := storage.Migrate(context.Background(), client, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	chtest.Query(t, s, "DROP TABLE declinemon.events")
	return s, client, storage.NewWriter(client, storage.WriterConfig{})
}

// TestStorageHaltOnARealServer: the events table is gone from a real
// ClickHouse server (code 60, a PermanentError through storage.Writer
// over the production wire). On an ingest instance consumption stops
// loudly: the first batch is
// neither skipped nor committed and nothing more is fetched; Halted and
// readiness give the reason; the halt shows in the metrics; the ERROR
// log is rate-bounded however often the stage is retried. Once an
// operator re-creates the table the pipeline resumes by itself and the
// batch lands exactly once, in the table and in the rollups.
func TestStorageHaltOnARealServer(t *testing.T) {
	s, client, w := withoutEventsTable(t)
	ctx, cfg := context.Background(), storage.SchemaConfig{}
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{Config: ingestOnly(), Store: w, Log: zap.New(core), BatchSize: 10, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.haltRetry = 50 * time.Millisecond
	reg := prometheus.NewRegistry()
	if _, err := RegisterMetrics(reg, p, nil); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(w)
	src := &memSource{msgs: eventMessages(25), block: true}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- p.Run(runCtx, src) }()

	waitFor(t, "the halt", 20*time.Second, func() bool { return p.Counters().Halts.Load() >= 5 })
	reason := p.Halted()
	if !strings.Contains(reason, "store") || !strings.Contains(reason, "code: 60") || !strings.Contains(reason, "declinemon.events") {
		t.Errorf("halted because %q: want the store stage and the missing table (code 60)", reason)
	}
	ready := (&Runner{Pipeline: p, store: w}).Ready(ctx)
	if ready == nil || !strings.Contains(ready.Error(), "consumption halted") || !strings.Contains(ready.Error(), "declinemon.events") {
		t.Errorf("readiness while halted: %v", ready)
	}
	src.mu.Lock()
	fetched := src.next
	src.mu.Unlock()
	if src.committed() != 0 || p.Counters().Committed.Load() != 0 || fetched != 10 || p.store.pending() != 10 {
		t.Errorf("while halted: %d commits (%d messages), %d fetched, %d staged; want nothing committed, nothing fetched past the first batch of 10",
			src.committed(), p.Counters().Committed.Load(), fetched, p.store.pending())
	}
	halts := p.Counters().Halts.Load()
	if v := metricValue(t, reg, "declinemon_flush_halted", nil); v != 1 {
		t.Errorf("declinemon_flush_halted = %v while halted, want 1", v)
	}
	if v := metricValue(t, reg, "declinemon_flush_halts_total", nil); v < 5 {
		t.Errorf("declinemon_flush_halts_total = %v, want the %d halts", v, halts)
	}
	if v := metricValue(t, reg, "declinemon_store_failures_total", map[string]string{"kind": "permanent"}); v < 5 {
		t.Errorf(`declinemon_store_failures_total{kind="permanent"} = %v, want every failed attempt`, v)
	}
	errorLines := logs.FilterLevelExact(zap.ErrorLevel)
	if n, bound := errorLines.Len(), 1+int(time.Since(t0)/(10*time.Second)); n == 0 || n > bound {
		t.Errorf("%d ERROR lines for %d halts in %v: want at least one, at most %d (one per 10s)", n, halts, time.Since(t0).Round(time.Millisecond), bound)
	} else if e := errorLines.All()[0]; !strings.Contains(e.ContextMap()["error"].(string), "declinemon.events") {
		t.Errorf("the ERROR line does not name the missing table: %v", e.ContextMap())
	}

	// storage.Migrate alone does not bring the table back: version 1 is
	// recorded in schema_migrations, so it applies nothing.
	if applied, err := storage.Migrate(ctx, client, cfg); err != nil || len(applied) != 0 {
		t.Fatalf("migrate again: %v, %v", applied, err)
	}
	time.Sleep(200 * time.Millisecond)
	if p.Halted() == "" {
		t.Fatal("resumed after a migrate that applied nothing")
	}
	// The operator re-applies the events migration (CREATE ... IF NOT EXISTS).
	migs, err := storage.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range migs[0].Statements {
		if err := client.Exec(ctx, stmt); err != nil {
			t.Fatalf("re-creating the events table: %v", err)
		}
	}
	waitFor(t, "consumption to resume", 20*time.Second, func() bool { return p.Counters().Committed.Load() == 25 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Halted() != "" || p.Counters().FlushRetries.Load() != 0 {
		t.Errorf("after the fix: halted %q, %d transient retries", p.Halted(), p.Counters().FlushRetries.Load())
	}
	if v := metricValue(t, reg, "declinemon_flush_halted", nil); v != 0 {
		t.Errorf("declinemon_flush_halted = %v after resuming, want 0", v)
	}
	if logs.FilterMessageSnippet("consumption resumes").Len() != 1 {
		t.Error("no log line says consumption resumed")
	}
	got := chtest.Query(t, s, `SELECT count(), uniqExact(event_id), min(source_offset), max(source_offset),
		(SELECT sum(attempts) FROM declinemon.terminal_minutes), (SELECT sum(attempts) FROM declinemon.scope_minutes)
		FROM declinemon.events`)[0]
	want := []string{"25", "25", "0", "24", "25", "25"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stored: rows, ids, offsets, rollups = %v, want %v (every event once, rollups included)", got, want)
	}
	if n, _ := strconv.Atoi(chtest.Value(t, s, "SELECT count() FROM declinemon.events FINAL")); n != 25 {
		t.Errorf("events FINAL: %d", n)
	}
	t.Logf("%d halts, %d ERROR lines, resumed and stored 25 events in %v", halts, logs.FilterLevelExact(zap.ErrorLevel).Len(), time.Since(t0).Round(time.Millisecond))
}

// TestStorageHaltBesideDetectionOnARealServer: as above, with detection
// on (the default `run`): storage halts loudly, but detection goes on.
// Every message is fetched and detected on while the events table is
// gone; nothing new is staged (memory: the one batch held); nothing is
// committed past what is stored; readiness and declinemon_storage_* say
// why; the ERROR log is rate-bounded. Once the table is back the held
// batch is stored, the consumer re-reads from its commits, and every
// event lands exactly once, rollups included, and is committed.
func TestStorageHaltBesideDetectionOnARealServer(t *testing.T) {
	s, client, w := withoutEventsTable(t)
	ctx, cfg := context.Background(), storage.SchemaConfig{}
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{Store: w, Log: zap.New(core), BatchSize: 10, FlushInterval: 20 * time.Millisecond, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.haltRetry = 50 * time.Millisecond
	reg := prometheus.NewRegistry()
	if _, err := RegisterMetrics(reg, p, nil); err != nil {
		t.Fatal(err)
	}
	if err := RegisterStorageMetrics(reg, p); err != nil {
		t.Fatal(err)
	}
	const n = 25
	src := &memSource{msgs: eventMessages(n), block: true, backfill: true}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- p.Run(runCtx, src) }()

	waitFor(t, "the storage halt", 20*time.Second, func() bool {
		return metricValue(t, reg, "declinemon_storage_flush_halts_total", nil) >= 5
	})
	waitFor(t, "detection to go on", 20*time.Second, func() bool { return p.Counters().Accepted.Load() == n })
	if p.Halted() != "" {
		t.Errorf("consumption halted (%q): detection must go on", p.Halted())
	}
	ready := (&Runner{Pipeline: p, store: w}).Ready(ctx)
	if ready == nil || !strings.Contains(ready.Error(), "storage halted") || !strings.Contains(ready.Error(), "declinemon.events") {
		t.Errorf("readiness while storage is halted: %v", ready)
	}
	if src.committed() != 0 || p.Counters().Committed.Load() != 0 {
		t.Errorf("while storage is halted: %d commits (%d messages), want none", src.committed(), p.Counters().Committed.Load())
	}
	if st, _ := p.behind.read(); st.held != 10 || st.staged != 0 {
		t.Errorf("%d events held, %d staged while storage is halted: want the first batch of 10 held, none staged (Kafka keeps them)", st.held, st.staged)
	}
	if v := metricValue(t, reg, "declinemon_storage_flush_halted", nil); v != 1 {
		t.Errorf("declinemon_storage_flush_halted = %v while halted, want 1", v)
	}
	if v := metricValue(t, reg, "declinemon_storage_consumer_lag_messages", map[string]string{"partition": "0"}); v != n {
		t.Errorf("declinemon_storage_consumer_lag_messages = %v, want all %d", v, n)
	}
	halts := metricValue(t, reg, "declinemon_storage_flush_halts_total", nil)
	errorLines := logs.FilterLevelExact(zap.ErrorLevel)
	if n, bound := errorLines.Len(), 1+int(time.Since(t0)/(10*time.Second)); n == 0 || n > bound {
		t.Errorf("%d ERROR lines for %v halts in %v: want at least one, at most %d (one per 10s)", n, halts, time.Since(t0).Round(time.Millisecond), bound)
	} else if e := errorLines.All()[0]; !strings.Contains(e.ContextMap()["error"].(string), "declinemon.events") {
		t.Errorf("the ERROR line does not name the missing table: %v", e.ContextMap())
	}

	migs, err := storage.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range migs[0].Statements {
		if err := client.Exec(ctx, stmt); err != nil {
			t.Fatalf("re-creating the events table: %v", err)
		}
	}
	waitFor(t, "storage to catch up", 20*time.Second, func() bool { return p.Counters().Committed.Load() == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "declinemon_storage_flush_halted", nil); v != 0 {
		t.Errorf("declinemon_storage_flush_halted = %v after resuming, want 0", v)
	}
	if v := metricValue(t, reg, "declinemon_storage_recoveries_total", map[string]string{"how": "catch_up"}); v != 1 {
		t.Errorf("declinemon_storage_recoveries_total{how=catch_up} = %v, want 1", v)
	}
	if v := metricValue(t, reg, "declinemon_storage_recoveries_total", map[string]string{"how": "re_read"}); v != 0 {
		t.Errorf("declinemon_storage_recoveries_total{how=re_read} = %v, want 0", v)
	}
	if v := metricValue(t, reg, "declinemon_storage_catching_up_partitions", nil); v != 0 {
		t.Errorf("declinemon_storage_catching_up_partitions = %v once caught up, want 0", v)
	}
	if src.backfills != 1 || src.rewinds != 0 || p.Counters().Redelivered.Load() != 0 {
		t.Errorf("%d partition readers, %d re-reads from the commits, %d messages re-delivered: want storage to catch up with one reader, "+
			"the consumer to go on", src.backfills, src.rewinds, p.Counters().Redelivered.Load())
	}
	if p.Counters().Accepted.Load() != n || p.Engine().Stats().Observed != n {
		t.Errorf("accepted %d events, detector observed %d: the catch-up must not count or detect again", p.Counters().Accepted.Load(), p.Engine().Stats().Observed)
	}
	got := chtest.Query(t, s, `SELECT count(), uniqExact(event_id), min(source_offset), max(source_offset),
		(SELECT sum(attempts) FROM declinemon.terminal_minutes), (SELECT sum(attempts) FROM declinemon.scope_minutes)
		FROM declinemon.events`)[0]
	want := []string{"25", "25", "0", "24", "25", "25"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stored: rows, ids, offsets, rollups = %v, want %v (every event once, rollups included)", got, want)
	}
}
