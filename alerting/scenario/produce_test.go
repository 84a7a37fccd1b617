package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/declinemon/declinemon/internal/kafkatest"
)

// TestProduceToATopicNotYetCreated: the broker creates the topic on first
// use and answers "unknown topic" meanwhile; loadgen waits instead of
// failing (compose starts loadgen before anything created the topic).
func TestProduceToATopicNotYetCreated(t *testing.T) {
	b := kafkatest.ForTest(t, kafkatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewProducer([]string{b.Addr}, "created.on.first.use", 10)
	for range 25 {
		p.Add(ctx, "T1", []byte(`{}`))
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Sent() != 25 {
		t.Fatalf("sent %d of 25", p.Sent())
	}
}
