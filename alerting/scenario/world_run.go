package scenario

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// Detection is what a detection path made of a world.
type Detection struct {
	Truth  WorldTruth
	Alerts []alerting.Alert
	// Late is how many events the path counted late (beyond Lateness) and
	// did not detect on; -1 when the path does not say.
	Late     int64
	Lateness time.Duration
}

// WorldDetector runs a world's events, in arrival order, through
// detection.
type WorldDetector func(w World) (Detection, error)

// EngineDetector classifies and detects with alerting.Engine directly, as
// Run does. The engine has no clock screen (that is the pipeline's), so
// events with a wrong timestamp are withheld: a perfect screen. Only the
// replay path measures the screen itself.
func EngineDetector(rules *classify.Rules, cfg alerting.Config) WorldDetector {
	return func(w World) (Detection, error) {
		d := Detection{Lateness: cmp.Or(cfg.Lateness, alerting.Defaults().Lateness)}
		eng, err := alerting.NewEngine(cfg, func(a alerting.Alert) { d.Alerts = append(d.Alerts, a) })
		if err != nil {
			return d, err
		}
		d.Truth, err = w.generate(func(ev *event.Event, m *evMeta) {
			if !m.wrong && !eng.Observe(ev, rules.Classify(ev).Cause) {
				d.Late++
			}
		})
		if err != nil {
			return d, err
		}
		eng.Flush()
		return d, nil
	}
}

// BinaryDetector pipes the world as event-v1 JSONL into `BIN replay
// --input -` (the whole replay path: decoding, clock screen, lateness,
// detection) and reads the alerts it writes.
func BinaryDetector(bin, configPath string) WorldDetector {
	return func(w World) (Detection, error) {
		dir, err := os.MkdirTemp("", "loadgen-world-")
		if err != nil {
			return Detection{}, err
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "alerts.jsonl")
		args := []string{"replay", "--input", "-", "--alerts-out", out}
		if configPath != "" {
			args = append(args, "--config", configPath)
		}
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return Detection{}, err
		}
		if err := cmd.Start(); err != nil {
			return Detection{}, fmt.Errorf("starting %s: %w", bin, err)
		}
		bw := bufio.NewWriterSize(in, 1<<20)
		var buf []byte
		truth, genErr := w.Generate(func(ev *event.Event) {
			buf = append(event.AppendJSON(buf[:0], ev), '\n')
			bw.Write(buf)
		})
		werr := bw.Flush()
		in.Close()
		if err := cmd.Wait(); err != nil {
			return Detection{}, fmt.Errorf("%s replay: %w\n%s", bin, err, lastLines(stderr.String(), 10))
		}
		if genErr != nil {
			return Detection{}, genErr
		}
		if werr != nil {
			return Detection{}, fmt.Errorf("writing events to %s: %w", bin, werr)
		}
		alerts, err := ReadAlerts(out)
		return Detection{Truth: truth, Alerts: alerts, Late: -1}, err
	}
}

// ReadAlerts reads an alerts-v1 JSONL file.
func ReadAlerts(path string) ([]alerting.Alert, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	var alerts []alerting.Alert
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var a alerting.Alert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		alerts = append(alerts, a)
	}
	return alerts, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// RunWorld detects w with detect and scores it; a paired world is run a
// second time with correct clocks and the two compared.
func RunWorld(w World, detect WorldDetector, path string) (WorldScore, error) {
	start := time.Now()
	d, err := detect(w)
	if err != nil {
		return WorldScore{}, fmt.Errorf("world %s: %w", w.Name, err)
	}
	sc := ScoreWorld(d.Truth, d.Alerts)
	sc.Late, sc.Lateness = d.Late, d.Lateness
	if w.PairedClocks {
		clean, err := detect(w.WithCorrectClocks())
		if err != nil {
			return WorldScore{}, fmt.Errorf("world %s with correct clocks: %w", w.Name, err)
		}
		sc.Clock = &ClockCheck{Differences: d.Truth.CompareClocks(clean.Alerts, d.Alerts)}
		if path == "engine" {
			sc.Clock.Note = "engine path: wrong-clock events withheld (a perfect screen); the replay path measures the real one"
		}
	}
	sc.Elapsed, sc.Path = time.Since(start), path
	return sc, nil
}
