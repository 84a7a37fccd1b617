package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting/notify"
	"github.com/declinemon/declinemon/internal/console"
	"github.com/declinemon/declinemon/internal/gctune"
	"github.com/declinemon/declinemon/internal/ops"
	"github.com/declinemon/declinemon/pipeline"
	"github.com/declinemon/declinemon/storage"
)

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("run", "--config FILE [flags]", stdout).
		withConfig("YAML configuration file (kafka: section required, or DECLINEMON_KAFKA_* env)").withLogging("json")
	rulesPath := f.String("rules", "", "classification rules file (default: embedded)")
	alertsOut := f.String("alerts-out", "", "also append alerts-v1 JSONL here")
	log, cfg, code, ok := f.setUp(args, stderr)
	if !ok {
		return code
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	gc := gctune.Apply("", "")
	log.Info("garbage collector", zap.Int("gc_percent", gc.GCPercent), zap.Int64("memory_limit_bytes", gc.MemoryLimit))
	rules, err := cfg.LoadRules(*rulesPath)
	if err != nil {
		log.Error("loading rules", zap.Error(err))
		return 1
	}
	notifiers, err := cfg.Notifiers(log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	board := &console.Board{} // what the console lists
	sinks := append([]pipeline.AlertSink{notify.Log{Log: log}, board}, notifiers.Sinks...)
	if *alertsOut != "" {
		out, err := os.OpenFile(*alertsOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Error("opening alerts output", zap.Error(err))
			return 1
		}
		defer out.Close()
		sinks = append(sinks, notify.JSONL{W: out})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var store pipeline.Store
	var alertTable *storage.AlertTable
	var history console.History
	if cfg.ClickHouse.Enabled() {
		client, err := openStorage(ctx, cfg.ClickHouse, log)
		if err != nil {
			log.Error("storage", zap.Error(err))
			return 1
		}
		defer client.Close()
		history = client
		w := storage.NewWriter(client, cfg.ClickHouse.Writer)
		reg.MustRegister(w)
		store = w
		if !cfg.DisableDetection {
			alertTable = storage.NewAlertTable(client, log)
			sinks = append(sinks, alertTable) // the alerts table, in the background
		}
	} else {
		log.Warn("no clickhouse.addr: events are not stored (alerting only)")
	}
	// With detection and storage, one consumer feeds both: storage runs
	// behind detection and commits stop at what is stored; a ClickHouse
	// outage holds up storage alone (pipeline/storebehind.go).
	if store != nil && !cfg.DisableDetection && cfg.ClickHouse.ConsumerGroup != "" {
		log.Warn("clickhouse.consumer_group is no longer used: storage shares kafka.group_id with detection",
			zap.String("consumer_group", cfg.ClickHouse.ConsumerGroup))
	}
	// With detection off and storage on (an ingest instance),
	// clickhouse.consumers members of kafka.group_id share its partitions:
	// while one waits for ClickHouse to acknowledge its batch, another
	// decodes the next. Each stores, dead-letters and forwards its own;
	// they count as one consumer in the metrics.
	members := cmp.Or(cfg.ClickHouse.Consumers, 2)
	opts := pipeline.RunOptions{Config: pipeline.RunConfig(cfg), Rules: rules, Store: store, Alerts: sinks, Log: log}
	var more []*pipeline.Runner // the ingest members beside r
	var morePipes []*pipeline.Pipeline
	if store != nil && cfg.DisableDetection && members > 1 {
		opts.Counters = &pipeline.Counters{}
		for i := 1; i < members; i++ {
			o := opts
			o.Alerts, o.Log = nil, log.With(zap.Int("member", i))
			m, err := pipeline.NewRunner(o)
			if err != nil {
				log.Error("invalid configuration", zap.Error(err))
				return 1
			}
			more = append(more, m)
			morePipes = append(morePipes, m.Pipeline)
		}
	}
	r, err := pipeline.NewRunner(opts)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	ready := func(ctx context.Context) error {
		if err := r.Ready(ctx); err != nil {
			return err
		}
		for _, m := range more {
			if err := m.Ready(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	con, err := newConsole(cfg, r, board, history, log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	srv, err := serveOps(cfg.HTTP, reg, r, morePipes, ready, notifiers, con, log)
	if err != nil {
		log.Error("http", zap.Error(err))
		return 1
	}
	// Any consumer failing stops them all: the process exits and restarts.
	rctx, stopRunners := context.WithCancel(ctx)
	defer stopRunners()
	memberErrs := make([]error, len(more))
	var running sync.WaitGroup
	for i, m := range more {
		running.Go(func() {
			if memberErrs[i] = m.Run(rctx); memberErrs[i] != nil {
				stopRunners()
			}
		})
	}
	runErr := r.Run(rctx)
	stopRunners()
	running.Wait()
	if err := errors.Join(memberErrs...); runErr == nil && err != nil {
		runErr = fmt.Errorf("ingest member: %w", err)
	}
	// Reverse order: the runners have flushed and committed; deliver
	// queued alerts, then stop serving.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notifiers.Close(sctx)
	if alertTable != nil {
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if left := alertTable.Close(actx); left > 0 {
			log.Error("alert records not written to the alerts table before stopping (Alertmanager and webhooks had them)", zap.Int("records", left))
		}
	}
	if srv != nil {
		srv.Shutdown(sctx)
	}
	if runErr != nil {
		log.Error("run failed", zap.Error(runErr))
		return 1
	}
	return 0
}

// serveOps registers the runner's metrics (with the members of its group
// that share its counters) and serves the operational endpoints and the
// console; nil server when disabled.
func serveOps(cfg ops.HTTPConfig, reg *prometheus.Registry, r *pipeline.Runner, members []*pipeline.Pipeline, ready func(context.Context) error, notifiers *pipeline.Notifiers, con *console.Console, log *zap.Logger) (*http.Server, error) {
	if _, err := pipeline.RegisterMetrics(reg, r.Pipeline, notifiers.Stats, members...); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	if err := pipeline.RegisterStorageMetrics(reg, r.Pipeline); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	srv, addr, err := ops.Serve(cfg, ops.NewHandler(cfg, ops.Endpoints{Gatherer: reg, Ready: ready, Active: r.ActiveAlerts, Console: con}))
	if err != nil || srv == nil {
		return nil, err
	}
	log.Info("serving the ops console at / and /metrics /healthz /readyz /alerts", zap.String("addr", addr.String()))
	return srv, nil
}

// newConsole builds the ops console on the detection runner, this
// process's alert records and, when storage is configured, ClickHouse.
func newConsole(cfg pipeline.Config, r *pipeline.Runner, board *console.Board, history console.History, log *zap.Logger) (*console.Console, error) {
	o := console.Options{Board: board, Active: r.ActiveAlerts, History: history, Skewed: r.ClockSkews, Location: cfg.Location(), Log: log}
	if !cfg.DisableDetection {
		o.Live = r
	}
	return console.New(o)
}

// openStorage connects and migrates.
func openStorage(ctx context.Context, cfg storage.Config, log *zap.Logger) (*storage.Client, error) {
	client, err := storage.Open(cfg)
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	applied, err := storage.Migrate(mctx, client, cfg.SchemaConfig)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("migrating: %w", err)
	}
	log.Info("clickhouse schema ready", zap.Strings("applied", applied), zap.Int("version", storage.Latest()))
	return client, nil
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("migrate", "--config FILE", stdout).
		withConfig("YAML configuration file (clickhouse: section, or DECLINEMON_CLICKHOUSE_* env)").withLogging("console")
	log, cfg, code, ok := f.setUp(args, stderr)
	if !ok {
		return code
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	if !cfg.ClickHouse.Enabled() {
		log.Error("clickhouse.addr is not set")
		return 1
	}
	client, err := openStorage(ctx, cfg.ClickHouse, log)
	if err != nil {
		log.Error("storage", zap.Error(err))
		return 1
	}
	client.Close()
	return 0
}

// healthCmd is the container healthcheck: the distroless image has no
// shell or curl.
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("health", "[--url URL]", stdout)
	url := f.String("url", "http://127.0.0.1:9464/healthz", "endpoint to check")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "health:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "health:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "health:", resp.Status)
		return 1
	}
	return 0
}
