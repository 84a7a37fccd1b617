package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/ratelog"
)

// RunOptions configure a Runner.
type RunOptions struct {
	Config Config
	Rules  *classify.Rules
	Store  Store       // nil: events are not stored
	Alerts []AlertSink // where alert records go at each flush
	Log    *zap.Logger
	// EndOfInput: the stream ends when Run does (the demo), so detection
	// is run to its end at shutdown.
	EndOfInput bool
	// Recorded: the stream is a recording played back with its own times
	// (the demo), so event times are not bounded by the wall clock.
	Recorded bool
	// Counters shared with the other members of this runner's group in
	// the process (Options.Counters); nil: its own.
	Counters *Counters
}

// Runner is `declinemon run`: the pipeline on a Kafka consumer group, with
// the dead-letter topic and, when configured, the forward topic.
type Runner struct {
	*Pipeline
	split      atomic.Int32 // members holding partitions, when detection shares the group
	topicCheck time.Duration
	waitLog    *ratelog.Logger
	source     *ingest.KafkaSource
	dead       *ingest.DeadLetterTopic
	forward    *ingest.ForwardTopic
	ckpt       *ingest.CheckpointTopic // detection-enabled only
	store      Store
	log        *zap.Logger
}

// NewRunner validates the configuration and builds the runner. It does not
// connect yet.
func NewRunner(o RunOptions) (*Runner, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	src, err := ingest.NewKafkaSource(o.Config.Kafka, o.Log, !o.Config.DisableDetection)
	if err != nil {
		return nil, err
	}
	kc := src.Config()
	r := &Runner{source: src, store: o.Store, log: o.Log, topicCheck: max(kc.PartitionWatchInterval, time.Second),
		waitLog: ratelog.New(o.Log, 10*time.Second)}
	if r.dead, err = ingest.NewDeadLetterTopic(kc, o.Log); err != nil {
		return nil, err
	}
	po := Options{Config: o.Config, Rules: o.Rules, Store: o.Store, Alerts: o.Alerts, DeadLetters: r.dead, Log: o.Log,
		BatchSize: kc.BatchSize, FlushInterval: kc.FlushInterval, ShutdownTimeout: kc.ShutdownTimeout, EndOfInput: o.EndOfInput,
		WallClock: time.Now, Counters: o.Counters,
		// A kafka.batch_size set for memory's sake still bounds storage.
		StoreBatchSize: cmp.Or(o.Config.ClickHouse.BatchSize, o.Config.Kafka.BatchSize, 100_000)}
	if o.Recorded {
		po.WallClock = nil
	}
	if kc.ForwardTopic != "" {
		if r.forward, err = ingest.NewForwardTopic(kc); err != nil {
			return nil, err
		}
		po.Forward = r.forward
	}
	if !o.Config.DisableDetection {
		if r.ckpt, err = ingest.NewCheckpointTopic(kc, o.Log); err != nil {
			return nil, err
		}
		po.Checkpoints, po.CheckpointInterval = r.ckpt, kc.CheckpointInterval
	}
	if r.Pipeline, err = New(po); err != nil {
		return nil, err
	}
	return r, nil
}

// Stats returns the live counters.
func (r *Runner) Stats() *Counters { return r.Counters() }

// ActiveAlerts returns the firing alerts as of the last flush.
func (r *Runner) ActiveAlerts() []alerting.Alert { return r.Active() }

// DeadLettersRefused counts dead letters the broker refused for good.
func (r *Runner) DeadLettersRefused() uint64 { return r.dead.Refused.Load() }

// Run consumes until ctx is cancelled, then flushes and commits what it
// processed and leaves the group at once. It returns nil on a clean stop.
func (r *Runner) Run(ctx context.Context) error {
	kc := r.source.Config()
	r.log.Info("consuming", zap.Strings("brokers", kc.Brokers), zap.Strings("topics", kc.Topics),
		zap.String("group_id", kc.GroupID), zap.String("dlq_topic", kc.DLQTopic), zap.Bool("detection", r.Engine() != nil))
	if r.ckpt != nil {
		r.log.Info("detector checkpoints on; this instance detects once the group assigns it the partitions (a second instance in the group is a standby)",
			zap.String("checkpoint_topic", r.ckpt.Topic()), zap.Duration("checkpoint_interval", kc.CheckpointInterval))
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	watchers.Go(func() { r.watchTopics(wctx) })
	if r.Engine() != nil {
		watchers.Go(func() { r.watchGroup(wctx) })
	}
	runErr := r.Pipeline.Run(ctx, r.source)
	stopWatch()
	watchers.Wait()
	closers := []func() error{r.source.Close, r.dead.Close}
	if r.forward != nil {
		closers = append(closers, r.forward.Close)
	}
	if r.ckpt != nil {
		closers = append(closers, r.ckpt.Close)
	}
	for _, c := range closers {
		if err := c(); err != nil && runErr == nil {
			runErr = fmt.Errorf("closing kafka clients: %w", err)
		}
	}
	r.log.Info("stopped", zap.Uint64("messages", r.Counters().Messages.Load()), zap.Uint64("committed", r.Counters().Committed.Load()))
	return runErr
}

// watchTopics says, until they exist, that configured topics are missing:
// the group consumes them within partition_watch_interval of creation.
func (r *Runner) watchTopics(ctx context.Context) {
	waited := false
	for {
		err := r.source.TopicsExist(ctx)
		var missing *ingest.MissingTopicsError
		switch {
		case errors.As(err, &missing):
			r.waitLog.Warn("waiting for topics to be created; /readyz is not ready meanwhile", "topics", zap.Strings("topics", missing.Topics))
			waited = true
		case err == nil:
			if waited {
				// The group may have settled on what existed at start:
				// join again to be assigned the new topics' partitions.
				r.source.RequestRejoin()
				r.log.Info("all topics exist; consuming")
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.topicCheck):
		}
	}
}

// watchGroup checks that a detection-enabled instance has the whole topic
// to itself: detection on a share of the stream judges every fleet scope
// on a fraction of its traffic. A split fails readiness and is logged.
func (r *Runner) watchGroup(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		n, err := r.source.MembersWithPartitions(ctx)
		if err != nil {
			continue
		}
		r.split.Store(int32(n))
		if n > 1 {
			r.log.Error("several detection-enabled instances share this consumer group: each sees only part of the fleet, so "+
				"fleet-wide incidents are missed or fire twice. Run one detection instance, or ingest instances with "+
				"disable_detection and kafka.forward_topic feeding one detection stage (README: Scaling out)",
				zap.String("group_id", r.source.Config().GroupID), zap.Int("members_with_partitions", n))
		}
	}
}

// Pinger is implemented by stores that can say whether they are reachable
// (and migrated).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Ready reports whether a broker answers, the store is reachable and no
// stage has halted consumption.
func (r *Runner) Ready(ctx context.Context) error {
	if reason := r.Halted(); reason != "" {
		return errors.New("consumption halted: " + reason)
	}
	if r.behind != nil {
		if err := r.behind.ready(); err != nil {
			return err
		}
	}
	if n := r.split.Load(); n > 1 {
		return fmt.Errorf("detection sees part of the fleet: %d instances share group %s (run one detection instance; see README: Scaling out)",
			n, r.source.Config().GroupID)
	}
	if err := r.source.Ready(ctx); err != nil {
		return err
	}
	if p, ok := r.store.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	return nil
}
