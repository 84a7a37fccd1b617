//go:build demo

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/internal/console"
	"github.com/declinemon/declinemon/internal/demo"
	"github.com/declinemon/declinemon/pipeline"
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("demo", "[--speed 60] [--config FILE] [--stay]", stdout).
		withConfig("optional YAML configuration (http, detection, alertmanager, webhooks)")
	speed := f.Float64("speed", 60, "event time runs this many times faster than the clock (0: as fast as possible)")
	stay := f.Bool("stay", false, "after the scenario, keep the console and ClickHouse up until interrupted (make demo)")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	f.logFormat, f.logLevel = "console", zap.WarnLevel
	log := f.logger(stderr)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	cfg, ok := f.loadConfig(log)
	if !ok {
		return 1
	}
	notifiers, err := cfg.Notifiers(log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	var srvErr error
	var shutdown func(context.Context) error
	board := &console.Board{}
	opts := demo.Options{Speed: *speed, Config: cfg, Log: log, Out: stdout, Alerts: []pipeline.AlertSink{board}}
	var history console.History
	st, err := demo.StartStorage(ctx, demo.DefaultLib(), log)
	switch {
	case err != nil:
		log.Error("the demo's ClickHouse server did not start; events are not stored", zap.Error(err))
	case st == nil:
		fmt.Fprintf(stdout, "declinemon demo: no ClickHouse engine library at %s (make demo fetches it), so events are not stored (alerts, /alerts and /metrics work)\n", demo.DefaultLib())
	default:
		defer st.Close()
		opts.Store, history = st.Writer, st.Client
		opts.Alerts = append(opts.Alerts, st.Alerts)
		s := demo.DatedForToday(scenario.Demo(), time.Now())
		opts.Scenario = &s
		fmt.Fprintf(stdout, "declinemon demo: ClickHouse %s at %s (native) and http://%s; every event and alert is stored in database declinemon. While the demo runs, try:\n  %s\n",
			"26.7", st.Server.TCPAddr, st.Server.HTTPAddr, st.Curl())
	}
	opts.Runner = func(r *pipeline.Runner) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		con, err := newConsole(cfg, r, board, history, log)
		if err != nil {
			srvErr = err
			return
		}
		srv, err := serveOps(cfg.HTTP, reg, r, nil, r.Ready, notifiers, con, log)
		if srv != nil {
			shutdown = srv.Shutdown
			fmt.Fprintf(stdout, "open the ops console at http://%s/ (also /alerts as JSON and /metrics)\n", cfg.HTTP.Addr())
		}
		srvErr = err
	}
	res, err := demo.Run(ctx, opts)
	// The console is served until the very end (with --stay, until
	// interrupted), so people can look at what the demo found.
	defer func() {
		if shutdown != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shutdown(sctx)
		}
	}()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notifiers.Close(sctx)
	if srvErr != nil {
		log.Error("http", zap.Error(srvErr))
		return 1
	}
	if err != nil {
		log.Error("demo failed", zap.Error(err))
		return 1
	}
	firing := 0
	for _, a := range res.Alerts {
		if a.State == "firing" {
			firing++
		}
	}
	fmt.Fprintf(stdout, "declinemon demo: %d incidents injected, %d alerts fired\n", len(res.Truth.Incidents), firing)
	if st != nil {
		qctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st.Alerts.Drain(qctx)
		if err := st.Cookbook(qctx, stdout, "top_failing_terminals_today", "cause_mix_by_region"); err != nil {
			log.Error("cookbook queries", zap.Error(err))
			return 1
		}
	}
	if *stay && shutdown != nil && ctx.Err() == nil {
		fmt.Fprintf(stdout, "declinemon demo: the scenario is over; the console stays up at http://%s/ until Ctrl-C\n", cfg.HTTP.Addr())
		<-ctx.Done()
	}
	return 0
}
