// Package demo is `declinemon demo`: the live pipeline with zero external
// services — an in-process Kafka-protocol broker (kfake), loadgen's demo
// scenario produced into it through kafka-go, and the real `run` path
// consuming it through a kafka-go consumer group. It is linked into the
// binary only when built with the "demo" tag (make demo), so production
// builds carry no in-memory broker.
package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/pipeline"
	"github.com/declinemon/declinemon/storage"
)

// Options configure `declinemon demo`.
type Options struct {
	// Speed replays event time this many times faster than real time
	// (0: as fast as possible).
	Speed float64
	// Config is the base configuration (HTTP, detection, notifiers); its
	// kafka section is replaced by the in-process broker.
	Config pipeline.Config
	Log    *zap.Logger
	Out    io.Writer // the banner and alerts, for people
	// Scenario to play; nil: the demo morning (scenario.Demo).
	Scenario *scenario.Scenario
	// Runner is called with the runner before it starts (metrics, HTTP).
	Runner func(*pipeline.Runner)
	// Store keeps the events (the demo's ClickHouse server); nil: none.
	Store pipeline.Store
	// Alerts are further alert sinks (the alerts table).
	Alerts []pipeline.AlertSink
}

// Result is what the demo raised against what it injected.
type Result struct {
	Truth  scenario.Truth
	Alerts []alerting.Alert
	Stats  *pipeline.Counters
}

// Run plays the demo scenario through the in-process broker into the real
// `run` path. It returns when the scenario has been consumed (or ctx
// ends), after a clean shutdown.
func Run(ctx context.Context, o Options) (*Result, error) {
	const topic = "pos.events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("starting in-process kafka: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	s := scenario.Demo()
	if o.Scenario != nil {
		s = *o.Scenario
	}
	truth, err := s.Generate(func(*event.Event) {})
	if err != nil {
		return nil, err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	// One convention for people: the business time zone, shown.
	zone := o.Config.ClickHouse.BusinessTimezone
	if zone == "" {
		zone = storage.DefaultBusinessTimezone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("business time zone: %w", err)
	}
	at := func(t time.Time, layout string) string { return t.In(loc).Format(layout) }
	fmt.Fprintf(o.Out, "declinemon demo: in-process Kafka at %s, topic %s; %d terminals, %s of traffic from %s (times below in %s)\n",
		brokers[0], topic, s.Fleet.Terminals, time.Duration(s.Duration), at(s.Start, "2006-01-02 15:04 -07:00"), zone)
	if o.Speed > 0 {
		fmt.Fprintf(o.Out, "event time runs %.0fx faster than the clock: the first incident starts after ~%s\n", o.Speed,
			(time.Duration(s.Incidents[0].At) / time.Duration(o.Speed)).Round(time.Second))
	}
	fmt.Fprintln(o.Out, "incidents to expect:")
	for _, inc := range truth.Incidents {
		fmt.Fprintf(o.Out, "  %s  %s %s=%s\n", at(inc.Start, "15:04 -07:00"), inc.Kind, inc.ScopeType, inc.ScopeID)
	}

	cfg := o.Config
	cfg.Kafka = ingest.KafkaConfig{Brokers: brokers, Topics: []string{topic}, GroupID: "declinemon-demo", DLQTopic: "declinemon.dlq",
		BatchSize: 2000, FlushInterval: 250 * time.Millisecond, MaxWait: 50 * time.Millisecond}
	var alerts []alerting.Alert
	collect := pipeline.AlertFunc(func(a []alerting.Alert) { alerts = append(alerts, a...) })
	console := pipeline.AlertFunc(func(as []alerting.Alert) {
		for _, a := range as {
			if a.State == alerting.StateResolved && a.EndsAt != nil {
				fmt.Fprintf(o.Out, "RESOLVED %s %s=%s at %s (event time)\n", a.Kind, a.ScopeType, a.ScopeID, at(*a.EndsAt, "15:04:05 -07:00"))
				continue
			}
			fmt.Fprintf(o.Out, "ALERT    %s %s=%s at %s (event time)\n    %s\n    -> %s\n", a.Kind, a.ScopeType, a.ScopeID,
				at(a.DetectedAt, "15:04:05 -07:00"), a.Summary, a.Remedy)
		}
	})
	sinks := append([]pipeline.AlertSink{collect, console}, o.Alerts...)
	// The scenario is dated to end around now and played faster than the
	// clock, so its times run ahead of the wall clock: a recording.
	r, err := pipeline.NewRunner(pipeline.RunOptions{Config: cfg, Store: o.Store, Alerts: sinks, Log: o.Log, EndOfInput: true, Recorded: true})
	if err != nil {
		return nil, err
	}
	if o.Runner != nil {
		o.Runner(r)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()

	p := scenario.NewProducer(brokers, topic, 500)
	if _, err := s.Play(rctx, p, o.Speed, 0); err != nil && ctx.Err() == nil {
		stop()
		<-done
		return nil, fmt.Errorf("producing the scenario: %w", err)
	}
	// Wait for the consumer to catch up, then stop cleanly.
	for ctx.Err() == nil && r.Stats().Committed.Load() < uint64(truth.Events) {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "declinemon demo: consumed %d events, raised %d alert records\n", r.Stats().Messages.Load(), len(alerts))
	return &Result{Truth: truth, Alerts: alerts, Stats: r.Stats()}, nil
}
