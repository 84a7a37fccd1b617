package alerting_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// The oracles here are computed from the input events alone (classified
// with the default rules, as the pipeline feeds the engine); the engine's
// internals are never read.

var rules = classify.Default()

// fed is one input event, its cause, and whether the engine accepted it.
type fed struct {
	ev       event.Event
	cause    event.Cause
	accepted bool
}

// minuteOracle counts accepted attempts per unix minute: attempts, every
// failure at index CauseNone, and failures per cause.
func minuteOracle(in []fed) map[int64]alerting.Minute {
	out := map[int64]alerting.Minute{}
	for _, f := range in {
		if !f.accepted {
			continue
		}
		m := f.ev.Time.Unix() / 60
		c := out[m]
		c.Start = time.Unix(m*60, 0).UTC()
		c.Attempts++
		if f.cause != event.CauseNone {
			c.Failures[event.CauseNone]++
			c.Failures[f.cause]++
		}
		out[m] = c
	}
	return out
}

// checkTimeline: Minutes is the TimelineMinutes minutes up to the newest
// accepted event, oldest first, each counted as the oracle counts it.
func checkTimeline(t *testing.T, o alerting.Overview, in []fed) {
	t.Helper()
	var newest time.Time
	for _, f := range in {
		if f.accepted && f.ev.Time.After(newest) {
			newest = f.ev.Time
		}
	}
	if !o.Newest.Equal(newest) {
		t.Errorf("Newest %s, newest accepted event %s", o.Newest, newest)
	}
	want := minuteOracle(in)
	last := newest.Unix() / 60
	if len(o.Minutes) != alerting.TimelineMinutes {
		t.Fatalf("%d minutes, want %d", len(o.Minutes), alerting.TimelineMinutes)
	}
	for i, got := range o.Minutes {
		m := last - alerting.TimelineMinutes + 1 + int64(i)
		w := want[m]
		w.Start = time.Unix(m*60, 0).UTC()
		if got != w {
			t.Errorf("minute %s: got %d attempts, failures %v; want %d, %v", w.Start.Format("15:04"), got.Attempts, got.Failures, w.Attempts, w.Failures)
		}
	}
}

// feed observes every event in order and checks Observe's verdict against
// the expectation in accepted (when check is set), then records the verdict.
func feed(t *testing.T, e *alerting.Engine, in []fed, check bool) {
	t.Helper()
	for i := range in {
		got := e.Observe(&in[i].ev, in[i].cause)
		if check && got != in[i].accepted {
			t.Errorf("Observe(%s at %s) = %v, want %v", in[i].ev.ID, in[i].ev.Time.Format(time.TimeOnly), got, in[i].accepted)
		}
		in[i].accepted = got
	}
}

func ovEngine(t *testing.T, cfg alerting.Config) *alerting.Engine {
	t.Helper()
	e, err := alerting.NewEngine(cfg, func(alerting.Alert) {})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mkEvent(id string, ts time.Time, terminal, code string) event.Event {
	ev := event.Event{ID: id, Time: ts, Terminal: terminal, Merchant: "M-" + terminal, Region: "R1", Carrier: "C1",
		Host: "H1", Network: "4g", Acquirer: "ACQ", Issuer: "BANK", Model: "A8", Firmware: "1.0", Scheme: event.SchemeCUP,
		AmountMinor: 1000, LatencyMS: -1, BatteryPct: -1}
	if len(code) == 2 {
		ev.ResponseCode = code
	} else {
		ev.TerminalError = code
	}
	return ev
}

// timelineStream is 100 minutes of traffic with a changing count per minute
// (some minutes empty) and a mix of approvals, issuer declines, network
// and hardware failures. It adds out-of-order events 15 s behind the
// newest (within the 30 s default lateness: counted, sometimes in the
// previous minute), events 5 min behind (late by default), one 70 min
// behind and one before the stream. long is true for an engine whose
// lateness is 90 min: then only the event before the stream is late.
func timelineStream(long bool) []fed {
	base := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	codes := []string{"00", "00", "51", "COMM_TIMEOUT", "00", "CHIP_READ_FAIL", "05", "00"}
	var out []fed
	var newest time.Time
	add := func(ts time.Time, code string, accepted bool) {
		ev := mkEvent(fmt.Sprintf("e%d", len(out)), ts, fmt.Sprintf("T%02d", len(out)%13), code)
		out = append(out, fed{ev: ev, cause: rules.Classify(&ev).Cause, accepted: accepted})
		if accepted && ts.After(newest) {
			newest = ts
		}
	}
	for i := range 100 {
		n := (i * 7) % 11 // 0 at minutes 0, 11, 22...
		for k := range n {
			add(base.Add(time.Duration(i)*time.Minute+time.Duration(k)*time.Minute/time.Duration(n)+time.Second),
				codes[(i+k)%len(codes)], true)
		}
		if newest.IsZero() {
			continue
		}
		switch i % 10 {
		case 3:
			add(newest.Add(-15*time.Second), "COMM_TIMEOUT", true)
		case 6:
			add(newest.Add(-5*time.Minute), "51", long)
		}
	}
	// Older than the timeline: with the long lateness it is counted by the
	// detectors but must not show in (or overwrite) the 64 minutes kept.
	add(newest.Add(-70*time.Minute), "CHIP_READ_FAIL", long)
	// Before the first evaluated tick: late whatever the lateness.
	add(base.Add(-time.Hour), "00", false)
	return out
}

func TestOverviewTimeline(t *testing.T) {
	f := func(name string, cfg alerting.Config, long bool) {
		t.Run(name, func(t *testing.T) {
			in := timelineStream(long)
			e := ovEngine(t, cfg)
			feed(t, e, in, true)
			o := e.Overview(10, nil)
			checkTimeline(t, o, in)
			late := 0
			for _, x := range in {
				if !x.accepted {
					late++
				}
			}
			if o.Stats.Late != uint64(late) || o.Stats.Observed != uint64(len(in)-late) {
				t.Errorf("stats: %d observed, %d late; the stream has %d accepted, %d late", o.Stats.Observed, o.Stats.Late, len(in)-late, late)
			}
			// The stream spans 100 minutes: its first minutes are out of the
			// timeline and the oracle must have seen some of them.
			if first := o.Minutes[0].Start; !in[0].ev.Time.Before(first) {
				t.Errorf("timeline starts %s, before the stream (%s): the test covers no expired minute", first, in[0].ev.Time)
			}
			if o.Watermark.IsZero() || o.Watermark.After(o.Newest) {
				t.Errorf("watermark %s, newest %s", o.Watermark, o.Newest)
			}
		})
	}
	// MaxLate 1 ns: what the engine refuses is exactly what the
	// stream marks late.
	f("default lateness", alerting.Config{MaxLate: 1}, false)
	f("lateness beyond the timeline", alerting.Config{Lateness: 90 * time.Minute, MaxLate: 1}, true)
}

func TestOverviewBeforeAnyEvent(t *testing.T) {
	e := ovEngine(t, alerting.Config{})
	check := func(when string) {
		o := e.Overview(5, []alerting.ScopeKey{{Type: event.ScopeTerminal, ID: "T1"}, {Type: event.ScopeModel, ID: "A8"}})
		if !o.Watermark.IsZero() || !o.Newest.IsZero() || len(o.Minutes) != 0 || len(o.Suspects) != 0 ||
			len(o.Wanted) != 0 || len(o.Affected) != 0 || !noTop(o) {
			t.Errorf("%s: %+v", when, o)
		}
	}
	check("new engine")
	// An event before the engine's epoch is late: the engine stays unstarted.
	ev := mkEvent("old", time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC), "T1", "00")
	if e.Observe(&ev, event.CauseNone) {
		t.Fatal("a 2019 event was accepted")
	}
	check("after a rejected event")
}

func TestOverviewWanted(t *testing.T) {
	base := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	var in []fed
	add := func(ev event.Event) {
		in = append(in, fed{ev: ev, cause: rules.Classify(&ev).Cause})
	}
	for i := range 20 {
		ev := mkEvent(fmt.Sprintf("a%d", i), base.Add(time.Duration(i)*10*time.Second), "MOVER", "00")
		if i >= 12 { // the terminal moved: new merchant, region, issuer, firmware
			ev.Merchant, ev.Region, ev.Issuer, ev.Firmware = "M-NEW", "R2", "BANK2", "2.0"
		}
		add(ev)
		add(mkEvent(fmt.Sprintf("b%d", i), base.Add(time.Duration(i)*10*time.Second+time.Second), "STAY", "51"))
	}
	e := ovEngine(t, alerting.Config{})
	feed(t, e, in, false)

	f := func(name string, want []alerting.ScopeKey, wantViews []alerting.ScopeKey, dims map[string][]alerting.ScopeKey) {
		t.Run(name, func(t *testing.T) {
			o := e.Overview(10, want)
			var got []alerting.ScopeKey
			for _, v := range o.Wanted {
				got = append(got, v.ScopeKey)
				if d, ok := dims[v.ID]; ok {
					gd := slices.Clone(v.Dims)
					slices.SortFunc(gd, func(a, b alerting.ScopeKey) int { return cmp.Compare(a.Type, b.Type) })
					if !slices.Equal(gd, d) {
						t.Errorf("%s dims\n got  %v\n want %v", v.ID, gd, d)
					}
				} else if v.Type != event.ScopeTerminal && len(v.Dims) != 0 {
					t.Errorf("%s %s has dims %v", v.Type, v.ID, v.Dims)
				}
			}
			if !slices.Equal(got, wantViews) {
				t.Errorf("wanted views %v, want %v", got, wantViews)
			}
		})
	}
	moverDims := []alerting.ScopeKey{{Type: event.ScopeMerchant, ID: "M-NEW"}, {Type: event.ScopeRegion, ID: "R2"},
		{Type: event.ScopeCarrier, ID: "C1"}, {Type: event.ScopeNetwork, ID: "4g"}, {Type: event.ScopeHost, ID: "H1"},
		{Type: event.ScopeAcquirer, ID: "ACQ"}, {Type: event.ScopeIssuer, ID: "BANK2"}, {Type: event.ScopeModel, ID: "A8/2.0"},
		{Type: event.ScopeRegionCarrier, ID: "R2/C1"}}
	term := func(id string) alerting.ScopeKey { return alerting.ScopeKey{Type: event.ScopeTerminal, ID: id} }
	f("terminal as of its latest event", []alerting.ScopeKey{term("MOVER")}, []alerting.ScopeKey{term("MOVER")},
		map[string][]alerting.ScopeKey{"MOVER": moverDims})
	f("unknown terminal", []alerting.ScopeKey{term("NOPE")}, nil, nil)
	f("unknown ids and types are left out", []alerting.ScopeKey{
		term("NOPE"), {Type: event.ScopeRegion, ID: "R2"}, {Type: event.ScopeRegion, ID: "R9"},
		{Type: event.ScopeModel, ID: "A8/1.0"}, {Type: event.ScopeModel, ID: "A8"}, {Type: event.NumScopeTypes, ID: "R2"},
		{Type: event.ScopeMerchant, ID: "STAY"}, term("STAY"),
	}, []alerting.ScopeKey{{Type: event.ScopeRegion, ID: "R2"}, {Type: event.ScopeModel, ID: "A8/1.0"}, term("STAY")}, nil)
	f("nothing asked", nil, nil, nil)

	o := e.Overview(10, []alerting.ScopeKey{term("STAY")})
	v := o.Wanted[0]
	if want := in[len(in)-1].ev.Time.UTC(); !v.Last.Equal(want) {
		t.Errorf("STAY last %s, want %s", v.Last, want)
	}
}

// TestOverviewRegionOutage: a region outage from the scenario generator,
// stopped while its alert fires. The overview's lists are checked against
// counts made here from the events fed.
func TestOverviewRegionOutage(t *testing.T) {
	sc := scenario.Scenario{Name: "overview-outage",
		Fleet: scenario.Fleet{Seed: 21, Terminals: 1200, Regions: 6, IDPrefix: "OV", RegionBase: 330100},
		Start: time.Date(2026, 11, 27, 9, 0, 0, 0, time.FixedZone("+08:00", 8*3600)), Duration: scenario.Duration(2 * time.Hour),
		Incidents: []scenario.Incident{{Type: "region_outage", At: scenario.Duration(90 * time.Minute), For: scenario.Duration(25 * time.Minute)}}}
	var all []fed
	truth, err := sc.Generate(func(ev *event.Event) {
		all = append(all, fed{ev: *ev, cause: rules.Classify(ev).Cause})
	})
	if err != nil {
		t.Fatal(err)
	}
	inc := truth.Incidents[0]
	region := inc.ScopeID
	cutoff := inc.Start.Add(6 * time.Minute)
	n := slices.IndexFunc(all, func(f fed) bool { return !f.ev.Time.Before(cutoff) })
	in := all[:n]

	e := ovEngine(t, alerting.Config{})
	feed(t, e, in, false)
	if late := e.Stats().Late; late != 0 {
		t.Fatalf("%d late events in an ordered scenario", late)
	}
	var alert alerting.Alert
	for _, a := range e.Active() {
		if a.Kind == alerting.KindNetworkOutage && a.ScopeType == "region" && a.ScopeID == region {
			alert = a
		}
	}
	if alert.ID == "" {
		t.Fatalf("no network_outage for region %s at %s; active: %+v", region, cutoff, e.Active())
	}
	cause, ok := event.ParseCause(alert.Cause)
	if !ok || cause != event.CauseNetwork {
		t.Fatalf("alert cause %q", alert.Cause)
	}

	const limit = 5
	full := e.Overview(1<<20, nil)
	o := e.Overview(limit, nil)
	checkTimeline(t, full, in)
	if !o.Watermark.Equal(e.Watermark()) || !full.Watermark.Equal(o.Watermark) {
		t.Fatalf("watermark %s, engine's %s", o.Watermark, e.Watermark())
	}
	W := o.Watermark

	// A restored engine ranks the same scopes the same way: its failing
	// list is rebuilt from the buckets (the timeline is not kept).
	e2 := ovEngine(t, alerting.Config{})
	if err := e2.Restore(e.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	o2 := e2.Overview(limit, nil)
	for st := range event.NumScopeTypes {
		if len(o2.Top[st]) != len(o.Top[st]) {
			t.Errorf("restored: %d %s scopes ranked, %d before", len(o2.Top[st]), st, len(o.Top[st]))
			continue
		}
		for i := range o.Top[st] {
			if a, b := o.Top[st][i], o2.Top[st][i]; a.ScopeKey != b.ScopeKey || a.Failures != b.Failures || a.Attempts != b.Attempts {
				t.Errorf("restored: %s #%d is %v (%d/%d), was %v (%d/%d)", st, i, b.ScopeKey, b.Failures[event.CauseNone], b.Attempts,
					a.ScopeKey, a.Failures[event.CauseNone], a.Attempts)
			}
		}
	}

	// Top, every scope type: attempts and failures in the type's window
	// counted from the input; listed are the scopes with failures there,
	// and firing ones. The window is whole buckets, ending with the bucket
	// that holds the last instant before the watermark (as the detectors
	// see it): for 60 s and 90 s buckets it may end after W.
	d := alerting.Defaults()
	windows := [event.NumScopeTypes]time.Duration{event.ScopeTerminal: d.TerminalWindow, event.ScopeMerchant: d.MerchantWindow,
		event.ScopeRegionCarrier: 5 * d.GroupWindow}
	firing := map[alerting.ScopeKey]bool{}
	for _, a := range e.Active() {
		st, _ := event.ParseScopeType(a.ScopeType)
		firing[alerting.ScopeKey{Type: st, ID: a.ScopeID}] = true
	}
	type counts struct {
		id       string
		attempts int
		failures [event.NumCauses]int
	}
	for st := range event.NumScopeTypes {
		window := cmp.Or(windows[st], d.GroupWindow)
		from, to := W.Add(-window), W
		if len(full.Top[st]) > 0 {
			v := full.Top[st][0]
			width := window / time.Duration(len(v.Buckets))
			from, to = v.Buckets[0].Start, v.Buckets[0].Start.Add(window)
			if v.Window != window || !to.After(W.Add(-1)) || to.Sub(W) >= width {
				t.Errorf("%s window %s, %d buckets from %s; watermark %s", st, v.Window, len(v.Buckets), from, W)
			}
		}
		byID := map[string]*counts{}
		for _, f := range in {
			if !f.accepted || f.ev.Time.Before(from) || !f.ev.Time.Before(to) {
				continue
			}
			id := scopeID(&f.ev, st)
			c := byID[id]
			if c == nil {
				c = &counts{id: id}
				byID[id] = c
			}
			c.attempts++
			if f.cause != event.CauseNone {
				c.failures[event.CauseNone]++
				c.failures[f.cause]++
			}
		}
		var want []*counts
		for _, c := range byID {
			if c.failures[event.CauseNone] > 0 || firing[alerting.ScopeKey{Type: st, ID: c.id}] {
				want = append(want, c)
			}
		}
		slices.SortFunc(want, func(a, b *counts) int {
			return cmp.Or(cmp.Compare(b.failures[event.CauseNone], a.failures[event.CauseNone]), cmp.Compare(a.id, b.id))
		})
		got := full.Top[st]
		if len(got) != len(want) {
			t.Errorf("Top %s: %d scopes, %d with failures in the last %s", st, len(got), len(want), window)
		}
		for i := range min(len(got), len(want)) {
			g, w := got[i], want[i]
			if g.ID != w.id || g.Attempts != w.attempts || g.Failures != w.failures || g.Window != window {
				t.Errorf("Top %s %d: %s %d attempts %v failures in %s; want %s %d %v in %s",
					st, i, g.ID, g.Attempts, g.Failures, g.Window, w.id, w.attempts, w.failures, window)
			}
		}
	}
	if len(o.Top[event.ScopeRegion]) == 0 || o.Top[event.ScopeRegion][0].ID != region {
		t.Errorf("Top region is not %s: %v", region, o.Top[event.ScopeRegion])
	}

	// Every list is sorted by failures and the limited overview is a prefix
	// of the full one.
	keys := func(vs []alerting.ScopeView) []alerting.ScopeKey {
		var out []alerting.ScopeKey
		for _, v := range vs {
			out = append(out, v.ScopeKey)
		}
		return out
	}
	sorted := func(what string, vs []alerting.ScopeView) {
		if !slices.IsSortedFunc(vs, func(a, b alerting.ScopeView) int {
			return cmp.Or(cmp.Compare(b.Failures[event.CauseNone], a.Failures[event.CauseNone]), cmp.Compare(a.ID, b.ID))
		}) {
			t.Errorf("%s not sorted by failures: %v", what, keys(vs[:min(len(vs), 20)]))
		}
	}
	prefix := func(what string, short, long []alerting.ScopeView) {
		if want := long[:min(len(long), limit)]; !slices.Equal(keys(short), keys(want)) {
			t.Errorf("%s cut at %d: %v, want %v", what, limit, keys(short), keys(want))
		}
	}
	sorted("Suspects", full.Suspects)
	prefix("Suspects", o.Suspects, full.Suspects)
	for st := range event.NumScopeTypes {
		sorted("Top "+st.String(), full.Top[st])
		prefix("Top "+st.String(), o.Top[st], full.Top[st])
	}
	if len(full.Top[event.ScopeTerminal]) <= limit {
		t.Errorf("only %d terminals with failures: the cut is not tested", len(full.Top[event.ScopeTerminal]))
	}

	// The region is a suspect, firing.
	found := false
	for _, v := range full.Suspects {
		if v.ScopeKey == (alerting.ScopeKey{Type: event.ScopeRegion, ID: region}) {
			found = true
			if !slices.Contains(v.Firing, alerting.KindNetworkOutage) {
				t.Errorf("region %s suspect, firing %v", region, v.Firing)
			}
		}
	}
	if !found {
		t.Errorf("region %s not among the suspects %v", region, keys(full.Suspects))
	}

	// Affected: the region's terminals that failed with the alert's cause
	// in the region's window, most failures first, codes first seen first
	// (up to 4).
	from := W.Add(-d.GroupWindow)
	inWindow := func(f fed) bool { return f.accepted && !f.ev.Time.Before(from) && f.ev.Time.Before(W) }
	var want []alerting.TerminalFailures
	idx := map[string]int{}
	for _, f := range in {
		if !inWindow(f) || f.ev.Region != region || f.cause != cause {
			continue
		}
		i, ok := idx[f.ev.Terminal]
		if !ok {
			i = len(want)
			idx[f.ev.Terminal] = i
			want = append(want, alerting.TerminalFailures{Terminal: f.ev.Terminal})
		}
		want[i].Failures++
		if c := f.ev.Code(); len(want[i].Codes) < 4 && !slices.Contains(want[i].Codes, c) {
			want[i].Codes = append(want[i].Codes, c)
		}
	}
	slices.SortFunc(want, func(a, b alerting.TerminalFailures) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Terminal, b.Terminal))
	})
	if len(want) <= limit {
		t.Fatalf("only %d affected terminals: the cut is not tested", len(want))
	}
	affected := func(ov alerting.Overview) alerting.Affected {
		for _, a := range ov.Affected {
			if a.AlertID == alert.ID {
				return a
			}
		}
		t.Fatalf("no Affected for alert %s in %d", alert.ID, len(ov.Affected))
		return alerting.Affected{}
	}
	eq := func(a, b alerting.TerminalFailures) bool {
		return a.Terminal == b.Terminal && a.Failures == b.Failures && slices.Equal(a.Codes, b.Codes)
	}
	if got := affected(full); !slices.EqualFunc(got.Terminals, want, eq) || got.More != 0 {
		t.Errorf("affected terminals (%d, more %d):\n got  %v\n want %v", len(got.Terminals), got.More, got.Terminals, want)
	}
	if got := affected(o); !slices.EqualFunc(got.Terminals, want[:limit], eq) || got.More != len(want)-limit {
		t.Errorf("affected at limit %d: %v more %d, want %v more %d", limit, got.Terminals, got.More, want[:limit], len(want)-limit)
	}
	if len(full.Affected) != len(e.Active()) {
		t.Errorf("%d Affected entries, %d active alerts", len(full.Affected), len(e.Active()))
	}

	// Wanted: the top affected terminal, with its dims as of its latest
	// event; an unknown terminal is left out.
	tid := want[0].Terminal
	var latest event.Event
	for _, f := range in {
		if f.accepted && f.ev.Terminal == tid {
			latest = f.ev
		}
	}
	wo := e.Overview(limit, []alerting.ScopeKey{{Type: event.ScopeTerminal, ID: "NOPE"}, {Type: event.ScopeTerminal, ID: tid}})
	if len(wo.Wanted) != 1 || wo.Wanted[0].ID != tid {
		t.Fatalf("wanted %v", keys(wo.Wanted))
	}
	var wantDims []alerting.ScopeKey
	for st := event.ScopeMerchant; st < event.NumScopeTypes; st++ {
		if id := scopeID(&latest, st); id != "" {
			wantDims = append(wantDims, alerting.ScopeKey{Type: st, ID: id})
		}
	}
	gotDims := slices.Clone(wo.Wanted[0].Dims)
	slices.SortFunc(gotDims, func(a, b alerting.ScopeKey) int { return cmp.Compare(a.Type, b.Type) })
	if !slices.Equal(gotDims, wantDims) {
		t.Errorf("dims of %s:\n got  %v\n want %v", tid, gotDims, wantDims)
	}
	if !wo.Wanted[0].Last.Equal(latest.Time) {
		t.Errorf("last of %s: %s, want %s", tid, wo.Wanted[0].Last, latest.Time)
	}
}

func noTop(o alerting.Overview) bool {
	for _, l := range o.Top {
		if len(l) != 0 {
			return false
		}
	}
	return true
}

// scopeID is the event's scope of type t as the detector names it: a model
// cohort is model/firmware.
func scopeID(ev *event.Event, t event.ScopeType) string {
	id := ev.ScopeID(t)
	if t == event.ScopeModel && ev.Firmware != "" {
		id += "/" + ev.Firmware
	}
	return id
}
