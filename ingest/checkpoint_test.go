package ingest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/kafkatest"
)

// TestCheckpointTopic saves checkpoints of several chunks to a real
// broker, loses one mid-write, and reads back the latest whole one with
// the journal.
func TestCheckpointTopic(t *testing.T) {
	b := kafkatest.ForTest(t, kafkatest.Options{NoAutoCreateTopics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := KafkaConfig{Brokers: []string{b.Addr}, Topics: []string{"pos.events"}, GroupID: "ckpt-test"}.WithDefaults()
	c, err := NewCheckpointTopic(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.chunk = 64 << 10 // several chunks per checkpoint

	got, err := c.Load(ctx) // creates the topic
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 0 || len(got.Data) != 0 {
		t.Fatalf("fresh topic: checkpoint %d of %d bytes", got.Seq, len(got.Data))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.IntN(256))
		}
		return p
	}
	first, second := blob(300_000), blob(150_000)
	if err := c.Save(ctx, 1, first); err != nil {
		t.Fatal(err)
	}
	if err := c.Journal(ctx, []JournalEntry{{ID: "a1", Value: []byte("f")}, {ID: "a2", Value: []byte("f")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, 2, second); err != nil {
		t.Fatal(err)
	}
	if err := c.Journal(ctx, []JournalEntry{{ID: "a1"}, {ID: "a3", Value: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	// Checkpoint 3 dies after its first chunks: slot 1, where checkpoint 1
	// lived, now holds a mix; the manifest still names checkpoint 2.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: c.Topic(), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	partial := append([]byte{0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0}, blob(1000)...)
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("checkpoint/1/0"), Value: partial}); err != nil {
		t.Fatal(err)
	}

	got, err = c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 2 || !bytes.Equal(got.Data, second) {
		t.Fatalf("loaded checkpoint %d (%d bytes), want 2 (%d bytes)", got.Seq, len(got.Data), len(second))
	}
	if len(got.Journal) != 2 || string(got.Journal["a2"]) != "f" || string(got.Journal["a3"]) != "r" {
		t.Errorf("journal %q, want a2=f a3=r (a1 deleted)", got.Journal)
	}

	// A manifest whose chunks do not add up is refused, never half-used.
	bad := append([]byte(manifestMagic), 0)
	bad = append(bad, 0, 0, 0, 0, 0, 0, 0, 4 /* seq 4 */, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0)
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(manifestKey), Value: bad}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx); err == nil {
		t.Error("a manifest naming a missing chunk loaded")
	}
	if err := c.Save(ctx, 5, first); err != nil {
		t.Fatal(err)
	}
	if got, err = c.Load(ctx); err != nil || got.Seq != 5 || !bytes.Equal(got.Data, first) {
		t.Fatalf("after a good save: checkpoint %d, %v", got.Seq, err)
	}
}
