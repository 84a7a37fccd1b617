package storage_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// historyStart is where the history stream begins: 13:10 UTC is 21:10 in
// Shanghai and 18:40 in Kolkata, so business hours start at UTC :00 in
// one zone and :30 in the other, and the 30 hours cross business midnights.
var historyStart = time.Date(2026, 11, 27, 13, 10, 0, 0, time.UTC)

// historyTerminal fixes a terminal's dimensions; the issuer varies per event.
func historyTerminal(i int) event.Event {
	return event.Event{Terminal: fmt.Sprintf("T%02d", i), Merchant: fmt.Sprintf("M%d", i%5), Region: fmt.Sprintf("R%d", i%3),
		Carrier: fmt.Sprintf("C%d", i%2), Host: fmt.Sprintf("H%d", i%4), Scheme: event.SchemeCUP, AmountMinor: 1000,
		LatencyMS: -1, BatteryPct: -1}
}

// historyStream is 30 hours of attempts by 24 terminals, a mix of
// approvals and four causes, plus terminal TX whose network failures are
// spread one per minute while its hardware failures come in one burst:
// network is its top cause by sum, hardware by any single minute row.
func historyStream() []event.Classified {
	rng := rand.New(rand.NewPCG(11, 3))
	causes := []event.Cause{event.CauseNone, event.CauseNone, event.CauseNone, event.CauseNone, event.CauseNone,
		event.CauseNetwork, event.CauseNetwork, event.CauseHardware, event.CauseIssuerCredit, event.CauseFraudRisk}
	code := map[event.Cause][2]string{event.CauseNone: {"00", ""}, event.CauseNetwork: {"", "COMM_TIMEOUT"},
		event.CauseHardware: {"", "CHIP_READ_FAIL"}, event.CauseIssuerCredit: {"51", ""}, event.CauseFraudRisk: {"59", ""}}
	var evs []event.Classified
	add := func(ev event.Event, ts time.Time, cause event.Cause) {
		ev.ID = fmt.Sprintf("h%05d", len(evs))
		ev.Time = ts
		ev.Issuer = fmt.Sprintf("I%d", rng.IntN(3))
		ev.ResponseCode, ev.TerminalError = code[cause][0], code[cause][1]
		evs = append(evs, event.Classified{Event: ev, Cause: cause, Known: true, Topic: "pos.events"})
	}
	for range 3000 {
		ts := historyStart.Add(time.Duration(rng.Int64N(int64(30 * time.Hour))))
		add(historyTerminal(rng.IntN(24)), ts, causes[rng.IntN(len(causes))])
	}
	tx := historyTerminal(3)
	tx.Terminal = "TX"
	burst := historyStart.Add(5*time.Hour + 7*time.Minute)
	for k := range 6 {
		add(tx, burst.Add(time.Duration(k+1)*time.Minute+10*time.Second), event.CauseNetwork)
	}
	for k := range 4 {
		add(tx, burst.Add(time.Duration(k)*time.Second), event.CauseHardware)
	}
	add(tx, burst.Add(30*time.Second), event.CauseNone)
	slices.SortStableFunc(evs, func(a, b event.Classified) int { return a.Event.Time.Compare(b.Event.Time) })
	for i := range evs {
		evs[i].Offset = int64(i)
	}
	return evs
}

// historyScope reports whether ev belongs to the scope, by the event's own
// fields ("fleet": every event).
func historyScope(ev *event.Event, scopeType, id string) bool {
	switch scopeType {
	case "fleet":
		return true
	case "issuer":
		return ev.Issuer == id
	case "host":
		return ev.Host == id
	}
	st, ok := event.ParseScopeType(scopeType)
	return ok && ev.ScopeID(st) == id
}

// inRange: the rollups keep minutes, so an event is in [from, to) when its
// minute is.
func inRange(ev *event.Event, from, to time.Time) bool {
	m := ev.Time.Truncate(time.Minute)
	return !m.Before(from) && m.Before(to)
}

// hoursOracle counts the scope's attempts by cause per hour of loc.
func hoursOracle(evs []event.Classified, loc *time.Location, scopeType, id string, from, to time.Time) []storage.HourCount {
	byHour := map[int64]map[string]uint64{}
	for i := range evs {
		ev := &evs[i].Event
		if !historyScope(ev, scopeType, id) || !inRange(ev, from, to) {
			continue
		}
		lt := ev.Time.In(loc)
		h := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), 0, 0, 0, loc).Unix()
		if byHour[h] == nil {
			byHour[h] = map[string]uint64{}
		}
		byHour[h][evs[i].Cause.String()]++
	}
	var out []storage.HourCount
	for _, h := range slices.Sorted(maps.Keys(byHour)) {
		out = append(out, storage.HourCount{Start: time.Unix(h, 0).UTC(), Attempts: byHour[h]})
	}
	return out
}

// topOracle is TopTerminals computed from the events, with every cause tied
// for the most failures as an acceptable top cause.
func topOracle(evs []event.Classified, scopeType, id string, from, to time.Time, limit int) ([]storage.TerminalTotal, [][]string) {
	type acc struct {
		storage.TerminalTotal
		byCause map[string]uint64
	}
	terms := map[string]*acc{}
	for i := range evs {
		ev := &evs[i].Event
		if !historyScope(ev, scopeType, id) || !inRange(ev, from, to) {
			continue
		}
		a := terms[ev.Terminal]
		if a == nil {
			a = &acc{TerminalTotal: storage.TerminalTotal{Terminal: ev.Terminal, Merchant: ev.Merchant}, byCause: map[string]uint64{}}
			terms[ev.Terminal] = a
		}
		a.Attempts++
		if c := evs[i].Cause; c != event.CauseNone {
			a.Failures++
			a.byCause[c.String()]++
		}
	}
	var list []*acc
	for _, a := range terms {
		if a.Failures > 0 {
			list = append(list, a)
		}
	}
	slices.SortFunc(list, func(a, b *acc) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Terminal, b.Terminal))
	})
	list = list[:min(len(list), limit)]
	var out []storage.TerminalTotal
	var tops [][]string
	for _, a := range list {
		best := slices.Max(slices.Collect(maps.Values(a.byCause)))
		var top []string
		for c, n := range a.byCause {
			if n == best {
				top = append(top, c)
			}
		}
		out = append(out, a.TerminalTotal)
		tops = append(tops, top)
	}
	return out, tops
}

// TestHistoryRollups reads ScopeHours and TopTerminals from a real server
// holding the history stream, in business zones whose hours start at
// different UTC minutes, and compares them with the counts made here.
func TestHistoryRollups(t *testing.T) {
	s := chtest.Start(t)
	ctx := context.Background()
	admin := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	if _, err := storage.Migrate(ctx, admin, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	evs := historyStream()
	w := storage.NewWriter(admin, storage.WriterConfig{})
	for b := range slices.Chunk(evs, 700) {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	end := evs[len(evs)-1].Event.Time
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		{"everything", historyStart.Add(-time.Hour), end.Add(time.Hour)},
		{"mid-hour to mid-hour", historyStart.Add(7*time.Hour + 23*time.Minute), historyStart.Add(19*time.Hour + 41*time.Minute)},
	}
	scopes := []struct{ typ, id string }{
		{"fleet", ""}, {"region", "R1"}, {"merchant", "M3"}, {"terminal", "T07"}, {"terminal", "TX"},
		{"carrier", "C1"}, {"host", "H2"}, {"issuer", "I1"}, {"region", "R9"}, {"terminal", "NOPE"},
	}

	t.Run("ScopeHours", func(t *testing.T) {
		for _, tz := range []string{"Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "UTC"} {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				t.Fatal(err)
			}
			c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{BusinessTimezone: tz})
			offMinutes := map[int]bool{}
			for _, r := range ranges {
				for _, sc := range scopes {
					name := fmt.Sprintf("%s/%s/%s=%s", tz, r.name, sc.typ, sc.id)
					got, err := c.ScopeHours(ctx, sc.typ, sc.id, r.from, r.to)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					want := hoursOracle(evs, loc, sc.typ, sc.id, r.from, r.to)
					if len(got) != len(want) {
						t.Errorf("%s: %d hours, want %d", name, len(got), len(want))
					}
					for i := range min(len(got), len(want)) {
						g, w := got[i], want[i]
						if !g.Start.Equal(w.Start) || !maps.Equal(g.Attempts, w.Attempts) {
							t.Errorf("%s hour %d: %s %v, want %s %v", name, i, g.Start.In(loc), g.Attempts, w.Start.In(loc), w.Attempts)
						}
						offMinutes[g.Start.UTC().Minute()] = true
					}
					if sc.typ == "fleet" && r.name == "everything" {
						var total uint64
						for _, h := range got {
							total += h.Total()
						}
						if total != uint64(len(evs)) {
							t.Errorf("%s: %d attempts in all, %d stored", name, total, len(evs))
						}
					}
				}
			}
			// A local hour starts at UTC minute -offset mod 60: :00 in
			// Shanghai, :30 in Kolkata, :15 in Kathmandu (+05:45).
			_, off := historyStart.In(loc).Zone()
			if wantMin := (60 - (off/60)%60) % 60; len(offMinutes) != 1 || !offMinutes[wantMin] {
				t.Errorf("%s: hours start at UTC minutes %v, want only :%02d", tz, slices.Sorted(maps.Keys(offMinutes)), wantMin)
			}
		}
	})

	t.Run("TopTerminals", func(t *testing.T) {
		c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{BusinessTimezone: "Asia/Kolkata"})
		burst := []struct {
			name     string
			from, to time.Time
		}{{"TX burst", historyStart.Add(5 * time.Hour), historyStart.Add(6 * time.Hour)}}
		for _, r := range append(ranges, burst...) {
			for _, sc := range scopes {
				for _, limit := range []int{1, 5, 1000} {
					name := fmt.Sprintf("%s/%s=%s/limit %d", r.name, sc.typ, sc.id, limit)
					got, err := c.TopTerminals(ctx, sc.typ, sc.id, r.from, r.to, limit)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					want, tops := topOracle(evs, sc.typ, sc.id, r.from, r.to, limit)
					if len(got) != len(want) {
						t.Errorf("%s: %d terminals, want %d", name, len(got), len(want))
					}
					for i := range min(len(got), len(want)) {
						g, w := got[i], want[i]
						if g.Terminal != w.Terminal || g.Merchant != w.Merchant || g.Attempts != w.Attempts || g.Failures != w.Failures ||
							!slices.Contains(tops[i], g.TopCause) {
							t.Errorf("%s #%d: %+v, want %+v with top cause in %v", name, i, g, w, tops[i])
						}
					}
				}
			}
		}
	})

	t.Run("NoRollup", func(t *testing.T) {
		for _, typ := range []string{"model", "network", "acquirer", "bogus"} {
			if _, err := admin.ScopeHours(ctx, typ, "x", historyStart, end); !errors.Is(err, storage.ErrNoRollup) {
				t.Errorf("ScopeHours(%s): %v, want ErrNoRollup", typ, err)
			}
			if _, err := admin.TopTerminals(ctx, typ, "x", historyStart, end, 5); !errors.Is(err, storage.ErrNoRollup) {
				t.Errorf("TopTerminals(%s): %v, want ErrNoRollup", typ, err)
			}
		}
	})
}
