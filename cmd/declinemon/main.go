// Command declinemon monitors card-payment declines at POS terminals.
// Each subcommand parses its flags into options and hands them to the
// packages that do the work; only main exits the process.
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

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/pipeline"
)

const usage = `declinemon: streaming monitor for card-payment declines at POS terminals

usage:
  declinemon run     --config FILE [--rules FILE] [--alerts-out FILE] [--log-format json|console] [--log-level LEVEL]
  declinemon replay  --input FILE|- [--alerts-out FILE] [--config FILE] [--rules FILE] [--top N]
  declinemon migrate --config FILE     apply the ClickHouse schema (run does it too)
  declinemon demo    [--speed 60] [--config FILE]   everything in-process (binaries built with make demo)
  declinemon health  [--url URL]       exit 0 when the service answers (container healthchecks)

Run "declinemon <command> -h" (or "declinemon help <command>") for a command's flags.
Exit codes: 0 ok, 1 failure (the reason is logged), 2 usage error (unknown
command or flag, stray or missing argument), 130 replay interrupted.
`

// commands maps a subcommand to its entry point.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"run":     runCmd,
	"replay":  replayCmd,
	"migrate": migrateCmd,
	"demo":    demoCmd,
	"health":  healthCmd,
}

func main() {
	chserver.Child() // when started as the demo's ClickHouse server
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "help":
		if len(args) == 1 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		if _, ok := commands[args[1]]; ok {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "declinemon: unknown command %q\n\n%s", args[1], usage)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "declinemon: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

// flags is the flag set every command starts from: -h/--help prints the
// usage to stdout and exits 0, a bad flag prints it to stderr and exits 2,
// and --config / logging flags are shared.
type flags struct {
	*flag.FlagSet
	synopsis  string
	stdout    io.Writer
	config    string
	logFormat string
	logLevel  zapcore.Level
}

func newFlags(name, synopsis string, stdout io.Writer) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis, stdout: stdout}
	f.Usage = func() {} // parse prints it, to stdout or stderr
	return f
}

// usage prints the command's synopsis and flags to w.
func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: declinemon %s %s\n\nflags:\n", f.Name(), f.synopsis)
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// usageError reports a command line that cannot run, with the usage, on
// stderr; the exit code is 2.
func (f *flags) usageError(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "declinemon %s: %s\n\n", f.Name(), fmt.Sprintf(format, a...))
	f.usage(stderr)
	return 2
}

func (f *flags) withConfig(help string) *flags {
	f.StringVar(&f.config, "config", "", help)
	return f
}

func (f *flags) withLogging(defaultFormat string) *flags {
	f.StringVar(&f.logFormat, "log-format", defaultFormat, "json or console")
	f.Var(levelFlag{&f.logLevel}, "log-level", "log `level`: debug, info, warn or error (default info)")
	return f
}

// parse parses args; ok is false with the exit code when the command must
// stop (help: 0, bad flags or stray arguments: 2).
func (f *flags) parse(args []string, stderr io.Writer) (code int, ok bool) {
	f.SetOutput(io.Discard) // errors are printed once, below
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.usage(f.stdout)
		return 0, false
	case err != nil:
		return f.usageError(stderr, "%v", err), false
	case f.NArg() > 0:
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0)), false
	case f.logFormat != "" && f.logFormat != "json" && f.logFormat != "console":
		return f.usageError(stderr, "--log-format %q: want json or console", f.logFormat), false
	}
	return 0, true
}

// logger builds a JSON (production) or console (development) logger.
func (f *flags) logger(w io.Writer) *zap.Logger {
	var enc zapcore.Encoder
	if f.logFormat == "json" {
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	} else {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), f.logLevel))
}

// loadConfig loads the configuration, logging why it is unusable.
func (f *flags) loadConfig(log *zap.Logger) (pipeline.Config, bool) {
	cfg, err := pipeline.LoadConfig(f.config)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return cfg, false
	}
	return cfg, true
}

// setUp parses args, builds the logger and loads the configuration, for
// commands that need all three; when ok is false the command exits with
// code (the reason is printed or logged).
func (f *flags) setUp(args []string, stderr io.Writer) (log *zap.Logger, cfg pipeline.Config, code int, ok bool) {
	if code, ok := f.parse(args, stderr); !ok {
		return nil, cfg, code, false
	}
	log = f.logger(stderr)
	if cfg, ok = f.loadConfig(log); !ok {
		return log, cfg, 1, false
	}
	return log, cfg, 0, true
}

// levelFlag adapts a *zapcore.Level to flag.Value.
type levelFlag struct{ l *zapcore.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return "info"
	}
	return f.l.String()
}
func (f levelFlag) Set(s string) error { return f.l.Set(s) }
