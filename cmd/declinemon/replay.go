package main

import (
	"context"
	"errors"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/pipeline"
)

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("replay", "--input FILE|- [flags]", stdout).withConfig("YAML configuration file").withLogging("console")
	var o pipeline.ReplayOptions
	f.StringVar(&o.Input, "input", "", "event-v1 JSONL file (gzip detected), or - for stdin")
	f.StringVar(&o.AlertsOut, "alerts-out", "", "write alerts-v1 JSONL here")
	f.StringVar(&o.RulesPath, "rules", "", "classification rules file (default: embedded)")
	f.IntVar(&o.Top, "top", 10, "merchants and terminals to list in the summary")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	if o.Input == "" {
		return f.usageError(stderr, "--input is required (an event-v1 JSONL file, .gz, or - for stdin)")
	}
	log := f.logger(stderr)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	o.ConfigPath = f.config
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && stderr == os.Stderr {
		o.Progress = true
	}
	o.Stderr = stderr
	summary, err := pipeline.Replay(ctx, o)
	if summary != nil {
		if werr := summary.Write(stderr); werr != nil {
			log.Error("writing summary", zap.Error(werr))
		}
	}
	switch {
	case errors.Is(err, pipeline.ErrUsage):
		log.Error("replay", zap.Error(err))
		return 2
	case errors.Is(err, context.Canceled):
		log.Error("replay interrupted", zap.Error(err))
		return 130
	case err != nil:
		log.Error("replay failed", zap.Error(err))
		return 1
	}
	if o.AlertsOut != "" {
		log.Info("alerts written", zap.String("path", o.AlertsOut), zap.Int("records", len(summary.Alerts)))
	}
	return 0
}
