package alerting_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// stream is a scenario's events, classified once.
type stream struct {
	evs         []event.Event
	causes      []event.Cause
	maintenance []alerting.MaintenanceWindow
}

func scenarioStream(t testing.TB, s scenario.Scenario) stream {
	t.Helper()
	rules := classify.Default()
	var st stream
	truth, err := s.Generate(func(ev *event.Event) {
		st.evs = append(st.evs, *ev)
		st.causes = append(st.causes, rules.Classify(ev).Cause)
	})
	if err != nil {
		t.Fatal(err)
	}
	st.maintenance = truth.Maintenance
	return st
}

func findScenario(t testing.TB, name string) scenario.Scenario {
	t.Helper()
	s, err := scenario.Find(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flooded replaces the terminal and merchant ids of every nth event with
// ids never seen before, as a broken producer would: the scope cap and the
// evictions it forces then run all along.
func flooded(st stream, n int) stream {
	out := stream{evs: slices.Clone(st.evs), causes: st.causes, maintenance: st.maintenance}
	for i := range out.evs {
		if i%n == 0 {
			out.evs[i].Terminal = fmt.Sprintf("FLOOD-T%d", i)
			out.evs[i].Merchant = fmt.Sprintf("FLOOD-M%d", i/2)
		}
	}
	return out
}

// recorder collects alerts as alerts-v1 JSON lines.
type recorder struct {
	t     testing.TB
	lines bytes.Buffer
	n     int
}

func (r *recorder) emit(a alerting.Alert) {
	line, err := a.MarshalJSONLine()
	if err != nil {
		r.t.Fatal(err)
	}
	r.lines.Write(line)
	r.n++
}

func newEngine(t testing.TB, cfg alerting.Config, r *recorder) *alerting.Engine {
	t.Helper()
	e, err := alerting.NewEngine(cfg, r.emit)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// split is a point in a stream to snapshot at: before event at.
type split struct {
	name string
	at   int
}

// findSplits runs the stream uninterrupted and returns its output, final
// stats and the split points worth testing: the start, the middle, the end
// (before Flush), the middle of the first firing incident, of the first
// terminal hold and of the first other hold, right after the first idle
// eviction and the first cap sweep, and while a terminal's dims point at
// an evicted scope. It checks between every two events that the state
// AppendSnapshot leaves out is empty.
func findSplits(t *testing.T, cfg alerting.Config, st stream) ([]byte, alerting.Stats, []split) {
	t.Helper()
	rec := &recorder{t: t}
	e := newEngine(t, cfg, rec)
	splits := []split{{"start", 0}, {"first-event", 1}, {"middle", len(st.evs) / 2}, {"end", len(st.evs)}}
	type run struct{ from, to int }
	var firing, termHold, otherHold run
	extend := func(r *run, on bool, i int) {
		switch {
		case on && r.from == 0:
			r.from, r.to = i, i
		case on && r.to == i-1:
			r.to = i
		}
	}
	idle, sweep, detached := -1, -1, -1
	var prev alerting.Stats
	for i := range st.evs {
		e.Observe(&st.evs[i], st.causes[i])
		if err := alerting.CheckQuiescent(e); err != nil {
			t.Fatalf("after event %d: %v", i, err)
		}
		at := i + 1
		extend(&firing, len(e.Active()) > 0, at)
		th, oh := alerting.PendingHolds(e)
		extend(&termHold, th > 0, at)
		extend(&otherHold, oh > 0, at)
		s := e.Stats()
		if s.EvictedScopes-s.EvictedAtCap > prev.EvictedScopes-prev.EvictedAtCap && idle < 0 {
			idle = at
		}
		if s.CapSweeps > prev.CapSweeps && sweep < 0 {
			sweep = at
		}
		if s.EvictedScopes > prev.EvictedScopes && detached < 0 && alerting.EvictedDims(e) > 0 {
			detached = at
		}
		prev = s
	}
	e.Flush()
	for _, r := range []struct {
		name string
		run
	}{{"firing", firing}, {"terminal-hold", termHold}, {"other-hold", otherHold}} {
		if r.from > 0 {
			splits = append(splits, split{r.name, (r.from + r.to) / 2})
		}
	}
	for _, p := range []split{{"after-idle-eviction", idle}, {"after-cap-sweep", sweep}, {"evicted-dims", detached}} {
		if p.at >= 0 {
			splits = append(splits, p)
		}
	}
	return rec.lines.Bytes(), e.Stats(), splits
}

// TestSnapshotRestoreContinuesIdentically is the oracle for checkpoints:
// an engine restored from a snapshot taken anywhere in a stream and fed
// the rest of it emits exactly what the uninterrupted engine emits, byte
// for byte, and ends with the same counters. Each case must reach the
// split points it is there for (listed in want).
func TestSnapshotRestoreContinuesIdentically(t *testing.T) {
	held := map[string]alerting.RuleConfig{"terminal_hardware": {Pending: 2 * time.Minute}}
	busy := findScenario(t, "busy-mixed-day")
	busy.Duration = scenario.Duration(4 * time.Hour)
	failing := findScenario(t, "failing-terminals")
	failing.Duration = scenario.Duration(5 * time.Hour)
	cases := []struct {
		name     string
		scenario scenario.Scenario
		cfg      alerting.Config
		flood    int      // every flood-th event gets new ids; 0: none
		want     []string // split points checked, besides the middle and the end
	}{
		{name: "carrier-outage", scenario: findScenario(t, "carrier-outage"), want: []string{"start", "first-event", "firing"}},
		{name: "failing-terminals-held-idle", scenario: findScenario(t, "failing-terminals"),
			cfg:  alerting.Config{IdleTTL: 20 * time.Minute, Rules: held},
			want: []string{"firing", "terminal-hold", "after-idle-eviction"}},
		{name: "mac-errors", scenario: findScenario(t, "mac-errors"), want: []string{"firing"}},
		{name: "decline-spike", scenario: findScenario(t, "decline-spike"), want: []string{"firing", "other-hold"}},
		{name: "maintenance-window", scenario: findScenario(t, "maintenance-window"), want: []string{"firing"}},
		{name: "busy-capped", scenario: busy, cfg: alerting.Config{MaxScopes: 5000, IdleTTL: 30 * time.Minute, Rules: held},
			want: []string{"firing", "terminal-hold", "after-cap-sweep", "evicted-dims"}},
		{name: "flood-capped", scenario: failing, flood: 5,
			cfg:  alerting.Config{MaxScopes: 4000, IdleTTL: 15 * time.Minute, Rules: held},
			want: []string{"firing", "terminal-hold", "after-cap-sweep", "evicted-dims"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "carrier-outage" {
				t.Skip("short")
			}
			t.Parallel()
			st := scenarioStream(t, tc.scenario)
			if tc.flood > 0 {
				st = flooded(st, tc.flood)
			}
			cfg := tc.cfg
			cfg.Maintenance = st.maintenance
			want, wantStats, splits := findSplits(t, cfg, st)
			for _, w := range tc.want {
				if !slices.ContainsFunc(splits, func(s split) bool { return s.name == w }) {
					t.Errorf("the stream never reaches a %s split point", w)
				}
			}
			splits = slices.DeleteFunc(splits, func(s split) bool {
				return s.name != "middle" && s.name != "end" && !slices.Contains(tc.want, s.name)
			})
			checkSplits(t, cfg, st, want, wantStats, splits)
		})
	}
}

// checkSplits takes every split's snapshot in one pass (which must not
// change the output), then restores each into a new engine, twice over (a
// snapshot of the restored engine must restore to the same state), and
// feeds it the rest of the stream.
func checkSplits(t *testing.T, cfg alerting.Config, st stream, want []byte, wantStats alerting.Stats, splits []split) {
	t.Helper()
	type taken struct {
		split
		snap  []byte
		state []string
		out   int // bytes of output before the split
	}
	var snaps []taken
	rec := &recorder{t: t}
	e := newEngine(t, cfg, rec)
	for i := 0; i <= len(st.evs); i++ {
		for _, s := range splits {
			if s.at == i {
				snaps = append(snaps, taken{split: s, snap: e.AppendSnapshot(nil), state: alerting.SnapshotState(e), out: rec.lines.Len()})
			}
		}
		if i < len(st.evs) {
			e.Observe(&st.evs[i], st.causes[i])
		}
	}
	e.Flush()
	if !bytes.Equal(rec.lines.Bytes(), want) {
		t.Fatal("taking snapshots changed the engine's output")
	}
	for _, s := range snaps {
		rec := &recorder{t: t}
		r := newEngine(t, cfg, rec)
		if err := r.Restore(s.snap); err != nil {
			t.Fatalf("%s (event %d): %v", s.name, s.at, err)
		}
		if got := alerting.SnapshotState(r); !slices.Equal(got, s.state) {
			t.Fatalf("%s (event %d): restored state differs: %s", s.name, s.at, alerting.FirstStateDiff(s.state, got))
		}
		again := r.AppendSnapshot(nil)
		r2 := newEngine(t, cfg, &recorder{t: t})
		if err := r2.Restore(again); err != nil {
			t.Fatalf("%s: restoring the restored engine's snapshot: %v", s.name, err)
		}
		if got := alerting.SnapshotState(r2); !slices.Equal(got, s.state) {
			t.Fatalf("%s: state restored from a restored engine differs: %s", s.name, alerting.FirstStateDiff(s.state, got))
		}
		for i := s.at; i < len(st.evs); i++ {
			r.Observe(&st.evs[i], st.causes[i])
		}
		r.Flush()
		got := append(want[:s.out:s.out], rec.lines.Bytes()...)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s (event %d of %d, %d bytes snapshot): output differs from the uninterrupted run:\n%s",
				s.name, s.at, len(st.evs), len(s.snap), lineDiff(got, want))
		}
		if gs := r.Stats(); gs != wantStats {
			t.Fatalf("%s: stats %+v, uninterrupted %+v", s.name, gs, wantStats)
		}
		t.Logf("%-20s event %7d/%d: snapshot %7d bytes, %d alert bytes before, %d after", s.name, s.at, len(st.evs), len(s.snap), s.out, rec.lines.Len())
	}
}

func lineDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := range max(len(g), len(w)) {
		var x, y []byte
		if i < len(g) {
			x = g[i]
		}
		if i < len(w) {
			y = w[i]
		}
		if !bytes.Equal(x, y) {
			return fmt.Sprintf("line %d\n got: %s\nwant: %s", i+1, x, y)
		}
	}
	return "(equal)"
}

// smallRun feeds the first n events of the decline-spike scenario, cut
// short, and returns the engine.
func smallRun(t testing.TB, cfg alerting.Config, st stream, n int) *alerting.Engine {
	e := newEngine(t, cfg, &recorder{t: t})
	for i := range min(n, len(st.evs)) {
		e.Observe(&st.evs[i], st.causes[i])
	}
	return e
}

func shortStream(t testing.TB) stream {
	s := findScenario(t, "decline-spike")
	s.Fleet.Terminals = 200
	s.Duration = scenario.Duration(2*time.Hour + 20*time.Minute)
	return scenarioStream(t, s)
}

func TestSnapshotIncompatibleConfig(t *testing.T) {
	st := shortStream(t)
	snap := smallRun(t, alerting.Config{}, st, len(st.evs)).AppendSnapshot(nil)
	for _, tc := range []struct {
		cfg  alerting.Config
		want string // in the error
	}{
		{alerting.Config{Tick: 5 * time.Second}, "tick is 10s in the snapshot, 5s here"},
		{alerting.Config{TerminalWindow: 30 * time.Minute}, "terminal bucket width (terminal_window/10) is 1m30s in the snapshot, 3m0s here"},
		{alerting.Config{GroupWindow: 2 * time.Minute}, "region bucket width"},
		{alerting.Config{MerchantWindow: 30 * time.Minute}, "merchant bucket width"},
		{alerting.Config{Lateness: time.Minute}, "lateness is 30s in the snapshot, 1m0s here"},
		{alerting.Config{BaselineHalfLife: time.Hour}, "baseline_half_life is 6h0m0s in the snapshot, 1h0m0s here"},
	} {
		e := newEngine(t, tc.cfg, &recorder{t: t})
		err := e.Restore(snap)
		if !errors.Is(err, alerting.ErrSnapshotIncompatible) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: Restore error %v, want ErrSnapshotIncompatible naming %q", tc.cfg, err, tc.want)
		}
		if e.Stats() != (alerting.Stats{}) || !e.Watermark().IsZero() {
			t.Errorf("a refused Restore left state behind: %+v", e.Stats())
		}
	}
	// Thresholds, the cap, retention and labels may change.
	for _, cfg := range []alerting.Config{
		{Rules: map[string]alerting.RuleConfig{"decline_spike": {MinRate: 0.5, MinFailures: 30, ClearAfter: time.Hour, Pending: time.Minute}}},
		{Alpha: 1e-3, MinBaseline: 0.01, PriorWeight: 10},
		{MaxScopes: 100, MaxRecords: 10, IdleTTL: time.Minute, MerchantSurgeWindow: time.Minute},
		{Labels: map[string]string{"env": "test"}},
	} {
		e := newEngine(t, cfg, &recorder{t: t})
		if err := e.Restore(snap); err != nil {
			t.Errorf("config %+v: %v", cfg, err)
			continue
		}
		for i := range st.evs[:100] { // and it runs
			ev := st.evs[i]
			ev.Time = ev.Time.Add(3 * time.Hour)
			e.Observe(&ev, st.causes[i])
		}
		e.Flush()
	}
}

func TestSnapshotRestoreRefusals(t *testing.T) {
	st := shortStream(t)
	e := smallRun(t, alerting.Config{}, st, len(st.evs))
	snap := e.AppendSnapshot(nil)
	if len(e.Active()) == 0 {
		t.Fatal("want incidents in the snapshot")
	}

	// An engine that has observed refuses.
	used := smallRun(t, alerting.Config{}, st, 10)
	if err := used.Restore(snap); err == nil {
		t.Error("Restore into an engine that observed events succeeded")
	}

	// Damage anywhere is detected, and leaves the engine usable.
	fresh := newEngine(t, alerting.Config{}, &recorder{t: t})
	for _, at := range []int{0, 7, 8, 9, 40, len(snap) / 3, len(snap) / 2, len(snap) - 5, len(snap) - 1} {
		bad := slices.Clone(snap)
		bad[at] ^= 0x20
		if err := fresh.Restore(bad); err == nil || errors.Is(err, alerting.ErrSnapshotIncompatible) && at >= 9 {
			t.Errorf("byte %d flipped: Restore error %v", at, err)
		}
	}
	for _, n := range []int{0, 1, 8, 12, len(snap) / 2, len(snap) - 1} {
		if err := fresh.Restore(snap[:n]); err == nil {
			t.Errorf("truncated to %d bytes: Restore succeeded", n)
		}
	}
	if err := fresh.Restore(append(slices.Clone(snap), 0)); err == nil {
		t.Error("trailing byte: Restore succeeded")
	}
	// A future format version is incompatible, not corrupt.
	future := slices.Clone(snap)
	future[8] = 2
	if err := fresh.Restore(future); !errors.Is(err, alerting.ErrSnapshotIncompatible) {
		t.Errorf("version 2: %v", err)
	}
	if fresh.Stats() != (alerting.Stats{}) {
		t.Fatal("failed restores left state behind")
	}
	if err := fresh.Restore(snap); err != nil {
		t.Fatalf("restore after failed ones: %v", err)
	}
	if got, want := fresh.Active(), e.Active(); !slices.EqualFunc(got, want, func(a, b alerting.Alert) bool { return a.ID == b.ID }) {
		t.Errorf("active alerts %v, want %v", got, want)
	}

	// AppendSnapshot appends. (Its length may vary by a few bytes from
	// one call to the next: scopes are written in map order, and the
	// varints of references to them vary with it.)
	prefix := []byte("prefix")
	both := e.AppendSnapshot(prefix)
	if !bytes.HasPrefix(both, prefix) {
		t.Error("AppendSnapshot overwrote its buffer")
	}
	if err := newEngine(t, alerting.Config{}, &recorder{t: t}).Restore(both[len(prefix):]); err != nil {
		t.Error(err)
	}
}

// reseal replaces data's checksum with a correct one, so that the fuzzer's
// mutations reach the decoder.
func reseal(data []byte) []byte {
	if len(data) < 4 {
		return data
	}
	body := data[: len(data)-4 : len(data)-4]
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
}

// FuzzRestore checks that no input makes Restore panic, and that whatever
// it accepts can be run.
func FuzzRestore(f *testing.F) {
	st := shortStream(f)
	for _, n := range []int{0, 1, len(st.evs) / 2, len(st.evs)} {
		snap := smallRun(f, alerting.Config{}, st, n).AppendSnapshot(nil)
		f.Add(snap)
		for _, cut := range []int{1, 9, len(snap) / 2, len(snap) - 4, len(snap) - 1} {
			if cut < len(snap) {
				f.Add(snap[:cut])
				f.Add(reseal(snap[:cut]))
			}
		}
	}
	tail := st.evs[len(st.evs)-200:]
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range [][]byte{data, reseal(slices.Clone(data))} {
			e, err := alerting.NewEngine(alerting.Config{}, func(alerting.Alert) {})
			if err != nil {
				t.Fatal(err)
			}
			if e.Restore(d) != nil {
				if e.Stats() != (alerting.Stats{}) {
					t.Fatal("failed Restore left state behind")
				}
				continue
			}
			for i := range tail {
				ev := tail[i]
				e.Observe(&ev, event.CauseNetwork)
			}
			e.Flush()
			e.AppendSnapshot(nil)
		}
	})
}
