package pipeline

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// nopSource is a Source for restoring outside a run.
type nopSource struct{}

func (nopSource) Fetch(context.Context) (ingest.Message, error) {
	return ingest.Message{}, context.Canceled
}
func (nopSource) Commit(context.Context, []ingest.Position) error { return nil }

// BenchmarkCheckpointKafka1M writes the detector checkpoint of a fleet of
// 1M active terminals (200k merchants, regions, carriers, hosts, issuers,
// models; three attempts each over an hour of event time) to the
// checkpoint topic on the real broker, and restores it into a fresh
// pipeline: read from the topic, verified, decoded.
func BenchmarkCheckpointKafka1M(b *testing.B) {
	br := needBroker(b)
	kc := ingest.KafkaConfig{Brokers: []string{br.Addr}, Topics: []string{"pos.events"},
		GroupID: "ckpt-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)}.WithDefaults()
	store, err := ingest.NewCheckpointTopic(kc, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	p, err := New(Options{Checkpoints: store})
	if err != nil {
		b.Fatal(err)
	}
	const terminals = 1_000_000
	start := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	codes := []string{"00", "00", "00", "00", "00", "00", "51", "05"}
	var ev event.Event
	for round := range 3 {
		for i := range terminals {
			ev = event.Event{Terminal: "T" + strconv.Itoa(i), Merchant: "M" + strconv.Itoa(i/5),
				Region: strconv.Itoa(310000 + i%300), Carrier: "C" + strconv.Itoa(i%4), Host: "H" + strconv.Itoa(i%8),
				Issuer: "I" + strconv.Itoa(i%40), Model: "A" + strconv.Itoa(i%6), Firmware: "3." + strconv.Itoa(i%3),
				Time: start.Add(time.Duration(round)*20*time.Minute + time.Duration(i)*time.Second*1200/terminals)}
			ev.ResponseCode = codes[(i+round)%len(codes)]
			cause := event.CauseNone
			if ev.ResponseCode != "00" {
				cause = event.CauseIssuerCredit
			}
			p.observe(&ev, cause)
		}
	}
	if _, err := store.Load(ctx); err != nil { // creates the topic
		b.Fatal(err)
	}
	p.ckpt.loaded = true
	scopes := p.Engine().Stats().Scopes
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		write := time.Since(t0)
		q, err := New(Options{Checkpoints: store})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := q.restore(ctx, nopSource{}); err != nil {
			b.Fatal(err)
		}
		restore := time.Since(t0)
		if got := q.Engine().Stats().Scopes; got != scopes {
			b.Fatalf("restored %d scopes, wrote %d", got, scopes)
		}
		b.ReportMetric(float64(p.Counters().CheckpointBytes.Load())/1e6, "MB-checkpoint")
		b.ReportMetric(write.Seconds(), "s-write")
		b.ReportMetric(restore.Seconds(), "s-restore")
	}
}
