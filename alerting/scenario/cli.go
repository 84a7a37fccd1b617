package scenario

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// Main is the loadgen command.
func Main(args []string, stdout, stderr io.Writer) int {
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
		if _, ok := subcommands[args[1]]; ok {
			return Main([]string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "loadgen: unknown command %q\n%s", args[1], usage)
		return 2
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "loadgen: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usageErr *flagError
	if errors.As(err, &usageErr) {
		return 2 // parseFlags printed the reason and the usage
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	return 0
}

// subcommands are loadgen's commands, each listed in usage.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"list": listCmd, "generate": generateCmd, "produce": produceCmd, "score": scoreCmd, "world": worldCmd,
}

const usage = `usage: loadgen COMMAND [flags]   (loadgen COMMAND -h, or loadgen help COMMAND, for its flags)

  list       the scenario suite: name, fleet size, duration, incidents
  generate   write a scenario's events as event-v1 JSONL, and its ground truth
  produce    produce a scenario's events to a Kafka topic, paced by --speed
  score      replay every suite scenario through detection and score it against its truth
  world      generate the world-like fleets (issue #14), detect, and print the quality table and Must-shows

Exit codes: 0 ok, 1 failure, 2 usage error.
`

// flagError is a command line that does not parse (exit 2).
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// parseFlags parses args; -h/--help prints the command's usage to stdout
// (exit 0); a bad flag or a stray argument prints the reason and the usage
// to stderr and is a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard) // the usage is printed once, below
	fs.Usage = func() {}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: loadgen %s [flags]\n", fs.Name())
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nflags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return err
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen %s: %v\n\n", fs.Name(), err)
		printUsage(stderr)
		return &flagError{err}
	}
	return nil
}

func listCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	for _, s := range Suite() {
		var kinds []string
		for _, inc := range s.Incidents {
			kinds = append(kinds, inc.Type)
		}
		fmt.Fprintf(stdout, "%-20s %5d terminals %6s  %s\n", s.Name, s.Fleet.withDefaults().Terminals, time.Duration(s.Duration), strings.Join(kinds, ", "))
	}
	return nil
}

// Find returns the suite scenario called name.
func Find(name string) (Scenario, error) {
	for _, s := range Suite() {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("no scenario %q (see loadgen list)", name)
}

type genFlags struct {
	name, spec, out, truth, configOut string
	seed                              uint64
	terminals                         int
	badRatio                          float64
	endNow                            bool
}

func (g *genFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.name, "scenario", "busy-mixed-day", "suite scenario to generate (loadgen list)")
	fs.StringVar(&g.spec, "spec", "", "JSON scenario file instead of a suite scenario")
	fs.Uint64Var(&g.seed, "seed", 0, "override the fleet seed")
	fs.IntVar(&g.terminals, "terminals", 0, "override the fleet size")
	fs.BoolVar(&g.endNow, "end-now", false, "date the day so that it ends now (to the minute), so dashboards' default time ranges show it")
}

func (g *genFlags) scenario() (Scenario, error) {
	var s Scenario
	var err error
	if g.spec != "" {
		data, rerr := os.ReadFile(g.spec)
		if rerr != nil {
			return s, fmt.Errorf("reading spec: %w", rerr)
		}
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("parsing spec %s: %w", g.spec, err)
		}
	} else if s, err = Find(g.name); err != nil {
		return s, err
	}
	if g.seed != 0 {
		s.Fleet.Seed = g.seed
	}
	if g.terminals > 0 {
		s.Fleet.Terminals = g.terminals
	}
	if g.endNow {
		s.Start = time.Now().UTC().Truncate(time.Minute).Add(-time.Duration(s.Duration))
	}
	return s, nil
}

func generateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	var g genFlags
	g.register(fs)
	fs.StringVar(&g.out, "out", "-", "event-v1 JSONL output (.gz compresses), - for stdout")
	fs.StringVar(&g.truth, "truth", "", "write the ground truth (JSON) here")
	fs.StringVar(&g.configOut, "config-out", "", "write a replay config declaring the scenario's maintenance windows")
	fs.Float64Var(&g.badRatio, "bad-ratio", 0, "share of extra invalid lines (garbage, truncated, wrong types, card data)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	s, err := g.scenario()
	if err != nil {
		return err
	}
	var w io.Writer = stdout
	var closers []func() error
	if g.out != "-" {
		f, err := os.Create(g.out)
		if err != nil {
			return fmt.Errorf("creating output: %w", err)
		}
		closers = append(closers, f.Close)
		w = f
		if strings.HasSuffix(g.out, ".gz") {
			zw := gzip.NewWriter(f)
			closers = append([]func() error{zw.Close}, closers...)
			w = zw
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	truth, err := s.Generate(s.encoder(g.badRatio, func(_ string, msg []byte) {
		bw.Write(msg)
		bw.WriteByte('\n')
	}))
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	for _, c := range closers {
		if err := c(); err != nil {
			return fmt.Errorf("closing output: %w", err)
		}
	}
	if g.truth != "" {
		data, _ := json.MarshalIndent(truth, "", "  ")
		if err := os.WriteFile(g.truth, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing truth: %w", err)
		}
	}
	if g.configOut != "" {
		cfg := map[string]any{"detection": map[string]any{"maintenance": truth.Maintenance}}
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("encoding config: %w", err)
		}
		if err := os.WriteFile(g.configOut, data, 0o644); err != nil {
			return fmt.Errorf("writing config: %w", err)
		}
	}
	fmt.Fprintf(stderr, "loadgen: %s: %d events, %d incidents\n", s.Name, truth.Events, len(truth.Incidents))
	return nil
}

// badLine derives an invalid message from a valid one: the kinds of
// rejects a real feed produces.
func badLine(rng *rand.Rand, good []byte) string {
	g := string(good)
	switch rng.IntN(6) {
	case 0:
		return "#garbage " + fmt.Sprint(rng.Uint32())
	case 1:
		return g[:len(g)/2]
	case 2:
		return strings.Replace(g, `"merchant_id"`, `"merchant"`, 1)
	case 3:
		return strings.Replace(g, `{"event_id"`, `{"pan":"6228480402564890018","event_id"`, 1)
	case 4:
		return strings.Replace(g, `"card_bin":"`, `"card_bin":"6228480402`, 1)
	default:
		return strings.Replace(g, `"amount_minor":`, `"amount_minor":"`, 1)
	}
}

func scoreCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	name := fs.String("scenario", "", "score one suite scenario (default: all)")
	seedOffset := fs.Uint64("seed-offset", 0, "add to every scenario's seed (other fleets, same incident types)")
	cfgPath := fs.String("config", "", "YAML file with a detection: section to score instead of the defaults")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := detectionConfig(*cfgPath)
	if err != nil {
		return err
	}
	suite := Suite()
	if *name != "" {
		s, err := Find(*name)
		if err != nil {
			return err
		}
		suite = []Scenario{s}
	}
	rules := classify.Default()
	var scores []Score
	failed := 0
	for _, s := range suite {
		s.Fleet.Seed += *seedOffset
		sc, _, err := Run(s, rules, cfg)
		if err != nil {
			return err
		}
		if !sc.Passed() {
			failed++
		}
		scores = append(scores, sc)
	}
	if err := WriteTable(stdout, scores); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", failed, len(scores))
	}
	return nil
}

func worldCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("world", flag.ContinueOnError)
	var name string
	fs.StringVar(&name, "name", "", "run one world (default: all; -list names them)")
	fs.StringVar(&name, "scenario", "", "same as -name")
	seed := fs.Uint64("seed", 0, "override the seed (of every world, without -name)")
	list := fs.Bool("list", false, "list the worlds and exit")
	bin := fs.String("declinemon", "", "detect with this declinemon binary's replay (the whole path, with its clock screen) instead of the engine")
	cfgPath := fs.String("config", "", "YAML file with a detection: section (passed to -declinemon as --config)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	worlds := Worlds()
	if *list {
		for _, w := range worlds {
			var kinds []string
			for _, f := range w.Faults {
				kinds = append(kinds, f.Type)
			}
			if w.PairedClocks {
				kinds = append(kinds, "wrong clocks (paired)")
			}
			w = w.withDefaults()
			fmt.Fprintf(stdout, "%-18s %6d terminals %2d days  seed %-4d %s\n", w.Name, w.Terminals, w.Days, w.Seed, strings.Join(kinds, ", "))
		}
		return nil
	}
	if name != "" {
		w, err := FindWorld(name)
		if err != nil {
			return err
		}
		worlds = []World{w}
	}
	detect, path := WorldDetector(nil), "engine"
	if *bin != "" {
		detect, path = BinaryDetector(*bin, *cfgPath), "replay"
	} else {
		cfg, err := detectionConfig(*cfgPath)
		if err != nil {
			return err
		}
		detect = EngineDetector(classify.Default(), cfg)
	}
	var scores []WorldScore
	for _, w := range worlds {
		if *seed != 0 {
			w.Seed = *seed
		}
		sc, err := RunWorld(w, detect, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "loadgen world: %s: %d events, %d alerts paging, %s\n", w.Name, sc.Truth.Events, sc.Paging, sc.Elapsed.Round(100*time.Millisecond))
		scores = append(scores, sc)
	}
	if err := WriteWorldTable(stdout, scores); err != nil {
		return err
	}
	failed, total := 0, 0
	for _, s := range scores {
		for _, m := range s.MustShows() {
			total++
			if !m.OK {
				failed++
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d must-show checks failed", failed, total)
	}
	return nil
}

func produceCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	var g genFlags
	g.register(fs)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := fs.String("topic", "pos.events", "topic to produce event-v1 messages to")
	fs.Float64Var(&g.badRatio, "bad-ratio", 0, "share of extra invalid lines (garbage, truncated, wrong types, card data)")
	batch := fs.Int("batch", 5000, "messages per produce request batch")
	speed := fs.Float64("speed", 0, "pace event time this many times faster than the clock (0: as fast as possible)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	s, err := g.scenario()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := NewProducer(strings.Split(*brokers, ","), *topic, *batch)
	start := time.Now()
	truth, err := s.Play(ctx, p, *speed, g.badRatio)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loadgen: produced %d messages (%d events) of %s to %s in %s\n", p.Sent(), truth.Events, s.Name, *topic, time.Since(start).Round(time.Millisecond))
	return nil
}

// encoder returns a Generate callback that encodes each event as event-v1
// JSON and, with probability badRatio, follows it with an invalid message
// derived from it. msg is reused between calls.
func (s Scenario) encoder(badRatio float64, emit func(terminal string, msg []byte)) func(*event.Event) {
	rng := rand.New(rand.NewPCG(s.Fleet.Seed, 0xbad))
	var buf []byte
	return func(ev *event.Event) {
		buf = event.AppendJSON(buf[:0], ev)
		emit(ev.Terminal, buf)
		if badRatio > 0 && rng.Float64() < badRatio {
			emit(ev.Terminal, []byte(badLine(rng, buf)))
		}
	}
}

// detectionConfig reads the detection: section of a YAML file; no path
// means the defaults.
func detectionConfig(path string) (alerting.Config, error) {
	if path == "" {
		return alerting.Config{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return alerting.Config{}, fmt.Errorf("reading config: %w", err)
	}
	var wrap struct {
		Detection alerting.Config `yaml:"detection"`
	}
	if err := yaml.Unmarshal(data, &wrap); err != nil {
		return alerting.Config{}, fmt.Errorf("parsing config: %w", err)
	}
	return wrap.Detection, nil
}
