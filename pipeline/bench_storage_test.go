package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/internal/gctune"
	"github.com/declinemon/declinemon/internal/kafkatest"
	"github.com/declinemon/declinemon/internal/proctest"
	"github.com/declinemon/declinemon/storage"
)

// chBenchEvents is how many events each run of BenchmarkRunKafkaClickHouse
// consumes and stores.
const chBenchEvents = 1_000_000

// BenchmarkRunKafkaClickHouse measures `run` with storage end to end:
// consume from the real broker + decode + classify (+ detection) + insert
// into a real ClickHouse server (storage.Writer over storage.Client, the
// production wire) + commit, broker, server and runner on the same
// machine. The events are produced first (not timed); each run starts a
// fresh consumer group on a freshly migrated schema and is timed from the
// runner's start until `SELECT count() FROM declinemon.events` returns
// every event.
//
// events/s is that whole span (group join included); events/s-flowing
// starts at the first message fetched; store-share is the part of the run
// the processing goroutine spent in the store stage (the inserts).
// cpu-µs/event splits the machine's CPU between this process (go), the
// ClickHouse server (ch) and the broker (kafka); MB-peak is each
// process's peak resident memory during the run. ch-cpu-µs/event-merged
// is the server's CPU until the merges the run caused have run too
// (untimed): a floor of its share in service, where merges go on at the
// inserts' rate and larger ones follow.
func BenchmarkRunKafkaClickHouse(b *testing.B) {
	// The collector as `declinemon run` sets it.
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	gctune.Apply("", "")
	br := needBroker(b)
	// Two streams: an ordinary fleet day with incidents, and a standing
	// fleet-wide outage (the detector's worst case: see realistic).
	topics := map[string]string{}
	for stream, gen := range map[string]func(testing.TB, int) [][]byte{"fleet-day": fleetDay, "standing-outage": realistic} {
		topics[stream] = newTopic(b, br, 4)
		produceEvents(b, br, topics[stream], gen(b, chBenchEvents))
		warmBroker(b, br, topics[stream], chBenchEvents)
	}
	b.Logf("load average before the runs: %s", loadAverage())

	s := chtest.Start(b)
	client := chtest.Open(b, s, chserver.User{}, storage.SchemaConfig{})
	// ingest: `run` with disable_detection (clickhouse.consumers members of
	// one group sharing the writer and the counters); run: `run` with
	// detection, one consumer feeding detection and storage beside it.
	type variant struct {
		stream    string
		detect    bool
		consumers int
		batch     int
		maxBytes  int // 0: the mode's default
	}
	variants := []variant{
		{stream: "fleet-day", detect: true, consumers: 1, batch: 100_000},
		{stream: "fleet-day", detect: true, consumers: 1, batch: 100_000, maxBytes: 1 << 20},
		{stream: "fleet-day", detect: true, consumers: 1, batch: 50_000},
		{stream: "fleet-day", consumers: 2, batch: 100_000},
		{stream: "fleet-day", consumers: 1, batch: 100_000},
		{stream: "standing-outage", detect: true, consumers: 1, batch: 100_000},
		{stream: "standing-outage", consumers: 2, batch: 100_000},
	}
	for _, v := range variants {
		mode := "ingest"
		if v.detect {
			mode = "run"
		}
		name := fmt.Sprintf("%s/%s/consumers=%d/batch=%d", v.stream, mode, v.consumers, v.batch)
		if v.maxBytes != 0 {
			name += fmt.Sprintf("/max_bytes=%d", v.maxBytes)
		}
		b.Run(name, func(b *testing.B) {
			cfg := runConfig(br, topics[v.stream], "")
			cfg.DisableDetection = !v.detect
			cfg.Kafka.MaxWait = 0            // the default
			cfg.Kafka.CheckpointInterval = 0 // the default
			cfg.Kafka.BatchSize = 0          // the default
			cfg.Kafka.FlushInterval = 0      // the default
			cfg.Kafka.MaxBytes = v.maxBytes
			cfg.ClickHouse.Addr = []string{s.TCPAddr}
			cfg.ClickHouse.BatchSize = v.batch
			benchStoredRuns(b, br, s, client, RunConfig(cfg), v.consumers, chBenchEvents)
		})
	}
}

// warmBroker reads the topic once through a throwaway group, so that the
// fresh broker has created its group-offsets topic (a one-time event in a
// broker's life, about a second here) and compiled its fetch path, as a
// broker in service has, before the timed runs rather than in the first.
func warmBroker(b *testing.B, br *kafkatest.Broker, topic string, n int) {
	b.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{br.Addr}, Topic: topic, GroupID: "bench-warm-up",
		MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range n {
		if _, err := r.FetchMessage(ctx); err != nil {
			b.Fatalf("warming the broker: %v", err)
		}
	}
}

// produceEvents writes msgs round-robin over the topic's partitions, then
// frees them so that they do not weigh on the runs.
func produceEvents(b testing.TB, br *kafkatest.Broker, topic string, msgs [][]byte) {
	b.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(br.Addr), Topic: topic, Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 5000, BatchBytes: 32 << 20, BatchTimeout: time.Millisecond}
	batch := make([]kafka.Message, 0, 5000)
	for i, m := range msgs {
		batch = append(batch, kafka.Message{Value: m})
		if len(batch) == cap(batch) || i == len(msgs)-1 {
			writeRetrying(b, w, batch)
			batch = batch[:0]
		}
	}
	w.Close()
	msgs, batch = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
}

// benchStoredRuns runs `run`'s topology over the n events of the topic
// into a fresh schema on s, once per iteration, and reports the rates:
// consumers members of one group sharing a writer and counters (detection
// off), or one consumer feeding detection and storage. The clock stops once
// every event is queryable and consumed.
func benchStoredRuns(b *testing.B, br *kafkatest.Broker, s *chserver.Server, client *storage.Client, cfg Config, consumers int, n int) {
	ctx := context.Background()
	broker := brokerPid(br)
	procs := []struct {
		name string
		pid  int
	}{{"go", os.Getpid()}, {"ch", s.Pid()}, {"kafka", broker}}
	var total, flowing, storing, settled time.Duration
	cpu := make([]time.Duration, len(procs))
	peak := make([]int64, len(procs))
	var mallocs, allocBytes uint64
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		b.StopTimer()
		chtest.Query(b, s, "DROP DATABASE IF EXISTS declinemon SYNC")
		if _, err := storage.Migrate(ctx, client, storage.SchemaConfig{}); err != nil {
			b.Fatal(err)
		}
		w := storage.NewWriter(client, storage.WriterConfig{})
		cfg.Kafka.GroupID = fmt.Sprintf("bench-ch-%d", time.Now().UnixNano())
		runtime.GC()
		cpu0 := make([]time.Duration, len(procs))
		for i, p := range procs {
			proctest.ResetPeakRSS(p.pid)
			cpu0[i] = proctest.CPU(p.pid)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		b.StartTimer()

		start := time.Now()
		var runners []*Runner
		var stages stageTimes
		counters := &Counters{}
		for range consumers {
			r, err := NewRunner(RunOptions{Config: cfg, Store: w, Counters: counters})
			if err != nil {
				b.Fatal(err)
			}
			r.SetObserver(&stages)
			runners = append(runners, r)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, len(runners))
		for _, r := range runners {
			go func() { done <- r.Run(runCtx) }()
		}
		deadline := start.Add(3 * time.Minute)
		consumed := func() uint64 { return counters.Messages.Load() }
		for consumed() == 0 {
			if time.Now().After(deadline) {
				b.Fatal("no message consumed within 3 minutes")
			}
			time.Sleep(time.Millisecond)
		}
		first := time.Now()
		for w.Stats().Rows.Load() < uint64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("stored %d of %d events within 3 minutes", w.Stats().Rows.Load(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		for consumed() < uint64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("consumed %d of %d events within 3 minutes", consumed(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		// The insert is synchronous: acknowledged rows are queryable.
		for chtest.Value(b, s, "SELECT count() FROM declinemon.events") != strconv.Itoa(n) {
			if time.Now().After(deadline) {
				b.Fatal("events not all queryable within 3 minutes")
			}
			time.Sleep(10 * time.Millisecond)
		}
		end := time.Now()

		b.StopTimer()
		runtime.ReadMemStats(&m1)
		for i, p := range procs {
			cpu[i] += proctest.CPU(p.pid) - cpu0[i]
			peak[i] = max(peak[i], proctest.PeakRSS(p.pid))
		}
		cancel()
		for range runners {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		// What the server spends once the merges this run's inserts caused
		// have run (untimed): in service they go on at the rate of the
		// inserts, so this is the server's share at that rate.
		for quiet, until := 0, time.Now().Add(time.Minute); quiet < 6 && time.Now().Before(until); {
			time.Sleep(500 * time.Millisecond)
			if chtest.Value(b, s, "SELECT count() FROM system.merges WHERE database = 'declinemon'") == "0" {
				quiet++
			} else {
				quiet = 0
			}
		}
		settled += proctest.CPU(s.Pid()) - cpu0[1]
		st := w.Stats()
		if st.Retries.Load() != 0 {
			b.Fatalf("writer retried %d inserts: the server failed", st.Retries.Load())
		}
		mallocs += m1.Mallocs - m0.Mallocs
		allocBytes += m1.TotalAlloc - m0.TotalAlloc
		total += end.Sub(start)
		flowing += end.Sub(first)
		stored := time.Duration(stages.store.Load())
		storing += stored
		runs++
		b.Logf("run %d: %.0f events/s (%.0f flowing), %d inserts taking %.2f s of %.2f s, first message after %.2f s, %d re-delivered by a rebalance skipped",
			runs, float64(n)/end.Sub(start).Seconds(), float64(n)/end.Sub(first).Seconds(), st.Batches.Load(),
			stored.Seconds(), end.Sub(start).Seconds(), first.Sub(start).Seconds(), st.Skipped.Load())
		b.StartTimer()
	}
	events := float64(n * runs)
	b.ReportMetric(events/total.Seconds(), "events/s")
	b.ReportMetric(events/flowing.Seconds(), "events/s-flowing")
	b.ReportMetric(storing.Seconds()/total.Seconds(), "store-share")
	b.ReportMetric(float64(settled.Microseconds())/events, "ch-cpu-µs/event-merged")
	b.ReportMetric(float64(mallocs)/events, "allocs/event")
	b.ReportMetric(float64(allocBytes)/events, "B/event")
	for i, p := range procs {
		if p.pid == 0 {
			continue
		}
		b.ReportMetric(float64(cpu[i].Microseconds())/events, p.name+"-cpu-µs/event")
		b.ReportMetric(float64(peak[i])/(1<<20), p.name+"-MB-peak")
	}
}

// stageTimes sums how long the store stage of the flushes took: the
// processing goroutine waits for ClickHouse meanwhile.
type stageTimes struct{ store atomic.Int64 }

func (s *stageTimes) ObserveStage(stage string, d time.Duration) {
	if stage == "store" {
		s.store.Add(int64(d))
	}
}
func (s *stageTimes) ObserveBatch(int) {}

// brokerPid finds the broker's JVM among this process's children (0 when
// it cannot be told apart).
func brokerPid(br *kafkatest.Broker) int {
	port := br.Addr[strings.LastIndexByte(br.Addr, ':')+1:]
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmd, _ := os.ReadFile(d + "/cmdline")
		if bytes.Contains(cmd, []byte("java")) || bytes.Contains(cmd, []byte(port)) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}
