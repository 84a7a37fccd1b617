package ingest

import (
	"context"
	"time"
)

// Message is one raw message as a source delivered it, with where it was
// read. Sources (a JSONL file, a Kafka consumer group) produce Messages;
// the pipeline decodes them.
type Message struct {
	Key, Value []byte
	Topic      string
	Partition  int
	Offset     int64
	// HighWaterMark is the partition's end offset when the message was
	// fetched, -1 when the source has none: lag = HighWaterMark-Offset-1.
	HighWaterMark int64
	// Time is the broker's timestamp (zero for files).
	Time time.Time
	// OriginTopic and OriginPartition name the partition the event was
	// first produced to: Topic and Partition, or what a forwarding ingest
	// instance recorded (see Forward). Detection merges by origin.
	OriginTopic     []byte
	OriginPartition int
	// TooLarge is set when the message exceeded the source's size limit;
	// Value then holds nothing usable.
	TooLarge bool
}

// Reader delivers messages until it is closed: Fetch blocks for the next
// one or until ctx ends.
type Reader interface {
	Fetch(ctx context.Context) (Message, error)
	Close() error
}

// Position is how far one partition has been processed: Offset is the
// last processed message.
type Position struct {
	Topic         string
	Partition     int
	Offset        int64
	HighWaterMark int64 // as fetched with that message; -1 when unknown
}

// Lag is how many messages the partition held beyond Offset when it was
// fetched (0 when unknown).
func (p Position) Lag() int64 {
	if p.HighWaterMark < 0 {
		return 0
	}
	return max(p.HighWaterMark-p.Offset-1, 0)
}

// Headers that carry an event's origin and a dead letter's story.
const (
	HeaderSourceTopic     = "declinemon-source-topic"
	HeaderSourcePartition = "declinemon-source-partition"
	HeaderSourceOffset    = "declinemon-source-offset"
	HeaderSourceTime      = "declinemon-source-time"
	HeaderReason          = "declinemon-reason"
	HeaderField           = "declinemon-field"
	HeaderError           = "declinemon-error"
	HeaderRejectedAt      = "declinemon-rejected-at"
	HeaderTruncated       = "declinemon-truncated-from-bytes"
)

// DeadLetter is the copy of a rejected message kept for diagnosis: its key
// and value masked (Mask), why it was rejected and where it came from.
type DeadLetter struct {
	Key, Value []byte
	Reason     Reason
	Field      string
	Error      string
	Topic      string
	Partition  int
	Offset     int64
	Time       time.Time // broker time of the original
	RejectedAt time.Time
}

// NewDeadLetter builds the dead letter of m, rejected with de. Card data
// never leaves it unmasked.
func NewDeadLetter(m *Message, de *DecodeError, now time.Time) DeadLetter {
	return DeadLetter{Key: Mask(m.Key), Value: Mask(m.Value), Reason: de.Reason, Field: de.Field, Error: de.Error(),
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time, RejectedAt: now}
}

// Forward is an accepted event on its way to a separate detection stage:
// re-encoded from the decoded event (event.AppendJSON), keyed by terminal,
// with the partition it was first produced to.
type Forward struct {
	Key, Value      []byte
	OriginTopic     []byte
	OriginPartition int
}
