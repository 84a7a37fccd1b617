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
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/declinemon/declinemon/pipeline"
)

const usage = `declinemon: streaming monitor for card-payment declines at POS terminals

usage:
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
	log := newLogger(stderr)
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	switch args[0] {
	case "replay":
		return replay(ctx, args[1:], stderr, log)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	}
	fmt.Fprintf(stderr, "declinemon: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
	return zap.New(core)
}

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
