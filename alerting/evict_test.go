package alerting

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// drive feeds e, from start for dur, the fleet's terminals round robin at
// fleetPerSec events a second and floodPerSec events a second whose
// terminal and merchant ids are new every time, the issuer every third and
// the firmware every tenth: what a broken or hostile producer sends. fleet
// decides a fleet event's cause, or false to leave the terminal silent;
// after is called after every event.
func drive(e *Engine, start time.Time, dur time.Duration, fleet []event.Event, fleetPerSec, floodPerSec int,
	rng *rand.Rand, cause func(ev *event.Event) (event.Cause, bool), after func(ts time.Time)) {
	id := func(prefix string) string { return prefix + strconv.FormatUint(rng.Uint64(), 36) }
	total := fleetPerSec + floodPerSec
	step := time.Second / time.Duration(total)
	next := 0
	var fl event.Event
	for sec := time.Duration(0); sec < dur; sec += time.Second {
		for j := range total {
			ts := start.Add(sec + time.Duration(j)*step)
			if j < fleetPerSec {
				ev := &fleet[next%len(fleet)]
				next++
				ev.Time = ts
				c, ok := cause(ev)
				if !ok {
					continue
				}
				e.Observe(ev, c)
			} else {
				fl = fleet[rng.IntN(len(fleet))]
				fl.Time, fl.Terminal, fl.Merchant = ts, id("FT"), id("FM")
				if rng.IntN(3) == 0 {
					fl.Issuer = id("FI")
				}
				if rng.IntN(10) == 0 {
					fl.Firmware = id("FW")
				}
				c := event.CauseNone
				switch r := rng.IntN(100); {
				case r < 5:
					c, fl.ResponseCode = event.CauseNetwork, "68"
				case r < 7:
					c, fl.ResponseCode = event.CauseIssuerCredit, "51"
				}
				e.Observe(&fl, c)
			}
			after(ts)
		}
	}
}

// checkScopes verifies the engine's bookkeeping: the count matches the
// maps, no map holds an evicted scope and no failure record points at one.
func checkScopes(t *testing.T, e *Engine) {
	t.Helper()
	n := len(e.models)
	for _, m := range e.scopes {
		n += len(m)
		for _, s := range m {
			if s.evicted {
				t.Fatalf("evicted %s %s still held", s.typ, s.id)
			}
		}
	}
	if n != e.nScopes {
		t.Fatalf("nScopes %d, maps hold %d", e.nScopes, n)
	}
	for _, c := range recordCauses {
		for _, rec := range e.queues[c].live() {
			for _, s := range rec.dims {
				if s != nil && s.evicted {
					t.Fatalf("record points at evicted %s %s", s.typ, s.id)
				}
			}
		}
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestScopeCapHoldsMemoryFlatUnderIDFlood(t *testing.T) {
	const maxScopes = 10_000
	e, err := NewEngine(Config{MaxScopes: maxScopes, MaxRecords: 2_000}, func(Alert) {})
	if err != nil {
		t.Fatal(err)
	}
	fleet := bigFleet(1_000) // ~1,600 scopes of its own
	rng := rand.New(rand.NewPCG(1, 2))
	approveAll := func(*event.Event) (event.Cause, bool) { return event.CauseNone, true }
	const dur = 240 * time.Second
	var peak int
	var third uint64
	check := func(ts time.Time) {
		peak = max(peak, e.nScopes)
		if ts.Sub(t0) == dur/3 && third == 0 {
			checkScopes(t, e)
			third = heapAlloc()
		}
	}
	base := heapAlloc()
	// 500 flood events a second: ~290k made-up scopes over the run.
	drive(e, t0, dur, fleet, 100, 500, rng, approveAll, check)
	checkScopes(t, e)
	end := heapAlloc()
	st := e.Stats()
	t.Logf("peak scopes %d, held %d, evicted %d (%d at cap, %d sweeps), records %d (dropped %d); heap above start: %.1f MB at 1/3, %.1f MB at end",
		peak, st.Scopes, st.EvictedScopes, st.EvictedAtCap, st.CapSweeps, st.Records, st.RecordsDropped,
		float64(third-base)/1e6, float64(end-base)/1e6)
	if peak > maxScopes {
		t.Errorf("scopes reached %d, cap %d", peak, maxScopes)
	}
	if st.EvictedAtCap < 250_000 || st.EvictedScopes < st.EvictedAtCap || st.CapSweeps == 0 || st.RecordsDropped == 0 {
		t.Errorf("flood not evicted as expected: %+v", st)
	}
	// Between a third of the flood and its end twice as many made-up ids
	// arrived as before: the heap must not follow.
	if end > third+third/10+1<<20 {
		t.Errorf("heap grew with the flood: %d bytes at 1/3, %d at end", third, end)
	}
	// About 700 bytes a scope plus records and map slack.
	if end-base > 20<<20 {
		t.Errorf("heap %d MB above start for %d scopes", (end-base)>>20, maxScopes)
	}
}

func TestIncidentSurvivesIDFlood(t *testing.T) {
	// A terminal's hardware alert resolves on evidence of recovery or,
	// silent, after IdleTTL: here 8 minutes.
	cfg := Config{MaxScopes: 10_000, TerminalWindow: 5 * time.Minute, IdleTTL: 8 * time.Minute,
		Rules: map[string]RuleConfig{"terminal_hardware": {ClearAfter: 5 * time.Minute}}}
	var alerts []Alert
	var e *Engine
	var firing *scope
	e, err := NewEngine(cfg, func(a Alert) {
		alerts = append(alerts, a)
		if a.State == StateFiring && a.ScopeID == "T0000007" {
			firing = e.scopes[event.ScopeTerminal][a.ScopeID]
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	fleet := bigFleet(1_000)
	rng := rand.New(rand.NewPCG(3, 4))
	// T0000007's card reader fails from minute 4 for 2 minutes; then the
	// merchant stops using it. Silent, it is the least recently seen of
	// all scopes, and the flood turns the whole cap over every ~25 s.
	failFrom, failTo := t0.Add(4*time.Minute), t0.Add(6*time.Minute)
	cause := func(ev *event.Event) (event.Cause, bool) {
		if ev.Terminal != "T0000007" || ev.Time.Before(failFrom) {
			return event.CauseNone, true
		}
		if ev.Time.Before(failTo) {
			ev.TerminalError = "CARD_READER_FAIL"
			return event.CauseHardware, true
		}
		return event.CauseNone, false
	}
	var sweepsWhileFiring uint64
	var lastSweeps uint64
	resolved := false
	after := func(time.Time) {
		if firing != nil && !resolved {
			if got := e.scopes[event.ScopeTerminal]["T0000007"]; got != firing {
				t.Fatalf("firing terminal's scope replaced or evicted mid-incident (%p, want %p)", got, firing)
			}
			sweepsWhileFiring += e.stats.CapSweeps - lastSweeps
			resolved = len(alerts) > 1
		}
		lastSweeps = e.stats.CapSweeps
	}
	// The fleet: 1,000 terminals every 10 s; the flood: 150 events a
	// second with made-up ids, ~360 new scopes a second.
	drive(e, t0, 25*time.Minute, fleet, 100, 150, rng, cause, after)
	e.Flush()
	expectAlerts(t, alerts, "firing terminal_hardware terminal=T0000007", "resolved terminal_hardware terminal=T0000007")
	if sweepsWhileFiring < 100 {
		t.Errorf("only %d cap sweeps while the incident fired", sweepsWhileFiring)
	}
	// Once resolved it is an ordinary idle terminal, evicted first.
	if _, held := e.scopes[event.ScopeTerminal]["T0000007"]; held {
		t.Error("resolved, silent terminal still held under the flood")
	}
	checkScopes(t, e)
}

func TestCapSweepEvictionOrder(t *testing.T) {
	var alerts []Alert
	e, err := NewEngine(Config{MaxScopes: 11}, func(a Alert) { alerts = append(alerts, a) })
	if err != nil {
		t.Fatal(err)
	}
	obs := func(id string, sec int, c event.Cause) {
		ev := event.Event{ID: "e", Time: t0.Add(time.Duration(sec) * time.Second), Terminal: id, Merchant: "M", ResponseCode: "00"}
		if c != event.CauseNone {
			ev.TerminalError = "CARD_READER_FAIL"
		}
		e.Observe(&ev, c)
	}
	held := func() []string {
		var ids []string
		for id := range e.scopes[event.ScopeTerminal] {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	// T00 fails 4 times in a row and fires at the first evaluation (the
	// event at 41 s moves the watermark past the first tick); TC fails
	// twice, too few to fire but enough to be a candidate while its
	// failures are in its window. They are the least recently seen scopes
	// from then on.
	for s := range 4 {
		obs("T00", s, event.CauseHardware)
	}
	obs("TC", 1, event.CauseHardware)
	obs("TC", 2, event.CauseHardware)
	obs("T01", 41, event.CauseHardware)
	if len(alerts) != 1 || alerts[0].ScopeID != "T00" {
		t.Fatalf("T00 did not fire: %s", details(alerts))
	}
	obs("T02", 42, event.CauseNone)
	for _, id := range []string{"T05", "T04", "T03"} {
		obs(id, 43, event.CauseNone)
	}
	for i := 6; i <= 8; i++ {
		obs("T0"+strconv.Itoa(i), 38+i, event.CauseNone)
	}
	if st := e.Stats(); st.Scopes != 11 || st.CapSweeps != 0 {
		t.Fatalf("before the cap: %+v", st)
	}
	// The 12th scope: down to 10, the two least recently seen evictable go.
	obs("T09", 50, event.CauseNone)
	if got, want := held(), []string{"T00", "T03", "T04", "T05", "T06", "T07", "T08", "T09", "TC"}; !slices.Equal(got, want) {
		t.Errorf("after the first sweep held %v, want %v", got, want)
	}
	// T01's failure record no longer points at it, still at its merchant.
	rec := e.queues[event.CauseHardware].live()[6]
	if rec.dims[event.ScopeTerminal] != nil || rec.dims[event.ScopeMerchant] == nil {
		t.Errorf("T01's record after eviction: terminal %v, merchant %v", rec.dims[event.ScopeTerminal] != nil, rec.dims[event.ScopeMerchant] != nil)
	}
	// Next the three seen at 43 s; ties in event time go by id.
	obs("T11", 51, event.CauseNone)
	obs("T12", 51, event.CauseNone)
	if got, want := held(), []string{"T00", "T05", "T06", "T07", "T08", "T09", "T11", "T12", "TC"}; !slices.Equal(got, want) {
		t.Errorf("after the second sweep held %v, want %v", got, want)
	}
	st := e.Stats()
	if st.EvictedAtCap != 4 || st.EvictedScopes != 4 || st.CapSweeps != 2 || st.Scopes != 10 {
		t.Errorf("stats %+v", st)
	}
	checkScopes(t, e)
}

func TestMaxRecordsBoundsFailureRecords(t *testing.T) {
	// Fewer records than causes used to index an empty queue.
	e, err := NewEngine(Config{MaxRecords: 3}, func(Alert) {})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.Observe(&event.Event{ID: "e", Time: t0, Terminal: "T" + strconv.Itoa(i), ResponseCode: "68"}, event.CauseNetwork)
	}
	if st := e.Stats(); st.Records != 1 || st.RecordsDropped != 4 {
		t.Errorf("records %d, dropped %d; want 1 and 4", st.Records, st.RecordsDropped)
	}
}

func TestAgeBins(t *testing.T) {
	prev := -1
	for _, age := range []int64{0, 1, 1 << 20, 127 << 20, 128 << 20, 129 << 20, int64(time.Second), int64(time.Hour), 1 << 62, math.MaxInt64} {
		b := ageBin(age)
		lo, hi := ageRange(b)
		if b < prev || b >= ageBins || age < lo || age > hi {
			t.Errorf("age %d: bin %d (after %d) holds [%d, %d]", age, b, prev, lo, hi)
		}
		if age >= 128<<20 && float64(hi-lo) > float64(age)/64 {
			t.Errorf("age %d: bin [%d, %d] wider than 1/64 of it", age, lo, hi)
		}
		prev = b
	}
}
