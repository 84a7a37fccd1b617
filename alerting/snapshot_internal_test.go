package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// Test hooks for snapshot_test.go (package alerting_test), which needs the
// scenario generator and so cannot be an internal test.

// SnapshotState describes the whole of e's lasting state, one line per
// item, independent of map order and of where things live in memory, but
// with every scope reference marked live (the map's scope for its id),
// evicted, or stray (neither: sharing is broken). Two engines with equal
// descriptions behave the same.
func SnapshotState(e *Engine) []string {
	live := map[*scope]bool{}
	e.eachScope(func(s *scope) { live[s] = true })
	name := func(s *scope) string {
		switch {
		case s == nil:
			return "-"
		case live[s]:
			return s.typ.String() + ":" + s.id
		case s.evicted:
			return s.typ.String() + ":" + s.id + "!evicted"
		}
		return s.typ.String() + ":" + s.id + "!stray"
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("engine started=%v maxTs=%d nextTick=%d tickNo=%d nScopes=%d sweepAt=%d", e.started, e.maxTs, e.nextTick, e.tickNo, e.nScopes, e.sweepAt)
	add("stats %+v", e.Stats())
	add("pool %v tick %+v", e.pool, e.tickCount)

	var scopes []string
	describe := func(key string, s *scope) {
		var b strings.Builder
		fmt.Fprintf(&b, "scope %s key=%s evicted=%v last=%d suspect=%d explained=%d/%x base=%v ring=[", name(s), key, s.evicted, s.last,
			s.suspect, s.explainedUntil, s.explainedCauses, s.base)
		for i, bk := range s.ring {
			if bk != (bucket{}) {
				fmt.Fprintf(&b, " %d:%d/%d/%v", i, bk.slot, bk.n, bk.f)
			}
		}
		fmt.Fprintf(&b, " ] len=%d", len(s.ring))
		if s.dims != nil {
			b.WriteString(" dims=[")
			for t, d := range s.dims {
				if t == int(event.ScopeTerminal) && d == s {
					b.WriteString(" self")
				} else {
					b.WriteString(" " + name(d))
				}
			}
			b.WriteString(" ]")
		}
		for r := range numRules {
			if inc := s.incident(r); inc != nil {
				fmt.Fprintf(&b, " incident[%d]=%s active=%v", r, inc.alert.ID, slices.Contains(e.rules[r].active, inc))
			}
		}
		scopes = append(scopes, b.String())
	}
	for _, m := range e.scopes {
		for id, s := range m {
			describe(id, s)
		}
	}
	for k, s := range e.models {
		describe(k[0]+"|"+k[1], s)
	}
	slices.Sort(scopes)
	out = append(out, scopes...)

	for i, s := range e.changed.list {
		add("changed %d %s in=%v", i, name(s), e.changed.has(s))
	}
	add("changed set %d", len(e.changed.in))
	for _, r := range e.rules {
		for i, inc := range r.active {
			a, _ := json.Marshal(inc.alert)
			add("rule %d active %d %s quiet=%d confirmed=%d own=%v on-scope=%v %s", r.idx, i, name(inc.scope), inc.quietSince, inc.confirmed,
				inc.rule == r, inc.scope.incident(r.idx) == inc, a)
		}
		var holds []string
		for s, since := range r.holds.since {
			holds = append(holds, fmt.Sprintf("rule %d hold %s since=%d", r.idx, name(s), since))
		}
		slices.Sort(holds)
		out = append(out, holds...)
		add("rule %d renewed %d", r.idx, len(r.holds.renewed))
	}
	for _, c := range recordCauses {
		for i, rec := range e.queues[c].live() {
			var dims []string
			for _, d := range rec.dims {
				dims = append(dims, name(d))
			}
			add("record %s %d ts=%d code=%s dims=%v", c, i, rec.ts, rec.code, dims)
		}
	}
	return out
}

// PendingHolds returns how many terminals and how many other scopes are
// waiting out a rule's Pending time.
func PendingHolds(e *Engine) (terminals, others int) {
	for _, r := range e.rules {
		for s := range r.holds.since {
			if s.typ == event.ScopeTerminal {
				terminals++
			} else {
				others++
			}
		}
	}
	return terminals, others
}

// EvictedDims returns how many terminals' dims point at an evicted scope.
func EvictedDims(e *Engine) int {
	n := 0
	for _, s := range e.scopes[event.ScopeTerminal] {
		if s.dims != nil && slices.ContainsFunc(s.dims[:], func(d *scope) bool { return d != nil && d.evicted }) {
			n++
		}
	}
	return n
}

// CheckQuiescent verifies what AppendSnapshot leaves out: between Observe
// calls the evaluation holds nothing (not even in its buffers' spare
// capacity), no hold is marked renewed, and the counts the snapshot checks
// add up.
func CheckQuiescent(e *Engine) error {
	var errs []error
	ev := &e.eval
	if ev.rule != nil || ev.T != 0 || ev.recs != nil || ev.span != ([event.NumScopeTypes]span{}) {
		errs = append(errs, fmt.Errorf("evaluation left set: rule %v T %d recs %d", ev.rule != nil, ev.T, len(ev.recs)))
	}
	if len(ev.cands)+len(ev.taken)+len(ev.seen)+len(ev.recCand)+len(ev.covered)+len(ev.merchants)+len(ev.index)+len(ev.pairs) != 0 {
		errs = append(errs, errors.New("evaluation buffers not empty"))
	}
	for _, c := range ev.cands[:cap(ev.cands)] {
		if c.s != nil {
			errs = append(errs, errors.New("evaluation candidates pin a scope"))
			break
		}
	}
	for _, s := range ev.seen[:cap(ev.seen)] {
		if s.s != nil {
			errs = append(errs, errors.New("evaluation seen scopes pin a scope"))
			break
		}
	}
	if slices.ContainsFunc(ev.merchants[:cap(ev.merchants)], func(s *scope) bool { return s != nil }) {
		errs = append(errs, errors.New("evaluation merchants pin a scope"))
	}
	for _, r := range e.rules {
		if len(r.holds.renewed) != 0 {
			errs = append(errs, fmt.Errorf("rule %s: %d holds renewed between evaluations", r.kind, len(r.holds.renewed)))
		}
	}
	held := len(e.models)
	for _, m := range e.scopes {
		held += len(m)
	}
	if held != e.nScopes {
		errs = append(errs, fmt.Errorf("%d scopes held, nScopes %d", held, e.nScopes))
	}
	return errors.Join(errs...)
}

// TestSnapshotCoversEveryField fails when a type whose values the snapshot
// writes gains or loses a field: snapshot.go (and SnapshotState) must then
// be updated, and snapVersion raised if the format changes. Two fields are
// deliberately not written: the engine's failing list (and scope.failSeen)
// is rebuilt from the buckets at Restore, and the console's fleet timeline
// starts empty after a restart (ClickHouse keeps the history).
func TestSnapshotCoversEveryField(t *testing.T) {
	for _, tc := range []struct {
		typ    reflect.Type
		fields string
	}{
		{reflect.TypeFor[Engine](), "cfg emit rules width nb ringLen decay hold scopes models queues pool poolDecay tickCount tick lateness maxLate started maxTs nextTick tickNo changed stats timeline failing peerKeys fleetVol silenceBuf nScopes sweepAt eval"},
		{reflect.TypeFor[scope](), "typ evicted suspect last incidents id ring dims base explainedUntil explainedCauses failSeen seq peer probe vol"},
		{reflect.TypeFor[bucket](), "slot n f"},
		{reflect.TypeFor[seqState](), "up down since slot n k x"},
		{reflect.TypeFor[probation](), "sum from k"},
		{reflect.TypeFor[baseline](), "n f"},
		{reflect.TypeFor[tickCounts](), "n f"},
		{reflect.TypeFor[incident](), "alert rule scope quietSince confirmed silence"},
		{reflect.TypeFor[volume](), "minute n f"},
		{reflect.TypeFor[silenceState](), "share"},
		{reflect.TypeFor[rule](), "idx kind cause scopes nb cfg active holds"},
		{reflect.TypeFor[holds](), "since renewed"},
		{reflect.TypeFor[record](), "ts code dims"},
		{reflect.TypeFor[recordQueue](), "recs head retention"},
		{reflect.TypeFor[merchantSet](), "list in"},
		{reflect.TypeFor[Stats](), "Observed Late Fired Resolved Inhibited Suppressed RecordsDropped EvictedScopes EvictedAtCap CapSweeps Scopes Records"},
		{reflect.TypeFor[Alert](), "ID State Kind Cause ScopeType ScopeID StartsAt DetectedAt EndsAt Attempts Failures Rate BaselineRate Affected Summary Remedy Labels"},
	} {
		var got []string
		for f := range tc.typ.Fields() {
			got = append(got, f.Name)
		}
		if strings.Join(got, " ") != tc.fields {
			t.Errorf("%s fields changed: %v, the snapshot covers %s: update snapshot.go", tc.typ, got, tc.fields)
		}
	}
}

// TestSnapshotKeepsEvictedDimLabel covers a terminal whose dims point at a
// scope evicted since its last event: a held terminal goes silent, its
// region is evicted as idle, then the terminal fires. The alert's region
// label comes from the evicted scope, so the restored engine must keep it
// (as a detached evicted scope) rather than drop it.
func TestSnapshotKeepsEvictedDimLabel(t *testing.T) {
	cfg := Config{IdleTTL: 2 * time.Minute, Rules: map[string]RuleConfig{"terminal_hardware": {Pending: 8 * time.Minute}}}
	background := fleet(200, func(i int) term {
		return term{id: fmt.Sprintf("B%03d", i), merchant: fmt.Sprintf("BM%02d", i/4), region: fmt.Sprintf("R%d", i%4),
			carrier: "C1", host: "H1", model: "A8", fw: "1.0", network: "4g"}
	})
	lone := []term{{id: "TX", merchant: "MX", region: "RX", carrier: "C1", host: "H1", model: "A8", fw: "1.0", network: "4g"}}
	failStart, failEnd := t0.Add(12*time.Minute), t0.Add(15*time.Minute)
	evs := append(traffic(t0, 40*time.Minute, 30*time.Second, background, approve),
		traffic(t0, failEnd.Sub(t0), 20*time.Second, lone, failing(func(term) bool { return true }, failStart, failEnd, "CHIP_READ_FAIL", "", 1))...)
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	rules := classify.Default()
	causes := make([]event.Cause, len(evs))
	for i := range evs {
		causes[i] = rules.Classify(&evs[i]).Cause
	}

	runFrom := func(e *Engine, from int) {
		for i := from; i < len(evs); i++ {
			e.Observe(&evs[i], causes[i])
		}
		e.Flush()
	}
	var want []Alert
	ref, _ := NewEngine(cfg, func(a Alert) { want = append(want, a) })
	split := -1
	for i := range evs {
		ref.Observe(&evs[i], causes[i])
		if split < 0 && EvictedDims(ref) > 0 {
			split = i + 1
		}
	}
	ref.Flush()
	if split < 0 {
		t.Fatal("no terminal's dims ever pointed at an evicted scope")
	}
	fired := slices.IndexFunc(want, func(a Alert) bool { return a.ScopeID == "TX" && a.State == StateFiring })
	if fired < 0 || want[fired].Labels["region"] != "RX" {
		t.Fatalf("want TX to fire with region=RX; alerts:\n%s", details(want))
	}

	var got []Alert
	a, _ := NewEngine(cfg, func(al Alert) { got = append(got, al) })
	for i := range split {
		a.Observe(&evs[i], causes[i])
	}
	if d := a.scopes[event.ScopeTerminal]["TX"].dims[event.ScopeRegion]; d == nil || !d.evicted || d.id != "RX" {
		t.Fatalf("at the split TX's region dim is %+v, want the evicted RX", d)
	}
	if !a.Watermark().Before(want[fired].DetectedAt) {
		t.Fatal("split after TX fired")
	}
	snap := a.AppendSnapshot(nil)
	b, _ := NewEngine(cfg, func(al Alert) { got = append(got, al) })
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if d := b.scopes[event.ScopeTerminal]["TX"].dims[event.ScopeRegion]; d == nil || !d.evicted || d.id != "RX" {
		t.Fatalf("restored TX's region dim is %+v, want a detached evicted RX", d)
	}
	if sa, sb := SnapshotState(a), SnapshotState(b); !slices.Equal(sa, sb) {
		t.Fatalf("restored state differs:\n%s", firstDiff(sa, sb))
	}
	runFrom(b, split)
	if g, w := details(got), details(want); g != w {
		t.Fatalf("alerts after restore:\n%s\nwant:\n%s", g, w)
	}
}

// firstDiff shows where two state descriptions part.
func firstDiff(a, b []string) string {
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  original: %s\n  restored: %s", i, x, y)
		}
	}
	return "(equal)"
}

// FirstStateDiff is firstDiff for snapshot_test.go.
var FirstStateDiff = firstDiff

// TestSnapshotRestoreSharesScopes checks pointer identity directly: after a
// restore, every reference to a held scope is the map's scope.
func TestSnapshotRestoreSharesScopes(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	fl := estate()
	evs := traffic(t0, 2*time.Hour, 30*time.Second, fl,
		failing(func(t term) bool { return t.region == "R2" }, onset, t0.Add(3*time.Hour), "COMM_TIMEOUT", "", 1))
	rules := classify.Default()
	e, _ := NewEngine(Config{}, func(Alert) {})
	for i := range evs {
		e.Observe(&evs[i], rules.Classify(&evs[i]).Cause)
	}
	if len(e.Active()) == 0 || len(e.queues[event.CauseNetwork].live()) == 0 {
		t.Fatal("want a firing outage and network failure records")
	}
	r, _ := NewEngine(Config{}, func(Alert) {})
	if err := r.Restore(e.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	held := func(s *scope) bool {
		if s == nil || s.evicted {
			return true
		}
		if s.typ == event.ScopeModel {
			return slices.Contains(slices.Collect(maps.Values(r.models)), s)
		}
		return r.scopes[s.typ][s.id] == s
	}
	for _, term := range r.scopes[event.ScopeTerminal] {
		if term.dims[event.ScopeTerminal] != term {
			t.Fatalf("terminal %s dims do not start with itself", term.id)
		}
		for _, d := range term.dims {
			if !held(d) {
				t.Fatalf("terminal %s dim %s:%s is not the held scope", term.id, d.typ, d.id)
			}
		}
	}
	for _, c := range recordCauses {
		for _, rec := range r.queues[c].live() {
			for _, d := range rec.dims {
				if !held(d) {
					t.Fatalf("record dim %s:%s is not the held scope", d.typ, d.id)
				}
			}
		}
	}
	for _, rl := range r.rules {
		for _, inc := range rl.active {
			if !held(inc.scope) || inc.scope.incident(rl.idx) != inc || inc.rule != rl {
				t.Fatalf("incident %s not wired to its scope and rule", inc.alert.ID)
			}
		}
	}
	for _, s := range r.changed.list {
		if !held(s) {
			t.Fatalf("merchant set scope %s is not the held scope", s.id)
		}
	}
}
