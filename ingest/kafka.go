package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/declinemon/declinemon/internal/ratelog"
)

// KafkaSource consumes event-v1 topics in a consumer group
// (segmentio/kafka-go): Fetch hands out messages in fetch order, Commit
// commits processed positions. It connects lazily.
type KafkaSource struct {
	cfg       KafkaConfig
	balancers []kafka.GroupBalancer
	standby   *activeStandby    // the balancer, when active/standby
	ranged    *countingBalancer // the balancer otherwise
	dialer    *kafka.Dialer
	transport *kafka.Transport
	reader    *kafka.Reader
	errLog    *ratelog.Logger
	log       *zap.Logger
	topics    map[string][]byte // topic names as bytes, so Fetch does not allocate them

	// The consumer's health as Ready reports it: errors the reader met
	// since the last message fetched (a broker outage, a lost
	// coordinator) mean consumption is stalled.
	stall stallTracker
	// idleTimeouts counts harmless fetch deadlines (IdleReadTimeouts).
	idleTimeouts atomic.Uint64

	rejoin      atomic.Bool
	rejoinAsked time.Time // written before rejoin is set
	rewind      bool      // set and read on the fetching goroutine
	// fetched and committed offsets per partition (Fetch and Commit run on
	// the same goroutine): a rejoin waits until they agree.
	fetched     map[partitionOf]*int64
	committed   map[partitionOf]int64
	lastFetched partitionOf
	lastOffset  *int64
}

type partitionOf struct {
	topic     string
	partition int
}

// NewKafkaSource validates cfg (defaults applied) and builds the consumer.
// With activeStandby the group gives every partition to its oldest member
// and none to the others (detection must see the whole fleet; see
// activeStandby); otherwise partitions are spread over the members.
func NewKafkaSource(cfg KafkaConfig, log *zap.Logger, activeStandby bool) (*KafkaSource, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid kafka config: %w", err)
	}
	dialer, transport, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	s := &KafkaSource{cfg: cfg, dialer: dialer, transport: transport, errLog: ratelog.New(log, 10*time.Second), log: log, topics: map[string][]byte{},
		fetched: map[partitionOf]*int64{}, committed: map[partitionOf]int64{}}
	if activeStandby {
		s.standby = newActiveStandby(time.Now())
		s.balancers = []kafka.GroupBalancer{s.standby}
	} else {
		s.ranged = &countingBalancer{GroupBalancer: kafka.RangeGroupBalancer{}}
		s.balancers = []kafka.GroupBalancer{s.ranged}
	}
	return s, nil
}

// subscribe creates the reader for the configured topics that exist now;
// false while none does. A consumer group's metadata requests name its
// topics, and a broker with auto.create.topics.enable creates any that
// is missing with its own defaults — a misspelt topic would be created,
// and one the operator meant to create with its partitions would not be.
// Topics created later join through RequestRejoin.
func (s *KafkaSource) subscribe(ctx context.Context) bool {
	topics := s.cfg.Topics
	err := s.TopicsExist(ctx)
	var missing *MissingTopicsError
	switch {
	case errors.As(err, &missing):
		topics = slices.DeleteFunc(slices.Clone(topics), func(t string) bool { return slices.Contains(missing.Topics, t) })
	case err != nil:
		return false
	}
	if len(topics) == 0 {
		return false
	}
	s.reader = s.newReader(topics)
	return true
}

func (s *KafkaSource) newReader(topics []string) *kafka.Reader {
	cfg := s.cfg
	start := kafka.FirstOffset
	if cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, GroupID: cfg.GroupID, GroupTopics: topics, Dialer: s.dialer,
		MinBytes: cfg.MinBytes, MaxBytes: cfg.MaxBytes, MaxWait: cfg.MaxWait, StartOffset: start,
		QueueCapacity: 1000, ReadBatchTimeout: 10 * time.Second,
		SessionTimeout: cfg.SessionTimeout, HeartbeatInterval: cfg.HeartbeatInterval, RebalanceTimeout: cfg.RebalanceTimeout,
		WatchPartitionChanges: true, PartitionWatchInterval: cfg.PartitionWatchInterval, JoinGroupBackoff: time.Second,
		GroupBalancers: s.balancers,
		ErrorLogger:    kafka.LoggerFunc(s.readerError),
	})
}

// readerError takes what kafka-go's reader and consumer group report. A
// fetch deadline on a quiet partition is harmless: counted and logged at
// debug level. Everything else counts towards a stall and is a
// (rate-limited) warning; the ones a healthy group also meets while it
// changes carry a one-line meaning.
func (s *KafkaSource) readerError(msg string, args ...any) {
	s.logReaderError(true, msg, args)
}

// backfillError is readerError for Backfill's readers: their errors are
// logged (at a bounded rate), but are not the consumer's, so they do not
// count towards its stall (Ready) or its idle fetch deadlines.
func (s *KafkaSource) backfillError(msg string, args ...any) {
	s.logReaderError(false, msg, args)
}

// logReaderError is readerError, for the consumer or for a Backfill reader.
func (s *KafkaSource) logReaderError(consumer bool, msg string, args []any) {
	text := fmt.Sprintf(msg, args...)
	if idleReadTimeout(text) {
		if consumer {
			n := s.idleTimeouts.Add(1)
			s.log.Debug("kafka reader: a fetch waited past its deadline on a quiet partition (harmless; it is retried)",
				zap.String("error", text), zap.Uint64("total", n))
		}
		return
	}
	fields := []zap.Field{zap.String("error", text)}
	if m := transientMeaning(args); m != "" {
		fields = append(fields, zap.String("meaning", m))
	}
	if !consumer {
		s.errLog.Warn("kafka reader of a partition read again for storage", "backfill", fields...)
		return
	}
	s.stall.failed(text)
	s.errLog.Warn("kafka reader", "reader", fields...)
}

// IdleReadTimeouts counts the harmless fetch deadlines on quiet partitions
// (see idleReadTimeout) since the consumer started.
func (s *KafkaSource) IdleReadTimeouts() uint64 { return s.idleTimeouts.Load() }

// transientMeaning explains the broker errors a consumer group meets while
// it changes — a member joins or leaves, a broker restarts — which
// kafka-go retries by itself. They are still warnings: if they do not
// stop, /readyz reports the consumer stalled.
func transientMeaning(args []any) string {
	for _, a := range args {
		err, ok := a.(error)
		if !ok {
			continue
		}
		switch {
		case errors.Is(err, kafka.RebalanceInProgress):
			return "the consumer group is rebalancing (a member joined or left, or partitions were added); retried until it settles"
		case errors.Is(err, kafka.GroupCoordinatorNotAvailable), errors.Is(err, kafka.NotCoordinatorForGroup), errors.Is(err, kafka.GroupLoadInProgress):
			return "the brokers are (re)assigning the group's coordinator, at startup or after a broker restart; retried"
		case errors.Is(err, kafka.NotLeaderForPartition), errors.Is(err, kafka.LeaderNotAvailable):
			return "partition leadership is moving between brokers; the reader reconnects to the new leader"
		}
	}
	return ""
}

// RequestRejoin asks the consumer to leave and join its group again (a
// topic it waited for now exists). It happens in Fetch, once everything
// fetched so far is committed, so nothing is delivered twice. Safe to call
// from any goroutine.
func (s *KafkaSource) RequestRejoin() {
	s.rejoinAsked = time.Now()
	s.rejoin.Store(true)
}

// Rewind makes the next Fetch deliver again from the group's committed
// offsets: the reader leaves the group and a new one joins, so whatever
// was fetched beyond the commits is delivered again (storage re-reads what
// it could not store while detection went on). Call it from the fetching
// goroutine.
func (s *KafkaSource) Rewind() { s.rewind = true }

// Backfill reads one partition of the group's topics from offset from on,
// outside the group: nothing is committed and the group is not joined, so
// the consumer goes on with its own partitions meanwhile (storage catches
// up with what detection handled while ClickHouse was away). Safe to call
// from any goroutine; the reader is used from one.
func (s *KafkaSource) Backfill(topic string, partition int, from int64) (Reader, error) {
	cfg := s.cfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: topic, Partition: partition, Dialer: s.dialer,
		MinBytes: cfg.MinBytes, MaxBytes: cfg.MaxBytes, MaxWait: cfg.MaxWait,
		QueueCapacity: 1000, ReadBatchTimeout: 10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(s.backfillError),
	})
	if err := r.SetOffset(from); err != nil {
		r.Close()
		return nil, fmt.Errorf("reading %s/%d from offset %d: %w", topic, partition, from, err)
	}
	return &partitionReader{r: r, topic: []byte(topic), errLog: s.errLog}, nil
}

// partitionReader is Backfill's reader.
type partitionReader struct {
	r      *kafka.Reader
	topic  []byte
	errLog *ratelog.Logger
}

// Fetch blocks until the next message arrives or ctx ends; transient
// errors (a broker down) are logged at a bounded rate and retried.
func (p *partitionReader) Fetch(ctx context.Context) (Message, error) {
	for {
		m, err := p.r.FetchMessage(ctx)
		if err == nil {
			return message(&m, p.topic), nil
		}
		if err := fetchFailed(ctx, err, func() {
			p.errLog.Warn("reading a partition again for storage", "backfill", zap.Error(err))
		}); err != nil {
			return Message{}, err
		}
	}
}

// fetchFailed takes a failed fetch: the error to return (ctx's, or
// ErrSourceClosed), or nil once it has logged a transient error and waited
// to fetch again.
func fetchFailed(ctx context.Context, err error, log func()) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		return ErrSourceClosed
	}
	log()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}

func (p *partitionReader) Close() error { return p.r.Close() }

// rejoinWait bounds how long a rejoin waits for commits to catch up.
const rejoinWait = 30 * time.Second

// Joins counts the times this consumer joined its group. Partitions may
// have changed hands at each: detection re-checks its checkpoint then,
// storage what is already stored.
func (s *KafkaSource) Joins() uint64 {
	if s.standby == nil {
		return s.ranged.joins.Load()
	}
	return s.standby.joins.Load()
}

// Config is the configuration in use, defaults applied.
func (s *KafkaSource) Config() KafkaConfig { return s.cfg }

// ErrSourceClosed is returned by Fetch once the consumer is closed.
var ErrSourceClosed = errors.New("kafka consumer closed")

// Fetch blocks until a message arrives or ctx ends. Transient errors
// (broker down, rebalance) are logged at a bounded rate and retried.
func (s *KafkaSource) Fetch(ctx context.Context) (Message, error) {
	for {
		if s.rewind || s.rejoin.Load() && (s.allCommitted() || time.Since(s.rejoinAsked) > rejoinWait) {
			s.rewind = false
			s.rejoin.Store(false)
			if s.reader != nil {
				s.reader.Close()
				s.reader = nil
			}
			clear(s.fetched)
			clear(s.committed)
			s.lastOffset = nil
		}
		if s.reader == nil && !s.subscribe(ctx) {
			select {
			case <-ctx.Done():
				return Message{}, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		m, err := s.reader.FetchMessage(ctx)
		if err == nil {
			if s.lastOffset == nil || s.lastFetched.partition != m.Partition || s.lastFetched.topic != m.Topic {
				s.lastFetched = partitionOf{m.Topic, m.Partition}
				if s.lastOffset = s.fetched[s.lastFetched]; s.lastOffset == nil {
					s.lastOffset = new(int64)
					s.fetched[s.lastFetched] = s.lastOffset
				}
			}
			*s.lastOffset = m.Offset
			s.stall.fetched()
			return s.message(&m), nil
		}
		if err := fetchFailed(ctx, err, func() {
			s.stall.failed(err.Error())
			s.errLog.Warn("fetching message", "fetch", zap.Error(err))
		}); err != nil {
			return Message{}, err
		}
	}
}

func (s *KafkaSource) message(m *kafka.Message) Message {
	topic, ok := s.topics[m.Topic]
	if !ok {
		topic = []byte(m.Topic)
		s.topics[m.Topic] = topic
	}
	return message(m, topic)
}

// message is m as the pipeline takes it; topic is m.Topic as bytes.
func message(m *kafka.Message, topic []byte) Message {
	out := Message{Key: m.Key, Value: m.Value, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		HighWaterMark: m.HighWaterMark, Time: m.Time, OriginTopic: topic, OriginPartition: m.Partition}
	// A forwarding ingest instance names the partition the event was first
	// produced to; the detection stage orders by it.
	var origin []byte
	partition := -1
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderSourceTopic:
			origin = h.Value
		case HeaderSourcePartition:
			if n, ok := atoi(h.Value); ok {
				partition = n
			}
		}
	}
	if partition >= 0 && validOrigin(origin) {
		out.OriginTopic, out.OriginPartition = origin, partition
	}
	return out
}

// validOrigin accepts an origin header only if it can be a Kafka topic
// name (at most 249 of [a-zA-Z0-9._-]) and holds no card data: any
// producer can set headers, and the origin travels on in forwards.
func validOrigin(topic []byte) bool {
	if len(topic) == 0 || len(topic) > 249 {
		return false
	}
	for _, c := range topic {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return !CarriesCardData(topic)
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 { // partitions: at most 99,999
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// CommitError is a failed commit: typically a rebalance took the
// partitions away, and their new owner re-reads from the last commit.
type CommitError struct{ Err error }

func (e *CommitError) Error() string { return "committing offsets: " + e.Err.Error() }
func (e *CommitError) Unwrap() error { return e.Err }

// Commit commits the given positions (the last processed message of each
// partition).
func (s *KafkaSource) Commit(ctx context.Context, positions []Position) error {
	msgs := make([]kafka.Message, len(positions))
	for i, p := range positions {
		msgs[i] = kafka.Message{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset}
	}
	if s.reader == nil && !s.subscribe(ctx) {
		return &CommitError{errors.New("no topic to consume exists")}
	}
	if err := s.reader.CommitMessages(ctx, msgs...); err != nil {
		return &CommitError{err}
	}
	for _, p := range positions {
		s.committed[partitionOf{p.Topic, p.Partition}] = p.Offset
	}
	return nil
}

func (s *KafkaSource) allCommitted() bool {
	for k, off := range s.fetched {
		if c, ok := s.committed[k]; !ok || c < *off {
			return false
		}
	}
	return true
}

// Lag is the consumer's total lag as the reader last saw it.
func (s *KafkaSource) Lag() int64 {
	if s.reader == nil {
		return 0
	}
	return s.reader.Stats().Lag
}

// Ready reports whether a broker answers, every topic to consume exists
// (a missing one is consumed within partition_watch_interval of its
// creation; until then the instance is not ready) and the reader is not
// stalled by repeated errors.
func (s *KafkaSource) Ready(ctx context.Context) error {
	if err := s.TopicsExist(ctx); err != nil {
		return err
	}
	return s.stall.err(time.Now())
}

// TopicsExist reports whether a broker answers and every topic to consume
// exists (*MissingTopicsError when not).
func (s *KafkaSource) TopicsExist(ctx context.Context) error {
	var errs []error
	for _, b := range s.cfg.Brokers {
		conn, err := s.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = s.topicsExist(conn)
		conn.Close()
		if err == nil {
			return nil
		}
		var missing *MissingTopicsError
		if errors.As(err, &missing) {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no kafka broker reachable: %w", errors.Join(errs...))
}

// idleReadTimeout reports kafka-go's complaint about a partition fetch that
// reached its read deadline: it happens on partitions with nothing new (a
// quiet topic, the end of a day's traffic) and the fetch is simply
// retried, so it neither stalls the consumer nor deserves a warning. A
// broker that is really gone also fails heartbeats, joins and dials, which
// do count.
func idleReadTimeout(text string) bool {
	return strings.Contains(text, "reading partition") && strings.Contains(text, "i/o timeout")
}

// stallTracker notes reader errors against fetched messages.
type stallTracker struct {
	errs    atomic.Int64 // errors since the last message
	since   atomic.Int64 // unix ns of the first of them
	lastAt  atomic.Int64 // and of the last
	lastErr atomic.Pointer[string]
}

// stallErrors is how many reader errors in a row, with no message in
// between, make the consumer stalled, while the last is under stallRecent
// old: one is often harmless (a fetch timing out on a busy machine), and
// a member that fetches nothing (a standby, an idle topic) is healthy
// again once the errors stop.
const (
	stallErrors = 3
	stallRecent = 30 * time.Second
)

func (t *stallTracker) fetched() {
	if t.errs.Load() != 0 {
		t.errs.Store(0)
	}
}

func (t *stallTracker) failed(msg string) {
	now := time.Now().UnixNano()
	if t.errs.Add(1) == 1 {
		t.since.Store(now)
	}
	t.lastAt.Store(now)
	t.lastErr.Store(&msg)
}

func (t *stallTracker) err(now time.Time) error {
	if t.errs.Load() < stallErrors || now.Sub(time.Unix(0, t.lastAt.Load())) > stallRecent {
		return nil
	}
	msg := ""
	if p := t.lastErr.Load(); p != nil {
		msg = *p
	}
	return fmt.Errorf("consumer stalled for %s: %d kafka errors and no message since; last: %s",
		now.Sub(time.Unix(0, t.since.Load())).Round(time.Second), t.errs.Load(), msg)
}

// MembersWithPartitions counts the group's members that hold partitions
// right now: more than one means the topic is split between instances.
func (s *KafkaSource) MembersWithPartitions(ctx context.Context) (int, error) {
	c := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Transport: s.transport}
	resp, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{s.cfg.GroupID}})
	if err != nil {
		return 0, fmt.Errorf("describing group %s: %w", s.cfg.GroupID, err)
	}
	n := 0
	for _, g := range resp.Groups {
		if g.Error != nil {
			return 0, fmt.Errorf("describing group %s: %w", s.cfg.GroupID, g.Error)
		}
		for _, m := range g.Members {
			for _, t := range m.MemberAssignments.Topics {
				if len(t.Partitions) > 0 {
					n++
					break
				}
			}
		}
	}
	return n, nil
}

// MissingTopicsError names configured topics the cluster does not have.
type MissingTopicsError struct{ Topics []string }

func (e *MissingTopicsError) Error() string {
	return fmt.Sprintf("topics %v do not exist yet: consumption starts within seconds of their creation", e.Topics)
}

func (s *KafkaSource) topicsExist(conn *kafka.Conn) error {
	parts, err := conn.ReadPartitions()
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, p := range parts {
		have[p.Topic] = true
	}
	var missing []string
	for _, t := range s.cfg.Topics {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return &MissingTopicsError{missing}
	}
	return nil
}

// Close leaves the group at once, so it rebalances without waiting for
// the session to time out.
func (s *KafkaSource) Close() error {
	if s.reader == nil {
		return nil
	}
	return s.reader.Close()
}

func newWriter(cfg KafkaConfig, topic string) (*kafka.Writer, error) {
	_, transport, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true,
		BatchBytes: int64(cfg.MaxBytes) + 1<<20}, nil
}

// DeadLetterTopic writes dead letters to kafka.dlq_topic.
type DeadLetterTopic struct {
	w        *kafka.Writer
	maxBytes int
	log      *ratelog.Logger
	// Refused counts dead letters the broker refused for good (too large
	// for the topic even after truncation): counted and logged, never a
	// reason to stop the partition.
	Refused atomic.Uint64
}

// NewDeadLetterTopic builds the writer (connecting lazily).
func NewDeadLetterTopic(cfg KafkaConfig, log *zap.Logger) (*DeadLetterTopic, error) {
	cfg = cfg.WithDefaults()
	w, err := newWriter(cfg, cfg.DLQTopic)
	if err != nil {
		return nil, err
	}
	return &DeadLetterTopic{w: w, maxBytes: cfg.DLQMaxMessageBytes, log: ratelog.New(log, 10*time.Second)}, nil
}

// Write makes the dead letters durable. It returns those still to retry
// with the error; letters refused for good are counted and dropped.
func (d *DeadLetterTopic) Write(ctx context.Context, letters []DeadLetter) ([]DeadLetter, error) {
	msgs := make([]kafka.Message, len(letters))
	for i := range letters {
		msgs[i] = d.message(&letters[i])
	}
	err := d.w.WriteMessages(ctx, msgs...)
	if err == nil {
		return nil, nil
	}
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(letters) {
		return letters, err
	}
	var retry []DeadLetter
	var last error
	for i, e := range werrs {
		switch {
		case e == nil:
		case errors.Is(e, kafka.MessageSizeTooLarge):
			d.Refused.Add(1)
			d.log.Error("dead letter refused by the broker as too large; dropped (lower kafka.dlq_max_message_bytes)", "refused",
				zap.String("source_topic", letters[i].Topic), zap.Int("source_partition", letters[i].Partition),
				zap.Int64("source_offset", letters[i].Offset), zap.Int("bytes", len(msgs[i].Value)))
		default:
			retry = append(retry, letters[i])
			last = e
		}
	}
	if len(retry) == 0 {
		return nil, nil
	}
	return retry, fmt.Errorf("%d of %d dead letters not written: %w", len(retry), len(letters), last)
}

// message encodes a dead letter, truncating its payload so that payload
// and headers stay within maxBytes.
func (d *DeadLetterTopic) message(l *DeadLetter) kafka.Message {
	h := []kafka.Header{
		{Key: HeaderReason, Value: []byte(l.Reason.String())},
		{Key: HeaderField, Value: []byte(l.Field)},
		{Key: HeaderError, Value: []byte(l.Error)},
		{Key: HeaderSourceTopic, Value: []byte(l.Topic)},
		{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(l.Partition), 10)},
		{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, l.Offset, 10)},
		{Key: HeaderSourceTime, Value: []byte(l.Time.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderRejectedAt, Value: []byte(l.RejectedAt.UTC().Format(time.RFC3339Nano))},
	}
	size := len(l.Key) + 64 // record overhead
	for _, x := range h {
		size += len(x.Key) + len(x.Value) + 8
	}
	value := l.Value
	if room := d.maxBytes - size - 64; len(value) > room {
		h = append(h, kafka.Header{Key: HeaderTruncated, Value: strconv.AppendInt(nil, int64(len(value)), 10)})
		value = value[:max(room, 0)]
	}
	return kafka.Message{Key: l.Key, Value: value, Headers: h}
}

// Close flushes and closes the writer.
func (d *DeadLetterTopic) Close() error { return d.w.Close() }

// ForwardTopic writes accepted events to kafka.forward_topic for a
// separate detection stage, with their origin in headers.
type ForwardTopic struct{ w *kafka.Writer }

// NewForwardTopic builds the writer (connecting lazily).
func NewForwardTopic(cfg KafkaConfig) (*ForwardTopic, error) {
	cfg = cfg.WithDefaults()
	w, err := newWriter(cfg, cfg.ForwardTopic)
	if err != nil {
		return nil, err
	}
	return &ForwardTopic{w: w}, nil
}

// Write makes the forwards durable (all or, with the error, all again).
func (f *ForwardTopic) Write(ctx context.Context, fwd []Forward) ([]Forward, error) {
	msgs := make([]kafka.Message, len(fwd))
	for i, x := range fwd {
		msgs[i] = kafka.Message{Key: x.Key, Value: x.Value, Headers: []kafka.Header{
			{Key: HeaderSourceTopic, Value: x.OriginTopic},
			{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(x.OriginPartition), 10)},
		}}
	}
	if err := f.w.WriteMessages(ctx, msgs...); err != nil {
		return fwd, err
	}
	return nil, nil
}

// Close flushes and closes the writer.
func (f *ForwardTopic) Close() error { return f.w.Close() }
