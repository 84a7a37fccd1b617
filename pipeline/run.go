package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Store is what the runner needs from storage: Write returns once the
// batch is durable. Offsets are committed only after it returns nil.
type Store interface {
	Write(ctx context.Context, batch []event.Classified) error
}

// NopStore discards events; the stand-in until a storage backend is
// configured.
type NopStore struct{}

// Write implements Store.
func (NopStore) Write(context.Context, []event.Classified) error { return nil }

// AlertSink receives alert records at each flush.
type AlertSink interface {
	Send(ctx context.Context, alerts []alerting.Alert) error
}

// JSONLAlerts writes alert records as JSON lines (e.g. to --alerts-out).
type JSONLAlerts struct{ W io.Writer }

// Send implements AlertSink.
func (j JSONLAlerts) Send(_ context.Context, alerts []alerting.Alert) error {
	for i := range alerts {
		line, err := alerts[i].MarshalJSONLine()
		if err != nil {
			return err
		}
		if _, err := j.W.Write(line); err != nil {
			return fmt.Errorf("writing alert: %w", err)
		}
	}
	return nil
}

// LogAlerts logs alert records.
type LogAlerts struct{ Log *zap.Logger }

// Send implements AlertSink.
func (l LogAlerts) Send(_ context.Context, alerts []alerting.Alert) error {
	for _, a := range alerts {
		l.Log.Warn("alert", zap.String("alert_id", a.ID), zap.String("state", a.State), zap.Stringer("kind", a.Kind),
			zap.String("scope_type", a.ScopeType), zap.String("scope_id", a.ScopeID), zap.String("cause", a.Cause),
			zap.Time("detected_at", a.DetectedAt), zap.String("summary", a.Summary))
	}
	return nil
}

// RunStats are the runner's counters, safe to read while it runs (the
// metrics hooks for the observability issue).
type RunStats struct {
	Messages, Bytes, Accepted atomic.Uint64
	Rejected                  [ingest.NumReasons]atomic.Uint64
	Late                      atomic.Uint64
	DeadLettered, Forwarded   atomic.Uint64
	Flushes, FlushRetries     atomic.Uint64
	Committed                 atomic.Uint64 // messages whose offsets were committed
	CommitNanos               atomic.Int64  // latency of the last commit
	Alerts                    atomic.Uint64
	Lag                       atomic.Int64 // reader lag at the last flush
	Approved                  atomic.Uint64
	ByCause                   [event.NumCauses]atomic.Uint64      // declines by cause
	AlertsByKind              [alerting.NumKinds][2]atomic.Uint64 // [kind][0 firing, 1 resolved]
	ActiveByKind              [alerting.NumKinds]atomic.Int64
	DetectorScopes            atomic.Int64
	DetectorRecords           atomic.Int64
	EvictedIdle, EvictedCap   atomic.Uint64 // detector scopes evicted, by reason
	LastFlush                 atomic.Int64  // unix nanos of the last successful flush

	mu           sync.Mutex
	partitionLag map[string]int64 // "topic/partition" → messages behind the high watermark
}

// PartitionLag returns, per "topic/partition", how many messages were
// behind the partition's high watermark at the last flush.
func (s *RunStats) PartitionLag() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.partitionLag))
	for k, v := range s.partitionLag {
		out[k] = v
	}
	return out
}

func (s *RunStats) setLag(topic string, partition int, lag int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partitionLag == nil {
		s.partitionLag = map[string]int64{}
	}
	s.partitionLag[topic+"/"+strconv.Itoa(partition)] = lag
}

// FlushObserver is told how long each flush stage took and how big the
// storage batch was (the metrics implement it).
type FlushObserver interface {
	ObserveStage(stage string, d time.Duration)
	ObserveBatch(events int)
}

// RunOptions configure a Runner.
type RunOptions struct {
	Config   Config
	Rules    *classify.Rules
	Store    Store       // nil: NopStore
	Alerts   []AlertSink // where alert records go at each flush
	Log      *zap.Logger
	Observer FlushObserver // optional
}

// Runner is `declinemon run`: consume event-v1 topics in a consumer group,
// decode → classify → detect, and per flush make everything durable in
// order — storage, dead letters, forwards, alerts — before committing the
// offsets. Processing is one goroutine in fetch order, so a committed
// offset never passes an unflushed message of its partition.
type Runner struct {
	cfg    Config
	kc     KafkaConfig
	log    *zap.Logger
	store  Store
	sinks  []AlertSink
	obs    FlushObserver
	active activeAlerts
	proc   *Processor
	engine *alerting.Engine
	merge  *merger
	stats  RunStats

	reader  *kafka.Reader
	dlq     *kafka.Writer
	forward *kafka.Writer

	accepted []event.Classified
	dead     []kafka.Message
	fwd      []kafka.Message
	last     map[topicPartition]kafka.Message
	alerts   []alerting.Alert
	sent     []int // per sink, how many of alerts it has accepted
	pending  int

	topicBytes map[string][]byte

	errLog    rateLimited
	rejectLog rateLimited
}

type topicPartition struct {
	topic     string
	partition int
}

// NewRunner validates the configuration and builds the runner. It does not
// connect yet.
func NewRunner(o RunOptions) (*Runner, error) {
	kc := o.Config.Kafka.withDefaults()
	if err := kc.Validate(); err != nil {
		return nil, fmt.Errorf("invalid kafka config: %w", err)
	}
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: o.Config, kc: kc, log: o.Log, store: o.Store, sinks: o.Alerts, obs: o.Observer,
		last: map[topicPartition]kafka.Message{}, topicBytes: map[string][]byte{}}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.store == nil {
		r.store = NopStore{}
	}
	rules := o.Rules
	if rules == nil {
		rules = classify.Default()
	}
	if !o.Config.DisableDetection {
		eng, err := alerting.NewEngine(o.Config.Detection, func(a alerting.Alert) { r.alerts = append(r.alerts, a) })
		if err != nil {
			return nil, err
		}
		r.engine = eng
		r.merge = newMerger(200_000, 3*time.Second)
	}
	// The runner feeds the detector itself, through the merger.
	r.proc = NewProcessor(ingest.NewDecoder(o.Config.DecoderConfig()), rules, nil)
	r.errLog = rateLimited{log: r.log, every: 10 * time.Second}
	r.rejectLog = rateLimited{log: r.log, every: 10 * time.Second}
	return r, nil
}

// Stats returns the live counters.
func (r *Runner) Stats() *RunStats { return &r.stats }

// Engine returns the detector (nil when detection is disabled).
func (r *Runner) Engine() *alerting.Engine { return r.engine }

// Run consumes until ctx is cancelled, then stops fetching, flushes and
// commits what it processed (bounded by ShutdownTimeout) and closes the
// reader so the group rebalances at once. It returns nil on a clean stop.
func (r *Runner) Run(ctx context.Context) error {
	dialer, transport, err := r.kc.dialer()
	if err != nil {
		return err
	}
	start := kafka.FirstOffset
	if r.kc.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	r.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers: r.kc.Brokers, GroupID: r.kc.GroupID, GroupTopics: r.kc.Topics, Dialer: dialer,
		MinBytes: r.kc.MinBytes, MaxBytes: r.kc.MaxBytes, MaxWait: r.kc.MaxWait, StartOffset: start,
		QueueCapacity: 1000, ReadBatchTimeout: 10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			r.errLog.Warn("kafka reader", "reader", zap.String("error", fmt.Sprintf(msg, args...)))
		}),
	})
	writer := func(topic string) *kafka.Writer {
		return &kafka.Writer{Addr: kafka.TCP(r.kc.Brokers...), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireAll,
			Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true}
	}
	r.dlq = writer(r.kc.DLQTopic)
	if r.kc.ForwardTopic != "" {
		r.forward = writer(r.kc.ForwardTopic)
	}
	r.log.Info("consuming", zap.Strings("brokers", r.kc.Brokers), zap.Strings("topics", r.kc.Topics),
		zap.String("group_id", r.kc.GroupID), zap.String("dlq_topic", r.kc.DLQTopic), zap.Bool("detection", r.engine != nil))

	runErr := r.loop(ctx)

	// Shutdown: fetching has stopped; make what was processed durable and
	// commit it, within a bounded time, whatever happened to ctx.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.kc.ShutdownTimeout)
	defer cancel()
	if r.merge != nil {
		r.merge.release(r.observe, true)
	}
	if runErr == nil {
		if err := r.flush(sctx); err != nil {
			runErr = fmt.Errorf("final flush: %w", err)
		}
	}
	if err := r.reader.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("closing reader: %w", err)
	}
	for _, w := range []*kafka.Writer{r.dlq, r.forward} {
		if w != nil {
			if err := w.Close(); err != nil && runErr == nil {
				runErr = fmt.Errorf("closing writer: %w", err)
			}
		}
	}
	r.log.Info("stopped", zap.Uint64("messages", r.stats.Messages.Load()), zap.Uint64("committed", r.stats.Committed.Load()))
	return runErr
}

func (r *Runner) loop(ctx context.Context) error {
	for {
		// One deadline per flush interval, not per message.
		fctx, cancel := context.WithTimeout(ctx, r.kc.FlushInterval)
		err := r.fetchUntil(fctx)
		cancel()
		if ctx.Err() != nil {
			return nil // shutdown: Run flushes
		}
		if err != nil {
			return err
		}
		if r.merge != nil {
			r.merge.release(r.observe, false) // sources gone quiet
		}
		if err := r.flushRetrying(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// fetchUntil processes messages until the batch is full or fctx expires.
func (r *Runner) fetchUntil(fctx context.Context) error {
	for r.pending < r.kc.BatchSize {
		m, err := r.reader.FetchMessage(fctx)
		if err != nil {
			if fctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("kafka reader closed")
			}
			r.errLog.Warn("fetching message", "fetch", zap.Error(err))
			select {
			case <-fctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			return nil
		}
		r.handle(m)
	}
	return nil
}

func (r *Runner) handle(m kafka.Message) {
	r.stats.Messages.Add(1)
	r.stats.Bytes.Add(uint64(len(m.Value)))
	r.pending++
	r.last[topicPartition{m.Topic, m.Partition}] = m
	var res Result
	if ingest.CarriesCardData(m.Key) {
		res = r.proc.Reject(&ingest.DecodeError{Reason: ingest.ReasonSensitiveData, Field: "(message key)", Msg: "the message key holds card data"})
	} else {
		res = r.proc.Process(m.Value)
	}
	if res.Reject != nil {
		r.stats.Rejected[res.Reject.Reason].Add(1)
		r.dead = append(r.dead, deadLetter(m, res.Reject))
		// Where it came from and why; never the payload.
		fields := []zap.Field{zap.Stringer("reason", res.Reject.Reason), zap.String("field", res.Reject.Field),
			zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}
		if p := res.Partial; p != nil {
			// Identifiers decoded before the rejection, masked like the
			// dead letter in case a sender put card data in them.
			for _, f := range [...]struct{ k, v string }{{"event_id", p.ID}, {"terminal_id", p.Terminal}, {"merchant_id", p.Merchant}} {
				if f.v != "" {
					fields = append(fields, zap.ByteString(f.k, ingest.Mask([]byte(f.v))))
				}
			}
		}
		r.rejectLog.Warn("message rejected to the dead-letter topic", res.Reject.Reason.String(), fields...)
		return
	}
	r.stats.Accepted.Add(1)
	if res.Class.Approved() {
		r.stats.Approved.Add(1)
	} else {
		r.stats.ByCause[res.Class.Cause].Add(1)
	}
	r.accepted = append(r.accepted, event.Classified{Event: *res.Event, Cause: res.Class.Cause, Known: res.Class.Known,
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
	topic, partition := r.sourceOf(&m)
	if r.forward != nil {
		// Re-encoded from the decoded event, never the bytes received:
		// only what the decoder validated travels on. The detection stage
		// orders by the original partition.
		r.fwd = append(r.fwd, kafka.Message{Key: []byte(res.Event.Terminal), Value: event.AppendJSON(nil, res.Event), Headers: []kafka.Header{
			{Key: hdrSourceTopic, Value: topic},
			{Key: hdrSourcePartition, Value: strconv.AppendInt(nil, int64(partition), 10)},
		}})
	}
	if r.merge != nil {
		r.merge.push(topic, partition, res.Event, res.Class.Cause, r.observe)
	}
}

func (r *Runner) observe(ev *event.Event, cause event.Cause) {
	if !r.engine.Observe(ev, cause) {
		r.stats.Late.Add(1)
	}
}

const (
	hdrSourceTopic     = "declinemon-source-topic"
	hdrSourcePartition = "declinemon-source-partition"
)

// sourceOf is the partition a message was first produced to: its own, or
// for a forwarded message the one its headers name. Topic names are cached
// as bytes so the hot path does not allocate them per message.
func (r *Runner) sourceOf(m *kafka.Message) ([]byte, int) {
	var topic []byte
	partition := -1
	for _, h := range m.Headers {
		switch h.Key {
		case hdrSourceTopic:
			topic = h.Value
		case hdrSourcePartition:
			if n, ok := atoi(h.Value); ok {
				partition = n
			}
		}
	}
	if topic == nil || partition < 0 {
		b, ok := r.topicBytes[m.Topic]
		if !ok {
			b = []byte(m.Topic)
			r.topicBytes[m.Topic] = b
		}
		return b, m.Partition
	}
	return topic, partition
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
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

// deadLetter builds the DLQ record: the masked payload and headers saying
// why and where from. Card data never leaves masked.
func deadLetter(m kafka.Message, de *ingest.DecodeError) kafka.Message {
	return kafka.Message{
		Key:   ingest.Mask(m.Key),
		Value: ingest.Mask(m.Value),
		Headers: []kafka.Header{
			{Key: "declinemon-reason", Value: []byte(de.Reason.String())},
			{Key: "declinemon-field", Value: []byte(de.Field)},
			{Key: "declinemon-error", Value: []byte(de.Error())},
			{Key: hdrSourceTopic, Value: []byte(m.Topic)},
			{Key: hdrSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
			{Key: "declinemon-source-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
			{Key: "declinemon-source-time", Value: []byte(m.Time.UTC().Format(time.RFC3339Nano))},
			{Key: "declinemon-rejected-at", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		},
	}
}

// flushRetrying retries a failed flush with backoff until it succeeds or
// ctx ends. Fetching waits meanwhile: a storage outage stops consumption
// (backpressure) instead of growing memory or losing data.
func (r *Runner) flushRetrying(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.flush(ctx)
		if err == nil {
			return nil
		}
		var ce *commitError
		if errors.As(err, &ce) && attempt >= 3 {
			// Typically a rebalance took the partitions away: the new owner
			// re-reads from the last committed offset (at-least-once).
			r.log.Warn("giving up on this commit; the partitions' new owner will re-read these messages", zap.Error(err))
			clear(r.last)
			r.pending = 0
			return nil
		}
		r.stats.FlushRetries.Add(1)
		r.errLog.Warn("flush failed, retrying", "flush", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush delivers alerts, makes the batch durable (storage, dead letters,
// forwards), then commits. Each step clears its part only once it
// succeeded, so a retry resumes where it failed.
func (r *Runner) flush(ctx context.Context) error {
	if r.pending == 0 && len(r.alerts) == 0 {
		return nil
	}
	// Alerts first: on-call hears about incidents even while storage is
	// down. Each sink has its own cursor into the alerts, so a retry sends
	// a sink only what it has not accepted yet — alerts raised since the
	// failure included — and none receives a record twice.
	if len(r.alerts) > 0 {
		t0 := time.Now()
		if r.sent == nil {
			r.sent = make([]int, len(r.sinks))
		}
		for i, sink := range r.sinks {
			if r.sent[i] == len(r.alerts) {
				continue
			}
			if err := sink.Send(ctx, r.alerts[r.sent[i]:]); err != nil {
				return fmt.Errorf("delivering alerts: %w", err)
			}
			r.sent[i] = len(r.alerts)
		}
		clear(r.sent)
		r.obs.ObserveStage("alerts", time.Since(t0))
		for _, a := range r.alerts {
			st := 0
			if a.State == alerting.StateResolved {
				st = 1
			}
			r.stats.AlertsByKind[a.Kind][st].Add(1)
		}
		r.stats.Alerts.Add(uint64(len(r.alerts)))
		r.alerts = r.alerts[:0]
	}
	if len(r.accepted) > 0 {
		t0 := time.Now()
		if err := r.store.Write(ctx, r.accepted); err != nil {
			return fmt.Errorf("storing %d events: %w", len(r.accepted), err)
		}
		r.obs.ObserveStage("store", time.Since(t0))
		r.obs.ObserveBatch(len(r.accepted))
		clear(r.accepted)
		r.accepted = r.accepted[:0]
	}
	if len(r.dead) > 0 {
		t0 := time.Now()
		if err := r.dlq.WriteMessages(ctx, r.dead...); err != nil {
			return fmt.Errorf("writing %d dead letters to %s: %w", len(r.dead), r.kc.DLQTopic, err)
		}
		r.obs.ObserveStage("dead_letters", time.Since(t0))
		r.stats.DeadLettered.Add(uint64(len(r.dead)))
		r.dead = r.dead[:0]
	}
	if len(r.fwd) > 0 {
		t0 := time.Now()
		if err := r.forward.WriteMessages(ctx, r.fwd...); err != nil {
			return fmt.Errorf("forwarding %d events to %s: %w", len(r.fwd), r.kc.ForwardTopic, err)
		}
		r.obs.ObserveStage("forward", time.Since(t0))
		r.stats.Forwarded.Add(uint64(len(r.fwd)))
		r.fwd = r.fwd[:0]
	}
	if r.engine != nil {
		active := r.engine.Active()
		var byKind [alerting.NumKinds]int64
		for _, a := range active {
			byKind[a.Kind]++
		}
		for k := range byKind {
			r.stats.ActiveByKind[k].Store(byKind[k])
		}
		r.active.set(active)
		es := r.engine.Stats()
		r.stats.DetectorScopes.Store(int64(es.Scopes))
		r.stats.DetectorRecords.Store(int64(es.Records))
		r.stats.EvictedIdle.Store(es.EvictedScopes - es.EvictedAtCap)
		r.stats.EvictedCap.Store(es.EvictedAtCap)
	}
	if len(r.last) > 0 {
		msgs := make([]kafka.Message, 0, len(r.last))
		for tp, m := range r.last {
			msgs = append(msgs, m)
			r.stats.setLag(tp.topic, tp.partition, max(m.HighWaterMark-m.Offset-1, 0))
		}
		t0 := time.Now()
		if err := r.reader.CommitMessages(ctx, msgs...); err != nil {
			return &commitError{err}
		}
		r.obs.ObserveStage("commit", time.Since(t0))
		r.stats.CommitNanos.Store(int64(time.Since(t0)))
		clear(r.last)
	}
	r.stats.LastFlush.Store(time.Now().UnixNano())
	r.stats.Committed.Add(uint64(r.pending))
	r.stats.Flushes.Add(1)
	r.stats.Lag.Store(r.reader.Stats().Lag)
	r.pending = 0
	return nil
}

type nopObserver struct{}

func (nopObserver) ObserveStage(string, time.Duration) {}
func (nopObserver) ObserveBatch(int)                   {}

// activeAlerts is the firing-alert snapshot served on /alerts.
type activeAlerts struct {
	mu     sync.Mutex
	alerts []alerting.Alert
}

func (a *activeAlerts) set(v []alerting.Alert) {
	a.mu.Lock()
	a.alerts = v
	a.mu.Unlock()
}

func (a *activeAlerts) get() []alerting.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]alerting.Alert{}, a.alerts...)
}

// SetObserver sets the flush observer (the metrics); call before Run.
func (r *Runner) SetObserver(o FlushObserver) { r.obs = o }

// ActiveAlerts returns the firing alerts as of the last flush.
func (r *Runner) ActiveAlerts() []alerting.Alert { return r.active.get() }

type commitError struct{ err error }

func (e *commitError) Error() string { return "committing offsets: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// rateLimited logs a noisy warning at most once per interval per key,
// counting what it suppressed in between.
type rateLimited struct {
	log        *zap.Logger
	every      time.Duration
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (l *rateLimited) Warn(msg, key string, fields ...zap.Field) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if time.Since(l.last[key]) < l.every {
		l.suppressed[key]++
		return
	}
	l.log.Warn(msg, append(fields, zap.Int("suppressed_since_last", l.suppressed[key]))...)
	l.last[key] = time.Now()
	l.suppressed[key] = 0
}
