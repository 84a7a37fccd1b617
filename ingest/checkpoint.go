package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// CheckpointTopic keeps detector checkpoints and the alert journal in one
// compacted, single-partition Kafka topic, so that a restarted instance or
// a standby on another machine resumes detection where it stopped (as
// Kafka Streams keeps operator state in compacted changelog topics).
//
// A checkpoint is opaque bytes cut into chunks (a few hundred KiB, under
// the broker's message size limit) written under the keys
// `checkpoint/<slot>/<n>`, then a manifest under `checkpoint/manifest`
// naming the slot, the checkpoint's sequence number, its size and CRC.
// Checkpoints alternate between two slots, so the chunks the latest
// manifest names are never overwritten by a checkpoint still being
// written: a crash mid-write leaves the previous checkpoint whole.
// Compaction keeps the newest value of every key, so the topic holds about
// two checkpoints and the journal.
//
// The journal holds, under `alert/<id>`, the alert records delivered since
// the latest checkpoint (their state), so that after a crash a record the
// restored detector raises again is not announced twice. Entries the next
// checkpoint covers are deleted with tombstones.
type CheckpointTopic struct {
	topic       string
	replication int
	client      *kafka.Client
	w           *kafka.Writer
	chunk       int
	log         *zap.Logger
}

// Checkpoint is what Load found.
type Checkpoint struct {
	Seq     uint64 // 0: no checkpoint yet
	Data    []byte
	Journal map[string][]byte // alert id → journal entry
	Bytes   int64             // read from the topic
}

// JournalEntry is one alert's journal record; a nil Value deletes it.
type JournalEntry struct {
	ID    string
	Value []byte
}

const (
	manifestKey    = "checkpoint/manifest"
	chunkKeyPrefix = "checkpoint/"
	journalPrefix  = "alert/"
	manifestMagic  = "DMCK1"
	// checkpointChunk keeps each chunk, in its own record batch, well
	// under the broker's default message.max.bytes (1 MB).
	checkpointChunk = 512 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewCheckpointTopic builds the client and writer (connecting lazily).
func NewCheckpointTopic(cfg KafkaConfig, log *zap.Logger) (*CheckpointTopic, error) {
	cfg = cfg.WithDefaults()
	_, transport, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.CheckpointTopic, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchSize: 1, BatchTimeout: time.Millisecond,
		// Everything goes to partition 0, the one Load reads, even if the
		// topic was created with more.
		Balancer:   kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }),
		BatchBytes: 1_000_000, Compression: kafka.Lz4, MaxAttempts: 3}
	return &CheckpointTopic{topic: cfg.CheckpointTopic, replication: cfg.CheckpointReplicationFactor,
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: 30 * time.Second},
		w:      w, chunk: checkpointChunk, log: log}, nil
}

// Topic is the checkpoint topic's name.
func (c *CheckpointTopic) Topic() string { return c.topic }

// Ensure creates the topic, compacted with one partition, unless it
// exists.
func (c *CheckpointTopic) Ensure(ctx context.Context) error {
	resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.topic, NumPartitions: 1, ReplicationFactor: c.replication,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
			{ConfigName: "segment.ms", ConfigValue: "600000"},
			// Segments of about a checkpoint or two, so compaction can
			// drop superseded checkpoints soon and Load reads few.
			{ConfigName: "segment.bytes", ConfigValue: "67108864"},
			{ConfigName: "min.cleanable.dirty.ratio", ConfigValue: "0.2"},
		},
	}}})
	if err != nil {
		return fmt.Errorf("creating checkpoint topic %s: %w", c.topic, err)
	}
	if err := resp.Errors[c.topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating checkpoint topic %s: %w", c.topic, err)
	}
	return nil
}

// Save writes checkpoint seq (seq > 0): its chunks, then its manifest. It
// returns once the broker has acknowledged both.
func (c *CheckpointTopic) Save(ctx context.Context, seq uint64, data []byte) error {
	slot := seq % 2
	var msgs []kafka.Message
	for i := 0; i == 0 || i*c.chunk < len(data); i++ {
		part := data[i*c.chunk : min((i+1)*c.chunk, len(data))]
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 12+len(part)), seq)
		v = binary.BigEndian.AppendUint32(v, uint32(i))
		msgs = append(msgs, kafka.Message{Key: []byte(chunkKeyPrefix + strconv.FormatUint(slot, 10) + "/" + strconv.Itoa(i)), Value: append(v, part...)})
	}
	if err := c.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing checkpoint %d to %s: %w", seq, c.topic, err)
	}
	m := append([]byte(manifestMagic), byte(slot))
	m = binary.BigEndian.AppendUint64(m, seq)
	m = binary.BigEndian.AppendUint32(m, uint32(len(msgs)))
	m = binary.BigEndian.AppendUint64(m, uint64(len(data)))
	m = binary.BigEndian.AppendUint32(m, crc32.Checksum(data, castagnoli))
	if err := c.w.WriteMessages(ctx, kafka.Message{Key: []byte(manifestKey), Value: m}); err != nil {
		return fmt.Errorf("writing checkpoint %d manifest to %s: %w", seq, c.topic, err)
	}
	return nil
}

// Journal writes alert journal entries (nil values delete).
func (c *CheckpointTopic) Journal(ctx context.Context, entries []JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(entries))
	for i, e := range entries {
		msgs[i] = kafka.Message{Key: []byte(journalPrefix + e.ID), Value: e.Value}
	}
	if err := c.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing %d alert journal entries to %s: %w", len(entries), c.topic, err)
	}
	return nil
}

// Load creates the topic if it is missing, reads it to its end and
// returns the latest whole checkpoint and the journal.
func (c *CheckpointTopic) Load(ctx context.Context) (Checkpoint, error) {
	out := Checkpoint{Journal: map[string][]byte{}}
	if err := c.Ensure(ctx); err != nil {
		return out, err
	}
	var parts []kafka.PartitionOffsets
	// Right after creation the partition's leader may not be known yet.
	for attempt := 0; ; attempt++ {
		resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			c.topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
		if err != nil {
			return out, fmt.Errorf("reading checkpoint topic %s offsets: %w", c.topic, err)
		}
		if parts = resp.Topics[c.topic]; len(parts) == 0 {
			return out, fmt.Errorf("reading checkpoint topic %s offsets: no partition 0", c.topic)
		}
		err = parts[0].Error
		if err == nil {
			break
		}
		if attempt >= 50 || !(errors.Is(err, kafka.NotLeaderForPartition) || errors.Is(err, kafka.LeaderNotAvailable) ||
			errors.Is(err, kafka.UnknownTopicOrPartition)) {
			return out, fmt.Errorf("reading checkpoint topic %s offsets: %w", c.topic, err)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	first, end := parts[0].FirstOffset, parts[0].LastOffset
	if end < 0 {
		return out, fmt.Errorf("reading checkpoint topic %s offsets: end offset unknown", c.topic)
	}
	latest := map[string][]byte{}
	for off := first; off < end; {
		f, err := c.client.Fetch(ctx, &kafka.FetchRequest{Topic: c.topic, Partition: 0, Offset: off,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond})
		if err == nil {
			err = f.Error
		}
		if err != nil {
			return out, fmt.Errorf("reading checkpoint topic %s at offset %d: %w", c.topic, off, err)
		}
		next := off
		for {
			r, err := f.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return out, fmt.Errorf("reading checkpoint topic %s at offset %d: %w", c.topic, next, err)
			}
			if r.Offset < off {
				continue // a batch starting before the requested offset
			}
			key, err := readBytes(r.Key)
			if err != nil {
				return out, err
			}
			value, err := readBytes(r.Value)
			if err != nil {
				return out, err
			}
			out.Bytes += int64(len(key) + len(value))
			if value == nil {
				delete(latest, string(key))
			} else {
				latest[string(key)] = value
			}
			next = r.Offset + 1
		}
		if next == off {
			if f.HighWatermark <= off {
				break
			}
			return out, fmt.Errorf("reading checkpoint topic %s: no progress at offset %d", c.topic, off)
		}
		off = next
	}
	for k, v := range latest {
		if id, ok := strings.CutPrefix(k, journalPrefix); ok {
			out.Journal[id] = v
		}
	}
	m, ok := latest[manifestKey]
	if !ok {
		return out, nil
	}
	if len(m) != len(manifestMagic)+1+8+4+8+4 || string(m[:len(manifestMagic)]) != manifestMagic {
		return out, &UnusableCheckpointError{fmt.Sprintf("checkpoint topic %s: manifest of an unknown format", c.topic)}
	}
	m = m[len(manifestMagic):]
	slot, seq := m[0], binary.BigEndian.Uint64(m[1:])
	n, size, sum := binary.BigEndian.Uint32(m[9:]), binary.BigEndian.Uint64(m[13:]), binary.BigEndian.Uint32(m[21:])
	if size > 1<<40 {
		return out, &UnusableCheckpointError{fmt.Sprintf("checkpoint topic %s: manifest of checkpoint %d gives size %d", c.topic, seq, size)}
	}
	data := make([]byte, 0, size)
	for i := range n {
		v := latest[chunkKeyPrefix+strconv.Itoa(int(slot))+"/"+strconv.Itoa(int(i))]
		if len(v) < 12 || binary.BigEndian.Uint64(v) != seq || binary.BigEndian.Uint32(v[8:]) != i {
			return out, &UnusableCheckpointError{fmt.Sprintf("checkpoint topic %s: checkpoint %d misses chunk %d of %d", c.topic, seq, i, n)}
		}
		data = append(data, v[12:]...)
	}
	if uint64(len(data)) != size || crc32.Checksum(data, castagnoli) != sum {
		return out, &UnusableCheckpointError{fmt.Sprintf("checkpoint topic %s: checkpoint %d fails its size or checksum", c.topic, seq)}
	}
	out.Seq, out.Data = seq, data
	return out, nil
}

// UnusableCheckpointError says the topic was read but its latest
// checkpoint cannot be used (written by another version, or torn by two
// writers): reading again will not help. Load still returns the journal.
type UnusableCheckpointError struct{ Msg string }

func (e *UnusableCheckpointError) Error() string { return e.Msg }

func readBytes(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	v, err := io.ReadAll(b)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint record: %w", err)
	}
	return v, nil
}

// Close flushes and closes the writer.
func (c *CheckpointTopic) Close() error { return c.w.Close() }
