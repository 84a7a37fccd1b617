// Package pipeline is declinemon's one processing path. A source's
// messages (a JSONL file, a Kafka consumer group) are decoded (ingest),
// classified (classify), merged across partitions by event time and fed to
// the detector (alerting); a flush then makes everything durable through
// an ordered list of named stages — alerts to each sink, events to
// storage, dead letters, forwards — and only then does the source commit.
// `run`, `replay` and `demo` all go through Pipeline.Run, so replay raises
// what the live service raises by construction.
//
// It also holds what wires the path: the composed configuration, the
// counters that feed both /metrics and the replay summary, and the summary.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/ratelog"
)

// Source delivers messages and commits processed positions (ingest's
// FileSource and KafkaSource).
type Source interface {
	// Fetch blocks for the next message; io.EOF ends the input.
	Fetch(ctx context.Context) (ingest.Message, error)
	// Commit records that every message up to these positions is done.
	Commit(ctx context.Context, positions []ingest.Position) error
}

// Store keeps accepted events; Write returns once the batch is durable.
type Store interface {
	Write(ctx context.Context, batch []event.Classified) error
}

// AlertSink receives alert records at each flush.
type AlertSink interface {
	Send(ctx context.Context, alerts []alerting.Alert) error
}

// DeadLetterSink keeps rejected messages; it returns what is left to retry.
type DeadLetterSink interface {
	Write(ctx context.Context, letters []ingest.DeadLetter) ([]ingest.DeadLetter, error)
}

// ForwardSink passes accepted events on; it returns what is left to retry.
type ForwardSink interface {
	Write(ctx context.Context, fwd []ingest.Forward) ([]ingest.Forward, error)
}

// Options configure a Pipeline. Nil sinks are skipped.
type Options struct {
	Config      Config
	Rules       *classify.Rules // nil: the embedded rules
	Store       Store
	Alerts      []AlertSink
	DeadLetters DeadLetterSink
	Forward     ForwardSink
	// Checkpoints, when set, make detection crash-consistent: offsets are
	// committed only with a durable checkpoint of the detector, taken at
	// most every CheckpointInterval (see checkpoint.go). Restored at the
	// first message.
	Checkpoints        CheckpointStore
	CheckpointInterval time.Duration
	Log                *zap.Logger
	// Batch bounds a flush: BatchSize messages or FlushInterval, whichever
	// first. ShutdownTimeout bounds the final flush.
	BatchSize       int
	FlushInterval   time.Duration
	ShutdownTimeout time.Duration
	// Partitions the source will deliver, when known up front (1 for a
	// file): detection then never waits for others to show up.
	Partitions int
	// EndOfInput: when the run ends, the input has ended (replay, demo), so
	// detection is run to the end of what was seen before the last flush.
	EndOfInput bool
	// Tally keeps per-merchant and per-terminal totals for the summary
	// (replay; memory grows with the fleet).
	Tally bool
	// WallClock bounds event times from above (live consumption): nil for
	// recorded input (replay), whose events may be dated anywhere.
	WallClock func() time.Time
	// StoreBatchSize is how many events storage inserts at once when the
	// pipeline also detects (see storebehind.go); 0: BatchSize.
	StoreBatchSize int
	// Counters, when set, are shared with other members of one group in
	// this process, so that they are counted (and exported) as one
	// consumer. Nil: the pipeline's own.
	Counters *Counters
}

// Pipeline is one instance of the processing path. Run is not safe for
// concurrent use; Counters, Active and Ready are.
type Pipeline struct {
	o        Options
	log      *zap.Logger
	dec      *ingest.Decoder
	rules    *classify.Rules
	engine   *alerting.Engine
	merge    *merger
	counters *Counters
	summary  summaryCounts
	tally    *Tally

	flusher
	behind *storeBehind // storage, when the pipeline also detects
	// rewindDue: storage is back, and the source re-reads once a flush
	// commits what is stored; nothing is staged until then (what is
	// handled meanwhile is delivered again).
	rewindDue bool
	catching  *catchUp       // storage's readers catching up after an outage (catchup.go)
	readers   sync.WaitGroup // every catch-up's reader goroutines
	// rejoinedBehind: the group rebalanced while events handled before
	// were not stored; until they are, storage recovers from an outage by
	// the re-read from the commits, not with partition readers.
	rejoinedBehind bool
	partitions     map[partitionKey]*partitionState
	last           *partitionState // the partition of the previous message (batches come per partition)
	pending        int             // messages since the last flush
	ev             event.Event

	active    activeAlerts
	overview  overviews
	clock     eventClock
	skews     skewTally
	skewLog   *ratelog.Logger
	ckpt      checkpointer
	final     bool   // the flush running is the last one
	joins     uint64 // the source's group joins the store was told of
	rejectLog *ratelog.Logger
	flushLog  *ratelog.Logger
}

type partitionKey struct {
	topic     string
	partition int
}

// partitionState is how far one consumed partition has been processed and
// committed (and, with storage beside detection, handled and stored).
type partitionState struct {
	processed ingest.Position
	committed int64 // the last committed offset (at start: the first seen - 1)
	handled   int64 // the last offset delivered, re-deliveries included
	staged    int64 // the last offset staged for storage, being inserted or stored
	stored    int64 // every message up to this offset is stored
	// catchUp: storage reads this partition's gap (after an outage) with
	// its own reader; the consumer stages nothing of it until it is closed.
	catchUp bool
	atJoin  int64 // handled at the last rebalance
	// committedHere: this process committed the partition's offset once
	// (before that, the group may hold no offset for it at all).
	committedHere bool
}

// New builds a pipeline; detection is on unless Config.DisableDetection.
func New(o Options) (*Pipeline, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Rules == nil {
		o.Rules = classify.Default()
	}
	o.BatchSize = max(o.BatchSize, 1)
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 20 * time.Second
	}
	// Alert summaries print times in the business zone, however the
	// configuration was built (LoadConfig sets it too).
	if o.Config.Detection.Location == nil {
		o.Config.Detection.Location = o.Config.Location()
	}
	if o.Counters == nil {
		o.Counters = &Counters{}
	}
	p := &Pipeline{o: o, log: o.Log, counters: o.Counters, dec: ingest.NewDecoder(o.Config.DecoderConfig()), rules: o.Rules,
		summary: summaryCounts{unknownCodes: map[string]uint64{}}, partitions: map[partitionKey]*partitionState{},
		rejectLog: ratelog.New(o.Log, 10*time.Second), flushLog: ratelog.New(o.Log, 10*time.Second),
		clock: eventClock{cfg: o.Config.Clock.withDefaults(), wall: o.WallClock}, skewLog: ratelog.New(o.Log, time.Minute)}
	if o.Tally {
		p.tally = NewTally()
	}
	fo := o
	if o.Store != nil && !o.Config.DisableDetection {
		p.behind = newStoreBehind(o.Store, cmp.Or(o.StoreBatchSize, o.BatchSize), o.FlushInterval)
		fo.Store = nil // not a stage of the flush
	}
	p.flusher.init(p.counters, fo)
	if o.Checkpoints != nil && !o.Config.DisableDetection {
		p.ckpt = checkpointer{store: o.Checkpoints, interval: o.CheckpointInterval, now: time.Now, journal: map[string]journaled{}}
		if p.ckpt.interval <= 0 {
			p.ckpt.interval = 10 * time.Second
		}
	}
	if !o.Config.DisableDetection {
		if err := p.newDetection(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// newDetection gives the pipeline an empty detector and event-time merge.
func (p *Pipeline) newDetection() error {
	eng, err := alerting.NewEngine(p.o.Config.Detection, p.raise)
	if err != nil {
		return err
	}
	p.engine = eng
	p.merge = newMerger(200_000, 3*time.Second, p.o.Partitions)
	return nil
}

// Counters are the live counters (safe to read while Run runs).
func (p *Pipeline) Counters() *Counters { return p.counters }

// Engine is the detector (nil when detection is off).
func (p *Pipeline) Engine() *alerting.Engine { return p.engine }

// Active returns the firing alerts as of the last flush.
func (p *Pipeline) Active() []alerting.Alert { return p.active.get() }

// raise receives the detector's alert records.
func (p *Pipeline) raise(a alerting.Alert) {
	if !p.announce(&a) {
		return
	}
	st := 0
	if a.State == alerting.StateResolved {
		st = 1
	}
	p.counters.AlertsByKind[a.Kind][st].Add(1)
	p.counters.Alerts.Add(1)
	p.flusher.addAlert(a)
}

// handle takes one message down the path: decode, classify, then stage it
// for storage or the dead letters and merge it towards detection.
func (p *Pipeline) handle(m *ingest.Message) {
	c := p.counters
	p.pending++
	st := p.last
	if st == nil || st.processed.Partition != m.Partition || st.processed.Topic != m.Topic {
		key := partitionKey{m.Topic, m.Partition}
		if st = p.partitions[key]; st == nil {
			// Where this session starts.
			st = &partitionState{committed: m.Offset - 1, stored: m.Offset - 1, staged: m.Offset - 1, handled: unknownOffset, atJoin: unknownOffset}
			p.partitions[key] = st
		}
		if st.committed == unknownOffset { // restored from a checkpoint: delivery starts after the commit
			st.committed, st.stored, st.staged = m.Offset-1, m.Offset-1, m.Offset-1
		}
		p.last = st
	}
	st.handled = m.Offset
	if st.processed.Topic != "" && m.Offset <= st.processed.Offset {
		// A rebalance, a restored checkpoint or storage catching up handed
		// this process messages it processed already: they are not
		// counted, dead-lettered or detected on twice. Storage beside
		// detection may not hold them yet: they are staged again, and
		// the writer skips what ClickHouse holds.
		c.Redelivered.Add(1)
		if p.behind != nil && !st.catchUp && m.Offset > st.staged {
			p.restage(m, st)
		}
		return
	}
	c.Messages.Add(1)
	c.Bytes.Add(uint64(len(m.Value)))
	st.processed = ingest.Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HighWaterMark: m.HighWaterMark}
	if de := p.decode(m); de != nil {
		p.reject(m, de)
		return
	}
	p.accept(m, &p.ev)
}

// decode fills p.ev from m, or says why m is rejected.
func (p *Pipeline) decode(m *ingest.Message) *ingest.DecodeError {
	return decodeMessage(p.dec, m, &p.ev)
}

// decodeMessage fills ev from m with dec, or says why m is rejected: what
// every reader of messages (the consumer, storage's catch-up) applies.
func decodeMessage(dec *ingest.Decoder, m *ingest.Message, ev *event.Event) *ingest.DecodeError {
	switch {
	case m.TooLarge:
		ev.Reset()
		return &ingest.DecodeError{Reason: ingest.ReasonTooLarge, Msg: "message exceeds max_message_bytes"}
	case ingest.CarriesCardData(m.Key):
		ev.Reset()
		return &ingest.DecodeError{Reason: ingest.ReasonSensitiveData, Field: "(message key)", Msg: "the message key holds card data"}
	}
	err := dec.Decode(m.Value, ev)
	if err == nil {
		return nil
	}
	var de *ingest.DecodeError
	if !errors.As(err, &de) {
		de = &ingest.DecodeError{Reason: ingest.ReasonInvalidJSON, Msg: err.Error()}
	}
	return de
}

func (p *Pipeline) reject(m *ingest.Message, de *ingest.DecodeError) {
	p.counters.Rejected[de.Reason].Add(1)
	if p.dead != nil {
		p.dead.add(ingest.NewDeadLetter(m, de, time.Now()))
	}
	// Where it came from and why; never the payload.
	fields := []zap.Field{zap.Stringer("reason", de.Reason), zap.String("field", de.Field),
		zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}
	// Identifiers decoded before the rejection, masked like the dead letter
	// in case a sender put card data in them.
	for _, f := range [...]struct{ k, v string }{{"event_id", p.ev.ID}, {"terminal_id", p.ev.Terminal}, {"merchant_id", p.ev.Merchant}} {
		if f.v != "" && de.Reason != ingest.ReasonTooLarge {
			fields = append(fields, zap.ByteString(f.k, ingest.Mask([]byte(f.v))))
		}
	}
	p.rejectLog.Warn("message rejected to the dead-letter topic", de.Reason.String(), fields...)
}

func (p *Pipeline) accept(m *ingest.Message, ev *event.Event) {
	c := p.counters
	c.Accepted.Add(1)
	res := p.rules.Classify(ev)
	if res.Approved() {
		c.Approved.Add(1)
	} else {
		c.ByCause[res.Cause].Add(1)
		p.summary.decline(ev, res.Known)
	}
	if p.tally != nil {
		p.tally.Add(ev, res.Cause)
	}
	if p.store != nil {
		p.store.add(classified(m, ev, res))
	} else if p.behind != nil && p.behind.open() && !p.rewindDue && !p.last.catchUp && m.Offset > p.last.staged {
		c := classified(m, ev, res)
		p.behind.add(&c)
		p.last.staged = m.Offset
	}
	if p.fwd != nil {
		// Re-encoded from the decoded event, never the bytes received.
		p.fwd.add(ingest.Forward{Key: []byte(ev.Terminal), Value: event.AppendJSON(nil, ev),
			OriginTopic: m.OriginTopic, OriginPartition: m.OriginPartition})
	}
	if p.merge != nil {
		if skewed, off := p.clock.skewed(ev); skewed {
			// Stored and forwarded as it came; kept out of detection.
			c.ClockSkew.Add(1)
			p.skews.add(ev, off)
			p.skewLog.Warn("event time off the fleet's clock: not detected on (the terminal's clock is wrong)", "clock_skew",
				zap.String("terminal_id", ev.Terminal), zap.Time("event_time", ev.Time), zap.Duration("offset", off))
			return
		}
		p.clock.clamp(ev)
		p.merge.push(m.OriginTopic, m.OriginPartition, partitionKey{m.Topic, m.Partition}, m.Offset, ev, res.Cause, p.observe)
	}
}

// classified is ev, classified as res, for storage, with where m was read.
func classified(m *ingest.Message, ev *event.Event, res classify.Result) event.Classified {
	return event.Classified{Event: *ev, Cause: res.Cause, Known: res.Known, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
}

func (p *Pipeline) observe(ev *event.Event, cause event.Cause) {
	if !p.engine.Observe(ev, cause) {
		p.counters.Late.Add(1)
	}
}

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
