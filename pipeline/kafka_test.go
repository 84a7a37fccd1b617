package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/kafkatest"
)

// One real broker for every Kafka test in this package, started on first use.
var (
	brokerOnce sync.Once
	broker     *kafkatest.Broker
	brokerErr  error
)

func TestMain(m *testing.M) {
	chserver.Child() // the ClickHouse servers of the storage tests
	code := m.Run()
	if broker != nil {
		broker.Stop()
	}
	os.Exit(code)
}

func needBroker(t testing.TB) *kafkatest.Broker {
	t.Helper()
	brokerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		broker, brokerErr = kafkatest.Start(ctx)
	})
	if brokerErr != nil {
		if kafkatest.Required() {
			t.Fatalf("starting kafka: %v", brokerErr)
		}
		t.Skipf("no kafka broker (set DECLINEMON_KAFKA_REQUIRED=1 to fail instead): %v", brokerErr)
	}
	return broker
}

var topicSeq struct {
	sync.Mutex
	n int
}

func newTopic(t testing.TB, b *kafkatest.Broker, partitions int) string {
	t.Helper()
	topicSeq.Lock()
	topicSeq.n++
	name := fmt.Sprintf("events-%d-%d", time.Now().UnixNano()%1e6, topicSeq.n)
	topicSeq.Unlock()
	if err := b.CreateTopic(context.Background(), name, partitions); err != nil {
		t.Fatal(err)
	}
	return name
}

// memStore is a Store that remembers event ids. With lostAck set it keeps
// each batch but reports failure, like a write whose acknowledgement was
// lost: the runner cannot commit it.
type memStore struct {
	mu           sync.Mutex
	ids          map[string]int
	lostAckAfter int // when > 0: once this many rows are stored, stop acknowledging
	total        int
}

func (s *memStore) Write(_ context.Context, batch []event.Classified) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	for i := range batch {
		s.ids[batch[i].Event.ID]++
	}
	s.total += len(batch)
	if s.lostAckAfter > 0 && s.total >= s.lostAckAfter {
		return fmt.Errorf("storage acknowledgement lost")
	}
	return nil
}

func (s *memStore) snapshot() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = v
	}
	return out, s.total
}

const testPAN = "6228480402564890018"

// produce writes n good events (ids g-<start+i>) over 50 terminals and the
// given bad messages, keyed by terminal.
func produce(t testing.TB, b *kafkatest.Broker, topic string, start, n int, bad []string) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := start; i < start+n; i++ {
		term := fmt.Sprintf("T%02d", i%50)
		code := `"response_code":"00"`
		if i%9 == 0 {
			code = `"terminal_error":"COMM_TIMEOUT"`
		}
		v := fmt.Sprintf(`{"event_id":"g-%d","ts":"%s","terminal_id":"%s","merchant_id":"M%d","scheme":"cup","region":"310000",%s}`,
			i, base.Add(time.Duration(i)*10*time.Millisecond).Format(time.RFC3339Nano), term, i%50/5, code)
		msgs = append(msgs, kafka.Message{Key: []byte(term), Value: []byte(v)})
	}
	for i, v := range bad {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("bad-%d", i)), Value: []byte(v)})
	}
	for len(msgs) > 0 {
		k := min(len(msgs), 5000)
		writeRetrying(t, w, msgs[:k])
		msgs = msgs[k:]
	}
}

// writeRetrying rides out the moments after topic creation when a
// partition's leader is not yet known to every client.
func writeRetrying(t testing.TB, w *kafka.Writer, msgs []kafka.Message) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 40; attempt++ {
		if err = w.WriteMessages(context.Background(), msgs...); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal(err)
}

var badMessages = []string{
	"garbage line",
	`{"event_id":"b1","ts":"2026-11-27T10:00:00Z","terminal_id":"T1"`,
	`{"event_id":"b2","ts":"2026-11-27T10:00:00Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","pan":"` + testPAN + `"}`,
	`{"event_id":"b3","ts":"2026-11-27T10:00:00Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","card_bin":"` + testPAN + `"}`,
	`{"event_id":"b4","ts":"2026-11-27T10:00:00Z","terminal_id":"T1","merchant_id":"M1","response_code":7}`,
}

func runConfig(b *kafkatest.Broker, topic, group string) Config {
	var c Config
	c.Kafka = ingest.KafkaConfig{Brokers: []string{b.Addr}, Topics: []string{topic}, GroupID: group, DLQTopic: topic + ".dlq",
		BatchSize: 500, FlushInterval: 200 * time.Millisecond, MaxWait: 100 * time.Millisecond, CheckpointInterval: 300 * time.Millisecond}
	return c
}

// startRunner runs a Runner until the returned stop is called; stop returns Run's error.
func startRunner(t testing.TB, cfg Config, store Store, log ...*zap.Logger) (*Runner, func() error) {
	t.Helper()
	o := RunOptions{Config: cfg, Store: store}
	if len(log) > 0 {
		o.Log = log[0]
	}
	r, err := NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return r, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("runner did not stop within 30s")
			return nil
		}
	}
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readAll reads every message of a topic from the start.
func readAll(t testing.TB, b *kafkatest.Broker, topic string, want int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "reader-" + topic, Topic: topic, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	var out []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(out) < want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s after %d of %d: %v", topic, len(out), want, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRunGoodOnceBadToDLQ(t *testing.T) {
	b := needBroker(t)
	topic := newTopic(t, b, 4)
	const n = 3000
	produce(t, b, topic, 0, n, badMessages)
	store := &memStore{}
	core, logs := observer.New(zap.DebugLevel)
	r, stop := startRunner(t, runConfig(b, topic, "g-"+topic), store, zap.New(core))
	waitFor(t, "all messages committed", 60*time.Second, func() bool { return r.Stats().Committed.Load() >= n+uint64(len(badMessages)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ids, total := store.snapshot()
	if len(ids) != n || total != n {
		t.Fatalf("stored %d distinct of %d writes, want %d each", len(ids), total, n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("%s stored %d times", id, c)
		}
	}
	dead := readAll(t, b, topic+".dlq", len(badMessages))
	reasons := map[string]int{}
	pan := regexp.MustCompile(`\d{12,}`)
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		reasons[h["declinemon-reason"]]++
		if h["declinemon-source-topic"] != topic || h["declinemon-source-offset"] == "" || h["declinemon-source-partition"] == "" || h["declinemon-rejected-at"] == "" {
			t.Errorf("dead letter headers incomplete: %v", h)
		}
		if pan.Match(m.Value) || strings.Contains(string(m.Value), testPAN) {
			t.Errorf("dead letter carries card data: %s", m.Value)
		}
	}
	want := map[string]int{"invalid_json": 1, "missing_field": 0, "sensitive_data": 2, "bad_type": 1}
	want["invalid_json"] = 2 // garbage and truncated
	delete(want, "missing_field")
	for k, v := range want {
		if reasons[k] != v {
			t.Errorf("dead letters by reason %v, want %v", reasons, want)
			break
		}
	}
	if got := r.Stats().DeadLettered.Load(); got != uint64(len(badMessages)) {
		t.Errorf("dead-lettered %d", got)
	}
	lag := r.Stats().PartitionLag()
	if len(lag) != 4 {
		t.Errorf("lag reported for %d partitions, want 4: %v", len(lag), lag)
	}
	for p, l := range lag {
		if l != 0 {
			t.Errorf("partition %s still %d behind after consuming everything", p, l)
		}
	}
	if r.Stats().CommitNanos.Load() <= 0 || r.Stats().Bytes.Load() == 0 {
		t.Error("commit latency or bytes not recorded")
	}
	rejectLines := 0
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, testPAN) || pan.MatchString(line) {
			t.Errorf("log line carries card data: %s", line)
		}
		if e.Message == "message rejected to the dead-letter topic" {
			rejectLines++
			c := e.ContextMap()
			if c["topic"] != topic || c["offset"] == nil || c["reason"] == nil {
				t.Errorf("reject log line lacks its source: %v", c)
			}
			if c["reason"] == "sensitive_data" && (c["event_id"] == nil || c["terminal_id"] == nil) {
				t.Errorf("reject of an identifiable event lacks its ids: %v", c)
			}
		}
	}
	if rejectLines == 0 {
		t.Error("rejections were not logged")
	}
}

// TestRunRestartLosesNothing: mid-stream the first instance's storage
// stops acknowledging (it keeps the data but the runner cannot know).
// Detection goes on, and the commits stop at what was acknowledged, so
// the instance stops cleanly without committing those batches. A second
// instance picks up from the last commit, restores the first's
// checkpoint and stores what it covers without detecting it again. Every
// event is stored; the ones stored but never acknowledged are stored again:
// at-least-once into this store, which the ClickHouse writer dedups by
// stored offset ranges.
func TestRunRestartLosesNothing(t *testing.T) {
	b := needBroker(t)
	topic := newTopic(t, b, 4)
	const n = 4000
	produce(t, b, topic, 0, n, nil)
	cfg := runConfig(b, topic, "g-"+topic)
	cfg.Kafka.ShutdownTimeout = time.Second

	first := &memStore{lostAckAfter: n / 4}
	r1, stop1 := startRunner(t, cfg, first)
	waitFor(t, "a batch stored but not acknowledged, and detection past it", 30*time.Second, func() bool {
		s, _ := r1.behind.read()
		return s.retries > 0 && r1.Stats().Accepted.Load() == n
	})
	if err := stop1(); err != nil {
		t.Errorf("first instance: %v (detection stops cleanly; storage's gap stays uncommitted)", err)
	}
	if got, acked := r1.Stats().Committed.Load(), uint64(n/4); got > acked {
		t.Errorf("first instance committed %d messages with %d acknowledged by storage", got, acked)
	}
	committed1 := r1.Stats().Committed.Load()

	second := &memStore{}
	r2, stop2 := startRunner(t, cfg, second)
	waitFor(t, "second instance to finish", 60*time.Second, func() bool {
		return committed1+r2.Stats().Committed.Load() >= n
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	a, _ := first.snapshot()
	bIDs, _ := second.snapshot()
	missing, dup := 0, 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("g-%d", i)
		switch c := a[id] + bIDs[id]; {
		case c == 0:
			missing++
		case c > 1:
			dup++
		}
	}
	if missing > 0 {
		t.Fatalf("%d events lost across the restart", missing)
	}
	if dup == 0 {
		t.Error("expected the unacknowledged batch to be redelivered")
	}
	if committed1+r2.Stats().Committed.Load() != n {
		t.Errorf("committed %d + %d, want %d in total", committed1, r2.Stats().Committed.Load(), n)
	}
	t.Logf("first stored %d distinct (committed %d), second stored %d; %d redelivered (deduplicated by event_id in storage)", len(a), committed1, len(bIDs), dup)
}

// TestRunActiveStandbyTakeOver: two detection-enabled instances in one
// group. The first is assigned the whole topic, the second none (a hot
// standby, ready); when the first leaves, the second takes every
// partition, restores the first's last checkpoint and resumes from its
// offsets: nothing is detected on twice or missed.
func TestRunActiveStandbyTakeOver(t *testing.T) {
	b := needBroker(t)
	topic := newTopic(t, b, 4)
	cfg := runConfig(b, topic, "g-"+topic)
	sa, sb := &memStore{}, &memStore{}
	ra, stopA := startRunner(t, cfg, sa)
	time.Sleep(100 * time.Millisecond) // A is the senior member
	rb, stopB := startRunner(t, cfg, sb)
	const n = 2000
	produce(t, b, topic, 0, n, nil)
	waitFor(t, "A to process", 60*time.Second, func() bool { return ra.Stats().Committed.Load() >= n })
	produce(t, b, topic, n, n, nil)
	waitFor(t, "A to process after B joined", 60*time.Second, func() bool { return ra.Stats().Committed.Load() >= 2*n })
	if _, tb := sb.snapshot(); tb != 0 {
		t.Fatalf("the standby stored %d events: the group split the topic", tb)
	}
	waitFor(t, "both ready", 30*time.Second, func() bool {
		return ra.Ready(context.Background()) == nil && rb.Ready(context.Background()) == nil
	})
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	produce(t, b, topic, 2*n, n, nil)
	waitFor(t, "B to take over", 60*time.Second, func() bool { return rb.Stats().Committed.Load() >= n })
	if got := rb.Stats().CheckpointRestores.Load(); got != 1 {
		t.Errorf("standby restored %d checkpoints, want 1", got)
	}
	ids, _ := sb.snapshot()
	for i := 0; i < 3*n; i++ {
		id := fmt.Sprintf("g-%d", i)
		if want := i >= 2*n; (ids[id] > 0) != want {
			t.Fatalf("event %s stored by the standby: %d times, want stored=%v", id, ids[id], want)
		}
	}
	waitFor(t, "the detector to have observed every event", 30*time.Second, func() bool {
		return rb.Stats().DetectorObserved.Load() >= 3*n
	})
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if got := rb.Stats().DetectorObserved.Load(); got != 3*n {
		t.Errorf("after takeover the detector has observed %d events, want %d: each exactly once", got, 3*n)
	}
}

func TestRunConfigRejectedUpFront(t *testing.T) {
	cfg := Config{Kafka: ingest.KafkaConfig{Brokers: []string{"nohost"}, Topics: []string{"x"}, DLQTopic: "x",
		SASL: ingest.SASLConfig{Mechanism: "SCRAM-SHA-1", Username: "u", Password: "hunter2"}, TLS: ingest.TLSConfig{CAFile: "/nonexistent"}}}
	_, err := NewRunner(RunOptions{Config: cfg})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"kafka.brokers", "loop", "kafka.tls", "kafka.sasl.mechanism"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(fmt.Sprintf("%v %+v", cfg, cfg), "hunter2") {
		t.Error("secret printed")
	}
}

// BenchmarkRunKafka measures consume + decode + classify + detect + commit
// against the real broker: 300k events are produced first (not timed).
func BenchmarkRunKafka(b *testing.B) {
	br := needBroker(b)
	const n = 300_000
	topic := newTopic(b, br, 4)
	msgs := realistic(b, n)
	w := &kafka.Writer{Addr: kafka.TCP(br.Addr), Topic: topic, Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll, BatchSize: 5000, BatchBytes: 32 << 20, BatchTimeout: time.Millisecond}
	var batch []kafka.Message
	for i, m := range msgs {
		batch = append(batch, kafka.Message{Value: m})
		if len(batch) == 5000 || i == len(msgs)-1 {
			writeRetrying(b, w, batch)
			batch = batch[:0]
		}
	}
	w.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cfg := runConfig(br, topic, fmt.Sprintf("bench-%s-%d", topic, i))
		cfg.Kafka.BatchSize = 10000
		cfg.Kafka.FlushInterval = time.Second
		cfg.Kafka.CheckpointInterval = 0 // the default: offsets commit with a checkpoint every 10 s
		r, stop := startRunner(b, cfg, nil)
		start := time.Now()
		for r.Stats().Messages.Load() < n {
			time.Sleep(5 * time.Millisecond)
		}
		processed := time.Since(start)
		for r.Stats().Committed.Load() < n {
			time.Sleep(5 * time.Millisecond)
		}
		committed := time.Since(start)
		stop()
		// Throughput is what flows through the path; the commit of the
		// last events waits for the next checkpoint (every 10 s).
		b.ReportMetric(float64(n)/processed.Seconds(), "events/s")
		b.ReportMetric(committed.Seconds()-processed.Seconds(), "s-commit-trail")
	}
}

type alertBox struct {
	mu     sync.Mutex
	alerts []alerting.Alert
}

func (a *alertBox) Send(_ context.Context, alerts []alerting.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alerts = append(a.alerts, alerts...)
	return nil
}

// TestScaleOutForwardToDetectionStage is the documented scale-out design:
// two ingest instances (detection off) validate, dead-letter and forward
// accepted events; one detection instance consumes the forward topic and
// judges fleet-wide scopes on the whole stream.
func TestScaleOutForwardToDetectionStage(t *testing.T) {
	b := needBroker(t)
	raw := newTopic(t, b, 4)
	fwd := newTopic(t, b, 1)
	s, err := scenario.Find("regional-outage")
	if err != nil {
		t.Fatal(err)
	}
	s.Fleet.Terminals = 1500
	s.Duration = scenario.Duration(3 * time.Hour)
	s.Incidents[0].At = scenario.Duration(2 * time.Hour)

	ingest := runConfig(b, raw, "ingest-"+raw)
	ingest.DisableDetection = true
	ingest.Kafka.ForwardTopic = fwd
	_, stopA := startRunner(t, ingest, &memStore{})
	_, stopB := startRunner(t, ingest, &memStore{})
	detect := runConfig(b, fwd, "detect-"+fwd)
	box := &alertBox{}
	rd, err := NewRunner(RunOptions{Config: detect, Alerts: []AlertSink{box}})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stopDetect := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(dctx) }()

	p := scenario.NewProducer([]string{b.Addr}, raw, 5000)
	truth, err := s.Generate(func(ev *event.Event) { p.Add(context.Background(), ev.Terminal, event.AppendJSON(nil, ev)) })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the detection stage to see every event", 120*time.Second, func() bool {
		return rd.Stats().Committed.Load() >= uint64(truth.Events)
	})
	stopA()
	stopB()
	stopDetect()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rd.Engine().Flush()
	box.mu.Lock()
	defer box.mu.Unlock()
	score := scenario.Evaluate(truth, box.alerts)
	if !score.Passed() {
		t.Fatalf("detection stage alerts %+v do not match truth %+v (late events: %d)", box.alerts, truth.Incidents, rd.Stats().Late.Load())
	}
	// Partitions are merged by event time, so only what arrives after a
	// source went quiet for the idle timeout (a rebalance) can be late.
	if late := rd.Stats().Late.Load(); late*100 > uint64(truth.Events) {
		t.Errorf("%d of %d events late: the stage is not merging partitions by event time", late, truth.Events)
	}
	t.Logf("%d events through 2 ingest instances and 1 detection stage: %s %s=%s detected %s after onset, %d late",
		truth.Events, box.alerts[0].Kind, box.alerts[0].ScopeType, box.alerts[0].ScopeID, score.Outcomes[0].TTD, rd.Stats().Late.Load())
}

// TestRunTopicCreatedAfterStart: started before its topic exists (as the
// compose stack starts it), the runner is not ready and says why; once the
// topic is created and written to, it consumes within seconds.
func TestRunTopicCreatedAfterStart(t *testing.T) {
	b := kafkatest.ForTest(t, kafkatest.Options{NoAutoCreateTopics: true})
	const topic = "pos.events"
	cfg := runConfig(b, topic, "g-"+topic)
	cfg.Kafka.PartitionWatchInterval = time.Second
	r, stop := startRunner(t, cfg, &memStore{})
	time.Sleep(2 * time.Second)
	err := r.Ready(context.Background())
	var missing *ingest.MissingTopicsError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("readiness before the topic exists: %v", err)
	}
	if err := b.CreateTopic(context.Background(), topic, 2); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	produce(t, b, topic, 0, 500, nil)
	waitFor(t, "consumption of the late topic", 60*time.Second, func() bool { return r.Stats().Committed.Load() >= 500 })
	if err := r.Ready(context.Background()); err != nil {
		t.Errorf("not ready after the topic appeared: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("consumed %s after the topic was created", time.Since(created).Round(100*time.Millisecond))
}
