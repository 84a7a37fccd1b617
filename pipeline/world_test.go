//go:build unix

package pipeline

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
)

// TestWorldMustShows runs every world of scenario.Worlds (fleets that
// behave like fleets: heavy-tailed volumes, different hours, late and
// batched delivery, store-and-forward backlogs, wrong clocks, degrading
// readers, staged rollouts, partial outages) through the real replay path
// and checks issue #14's Must-shows against each world's ground truth.
// It takes minutes (a week of 10,000 terminals among them), so it runs
// only with DECLINEMON_WORLD=1; DECLINEMON_WORLD_NAMES=a,b picks worlds.
func TestWorldMustShows(t *testing.T) {
	if os.Getenv("DECLINEMON_WORLD") != "1" {
		t.Skip("set DECLINEMON_WORLD=1 to replay the world-like fleets (minutes)")
	}
	var pick []string
	if v := os.Getenv("DECLINEMON_WORLD_NAMES"); v != "" {
		pick = strings.Split(v, ",")
	}
	var scores []scenario.WorldScore
	for _, w := range scenario.Worlds() {
		if pick != nil && !slices.Contains(pick, w.Name) {
			continue
		}
		sc, err := scenario.RunWorld(w, replayWorld(t), "replay")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d events, %d terminals, %d days, replayed in %s", w.Name, sc.Truth.Events, sc.Truth.Terminals, sc.Truth.Days, sc.Elapsed.Round(100*time.Millisecond))
		for _, m := range sc.MustShows() {
			if !m.OK {
				where := m.World
				if m.Fault != "" {
					where = m.Fault
				}
				verdict := "fails"
				if m.Unmeasured {
					verdict = "is not measured (the detector counted the world's events late)"
				}
				t.Errorf("Must-show %q %s on %s: %s", m.Must, verdict, where, m.Detail)
			}
		}
		if sc.Clock != nil {
			for _, d := range sc.Clock.Differences {
				t.Errorf("%s: %s", w.Name, d)
			}
		}
		scores = append(scores, sc)
	}
	var b strings.Builder
	if err := scenario.WriteWorldTable(&b, scores); err != nil {
		t.Fatal(err)
	}
	t.Log("quality table (replay path)\n" + b.String())
}

// replayWorld is replayEvents for a world too large to hold: the world's
// events go, as event-v1 JSONL in arrival order, through a named pipe
// into Replay (decoding, clock screen, lateness, detection) while they
// are generated.
func replayWorld(t *testing.T) scenario.WorldDetector {
	return func(w scenario.World) (scenario.Detection, error) {
		dir := t.TempDir()
		in := filepath.Join(dir, "events.jsonl")
		if err := syscall.Mkfifo(in, 0o600); err != nil {
			return scenario.Detection{}, fmt.Errorf("mkfifo: %w", err)
		}
		out := filepath.Join(dir, "alerts.jsonl")
		var (
			truth  scenario.WorldTruth
			genErr error
			wg     sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(in, os.O_WRONLY, 0) // until Replay opens it
			if err != nil {
				genErr = err
				return
			}
			bw := bufio.NewWriterSize(f, 1<<20)
			var buf []byte
			truth, genErr = w.Generate(func(ev *event.Event) {
				buf = append(event.AppendJSON(buf[:0], ev), '\n')
				bw.Write(buf)
			})
			genErr = errors.Join(genErr, bw.Flush(), f.Close())
		}()
		sum, err := Replay(context.Background(), ReplayOptions{Input: in, AlertsOut: out})
		if err != nil {
			// Unblock the writer, whether or not Replay opened the pipe.
			if r, oerr := os.OpenFile(in, os.O_RDONLY|syscall.O_NONBLOCK, 0); oerr == nil {
				go func() { io.Copy(io.Discard, r); r.Close() }()
			}
			wg.Wait()
			return scenario.Detection{}, err
		}
		wg.Wait()
		if genErr != nil {
			return scenario.Detection{}, genErr
		}
		c := sum.Counts
		t.Logf("%s%s: replay accepted %d of %d, %d late, %d clock_skew on %d terminals (truth: %d events, %d with a wrong clock on %d terminals, %d more than a minute late, %d backlog)",
			w.Name, map[bool]string{true: " (correct clocks)"}[w.CorrectClocks], c.Accepted, c.Messages, c.Late, c.ClockSkew, len(c.Skewed),
			truth.Events, truth.WrongClockEvents, len(truth.WrongClockTerminals), truth.LateEvents, truth.BacklogEvents)
		cfg, err := LoadConfig("")
		if err != nil {
			return scenario.Detection{}, err
		}
		alerts, err := scenario.ReadAlerts(out)
		return scenario.Detection{Truth: truth, Alerts: alerts, Late: int64(c.Late),
			Lateness: cmp.Or(cfg.Detection.Lateness, alerting.Defaults().Lateness)}, err
	}
}
