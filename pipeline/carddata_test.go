package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/declinemon/declinemon/alerting/notify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/cardtest"
	"github.com/declinemon/declinemon/internal/ops"
)

// The card-data property: whatever a sender puts in a message, no planted
// card number comes out of declinemon — not in alerts, summaries, logs,
// storage, metrics, the HTTP endpoints, the dead-letter topic (values,
// keys, headers) or the forward topic — beyond the first 6 and last 4
// digits PCI DSS allows on display. The corpus (internal/cardtest) mixes a
// clean fleet with lines carrying card numbers in every documented field,
// in keys, under sensitive keys at any case and depth, behind JSON escapes,
// as numbers, as track data, in malformed and oversized lines, and in
// scopes that fail hard enough to raise alerts if those lines got through.
// The finder that checks the outputs knows the planted numbers and shares
// no code with ingest.

var cardSeeds = []uint64{1, 2, 3}

// cardLeaks runs the finder over outputs and reports, per output and
// planted number, how often it leaked and where it came from.
type cardLeaks struct {
	c     *cardtest.Corpus
	f     *cardtest.Finder
	hits  map[[2]string]*cardLeak
	order [][2]string
}

type cardLeak struct {
	first cardtest.Hit
	n     int
}

func newCardLeaks(c *cardtest.Corpus) *cardLeaks {
	return &cardLeaks{c: c, f: c.Finder(), hits: map[[2]string]*cardLeak{}}
}

func (l *cardLeaks) check(where string, out []byte) {
	for _, h := range l.f.Find(out) {
		k := [2]string{where, h.Secret}
		if l.hits[k] == nil {
			l.hits[k] = &cardLeak{first: h}
			l.order = append(l.order, k)
		}
		l.hits[k].n++
	}
}

func (l *cardLeaks) report(t *testing.T) {
	t.Helper()
	for _, k := range l.order {
		h := l.hits[k]
		times := ""
		if h.n > 1 {
			times = fmt.Sprintf(" (%d times)", h.n)
		}
		t.Errorf("%s leaks card data planted as %s%s: %s", k[0], l.c.KindOf(k[1]), times, h.first)
	}
}

// TestCardDataEachLineJudged decodes every line of the corpus on its own
// and checks the reason: each planted line is rejected as sensitive_data
// (too_large when over the size limit), each clean line is accepted.
// Failures are grouped by what was planted where, once per group.
func TestCardDataEachLineJudged(t *testing.T) {
	var cfg Config
	type verdict struct{ kind, got, want string }
	bad := map[verdict][]uint64{}
	count := map[verdict]int{}
	total := map[string]int{}
	for _, seed := range cardSeeds {
		c := cardtest.NewCorpus(cardtest.Options{Seed: seed})
		cfg.DisableDetection = true
		p, err := New(Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range c.Lines {
			got := "accepted"
			if de := p.decode(&ingest.Message{Value: l.Data}); de != nil {
				got = de.Reason.String()
			}
			group := strings.SplitN(l.Kind, " ", 2)[0] // without the card label
			total[group]++
			if got != l.Want.String() {
				v := verdict{group, got, l.Want.String()}
				if seeds := bad[v]; len(seeds) == 0 || seeds[len(seeds)-1] != seed {
					bad[v] = append(seeds, seed)
				}
				count[v]++
			}
		}
	}
	keys := make([]verdict, 0, len(bad))
	for v := range bad {
		keys = append(keys, v)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].kind < keys[j].kind })
	for _, v := range keys {
		t.Errorf("%-50s %s, want %s (%d of %d lines, seeds %v)", v.kind, v.got, v.want, count[v], total[v.kind], bad[v])
	}
}

// cardReplay replays a corpus and returns the summary, the alerts file
// and the text printed (progress, summary).
func cardReplay(t *testing.T, c *cardtest.Corpus) (sum *Summary, alerts, text []byte) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(in, c.JSONL(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "alerts.jsonl")
	var stderr bytes.Buffer
	sum, err := Replay(context.Background(), ReplayOptions{Input: in, AlertsOut: out, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Write(&stderr); err != nil {
		t.Fatal(err)
	}
	alerts, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return sum, alerts, stderr.Bytes()
}

func TestCardDataNeverLeavesReplay(t *testing.T) {
	for _, seed := range cardSeeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := cardtest.NewCorpus(cardtest.Options{Seed: seed})
			sum, alerts, text := cardReplay(t, c)
			n := c.Count(cardtest.Accepted)
			got := sum.Counts
			if got.Accepted != uint64(n) || got.Rejected[ingest.ReasonSensitiveData] != uint64(c.Count(cardtest.Sensitive)) ||
				got.Rejected[ingest.ReasonTooLarge] != uint64(c.Count(cardtest.TooLarge)) {
				t.Errorf("accepted %d (want %d), sensitive_data %d (want %d), too_large %d (want %d), rejected %v",
					got.Accepted, n, got.Rejected[ingest.ReasonSensitiveData], c.Count(cardtest.Sensitive),
					got.Rejected[ingest.ReasonTooLarge], c.Count(cardtest.TooLarge), got.Rejected)
			}
			leaks := newCardLeaks(c)
			leaks.check("replay alerts file", alerts)
			leaks.check("replay summary text", text)
			// What the summary is printed from — alerts, unknown codes,
			// league tallies — must not hold card data either: callers
			// marshal and print it.
			leaks.check("replay Summary value", fmt.Appendf(nil, "%+v\n%+v\n%+v", sum.Counts, sum.Alerts, sum.Tally))
			leaks.report(t)
		})
	}
}

// TestCardDataCanaryReachesReplayOutputs is the control for the test
// above: the same hot scopes with a harmless token where the card number
// would be are accepted, and each token reaches the alerts file, and the
// failing terminal and merchant reach the summary. So a card number the
// decoder let through would be seen by the leak checks.
func TestCardDataCanaryReachesReplayOutputs(t *testing.T) {
	c := cardtest.NewCorpus(cardtest.Options{Seed: 1, Canary: true})
	sum, alerts, text := cardReplay(t, c)
	if sum.Counts.Accepted != uint64(len(c.Lines)) {
		t.Errorf("accepted %d of %d canary lines: %v", sum.Counts.Accepted, len(c.Lines), sum.Counts.Rejected)
	}
	for scope, tok := range c.Canaries {
		if !bytes.Contains(alerts, []byte(tok)) {
			t.Errorf("no alert names the failing %s %s", scope, tok)
		}
	}
	for _, scope := range []string{"terminal", "merchant"} {
		if !bytes.Contains(text, []byte(c.Canaries[scope])) {
			t.Errorf("summary does not list the failing %s %s", scope, c.Canaries[scope])
		}
	}
	if t.Failed() {
		t.Logf("alerts:\n%s", alerts)
	}
}

// cardBuffer is a goroutine-safe buffer for log and sink output.
type cardBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *cardBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *cardBuffer) Sync() error { return nil }

func (b *cardBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// cardStore records everything storage receives, rendered with %+v.
type cardStore struct {
	out    cardBuffer
	mu     sync.Mutex
	events int
}

func (s *cardStore) Write(_ context.Context, batch []event.Classified) error {
	for i := range batch {
		fmt.Fprintf(&s.out, "%+v\n", batch[i])
	}
	s.mu.Lock()
	s.events += len(batch)
	s.mu.Unlock()
	return nil
}

// TestCardDataNeverLeavesRun runs the corpus through `run` on a real
// broker, with a dead-letter topic and a forward topic, and checks every
// output: the DLQ (values, keys, headers), the forward topic, storage,
// logs (structured and as JSON), alert sinks, /metrics, /alerts, /readyz.
func TestCardDataNeverLeavesRun(t *testing.T) {
	b := needBroker(t)
	start := time.Now()
	c := cardtest.NewCorpus(cardtest.Options{Seed: 4})
	topic := newTopic(t, b, 4)
	fwd := newTopic(t, b, 1)
	cfg := runConfig(b, topic, "g-"+topic)
	cfg.Kafka.ForwardTopic = fwd

	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	for _, l := range c.Lines {
		msgs = append(msgs, kafka.Message{Key: []byte(l.Key), Value: l.Data})
	}
	for len(msgs) > 0 {
		k := min(len(msgs), 2000)
		writeRetrying(t, w, msgs[:k])
		msgs = msgs[k:]
	}
	w.Close()

	core, observed := observer.New(zap.DebugLevel)
	var logJSON cardBuffer
	jsonCore := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), &logJSON, zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, jsonCore))
	store := &cardStore{}
	var alertLines cardBuffer
	box := &alertBox{}
	r, err := NewRunner(RunOptions{Config: cfg, Store: store, Log: log,
		Alerts: []AlertSink{notify.Log{Log: log}, notify.JSONL{W: &alertLines}, box}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := RegisterMetrics(reg, r.Pipeline, nil); err != nil {
		t.Fatal(err)
	}
	h := ops.NewHandler(ops.HTTPConfig{}, ops.Endpoints{Gatherer: reg, Ready: r.Ready, Active: r.ActiveAlerts})
	var scraped bytes.Buffer
	get := func(path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Body)
		fmt.Fprintf(&scraped, "GET %s %d %v\n%s\n", path, rec.Code, rec.Header(), body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	total := uint64(len(c.Lines))
	deadline := time.Now().Add(60 * time.Second)
	for r.Stats().Committed.Load() < total && time.Now().Before(deadline) {
		get("/alerts") // firing alerts change as the stream goes by
		get("/metrics")
		time.Sleep(250 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().Committed.Load(); got < total {
		t.Fatalf("committed %d of %d messages within 60s", got, total)
	}
	for _, p := range []string{"/alerts", "/metrics", "/readyz", "/healthz"} {
		get(p)
	}

	st := r.Stats()
	var rejected [ingest.NumReasons]uint64
	for i := range rejected {
		rejected[i] = st.Rejected[i].Load()
	}
	if st.Accepted.Load() != uint64(c.Count(cardtest.Accepted)) || rejected[ingest.ReasonSensitiveData] != uint64(c.Count(cardtest.Sensitive)) ||
		rejected[ingest.ReasonTooLarge] != uint64(c.Count(cardtest.TooLarge)) {
		t.Errorf("accepted %d (want %d), sensitive_data %d (want %d), too_large %d (want %d); all rejects %v",
			st.Accepted.Load(), c.Count(cardtest.Accepted), rejected[ingest.ReasonSensitiveData], c.Count(cardtest.Sensitive),
			rejected[ingest.ReasonTooLarge], c.Count(cardtest.TooLarge), rejected)
	}
	store.mu.Lock()
	stored := store.events
	store.mu.Unlock()
	if stored != int(st.Accepted.Load()) {
		t.Errorf("stored %d events, accepted %d", stored, st.Accepted.Load())
	}

	// Read back what went to Kafka: as many as the runner says it wrote,
	// so a decoder that accepts too much fails on the leak, not a timeout.
	dead := readAll(t, b, cfg.Kafka.DLQTopic, int(st.DeadLettered.Load()))
	forwarded := readAll(t, b, fwd, int(st.Forwarded.Load()))
	if len(forwarded) != c.Count(cardtest.Accepted) {
		t.Errorf("forwarded %d, want the %d clean events", len(forwarded), c.Count(cardtest.Accepted))
	}
	leaks := newCardLeaks(c)
	check := func(where string, msgs []kafka.Message) {
		for _, m := range msgs {
			leaks.check(where+" key", m.Key)
			leaks.check(where+" value", m.Value)
			for _, hd := range m.Headers {
				leaks.check(where+" header "+hd.Key, append([]byte(hd.Key+": "), hd.Value...))
			}
		}
	}
	check("dead letter", dead)
	check("forward", forwarded)
	passedThrough := 0
	for _, m := range forwarded {
		if bytes.Contains(m.Value, []byte(`"`+cardtest.ShipperField+`"`)) {
			passedThrough++
		}
	}
	if passedThrough > 0 {
		t.Errorf("%d forwarded messages carry the unknown field %q: forwards are the raw message, not the decoded event re-encoded", passedThrough, cardtest.ShipperField)
	}

	var logs bytes.Buffer
	for _, e := range observed.All() {
		fmt.Fprintf(&logs, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	leaks.check("log entries", logs.Bytes())
	leaks.check("JSON log", logJSON.Bytes())
	leaks.check("storage", store.out.Bytes())
	leaks.check("alerts JSONL sink", alertLines.Bytes())
	box.mu.Lock()
	boxed := fmt.Sprintf("%+v", box.alerts)
	box.mu.Unlock()
	leaks.check("alert sink records", []byte(boxed))
	leaks.check("HTTP endpoints", scraped.Bytes())
	leaks.check("active alerts", fmt.Appendf(nil, "%+v", r.ActiveAlerts()))
	leaks.report(t)
	t.Logf("%d messages (%d clean, %d with card data, %d oversized): %d dead letters, %d forwarded, %d stored, %d alert records, %d log entries; %s",
		len(c.Lines), c.Count(cardtest.Accepted), c.Count(cardtest.Sensitive), c.Count(cardtest.TooLarge), len(dead), len(forwarded), stored,
		len(bytes.Split(bytes.TrimSpace(alertLines.Bytes()), []byte("\n"))), observed.Len(), time.Since(start).Round(time.Millisecond))
}
