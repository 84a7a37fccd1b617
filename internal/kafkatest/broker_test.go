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
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "smoke", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}}
	defer w.Close()
	for i := 0; ; i++ {
		err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")})
		if err == nil {
			break
		}
		if i == 40 {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "smoke", Topic: "smoke", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil || string(m.Value) != "v" {
		t.Fatalf("read back %q, %v", m.Value, err)
	}
}
