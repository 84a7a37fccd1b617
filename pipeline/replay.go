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

// Replay runs the whole pipeline over a JSONL file, driven by event time,
// writes the alerts and prints the summary. It returns an error only for
// unusable arguments, unreadable input or unwritable output; bad lines are
// counted, never fatal.
func Replay(ctx context.Context, o ReplayOptions) (*Summary, error) {
	if o.Input == "" {
		return nil, errors.New("--input is required (a JSONL file, .gz or -)")
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
	in, err := ingest.OpenInput(o.Input)
	if err != nil {
		return nil, err
	}
	defer in.Close()

	var out *bufio.Writer
	var outFile *os.File
	if o.AlertsOut != "" {
		outFile, err = os.Create(o.AlertsOut)
		if err != nil {
			return nil, fmt.Errorf("creating alerts output: %w", err)
		}
		defer outFile.Close()
		out = bufio.NewWriter(outFile)
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
	var alerts, undelivered []alerting.Alert
	var writeErr, sendErr error
	engine, err := alerting.NewEngine(cfg.Detection, func(a alerting.Alert) {
		alerts = append(alerts, a)
		undelivered = append(undelivered, a)
		if out == nil || writeErr != nil {
			return
		}
		line, err := a.MarshalJSONLine()
		if err == nil {
			_, err = out.Write(line)
		}
		writeErr = err
	})
	if err != nil {
		return nil, err
	}
	dcfg := cfg.DecoderConfig()
	dec := ingest.NewDecoder(dcfg)
	proc := NewProcessor(dec, rules, engine)
	tally := NewTally()
	maxBytes := dcfg.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = 64 << 10
	}
	lines := ingest.NewLineReader(in, maxBytes)
	start := time.Now()
	lastProgress := start
	summary := &Summary{Input: o.Input, Counts: proc.Counts(), Tally: tally, Top: o.Top}
	var readErr error
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				readErr = fmt.Errorf("replay interrupted after %d lines: %w", lines.Line(), err)
				break
			}
			if o.Progress && time.Since(lastProgress) > time.Second {
				lastProgress = time.Now()
				c := proc.Counts()
				fmt.Fprintf(o.Stderr, "\r%d events, %.0f/s, watermark %s ", c.Messages,
					float64(c.Messages)/time.Since(start).Seconds(), engine.Watermark().Format(time.DateTime))
			}
		}
		line, err := lines.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if lines.Truncated {
			proc.Reject(&ingest.DecodeError{Reason: ingest.ReasonTooLarge, Msg: "line exceeds max_message_bytes"})
			continue
		}
		if len(line) == 0 {
			continue
		}
		res := proc.Process(line)
		if res.Event != nil {
			tally.Add(res.Event, res.Class.Cause)
		}
		if len(undelivered) > 0 {
			// Delivered as they happen, not in a burst at the end.
			sendErr = errors.Join(sendErr, deliver(ctx, notifiers.Sinks, undelivered))
			undelivered = undelivered[:0]
		}
	}
	if o.Progress {
		fmt.Fprint(o.Stderr, "\r\033[K")
	}
	proc.Flush()
	sendErr = errors.Join(sendErr, deliver(ctx, notifiers.Sinks, undelivered))
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	deliveryErr := errors.Join(sendErr, notifiers.Flush(fctx))
	cancel()
	summary.Delivery = notifiers.Stats
	summary.Alerts = alerts
	summary.Engine = engine.Stats()
	summary.Elapsed = time.Since(start)
	if out != nil {
		if err := out.Flush(); err != nil && writeErr == nil {
			writeErr = err
		}
		if err := outFile.Close(); err != nil && writeErr == nil {
			writeErr = err
		}
		if writeErr != nil {
			return summary, fmt.Errorf("writing alerts to %s: %w", o.AlertsOut, writeErr)
		}
	}
	if readErr == nil && deliveryErr != nil {
		return summary, fmt.Errorf("delivering alerts: %w", deliveryErr)
	}
	return summary, readErr
}

// deliver hands alerts to every notifier (they queue and deliver in the
// background; Flush reports the outcome).
func deliver(ctx context.Context, sinks []AlertSink, alerts []alerting.Alert) error {
	var errs []error
	for _, s := range sinks {
		if len(alerts) > 0 {
			if err := s.Send(ctx, alerts); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
