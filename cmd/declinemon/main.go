// Command declinemon monitors card-payment declines at POS terminals.
//
//	declinemon replay --input events.jsonl[.gz|-] --alerts-out alerts.jsonl [--config FILE] [--rules FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/declinemon/declinemon/pipeline"
	"github.com/declinemon/declinemon/storage"
)

const usage = `declinemon: streaming monitor for card-payment declines at POS terminals

usage:
  declinemon health [--url URL]   exit 0 when the service answers (container healthchecks)
  declinemon demo   [--speed 60] [--config FILE]   everything in-process: Kafka, loadgen, detection, /alerts
  declinemon migrate --config FILE   apply the ClickHouse schema (also done by run)
  declinemon run    --config FILE [--rules FILE] [--alerts-out FILE] [--log-format json|console] [--log-level LEVEL]
  declinemon replay --input FILE|- [--alerts-out FILE] [--config FILE] [--rules FILE] [--top N]

Run "declinemon <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], stderr)
	case "demo":
		return demoCmd(ctx, args[1:], os.Stdout, stderr)
	case "health":
		return healthCmd(ctx, args[1:], stderr)
	case "replay":
		log := newLogger(stderr, "console", zapcore.InfoLevel)
		defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
		return replay(ctx, args[1:], stderr, log)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	}
	fmt.Fprintf(stderr, "declinemon: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// newLogger builds a JSON (production) or console (development) logger.
func newLogger(w io.Writer, format string, level zapcore.Level) *zap.Logger {
	var enc zapcore.Encoder
	if format == "json" {
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	} else {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level))
}

func runCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration file (kafka: section required, or DECLINEMON_KAFKA_* env)")
	rulesPath := fs.String("rules", "", "classification rules file (default: embedded)")
	alertsOut := fs.String("alerts-out", "", "also append alerts-v1 JSONL here")
	logFormat := fs.String("log-format", "json", "json or console")
	logLevel := new(zapcore.Level) // info
	fs.Var(flagLevel{logLevel}, "log-level", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*logFormat != "json" && *logFormat != "console") {
		fmt.Fprintln(stderr, "run: unexpected argument or bad --log-format")
		return 2
	}
	log := newLogger(stderr, *logFormat, *logLevel)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	cfg, err := pipeline.LoadConfig(*cfgPath)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
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
	sinks := append([]pipeline.AlertSink{pipeline.LogAlerts{Log: log}}, notifiers.Sinks...)
	if *alertsOut != "" {
		f, err := os.OpenFile(*alertsOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Error("opening alerts output", zap.Error(err))
			return 1
		}
		defer f.Close()
		sinks = append(sinks, pipeline.JSONLAlerts{W: f})
	}
	var store pipeline.Store = pipeline.NopStore{}
	if cfg.ClickHouse.Enabled() {
		client, err := openStorage(ctx, cfg.ClickHouse, log)
		if err != nil {
			log.Error("storage", zap.Error(err))
			return 1
		}
		defer client.Close()
		store = storage.NewWriter(client, cfg.ClickHouse.Writer)
		sinks = append(sinks, client) // alerts table
	} else {
		log.Warn("no clickhouse.addr: events are not stored (alerting only)")
	}
	r, err := pipeline.NewRunner(pipeline.RunOptions{Config: cfg, Rules: rules, Store: store, Alerts: sinks, Log: log})
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	srv, err := serveHTTP(cfg.HTTP, r, notifiers, log)
	if err != nil {
		log.Error("http", zap.Error(err))
		return 1
	}
	runErr := r.Run(ctx)
	// Reverse order: the runner has flushed and committed; deliver queued
	// alerts, then stop serving.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notifiers.Close(sctx)
	if srv != nil {
		srv.Shutdown(sctx)
	}
	if runErr != nil {
		log.Error("run failed", zap.Error(runErr))
		return 1
	}
	return 0
}

// serveHTTP registers the runner's metrics and serves the operational
// endpoints; nil server when disabled.
func serveHTTP(cfg pipeline.HTTPConfig, r *pipeline.Runner, notifiers *pipeline.Notifiers, log *zap.Logger) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := pipeline.NewMetrics(reg, r.Stats(), notifiers.Stats)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	r.SetObserver(metrics)
	addr := cfg.Addr()
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: pipeline.NewHandler(cfg, pipeline.Endpoints{Gatherer: reg, Ready: r.Ready, Active: r.ActiveAlerts}),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("serving /metrics /healthz /readyz /alerts", zap.String("addr", ln.Addr().String()))
	return srv, nil
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	speed := fs.Float64("speed", 60, "event time runs this many times faster than the clock (0: as fast as possible)")
	cfgPath := fs.String("config", "", "optional YAML configuration (http, detection, alertmanager, webhooks)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr, "console", zapcore.WarnLevel)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	cfg, err := pipeline.LoadConfig(*cfgPath)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	notifiers, err := cfg.Notifiers(log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
	var srv *http.Server
	var srvErr error
	fmt.Fprintln(stdout, "declinemon demo: no ClickHouse in the demo, so events are not stored (alerts, /alerts and /metrics work)")
	res, err := pipeline.Demo(ctx, pipeline.DemoOptions{Speed: *speed, Config: cfg, Log: log, Out: stdout, Runner: func(r *pipeline.Runner) {
		srv, srvErr = serveHTTP(cfg.HTTP, r, notifiers, log)
		if srv != nil {
			fmt.Fprintf(stdout, "look at http://%s/alerts (firing alerts) and http://%s/metrics\n", cfg.HTTP.Addr(), cfg.HTTP.Addr())
		}
	}})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notifiers.Close(sctx)
	if srv != nil {
		srv.Shutdown(sctx)
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

// healthCmd is the container healthcheck: the distroless image has no
// shell or curl.
func healthCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9464/healthz", "endpoint to check")
	if err := fs.Parse(args); err != nil {
		return 2
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

func migrateCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration file (clickhouse: section, or DECLINEMON_CLICKHOUSE_* env)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr, "console", zapcore.InfoLevel)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	cfg, err := pipeline.LoadConfig(*cfgPath)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 1
	}
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

// flagLevel adapts a *zapcore.Level to flag.Value.
type flagLevel struct{ l *zapcore.Level }

func (f flagLevel) String() string {
	if f.l == nil {
		return "info"
	}
	return f.l.String()
}
func (f flagLevel) Set(s string) error { return f.l.Set(s) }

func replay(ctx context.Context, args []string, stderr io.Writer, log *zap.Logger) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o pipeline.ReplayOptions
	fs.StringVar(&o.Input, "input", "", "event-v1 JSONL file (gzip detected), or - for stdin")
	fs.StringVar(&o.AlertsOut, "alerts-out", "", "write alerts-v1 JSONL here")
	fs.StringVar(&o.ConfigPath, "config", "", "YAML configuration file")
	fs.StringVar(&o.RulesPath, "rules", "", "classification rules file (default: embedded)")
	fs.IntVar(&o.Top, "top", 10, "merchants and terminals to list in the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		o.Progress = true
	}
	o.Stderr = stderr
	summary, err := pipeline.Replay(ctx, o)
	if summary != nil {
		if werr := summary.Write(stderr); werr != nil {
			log.Error("writing summary", zap.Error(werr))
		}
	}
	if err != nil {
		log.Error("replay failed", zap.Error(err))
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	if o.AlertsOut != "" {
		log.Info("alerts written", zap.String("path", o.AlertsOut), zap.Int("records", len(summary.Alerts)))
	}
	return 0
}
