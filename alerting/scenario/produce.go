package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/event"
)

// Producer writes event-v1 messages to a topic, keyed by terminal id (so a
// terminal's attempts stay in order on one partition), acknowledged by all
// in-sync replicas, in batches.
type Producer struct {
	w     *kafka.Writer
	buf   []kafka.Message
	batch int
	sent  int
	err   error
	// retried is how long writes waited for the topic to appear.
	retried time.Duration
}

// topicWait bounds how long a producer waits for its topic to appear.
const topicWait = 30 * time.Second

// NewProducer returns a producer for topic.
func NewProducer(brokers []string, topic string, batch int) *Producer {
	return &Producer{
		w: &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchSize: batch, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond, AllowAutoTopicCreation: true},
		batch: max(batch, 1),
	}
}

// Add queues one message, writing a batch when full. Errors are sticky.
func (p *Producer) Add(ctx context.Context, key string, value []byte) {
	if p.err != nil {
		return
	}
	p.buf = append(p.buf, kafka.Message{Key: []byte(key), Value: value})
	if len(p.buf) >= p.batch {
		p.flush(ctx)
	}
}

func (p *Producer) flush(ctx context.Context) {
	if len(p.buf) == 0 || p.err != nil {
		return
	}
	// A topic created on first use (the broker's auto-creation, or one
	// created just now) answers "unknown topic" or "no leader" for a few
	// seconds: wait for it rather than fail.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := p.w.WriteMessages(ctx, p.buf...)
		if err == nil {
			break
		}
		if (errors.Is(err, kafka.UnknownTopicOrPartition) || errors.Is(err, kafka.LeaderNotAvailable)) && p.retried < topicWait {
			p.retried += wait
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				continue
			}
		}
		p.err = fmt.Errorf("producing to %s: %w", p.w.Topic, err)
		return
	}
	p.sent += len(p.buf)
	p.buf = p.buf[:0]
}

// Err returns the first error.
func (p *Producer) Err() error { return p.err }

// Sent counts acknowledged messages.
func (p *Producer) Sent() int { return p.sent }

// Close writes what is queued and closes the writer.
func (p *Producer) Close(ctx context.Context) error {
	p.flush(ctx)
	if err := p.w.Close(); err != nil && p.err == nil {
		p.err = fmt.Errorf("closing producer: %w", err)
	}
	return p.err
}

// Flush writes what is queued now.
func (p *Producer) Flush(ctx context.Context) error {
	p.flush(ctx)
	return p.err
}

// Play produces the scenario to p, paced so that event time runs speed
// times faster than the clock (0: as fast as possible), with a badRatio
// share of extra invalid messages, and closes p.
func (s Scenario) Play(ctx context.Context, p *Producer, speed, badRatio float64) (Truth, error) {
	wallStart := time.Now()
	lastFlush := wallStart
	encode := s.encoder(badRatio, func(terminal string, msg []byte) {
		p.Add(ctx, terminal, bytes.Clone(msg))
	})
	truth, err := s.Generate(func(ev *event.Event) {
		if ctx.Err() != nil || p.Err() != nil {
			return
		}
		if speed > 0 {
			due := wallStart.Add(time.Duration(float64(ev.Time.Sub(s.Start)) / speed))
			if d := time.Until(due); d > 0 {
				p.Flush(ctx)
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		encode(ev)
		if time.Since(lastFlush) > 200*time.Millisecond {
			p.Flush(ctx)
			lastFlush = time.Now()
		}
	})
	if err != nil {
		return truth, err
	}
	if err := p.Close(ctx); err != nil {
		return truth, err
	}
	return truth, ctx.Err()
}
