package demo

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/kafkatest"
	"github.com/declinemon/declinemon/pipeline"
)

type alertBox struct {
	mu     sync.Mutex
	alerts []alerting.Alert
}

func (b *alertBox) Send(_ context.Context, a []alerting.Alert) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.alerts = append(b.alerts, a...)
	return nil
}

// TestOnePathReplayRunDemoIdentical runs one input — the demo morning, five
// incidents — through `replay` (a file), through `run` on a real Kafka
// broker (four partitions, a consumer group) and through the demo's path
// (the in-process broker), and requires identical alert records: same ids,
// states, times, counts and texts, in the same order.
func TestOnePathReplayRunDemoIdentical(t *testing.T) {
	s := scenario.Demo()
	var lines []string
	truth, err := s.Generate(func(ev *event.Event) { lines = append(lines, string(event.AppendJSON(nil, ev))) })
	if err != nil {
		t.Fatal(err)
	}

	// replay
	path := filepath.Join(t.TempDir(), "events.jsonl")
	f, _ := os.Create(path)
	w := bufio.NewWriter(f)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	w.Flush()
	f.Close()
	sum, err := pipeline.Replay(context.Background(), pipeline.ReplayOptions{Input: path})
	if err != nil {
		t.Fatal(err)
	}
	replayed := records(t, sum.Alerts)
	if len(sum.Alerts) == 0 || !scenario.Evaluate(truth, sum.Alerts).Passed() {
		t.Fatalf("replay does not find the incidents: %d records", len(sum.Alerts))
	}

	// run on a real broker
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := kafkatest.ForTest(t, kafkatest.Options{})
	const topic = "pos.events"
	if err := b.CreateTopic(ctx, topic, 4); err != nil {
		t.Fatal(err)
	}
	p := scenario.NewProducer([]string{b.Addr}, topic, 2000)
	if _, err := s.Play(ctx, p, 0, 0); err != nil {
		t.Fatal(err)
	}
	var cfg pipeline.Config
	cfg.Kafka = ingest.KafkaConfig{Brokers: []string{b.Addr}, Topics: []string{topic}, GroupID: "onepath", DLQTopic: "onepath.dlq",
		BatchSize: 2000, FlushInterval: 250 * time.Millisecond, MaxWait: 50 * time.Millisecond}
	box := &alertBox{}
	r, err := pipeline.NewRunner(pipeline.RunOptions{Config: cfg, Alerts: []pipeline.AlertSink{box}, EndOfInput: true})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	for r.Stats().Committed.Load() < uint64(truth.Events) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	live := records(t, box.alerts)

	// the demo's path
	res, err := Run(ctx, Options{Scenario: &s})
	if err != nil {
		t.Fatal(err)
	}
	demoed := records(t, res.Alerts)

	same := func(name string, got []string) {
		t.Helper()
		if strings.Join(got, "\n") == strings.Join(replayed, "\n") {
			return
		}
		t.Errorf("%s raised %d alert records, replay %d; first difference:", name, len(got), len(replayed))
		for i := range max(len(got), len(replayed)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(replayed) {
				w = replayed[i]
			}
			if g != w {
				t.Errorf("  #%d\n  %s:   %s\n  replay: %s", i, name, g, w)
				return
			}
		}
	}
	same("run (real broker)", live)
	same("demo (in-process broker)", demoed)
	if late := r.Stats().Late.Load() + res.Stats.Late.Load(); late != 0 {
		t.Errorf("%d events counted late on the live paths", late)
	}
	t.Logf("%d events, %d alert records, identical on replay, run and demo", truth.Events, len(replayed))
}

func records(t *testing.T, alerts []alerting.Alert) []string {
	t.Helper()
	out := make([]string, len(alerts))
	for i := range alerts {
		line, err := alerts[i].MarshalJSONLine()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = strings.TrimSpace(string(line))
	}
	return out
}
