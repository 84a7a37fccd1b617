package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestBrokerStartsAndServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(ctx)
	if err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skip("no broker:", err)
	}
	defer b.Stop()
	if err := b.CreateTopic(ctx, "smoke", 2); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "smoke", RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, Topic: "smoke", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	_ = r
}
