package scenario

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/declinemon/declinemon/alerting"
)

// WorldTruth is what a world contains.
type WorldTruth struct {
	World     string    `json:"world"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Days      int       `json:"days"`
	Terminals int       `json:"terminals"`
	Merchants int       `json:"merchants"`
	Regions   int       `json:"regions"`
	Events    int       `json:"events"`
	// LateEvents arrived more than a minute after they happened;
	// BacklogEvents were stored during an outage and uploaded after it.
	LateEvents    int          `json:"late_events"`
	BacklogEvents int          `json:"backlog_events"`
	Holidays      []time.Time  `json:"holidays,omitempty"`
	Faults        []FaultTruth `json:"faults"`
	// WrongClockTerminals sent at least one event with a wrong timestamp
	// (or would have, in the paired run with correct clocks).
	WrongClockTerminals []string `json:"wrong_clock_terminals"`
	WrongClockEvents    int      `json:"wrong_clock_events"`
	// Behind[i] counts events (right clocks only) arriving more than
	// BehindThresholds[i] behind the newest event time delivered before
	// them: what a detector with that lateness bound must count late.
	Behind       []int `json:"behind"`
	PairedClocks bool  `json:"paired_clocks,omitempty"`
	Quiet        bool  `json:"quiet,omitempty"`
}

// BehindThresholds are the lateness bounds WorldTruth.Behind counts at.
var BehindThresholds = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 30 * time.Minute, time.Hour}

// ArrivedBehind is how many events arrived more than d behind the newest
// event time before them (d rounded down to a threshold).
func (t WorldTruth) ArrivedBehind(d time.Duration) int {
	n := 0
	for i, th := range BehindThresholds {
		if th <= d && i < len(t.Behind) {
			n = t.Behind[i]
		}
	}
	return n
}

// FaultTruth is one root cause and what the detector should say about it.
type FaultTruth struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Kind, ScopeType, ScopeID: the alert expected (empty Kind: nothing
	// is expected, and nothing may page).
	Kind      string `json:"kind,omitempty"`
	ScopeType string `json:"scope_type"`
	ScopeID   string `json:"scope_id"`
	// Onset is when the fault began, Reference when the Must-show clock
	// starts (a ramp passing 25%, the tenth terminal on a firmware), End
	// when it ended (the world's end for faults that stay).
	Onset     time.Time     `json:"onset"`
	Reference time.Time     `json:"reference"`
	End       time.Time     `json:"end"`
	Goal      time.Duration `json:"goal"`
	// MustShow: the goal is one of issue #14's Must-shows (otherwise it is
	// reported by volume band).
	MustShow bool `json:"must_show"`
	// Page: the fault must page; MaxPages is how many paging alerts it
	// may cause in all (one root cause, one page; 0 for a flash sale).
	Page     bool `json:"page"`
	MaxPages int  `json:"max_pages"`
	// VolumePerHour is the scope's expected attempts an hour at Reference.
	VolumePerHour float64 `json:"volume_per_hour"`
	// Affected are the terminals the root cause touches: an alert whose
	// scope covers one of them, during the fault, is one of its pages.
	Affected []TerminalRef `json:"affected,omitempty"`
	// RelatedScopes / RelatedKinds narrow which alerts count as this root
	// cause's pages (empty: any scope type / any kind).
	RelatedScopes []string `json:"related_scopes,omitempty"`
	RelatedKinds  []string `json:"related_kinds,omitempty"`
	// Held: terminals whose attempts were stored and arrived late.
	Held []string `json:"held,omitempty"`
	// CohortFirst: each cohort terminal's first attempt on the new firmware.
	CohortFirst []time.Time `json:"cohort_first,omitempty"`
	Note        string      `json:"note,omitempty"`
}

// TerminalRef is a terminal and the scopes it belongs to.
type TerminalRef struct {
	ID       string   `json:"id"`
	Merchant string   `json:"merchant"`
	Region   string   `json:"region"`
	Carrier  string   `json:"carrier"`
	Network  string   `json:"network"`
	Host     string   `json:"host"`
	Acquirer string   `json:"acquirer"`
	Model    string   `json:"model"`
	Firmware []string `json:"firmware"`
	// Since: the terminal belongs to the root cause from then on (a
	// cohort terminal's first attempt on the new firmware); zero: all along.
	Since time.Time `json:"since,omitempty"`
}

// covers reports whether an alert scope (possibly composite,
// "region+carrier" / "330100/CUCC") contains the terminal.
func (r *TerminalRef) covers(scopeType, scopeID string) bool {
	types := strings.Split(scopeType, "+")
	ids := strings.Split(scopeID, "/")
	models := 0
	for _, t := range types {
		if t == "model" {
			models++
		}
	}
	// A model scope is model/firmware, or a bare model.
	split := len(ids) == len(types)+models
	if !split && len(ids) != len(types) {
		return false
	}
	k := 0
	for _, t := range types {
		id := ids[k]
		k++
		var ok bool
		switch t {
		case "terminal":
			ok = r.ID == id
		case "merchant":
			ok = r.Merchant == id
		case "region":
			ok = r.Region == id
		case "carrier":
			ok = r.Carrier == id
		case "network":
			ok = r.Network == id
		case "host":
			ok = r.Host == id
		case "acquirer":
			ok = r.Acquirer == id
		case "model":
			ok = r.Model == id
			if split {
				ok = ok && slices.Contains(r.Firmware, ids[k])
				k++
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// FaultScore is how one fault fared.
type FaultScore struct {
	FaultTruth
	Found      bool          `json:"found"`
	Paged      bool          `json:"paged"` // the matching alert paged
	AlertID    string        `json:"alert_id,omitempty"`
	DetectedAt time.Time     `json:"detected_at"`
	TTD        time.Duration `json:"ttd"` // detected_at - reference (negative: before it)
	WithinGoal bool          `json:"within_goal"`
	// Pages are the paging alerts of this root cause, whatever their
	// scope (the expected one, its terminals, a wider one): "kind
	// scope_type=scope_id detected_at".
	Pages []string `json:"pages,omitempty"`
}

// WorldScore is a world's result.
type WorldScore struct {
	Truth      WorldTruth
	Faults     []FaultScore
	Paging     int // paging alerts raised
	Notices    int // non-paging alerts raised
	FalsePages []alerting.Alert
	// Clock is the wrong-clock comparison of a paired world (nil: not run).
	Clock   *ClockCheck
	Elapsed time.Duration // generation and detection
	Path    string        // what detected: "engine", "replay", a binary
	// Late is how many events the detection path counted late, and
	// Lateness its bound (Late < 0: not known).
	Late     int64
	Lateness time.Duration
}

// ClockCheck compares a world with wrong clocks against the same world
// with correct clocks.
type ClockCheck struct {
	Differences []string
	Note        string // how the wrong clocks reached detection
}

// firingAlerts returns the first firing record of every alert, in order.
func firingAlerts(alerts []alerting.Alert) []alerting.Alert {
	seen := map[string]bool{}
	var out []alerting.Alert
	for _, a := range alerts {
		if a.State != alerting.StateFiring || seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		out = append(out, a)
	}
	return out
}

// Pages reports whether an alert pages: every firing alert does unless it
// is labelled paging=false (a notice).
func Pages(a alerting.Alert) bool { return a.Labels["paging"] != "false" }

// ScoreWorld matches a world's alerts (firing and resolved records) to its
// truth.
func ScoreWorld(truth WorldTruth, alerts []alerting.Alert) WorldScore {
	sc := WorldScore{Truth: truth}
	firing := firingAlerts(alerts)
	accounted := map[string]bool{}
	for _, ft := range truth.Faults {
		fs := FaultScore{FaultTruth: ft}
		if ft.Kind != "" {
			from := ft.Onset
			if ft.Reference.Before(from) {
				from = ft.Reference
			}
			from = from.Add(-10 * time.Minute)
			for _, a := range firing {
				if a.Kind.String() != ft.Kind || a.ScopeType != ft.ScopeType || a.ScopeID != ft.ScopeID ||
					a.DetectedAt.Before(from) || a.DetectedAt.After(ft.End.Add(10*time.Minute)) {
					continue
				}
				if !fs.Found || a.DetectedAt.Before(fs.DetectedAt) {
					fs.Found, fs.AlertID, fs.DetectedAt, fs.Paged = true, a.ID, a.DetectedAt, Pages(a)
				}
			}
			if fs.Found {
				fs.TTD = fs.DetectedAt.Sub(ft.Reference)
				fs.WithinGoal = fs.Paged && fs.TTD <= ft.Goal
			}
		}
		sc.Faults = append(sc.Faults, fs)
	}
	// Each paging alert is a page of at most one root cause: the fault
	// whose expected scope it names, else the most specific one (fewest
	// terminals) it covers.
	for _, a := range firing {
		if !Pages(a) {
			continue
		}
		best := -1
		for i := range sc.Faults {
			ft := &sc.Faults[i].FaultTruth
			if !related(ft, a) {
				continue
			}
			exact := a.ScopeType == ft.ScopeType && a.ScopeID == ft.ScopeID
			if best < 0 || exact || (!(a.ScopeType == sc.Faults[best].ScopeType && a.ScopeID == sc.Faults[best].ScopeID) && len(ft.Affected) < len(sc.Faults[best].Affected)) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		f := &sc.Faults[best]
		f.Pages = append(f.Pages, fmt.Sprintf("%s %s=%s %s", a.Kind, a.ScopeType, a.ScopeID, a.DetectedAt.In(truth.Start.Location()).Format("01-02 15:04:05")))
		if f.Page {
			accounted[a.ID] = true
		}
	}
	for _, a := range firing {
		if !Pages(a) {
			sc.Notices++
			continue
		}
		sc.Paging++
		if !accounted[a.ID] {
			sc.FalsePages = append(sc.FalsePages, a)
		}
	}
	return sc
}

// related: the alert belongs to the fault's root cause: raised while it
// lasted (or its backlog arrived), on its expected scope or on a scope
// covering one of its terminals.
func related(ft *FaultTruth, a alerting.Alert) bool {
	if a.DetectedAt.Before(ft.Onset.Add(-10*time.Minute)) || a.DetectedAt.After(ft.End.Add(30*time.Minute)) {
		return false
	}
	if len(ft.RelatedKinds) > 0 && !slices.Contains(ft.RelatedKinds, a.Kind.String()) {
		return false
	}
	if a.ScopeType == ft.ScopeType && a.ScopeID == ft.ScopeID {
		return true
	}
	if len(ft.RelatedScopes) > 0 {
		for _, t := range strings.Split(a.ScopeType, "+") {
			if !slices.Contains(ft.RelatedScopes, t) {
				return false
			}
		}
	}
	for i := range ft.Affected {
		r := &ft.Affected[i]
		if r.covers(a.ScopeType, a.ScopeID) && (a.ScopeType != "terminal" || r.Since.IsZero() || !a.DetectedAt.Before(r.Since)) {
			return true
		}
	}
	return false
}

// CompareClocks lists how the paging incidents raised with wrong clocks
// differ from those of the same world with correct clocks: every
// kind+scope must be raised as often, each time within a minute of the
// correct run. Incidents of the wrong-clock terminals themselves are left
// out (their events are screened, so their own alerts may go).
func (t WorldTruth) CompareClocks(correct, wrong []alerting.Alert) []string {
	skip := map[string]bool{}
	for _, id := range t.WrongClockTerminals {
		skip[id] = true
	}
	loc := t.Start.Location()
	times := func(alerts []alerting.Alert) map[string][]time.Time {
		m := map[string][]time.Time{}
		for _, a := range firingAlerts(alerts) {
			if !Pages(a) || (a.ScopeType == "terminal" && skip[a.ScopeID]) {
				continue
			}
			k := fmt.Sprintf("%s %s=%s", a.Kind, a.ScopeType, a.ScopeID)
			m[k] = append(m[k], a.DetectedAt)
		}
		return m
	}
	want, got := times(correct), times(wrong)
	var diffs []string
	for _, k := range sortedKeys(want) {
		g := got[k]
		for i, at := range want[k] {
			if i >= len(g) {
				diffs = append(diffs, fmt.Sprintf("%s (detected %s with correct clocks) not raised with wrong clocks", k, at.In(loc).Format("01-02 15:04:05")))
				continue
			}
			if d := g[i].Sub(at); d > time.Minute || d < -time.Minute {
				diffs = append(diffs, fmt.Sprintf("%s detected %s with wrong clocks, %s with correct clocks", k, g[i].In(loc).Format("01-02 15:04:05"), at.In(loc).Format("01-02 15:04:05")))
			}
		}
	}
	for _, k := range sortedKeys(got) {
		for i := len(want[k]); i < len(got[k]); i++ {
			diffs = append(diffs, fmt.Sprintf("%s raised only with wrong clocks (%s)", k, got[k][i].In(loc).Format("01-02 15:04:05")))
		}
	}
	return diffs
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// The Must-shows of issue #14.
const (
	MustWrongClocks = "a wrong clock on any number of terminals changes nothing else's detection"
	MustHardware    = "terminal hardware at >= 30 attempts/h: alerted <= 30 min after 25% failing"
	MustSilent      = "silent region: <= 3 min, one page, none at closings, holidays or on the backlog"
	MustFirmware    = "staged firmware defect: one alert, <= 30 min after ten terminals run it, <= 1 page per root cause"
	MustCarrier     = "partial carrier-in-city outage: <= 5 min"
	MustQuiet       = "quiet week on 10,000 terminals: 0 false pages"
	MustNoPage      = "customer-side surge (flash sale): no page"
	// CheckLate is not a Must-show but the condition for measuring them:
	// the detector saw the events the world delivered in time.
	CheckLate = "(validity) only events that arrived late are counted late"
)

// MustShowResult is one Must-show checked on one world or fault.
type MustShowResult struct {
	Must   string
	World  string
	Fault  string
	OK     bool
	Detail string
	// Unmeasured: the check would pass, but the detector did not see the
	// world's events (the validity check failed), so it proves nothing.
	Unmeasured bool
}

// MustShows checks the Must-shows that apply to this world.
func (s WorldScore) MustShows() []MustShowResult {
	var out []MustShowResult
	add := func(must, fault string, ok bool, detail string, args ...any) {
		out = append(out, MustShowResult{Must: must, World: s.Truth.World, Fault: fault, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	paging := false // a fault that must page
	for _, f := range s.Faults {
		paging = paging || f.Page
		switch {
		case !f.Page:
			add(MustNoPage, f.ID, len(f.Pages) == 0, "%d pages (%s)", len(f.Pages), f.ScopeID)
		case !f.MustShow:
		case f.Type == FaultHardwareRamp || f.Type == FaultHardwareStep:
			add(MustHardware, f.ID, f.WithinGoal, "%s at %.0f/h: %s", f.ScopeID, f.VolumePerHour, f.outcome())
		case f.Type == FaultSilentRegion:
			// Closings, the holiday and the backlog would page as outages.
			outages := 0
			for _, a := range s.FalsePages {
				if a.Kind == alerting.KindNetworkOutage {
					outages++
				}
			}
			ok := f.WithinGoal && len(f.Pages) <= f.MaxPages && outages == 0
			add(MustSilent, f.ID, ok, "%s: %s; %d pages for the outage, %d false network_outage pages in the world", f.ScopeID, f.outcome(), len(f.Pages), outages)
		case f.Type == FaultStagedFirmware:
			ok := f.WithinGoal && len(f.Pages) <= f.MaxPages
			add(MustFirmware, f.ID, ok, "%s: %s; %d pages for the root cause", f.ScopeID, f.outcome(), len(f.Pages))
		case f.Type == FaultCarrierInRegion:
			add(MustCarrier, f.ID, f.WithinGoal, "%s: %s", f.ScopeID, f.outcome())
		}
	}
	if s.Truth.Quiet && !paging {
		add(MustQuiet, "", len(s.FalsePages) == 0, "%d false pages on %d terminals over %d days", len(s.FalsePages), s.Truth.Terminals, s.Truth.Days)
	}
	if s.Late >= 0 && s.Lateness > 0 {
		// Without this the Must-shows above may pass on a stream the
		// detector did not look at (a quiet week is quiet when every
		// event is late).
		want := s.Truth.ArrivedBehind(s.Lateness)
		valid := s.Late <= int64(want)+int64(s.Truth.Events)/100+100
		if !valid {
			for i := range out {
				if out[i].OK {
					out[i].OK, out[i].Unmeasured = false, true
				}
			}
		}
		add(CheckLate, "", valid, "%d counted late (bound %s); the world delivered %d of %d events later than that", s.Late, s.Lateness, want, s.Truth.Events)
	}
	if s.Truth.PairedClocks {
		switch {
		case s.Clock == nil:
			add(MustWrongClocks, "", false, "not compared")
		default:
			add(MustWrongClocks, "", len(s.Clock.Differences) == 0, "%d wrong-clock terminals (%d events): %d differences%s",
				len(s.Truth.WrongClockTerminals), s.Truth.WrongClockEvents, len(s.Clock.Differences), strings.TrimSuffix(" ("+s.Clock.Note+")", " ()"))
		}
	}
	return out
}

func (f FaultScore) outcome() string {
	switch {
	case !f.Found:
		return "MISSED"
	case !f.Paged:
		return fmt.Sprintf("found after %s but did not page", fmtTTD(f.TTD))
	case !f.WithinGoal:
		return fmt.Sprintf("LATE: %s (goal %s)", fmtTTD(f.TTD), f.Goal)
	}
	return fmt.Sprintf("%s (goal %s)", fmtTTD(f.TTD), f.Goal)
}

func fmtTTD(d time.Duration) string {
	return d.Round(time.Second).String()
}

// VolumeBand names a scope's attempts-per-hour band.
func VolumeBand(perHour float64) string {
	switch {
	case perHour < 10:
		return "<10/h"
	case perHour < 30:
		return "10-29/h"
	case perHour < 100:
		return "30-99/h"
	case perHour < 1000:
		return "100-999/h"
	}
	return ">=1000/h"
}

// WriteWorldTable prints the worlds, every fault, the quality table by
// fault kind and scope volume band, the false pages and the Must-shows.
func WriteWorldTable(w io.Writer, scores []WorldScore) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORLD\tterminals\tdays\tevents\tlate >1m\tbacklog\twrong clocks (terminals/events)\tlate: arrived/counted\tpaging\tnotices\tfalse pages\tpath\ttime")
	for _, s := range scores {
		t := s.Truth
		late := "-"
		if s.Late >= 0 && s.Lateness > 0 {
			late = fmt.Sprintf("%d/%d", t.ArrivedBehind(s.Lateness), s.Late)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%s\t%d\t%d\t%d\t%s\t%s\n", t.World, t.Terminals, t.Days, t.Events, t.LateEvents, t.BacklogEvents,
			len(t.WrongClockTerminals), t.WrongClockEvents, late, s.Paging, s.Notices, len(s.FalsePages), s.Path, s.Elapsed.Round(100*time.Millisecond))
	}
	fmt.Fprintln(tw, "\nFAULT\texpected alert\treference\tvolume/h\tfound\tTTD\tgoal\tpages (max)\tnote")
	for _, s := range scores {
		for _, f := range s.Faults {
			exp := "(none: must not page)"
			if f.Kind != "" {
				exp = fmt.Sprintf("%s %s=%s", f.Kind, f.ScopeType, f.ScopeID)
			}
			found, ttd, goal := "-", "-", "-"
			if f.Kind != "" {
				found = "MISSED"
				if f.Found {
					found, ttd = "yes", fmtTTD(f.TTD)
					if !f.Paged {
						found = "yes (no page)"
					} else if !f.WithinGoal {
						found = "LATE"
					}
				}
				goal = f.Goal.String()
				if !f.MustShow {
					goal += " (report)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%d (%d)\t%s\n", f.ID, exp, f.Reference.Format("01-02 15:04:05"), f.VolumePerHour,
				found, ttd, goal, len(f.Pages), f.MaxPages, f.Note)
			if len(f.Pages) > f.MaxPages || (len(f.Pages) > 0 && !f.Found) {
				for _, p := range f.Pages {
					fmt.Fprintf(tw, "\t  page: %s\t\t\t\t\t\t\t\n", p)
				}
			}
		}
	}
	type key struct{ typ, band string }
	type agg struct {
		faults, found, missed, onGoal, extraPages int
		ttds                                      []time.Duration
	}
	rows := map[key]*agg{}
	var keys []key
	for _, s := range scores {
		for _, f := range s.Faults {
			k := key{f.Type, VolumeBand(f.VolumePerHour)}
			a := rows[k]
			if a == nil {
				a = &agg{}
				rows[k] = a
				keys = append(keys, k)
			}
			a.faults++
			if f.Kind != "" {
				if f.Found {
					a.found++
					a.ttds = append(a.ttds, f.TTD)
				} else {
					a.missed++
				}
				if f.WithinGoal {
					a.onGoal++
				}
			}
			a.extraPages += max(0, len(f.Pages)-f.MaxPages)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.typ, b.typ); c != 0 {
			return c
		}
		return bandOrder(a.band) - bandOrder(b.band)
	})
	fmt.Fprintln(tw, "\nFAULT KIND\tscope volume\tfaults\tfound\tmissed\ton goal\textra/false pages\tmedian TTD\tworst TTD")
	for _, k := range keys {
		a := rows[k]
		med, worst := "-", "-"
		if len(a.ttds) > 0 {
			slices.Sort(a.ttds)
			med, worst = fmtTTD(a.ttds[(len(a.ttds)-1)/2]), fmtTTD(a.ttds[len(a.ttds)-1])
		}
		found, missed, on := fmt.Sprint(a.found), fmt.Sprint(a.missed), fmt.Sprint(a.onGoal)
		if a.found+a.missed == 0 {
			found, missed, on = "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", k.typ, k.band, a.faults, found, missed, on, a.extraPages, med, worst)
	}
	for _, s := range scores {
		fmt.Fprintf(tw, "(no fault)\t%s\t-\t-\t-\t-\t%d\t-\t-\n", s.Truth.World, len(s.FalsePages))
	}
	if n := countFalse(scores); n > 0 {
		fmt.Fprintln(tw, "\nFALSE PAGE\tkind\tscope\tdetected\tattempts\trate\tsummary")
		for _, s := range scores {
			for _, a := range s.FalsePages {
				fmt.Fprintf(tw, "%s\t%s\t%s=%s\t%s\t%d\t%.1f%%\t%s\n", s.Truth.World, a.Kind, a.ScopeType, a.ScopeID,
					a.DetectedAt.In(s.Truth.Start.Location()).Format("01-02 15:04:05"), a.Attempts, 100*a.Rate, trim(a.Summary, 110))
			}
		}
	}
	fmt.Fprintln(tw, "\nMUST-SHOW\tresult\tworld / fault\tdetail")
	for _, s := range scores {
		for _, m := range s.MustShows() {
			res := "ok"
			switch {
			case m.Unmeasured:
				res = "UNMEASURED"
			case !m.OK:
				res = "FAIL"
			}
			where := m.World
			if m.Fault != "" {
				where = m.Fault
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Must, res, where, m.Detail)
		}
		if s.Clock != nil {
			for _, d := range s.Clock.Differences {
				fmt.Fprintf(tw, "\t\t%s\t%s\n", s.Truth.World, d)
			}
		}
	}
	return tw.Flush()
}

func countFalse(scores []WorldScore) int {
	n := 0
	for _, s := range scores {
		n += len(s.FalsePages)
	}
	return n
}

func bandOrder(b string) int {
	return slices.Index([]string{"<10/h", "10-29/h", "30-99/h", "100-999/h", ">=1000/h"}, b)
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
