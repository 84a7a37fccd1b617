package pipeline

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Tally keeps whole-run attempts and declines per merchant and terminal for
// the summary's league tables.
type Tally struct {
	merchants map[string]*tallyRow
	terminals map[string]*tallyRow
}

type tallyRow struct {
	attempts, declines uint64
	byCause            [event.NumCauses]uint32
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{merchants: map[string]*tallyRow{}, terminals: map[string]*tallyRow{}}
}

// Add counts one classified event.
func (t *Tally) Add(ev *event.Event, cause event.Cause) {
	add := func(m map[string]*tallyRow, k string) {
		r := m[k]
		if r == nil {
			r = &tallyRow{}
			m[k] = r
		}
		r.attempts++
		if cause != event.CauseNone {
			r.declines++
			r.byCause[cause]++
		}
	}
	add(t.merchants, ev.Merchant)
	add(t.terminals, ev.Terminal)
}

// Counts is a snapshot of the pipeline's counters for the summary.
type Counts struct {
	Messages uint64
	Accepted uint64
	Rejected [ingest.NumReasons]uint64
	Late     uint64 // accepted but beyond the lateness bound: not detected on
	// ClockSkew counts accepted events dated off the fleet's clock, and
	// Skewed lists their terminals (most first).
	ClockSkew uint64
	Skewed    []ClockSkew
	Approved  uint64
	ByCause   [event.NumCauses]uint64 // declines by cause (index 0 unused)
	// UnknownCodes counts codes the rules do not know, by code (bounded).
	UnknownCodes map[string]uint64
	// AmountDeclined sums amount_minor of declined attempts per currency.
	AmountDeclined Amounts
}

// Summary reads the counters into a summary of the run so far. Call it
// after Run returns.
func (p *Pipeline) Summary(input string, elapsed time.Duration) *Summary {
	c := p.counters
	counts := &Counts{Messages: c.Messages.Load(), Accepted: c.Accepted.Load(), Late: c.Late.Load(),
		ClockSkew: c.ClockSkew.Load(), Skewed: p.skews.list(),
		Approved: c.Approved.Load(), UnknownCodes: p.summary.unknownCodes, AmountDeclined: p.summary.amountDeclined}
	for r := range counts.Rejected {
		counts.Rejected[r] = c.Rejected[r].Load()
	}
	for i := range counts.ByCause {
		counts.ByCause[i] = c.ByCause[i].Load()
	}
	s := &Summary{Input: input, Counts: counts, Tally: p.tally, Elapsed: elapsed, Location: p.o.Config.Location()}
	if p.engine != nil {
		s.Engine = p.engine.Stats()
	}
	return s
}

// Summary is everything the end-of-run report shows.
type Summary struct {
	Input   string
	Counts  *Counts
	Tally   *Tally
	Alerts  []alerting.Alert
	Engine  alerting.Stats
	Elapsed time.Duration
	// Top is how many merchants and terminals to list (default 10).
	Top int
	// MinAttempts is the volume below which a merchant or terminal is
	// left out of the decline-rate tables (default 20).
	MinAttempts uint64
	// Delivery is what each notifier delivered (empty: none configured).
	Delivery map[string]DeliveryStats
	// Location is the business time zone the summary gives times in
	// (nil: UTC), with their UTC offset shown.
	Location *time.Location
}

// summaryTimeLayout gives a date and time with its UTC offset, so a
// reader never has to guess the zone.
const summaryTimeLayout = "2006-01-02 15:04:05 -07:00"

// Write prints the summary for people.
func (s *Summary) Write(w io.Writer) error {
	c := s.Counts
	top := cmp.Or(s.Top, 10)
	minAttempts := cmp.Or(s.MinAttempts, 20)
	var rejected uint64
	for _, n := range c.Rejected {
		rejected += n
	}
	declines := c.Accepted - c.Approved
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	p("declinemon replay summary: %s\n", s.Input)
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(c.Messages) / s.Elapsed.Seconds()
	}
	p("  events read\t%d\t(%.0f events/s, %s)\n", c.Messages, rate, s.Elapsed.Round(time.Millisecond))
	p("  accepted\t%d\n", c.Accepted)
	p("  rejected\t%d\n", rejected)
	for r := ingest.Reason(0); r < ingest.NumReasons; r++ {
		if c.Rejected[r] > 0 {
			p("    %s\t%d\n", r, c.Rejected[r])
		}
	}
	p("  late (beyond lateness, not detected on)\t%d\n", c.Late)
	if c.ClockSkew > 0 {
		p("  clock_skew (wrong terminal clock, stored, not detected on)\t%d\n", c.ClockSkew)
	}
	p("  approved\t%d\t%s\n", c.Approved, pct(c.Approved, c.Accepted))
	p("  declined or failed\t%d\t%s\n", declines, pct(declines, c.Accepted))
	if declines > 0 {
		p("\ndecline mix by cause\n")
		for _, cause := range event.Causes() {
			if n := c.ByCause[cause]; n > 0 {
				p("  %s\t%d\t%s of declines\n", cause, n, pct(n, declines))
			}
		}
		if totals := c.AmountDeclined.Totals(); len(totals) > 0 {
			p("\ndeclined amount by currency\n")
			for _, t := range totals {
				unit := ""
				if _, ok := minorUnits(t.Currency); !ok {
					unit = " (minor units)"
				}
				p("  %s\t%s%s\t%d attempts\n", t.Currency, t.Major(), unit, t.Count)
			}
		}
	}
	if len(c.UnknownCodes) > 0 {
		p("\ncodes not in the rules, counted as unknown (add them to a rules file, --rules)\n")
		codes := make([]string, 0, len(c.UnknownCodes))
		for k := range c.UnknownCodes {
			codes = append(codes, k)
		}
		slices.SortFunc(codes, func(a, b string) int {
			return cmp.Or(cmp.Compare(c.UnknownCodes[b], c.UnknownCodes[a]), cmp.Compare(a, b))
		})
		for _, k := range codes[:min(top, len(codes))] {
			p("  %s\t%d\n", codeLabel(k), c.UnknownCodes[k])
		}
	}
	if len(c.Skewed) > 0 {
		p("\nterminals with a wrong clock (send field service to sync them)\n")
		for _, k := range c.Skewed[:min(top, len(c.Skewed))] {
			dir := "ahead"
			off := k.Offset
			if off < 0 {
				dir, off = "behind", -off
			}
			p("  %s\tmerchant %s\t%d events\t%s %s\n", k.Terminal, k.Merchant, k.Events, off.Round(time.Minute), dir)
		}
		if len(c.Skewed) > top {
			p("  … and %d more terminals\n", len(c.Skewed)-top)
		}
	}
	if s.Tally != nil {
		league(p, "merchants", s.Tally.merchants, top, minAttempts)
		league(p, "terminals", s.Tally.terminals, top, minAttempts)
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	p("\nalerts (times in %s)\n", loc)
	byKind := map[alerting.Kind]int{}
	firing := 0
	for _, a := range s.Alerts {
		if a.State == alerting.StateFiring {
			byKind[a.Kind]++
			firing++
		}
	}
	p("  incidents raised\t%d\n", firing)
	for k := alerting.Kind(0); k < alerting.NumKinds; k++ {
		if byKind[k] > 0 {
			p("    %s\t%d\n", k, byKind[k])
		}
	}
	if s.Engine.Inhibited+s.Engine.Suppressed > 0 {
		p("  muted evaluations (explained by a wider incident)\t%d\n", s.Engine.Inhibited+s.Engine.Suppressed)
	}
	if len(s.Delivery) > 0 {
		p("\nalert delivery\n")
		names := slices.Sorted(maps.Keys(s.Delivery))
		for _, name := range names {
			sent, failed, dropped, retries := s.Delivery[name].DeliveryCounts()
			p("  %s\tsent %d\tfailed %d\tdropped %d\tretries %d\n", name, sent, failed, dropped, retries)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	resolved := map[string]time.Time{}
	for _, a := range s.Alerts {
		if a.State == alerting.StateResolved && a.EndsAt != nil {
			resolved[a.ID] = *a.EndsAt
		}
	}
	for _, a := range s.Alerts {
		if a.State != alerting.StateFiring {
			continue
		}
		end := "still firing"
		if t, ok := resolved[a.ID]; ok {
			end = "resolved " + t.In(loc).Format(summaryTimeLayout)
		}
		paging := ""
		switch {
		case a.Labels["notice"] == "merchant":
			paging = " [non-paging: customer-side merchant notice]"
		case a.Labels["paging"] == "false":
			paging = " [non-paging: maintenance]"
		}
		fmt.Fprintf(w, "  %s %s=%s detected %s, %s%s\n      %s\n",
			a.Kind, a.ScopeType, a.ScopeID, a.DetectedAt.In(loc).Format(summaryTimeLayout), end, paging, a.Summary)
		if a.Remedy != "" {
			fmt.Fprintf(w, "      -> %s\n", a.Remedy)
		}
	}
	return nil
}

func league(p func(string, ...any), what string, rows map[string]*tallyRow, top int, minAttempts uint64) {
	keys := make([]string, 0, len(rows))
	for k, r := range rows {
		if r.attempts >= minAttempts && r.declines > 0 {
			keys = append(keys, k)
		}
	}
	rate := func(r *tallyRow) float64 { return float64(r.declines) / float64(r.attempts) }
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(rate(rows[b]), rate(rows[a])), cmp.Compare(rows[b].attempts, rows[a].attempts), cmp.Compare(a, b))
	})
	if len(keys) == 0 {
		return
	}
	p("\ntop %s by decline rate (at least %d attempts)\n", what, minAttempts)
	for _, k := range keys[:min(top, len(keys))] {
		r := rows[k]
		var parts []string
		for _, c := range event.Causes() {
			if r.byCause[c] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", c, r.byCause[c]))
			}
		}
		p("  %s\t%s\t%d/%d\t%s\n", k, pct(r.declines, r.attempts), r.declines, r.attempts, strings.Join(parts, ", "))
	}
}

// codeLabel says what an event's deciding code is: a response code (two
// characters, event-v1 response_code) or a terminal error.
func codeLabel(code string) string {
	switch {
	case code == "(other)":
		return "other codes"
	case len(code) == 2:
		return "response code " + code
	}
	return "terminal error " + code
}

func pct(n, d uint64) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}
