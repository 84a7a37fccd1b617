package scenario

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// The generator's own properties, checked without any detector.

// worldEvent is an emitted event with what the generator knows of it.
type worldEvent struct {
	ev   event.Event
	meta evMeta
}

func collect(t *testing.T, w World) ([]worldEvent, WorldTruth) {
	t.Helper()
	var out []worldEvent
	truth, err := w.generate(func(ev *event.Event, m *evMeta) { out = append(out, worldEvent{*ev, *m}) })
	if err != nil {
		t.Fatal(err)
	}
	if truth.Events != len(out) {
		t.Fatalf("truth says %d events, %d emitted", truth.Events, len(out))
	}
	return out, truth
}

func testDay(d int) time.Time { return time.Date(2026, 11, 24+d, 0, 0, 0, 0, worldLoc) }

func hm(h, m int) Duration {
	return Duration(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// TestWorldVolumesAreHeavyTailed: most terminals carry a handful of
// attempts an hour, a few carry a hundred or more.
func TestWorldVolumesAreHeavyTailed(t *testing.T) {
	w := World{Name: "t-volume", Seed: 1, Terminals: 1500, Regions: 6, IDPrefix: "TV", Start: testDay(0), Days: 1}
	evs, truth := collect(t, w)
	per := map[string]float64{}
	for _, e := range evs {
		per[e.ev.Terminal]++
	}
	var rates []float64
	for range truth.Terminals - len(per) {
		rates = append(rates, 0) // idle all day
	}
	for _, n := range per {
		rates = append(rates, n/24)
	}
	slices.Sort(rates)
	p := func(q float64) float64 { return rates[int(q*float64(len(rates)-1))] }
	t.Logf("%d events; attempts/h per terminal over the day: p10 %.2f p50 %.2f p90 %.2f p99 %.2f max %.1f", len(evs), p(0.1), p(0.5), p(0.9), p(0.99), p(1))
	if p(0.99)/p(0.5) <= 10 {
		t.Errorf("p99/p50 of per-terminal hourly attempts = %.1f, want > 10 (heavy-tailed)", p(0.99)/p(0.5))
	}
	if p(0.5) > 5 {
		t.Errorf("median terminal carries %.1f attempts/h over the day: most terminals are small shops", p(0.5))
	}
}

// TestWorldRampCrossesAtReference: the degrading reader's measured
// failure share is below 25% before the truth's reference time and above
// it after; a sudden fault is above it at once.
func TestWorldRampCrossesAtReference(t *testing.T) {
	w := World{Name: "t-ramp", Seed: 2, Terminals: 1500, Regions: 5, IDPrefix: "TR", Start: testDay(1), Days: 1,
		Faults: []WorldFault{
			{Type: FaultHardwareRamp, At: hm(12, 0), For: hm(1, 30), PerHour: 60},
			{Type: FaultHardwareRamp, At: hm(18, 0), For: hm(2, 0), PerHour: 150},
			{Type: FaultHardwareStep, At: hm(16, 0), PerHour: 30},
		}}
	evs, truth := collect(t, w)
	technical := map[string]bool{}
	for _, c := range []string{"CHIP_READ_FAIL", "MAG_READ_FAIL", "CONTACTLESS_READ_FAIL", "READER_COMM_ERROR", "CHIP_FALLBACK",
		"COMM_TIMEOUT", "RECV_FAIL", "SEND_FAIL", "HOST_UNREACHABLE", "WEAK_SIGNAL"} {
		technical[c] = true
	}
	for _, f := range truth.Faults {
		share := func(from, to time.Time) (float64, int) {
			n, fail := 0, 0
			for _, e := range evs {
				if e.ev.Terminal != f.ScopeID || e.meta.trueTime.Before(from) || !e.meta.trueTime.Before(to) {
					continue
				}
				n++
				if technical[e.ev.TerminalError] {
					fail++
				}
			}
			return float64(fail) / float64(max(n, 1)), n
		}
		// Measured in windows ending / starting a quarter of an hour from
		// the reference: the crossing is there, give or take that.
		win, gap := 45*time.Minute, 15*time.Minute
		if f.Type == FaultHardwareStep {
			win, gap = 90*time.Minute, 0
		}
		before, nb := share(f.Reference.Add(-gap-win), f.Reference.Add(-gap))
		after, na := share(f.Reference.Add(gap), f.Reference.Add(gap+win))
		t.Logf("%s %s at %.0f/h (truth): %.0f%% of %d in the %s to %s before %s, %.0f%% of %d after", f.Type, f.ScopeID, f.VolumePerHour,
			100*before, nb, win, gap, f.Reference.Format("15:04"), 100*after, na)
		if f.Type == FaultHardwareStep {
			if !f.Onset.Equal(f.Reference) || after < 0.25 || before > 0.15 || na < 10 {
				t.Errorf("step fault %s: onset %s, reference %s, %.0f%% before, %.0f%% after", f.ScopeID, f.Onset, f.Reference, 100*before, 100*after)
			}
			continue
		}
		if before >= 0.25 || after <= 0.25 || nb < 10 || na < 10 {
			t.Errorf("ramp %s: failing %.0f%% (of %d) in the %s before the reference and %.0f%% (of %d) after; want it to pass 25%% there",
				f.ScopeID, 100*before, nb, win, 100*after, na)
		}
		// Retries after failures and the hour's busyness move the count.
		if r := float64(na) * 60 / win.Minutes() / f.VolumePerHour; r < 0.4 || r > 2.5 {
			t.Errorf("ramp %s: %.0f attempts/h in truth, %d in %s measured", f.ScopeID, f.VolumePerHour, na, win)
		}
		if !f.Onset.Before(f.Reference) {
			t.Errorf("ramp %s starts %s, after its reference %s", f.ScopeID, f.Onset, f.Reference)
		}
	}
}

// TestWorldStagedRollout: batches grow night by night; the truth's
// reference is the tenth terminal's first attempt on the new version, as
// the events show; no terminal goes back.
func TestWorldStagedRollout(t *testing.T) {
	// A handheld model: more terminals in a small fleet.
	w := World{Name: "t-fw", Seed: 3, Terminals: 800, Regions: 5, IDPrefix: "TF", Start: testDay(0), Days: 4,
		Faults: []WorldFault{{Type: FaultStagedFirmware, Day: 1, Model: "A8"}}}
	id := resolveOnly(t, w)[0].ScopeID
	model, version, _ := strings.Cut(id, "/")
	first := map[string]time.Time{}
	var back string
	truth, err := w.Generate(func(ev *event.Event) {
		if ev.Model != model {
			return
		}
		if ev.Firmware == version {
			if at, ok := first[ev.Terminal]; !ok || ev.Time.Before(at) {
				first[ev.Terminal] = ev.Time
			}
		} else if at, ok := first[ev.Terminal]; ok && ev.Time.After(at) && back == "" {
			back = fmt.Sprintf("%s back on %s at %s after running %s since %s", ev.Terminal, ev.Firmware, ev.Time, version, at)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if back != "" {
		t.Error(back)
	}
	f := truth.Faults[0]
	if f.ScopeID != id {
		t.Fatalf("resolved %s, generated %s", id, f.ScopeID)
	}
	var times []time.Time
	for _, at := range first {
		times = append(times, at)
	}
	slices.SortFunc(times, time.Time.Compare)
	if len(times) < 10 {
		t.Fatalf("%d terminals transacted on %s", len(times), f.ScopeID)
	}
	t.Logf("%s: %d terminals on it by the end; tenth at %s (truth %s); cohort %.0f attempts/h then; %s", f.ScopeID, len(times),
		times[9].Format("01-02 15:04:05"), f.Reference.Format("01-02 15:04:05"), f.VolumePerHour, f.Note)
	if !times[9].Equal(f.Reference) {
		t.Errorf("tenth terminal on %s at %s in the events, %s in the truth", f.ScopeID, times[9], f.Reference)
	}
	// Updates happen at night or at the first attempt after it.
	perDay := map[int]int{}
	for _, at := range times {
		perDay[int(at.Sub(w.Start)/(24*time.Hour))]++
	}
	if perDay[0] != 0 || perDay[1] == 0 || perDay[1] > 3 || perDay[2] <= perDay[1] {
		t.Errorf("terminals first on the new version per day: %v; want a pilot of at most 3 on day 1, then larger batches", perDay)
	}
}

// TestWorldSilentRegionBacklog: the cut-off terminals send nothing during
// the silence; what they stored arrives after it ends, with timestamps
// inside it.
func TestWorldSilentRegionBacklog(t *testing.T) {
	w := World{Name: "t-silent", Seed: 4, Terminals: 1500, Regions: 6, IDPrefix: "TS", Start: testDay(0), Days: 1,
		Faults: []WorldFault{{Type: FaultSilentRegion, At: hm(11, 0), For: hm(0, 40)}}}
	evs, truth := collect(t, w)
	f := truth.Faults[0]
	held := map[string]bool{}
	for _, id := range f.Held {
		held[id] = true
	}
	var newest time.Time // the newest true time the stream has reached
	backlog, inside, during := 0, 0, 0
	for _, e := range evs {
		at := e.meta.trueTime
		if e.meta.held {
			backlog++
			// Stored while cut off (the silence, and the minutes each
			// terminal takes to reconnect), uploaded after it.
			if !held[e.ev.Terminal] || at.Before(f.Onset) || at.After(f.End.Add(3*time.Minute)) {
				t.Fatalf("backlog event %s of %s at %s, outside the silence %s-%s", e.ev.ID, e.ev.Terminal, at, f.Onset, f.End)
			}
			if newest.Before(f.End) {
				t.Fatalf("%s's attempt at %s arrived while the stream was at %s, before the silence ended (%s)", e.ev.Terminal, at, newest, f.End)
			}
		}
		if held[e.ev.Terminal] && !at.Before(f.Onset) && at.Before(f.End) {
			inside++
			if !e.meta.held {
				t.Errorf("attempt of a cut-off terminal during the silence not stored: %+v", e.ev)
			}
		}
		if held[e.ev.Terminal] && newest.After(f.Onset.Add(time.Minute)) && newest.Before(f.End) {
			during++
		}
		if at.After(newest) {
			newest = at
		}
	}
	t.Logf("%s: %s; %d backlog events, %d of them from inside the silence", f.ScopeID, f.Note, backlog, inside)
	if backlog == 0 || backlog != truth.BacklogEvents {
		t.Errorf("%d backlog events in the stream, %d in the truth", backlog, truth.BacklogEvents)
	}
	if during > 0 {
		t.Errorf("%d events of cut-off terminals arrived during the silence", during)
	}
}

// TestWorldWrongClocksOnlyListed: the same world with correct clocks has
// the same events in the same order; only the listed terminals' timestamps
// differ, and every listed terminal's do.
func TestWorldWrongClocksOnlyListed(t *testing.T) {
	w := World{Name: "t-clock", Seed: 5, Terminals: 1200, Regions: 4, IDPrefix: "TC", Start: testDay(0), Days: 2, PairedClocks: true,
		Clocks: ClockNoise{RebootResets: 0.05, DaytimeResets: 0.01, Permanent: 6, NTPPush: NTPPush{Share: 0.3, Day: 1, From: hm(2, 0), To: hm(10, 0)}},
		Faults: []WorldFault{{Type: FaultHostOutage, Day: 1, At: hm(11, 0), For: hm(0, 20)}}}
	wrong, truth := collect(t, w)
	right, rtruth := collect(t, w.WithCorrectClocks())
	if len(wrong) != len(right) || rtruth.WrongClockEvents != 0 {
		t.Fatalf("%d events with wrong clocks, %d with correct ones (%d wrong there)", len(wrong), len(right), rtruth.WrongClockEvents)
	}
	listed := map[string]bool{}
	for _, id := range truth.WrongClockTerminals {
		listed[id] = true
	}
	differ := map[string]bool{}
	n := 0
	for i := range wrong {
		a, b := &wrong[i].ev, &right[i].ev
		if a.ID != b.ID || a.Terminal != b.Terminal {
			t.Fatalf("event %d: %s vs %s: the order of arrival changed", i, a.ID, b.ID)
		}
		if !a.Time.Equal(b.Time) {
			n++
			differ[a.Terminal] = true
			if !listed[a.Terminal] || !wrong[i].meta.wrong {
				t.Fatalf("event %s of %s has a wrong time (%s, true %s) but the terminal is not listed", a.ID, a.Terminal, a.Time, b.Time)
			}
		}
	}
	for id := range listed {
		if !differ[id] {
			t.Errorf("terminal %s listed with a wrong clock, but none of its events is wrong", id)
		}
	}
	t.Logf("%d wrong-clock events on %d terminals", n, len(differ))
	if n != truth.WrongClockEvents || len(differ) < 30 {
		t.Errorf("%d wrong events on %d terminals; truth %d events on %d", n, len(differ), truth.WrongClockEvents, len(listed))
	}
}

// TestWorldArrivalOrder: events arrive out of event-time order (late,
// batched), but never before they happened.
func TestWorldArrivalOrder(t *testing.T) {
	w := World{Name: "t-order", Seed: 6, Terminals: 800, Regions: 4, IDPrefix: "TO", Start: testDay(0), Days: 1}
	evs, truth := collect(t, w)
	var newest time.Time
	behind := 0
	for _, e := range evs {
		if e.meta.trueTime.Before(newest.Add(-time.Second)) {
			behind++
		}
		if e.meta.trueTime.After(newest) {
			newest = e.meta.trueTime
		}
	}
	t.Logf("%d of %d events arrive more than 1 s behind the newest; %d more than a minute late", behind, len(evs), truth.LateEvents)
	if float64(behind) < 0.01*float64(len(evs)) || truth.LateEvents == 0 {
		t.Errorf("arrival order is nearly event-time order: %d of %d behind, %d late", behind, len(evs), truth.LateEvents)
	}
}

// TestWorldNoCardData: no event carries card data beyond a 6-8 digit BIN.
func TestWorldNoCardData(t *testing.T) {
	w := World{Name: "t-card", Seed: 7, Terminals: 500, Regions: 3, IDPrefix: "TK", Start: testDay(0), Days: 1}
	long := regexp.MustCompile(`[0-9]{12,}`)
	bin := regexp.MustCompile(`^[0-9]{6,8}$`)
	allowed := map[string]bool{}
	for _, k := range []string{"event_id", "ts", "terminal_id", "merchant_id", "scheme", "response_code", "terminal_error", "txn_type",
		"amount_minor", "currency", "entry_mode", "card_bin", "issuer_id", "acquirer_id", "host_id", "region", "network", "carrier",
		"signal_dbm", "latency_ms", "model", "firmware", "battery_pct"} {
		allowed[k] = true
	}
	var buf []byte
	n := 0
	_, err := w.Generate(func(ev *event.Event) {
		buf = event.AppendJSON(buf[:0], ev)
		if n%20 == 0 {
			var m map[string]any
			if err := json.Unmarshal(buf, &m); err != nil {
				t.Fatalf("%s: %v", buf, err)
			}
			for k := range m {
				if !allowed[k] {
					t.Fatalf("field %q is not in event-v1: %s", k, buf)
				}
			}
		}
		if b := ev.CardBIN; b != "" && (len(b) < 6 || len(b) > 8) {
			t.Fatalf("card_bin %q", b)
		}
		if ev.CardBIN != "" && !bin.MatchString(ev.CardBIN) || long.Match(buf) {
			t.Fatalf("a long digit run: %s", buf)
		}
		if ev.ResponseCode == "" && ev.TerminalError == "" {
			t.Fatalf("neither response_code nor terminal_error: %s", buf)
		}
		n++
	})
	if err != nil || n == 0 {
		t.Fatal(err, n)
	}
}

// TestWorldDeterministic: a seed gives the same stream; another seed
// another.
func TestWorldDeterministic(t *testing.T) {
	w := World{Name: "t-det", Seed: 8, Terminals: 600, Regions: 4, IDPrefix: "TD", Start: testDay(0), Days: 1, Clocks: ClockNoise{RebootResets: 0.05, Permanent: 3},
		Faults: []WorldFault{{Type: FaultCarrierInRegion, At: hm(11, 0), For: hm(0, 30)}, {Type: FaultFlashSale, At: hm(18, 0), For: hm(1, 0)}}}
	sum := func(w World) [32]byte {
		h := sha256.New()
		var buf []byte
		truth, err := w.Generate(func(ev *event.Event) { h.Write(event.AppendJSON(buf[:0], ev)) })
		if err != nil {
			t.Fatal(err)
		}
		tj, _ := json.Marshal(truth)
		h.Write(tj)
		return [32]byte(h.Sum(nil))
	}
	a, b := sum(w), sum(w)
	if a != b {
		t.Error("two runs of the same world differ")
	}
	w.Seed++
	if sum(w) == a {
		t.Error("another seed gives the same stream")
	}
}

// TestWorldsResolve: every standard world places its faults (without
// generating its events), on fleets that differ.
func TestWorldsResolve(t *testing.T) {
	prefixes, seeds := map[string]bool{}, map[uint64]bool{}
	for _, w := range Worlds() {
		if prefixes[w.IDPrefix] || seeds[w.Seed] {
			t.Errorf("world %s reuses a fleet (prefix %s, seed %d)", w.Name, w.IDPrefix, w.Seed)
		}
		prefixes[w.IDPrefix], seeds[w.Seed] = true, true
		e := buildWorld(w)
		used := make([]bool, len(e.terms))
		for _, spec := range w.Faults {
			f, err := e.resolve(spec, newTestRand(w.Seed), used)
			if err != nil {
				t.Errorf("world %s: %v", w.Name, err)
				continue
			}
			if f.truth.Kind != "" && (f.truth.ScopeID == "" || f.truth.Goal == 0) {
				t.Errorf("world %s: fault %s has no scope or goal: %+v", w.Name, spec.Type, f.truth)
			}
		}
	}
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xfa017)) }

// resolveOnly places w's faults as Generate does, without generating.
func resolveOnly(t *testing.T, w World) []FaultTruth {
	t.Helper()
	e := buildWorld(w)
	used := make([]bool, len(e.terms))
	rng := newTestRand(w.Seed)
	var out []FaultTruth
	for _, spec := range w.Faults {
		f, err := e.resolve(spec, rng, used)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.truth)
	}
	return out
}
