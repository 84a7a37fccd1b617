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

	"github.com/declinemon/declinemon/internal/demo"
	"github.com/declinemon/declinemon/pipeline"
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("demo", "[--speed 60] [--config FILE]", stdout).
		withConfig("optional YAML configuration (http, detection, alertmanager, webhooks)")
	speed := f.Float64("speed", 60, "event time runs this many times faster than the clock (0: as fast as possible)")
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
	fmt.Fprintln(stdout, "declinemon demo: no ClickHouse in the demo, so events are not stored (alerts, /alerts and /metrics work)")
	res, err := demo.Run(ctx, demo.Options{Speed: *speed, Config: cfg, Log: log, Out: stdout, Runner: func(r *pipeline.Runner) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		srv, err := serveOps(cfg.HTTP, reg, r, r.Ready, notifiers, log)
		if srv != nil {
			shutdown = srv.Shutdown
			fmt.Fprintf(stdout, "look at http://%s/alerts (firing alerts) and http://%s/metrics\n", cfg.HTTP.Addr(), cfg.HTTP.Addr())
		}
		srvErr = err
	}})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notifiers.Close(sctx)
	if shutdown != nil {
		shutdown(sctx)
	}
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
	return 0
}
