package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/notify"
	"github.com/declinemon/declinemon/ingest"
)

// ReplayOptions are the replay command's arguments.
type ReplayOptions struct {
	Input      string // path or "-"
	AlertsOut  string // path of the alerts JSONL to write ("" = none)
	ConfigPath string
	RulesPath  string
	Top        int
	// Progress writes a progress line to Stderr about once a second
	// (callers enable it when stderr is a terminal).
	Progress bool
	Stderr   io.Writer
}

// ErrUsage marks unusable arguments (exit status 2).
var ErrUsage = errors.New("usage")

// Replay runs the pipeline over a JSONL file — the same path as `run`,
// with the file as a one-partition source — writes the alerts and returns
// the summary. It returns an error only for unusable arguments, unreadable
// input, unwritable output or undelivered alerts; bad lines are counted,
// never fatal.
func Replay(ctx context.Context, o ReplayOptions) (*Summary, error) {
	if o.Input == "" {
		return nil, fmt.Errorf("%w: --input is required (a JSONL file, .gz or -)", ErrUsage)
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	cfg, err := LoadConfig(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	rules, err := cfg.LoadRules(o.RulesPath)
	if err != nil {
		return nil, err
	}
	src, err := ingest.OpenFile(o.Input, cfg.DecoderConfig().WithDefaults().MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	defer src.Close()

	var sinks []AlertSink
	var out *bufio.Writer
	var outFile *os.File
	if o.AlertsOut != "" {
		outFile, err = os.Create(o.AlertsOut)
		if err != nil {
			return nil, fmt.Errorf("creating alerts output: %w", err)
		}
		defer outFile.Close()
		out = bufio.NewWriter(outFile)
		sinks = append(sinks, notify.JSONL{W: out})
	}
	notifiers, err := cfg.Notifiers(nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		notifiers.Close(ctx)
	}()
	var alerts []alerting.Alert
	collect := AlertFunc(func(a []alerting.Alert) { alerts = append(alerts, a...) })
	sinks = append(append(sinks, collect), notifiers.Sinks...)
	p, err := New(Options{Config: cfg, Rules: rules, Alerts: sinks, Partitions: 1, EndOfInput: true, Tally: true,
		BatchSize: 5000, FlushInterval: time.Second})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var stopProgress func()
	if o.Progress {
		stopProgress = progress(o.Stderr, p, start)
	}
	runErr := p.Run(ctx, &replaySource{src})
	if stopProgress != nil {
		stopProgress()
	}
	if runErr == nil && ctx.Err() != nil {
		runErr = fmt.Errorf("replay interrupted after %d lines: %w", src.Line(), ctx.Err())
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	deliveryErr := notifiers.Flush(fctx)
	cancel()
	summary := p.Summary(o.Input, time.Since(start))
	summary.Top = o.Top
	summary.Alerts = alerts
	summary.Delivery = notifiers.Stats
	if out != nil {
		err := out.Flush()
		if cerr := outFile.Close(); err == nil {
			err = cerr
		}
		if err != nil && runErr == nil {
			runErr = fmt.Errorf("writing alerts to %s: %w", o.AlertsOut, err)
		}
	}
	if runErr == nil && deliveryErr != nil {
		runErr = fmt.Errorf("delivering alerts: %w", deliveryErr)
	}
	return summary, runErr
}

// replaySource reports a read error as such, not as the end of input.
type replaySource struct{ *ingest.FileSource }

func (r *replaySource) Fetch(ctx context.Context) (ingest.Message, error) {
	m, err := r.FileSource.Fetch(ctx)
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		return m, fmt.Errorf("reading %s: %w", r.FileSource.Name(), err)
	}
	return m, err
}

// progress writes a progress line about once a second until stopped.
func progress(w io.Writer, p *Pipeline, start time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := p.Counters().Messages.Load()
				fmt.Fprintf(w, "\r%d events, %.0f/s ", n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// AlertFunc adapts a function to an AlertSink that never fails.
type AlertFunc func([]alerting.Alert)

// Send implements AlertSink.
func (f AlertFunc) Send(_ context.Context, a []alerting.Alert) error {
	f(a)
	return nil
}
