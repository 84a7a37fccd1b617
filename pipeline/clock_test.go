package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// TestEventClock: an event time is judged against the wall clock (live)
// or the newest time three distinct terminals reached (replay), which one
// or two wrong clocks cannot move, while a fleet that really moves on
// (a replay across a gap of days) moves it.
func TestEventClock(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	type step struct {
		term string
		at   time.Duration // from t0
		skew bool
	}
	// warm is 40 events of ten terminals over the first 40 s: enough
	// for the fleet's time to be known.
	warm := func(c *eventClock) {
		for i := range 40 {
			ev := event.Event{Terminal: fmt.Sprintf("W%d", i%10), Time: t0.Add(time.Duration(i) * time.Second)}
			if got, _ := c.skewed(&ev); got {
				t.Fatalf("warm-up event %d skewed", i)
			}
		}
	}
	f := func(name string, wall *time.Time, steps []step) {
		t.Run(name, func(t *testing.T) {
			c := &eventClock{cfg: ClockConfig{}.withDefaults()}
			if wall != nil {
				c.wall = func() time.Time { return *wall }
			}
			warm(c)
			for i, s := range steps {
				ev := event.Event{Terminal: s.term, Time: t0.Add(s.at)}
				if got, off := c.skewed(&ev); got != s.skew {
					t.Errorf("step %d (%s at %s): skewed %v (offset %s), want %v", i, s.term, s.at, got, off, s.skew)
				}
			}
		})
	}
	day := 24 * time.Hour
	f("replay: two days ahead, next year, a default clock", nil, []step{
		{"BAD", 2 * day, true}, {"W1", 41 * time.Second, false},
		{"BAD", 2*day + time.Minute, true}, {"W2", 42 * time.Second, false},
		{"YEAR", 365 * day, true}, {"W3", 43 * time.Second, false},
		{"OLD", -(26*365*day + 11*30*day), true}, {"W4", 44 * time.Second, false},
		// Store-and-forward: hours late is not a wrong clock.
		{"SAF", -5 * time.Hour, false},
		// A terminal a few minutes fast is within max_ahead.
		{"FAST", 4 * time.Minute, false}, {"W5", 45 * time.Second, false},
	})
	wall := t0.Add(time.Hour)
	f("live: bounded by the wall clock, whatever the fleet says", &wall, []step{
		{"AHEAD1", time.Hour + 11*time.Minute, true}, {"AHEAD2", time.Hour + 11*time.Minute, true},
		{"NOW", time.Hour + 5*time.Minute, false}, {"W1", time.Hour, false},
		{"OLD", -8 * day, true},
	})

	t.Run("replay: a sparse night and a closed night are not wrong clocks", func(t *testing.T) {
		c := &eventClock{cfg: ClockConfig{}.withDefaults()}
		warm(c)
		at := t0.Add(time.Minute)
		for i := range 400 { // five events an hour from a few shops
			at = at.Add(12 * time.Minute)
			ev := event.Event{Terminal: fmt.Sprintf("N%d", i%3), Time: at}
			if got, off := c.skewed(&ev); got {
				t.Fatalf("night event %d at %s skewed (offset %s)", i, at, off)
			}
		}
		at = at.Add(8 * time.Hour) // closed, then the morning
		for i := range 300 {
			ev := event.Event{Terminal: fmt.Sprintf("M%d", i%50), Time: at.Add(time.Duration(i) * time.Second)}
			if got, off := c.skewed(&ev); got {
				t.Fatalf("morning event %d skewed (offset %s)", i, off)
			}
		}
	})
	t.Run("replay: the fleet itself jumps two days (a gap in the recording)", func(t *testing.T) {
		c := &eventClock{cfg: ClockConfig{}.withDefaults()}
		warm(c)
		skewed, last := 0, -1
		for i := range 600 {
			ev := event.Event{Terminal: fmt.Sprintf("W%d", i%10), Time: t0.Add(2*day + time.Duration(i)*time.Second)}
			if got, _ := c.skewed(&ev); got {
				skewed++
				last = i
			}
		}
		if last >= clockRefresh || skewed == 0 {
			t.Errorf("after the jump, %d events were skewed, the last at %d: want the clock to follow within %d events", skewed, last, clockRefresh)
		}
	})
	t.Run("replay: clocks hours or a day fast are held to the fleet's time", func(t *testing.T) {
		c := &eventClock{cfg: ClockConfig{}.withDefaults()}
		warm(c)
		for i := range 2000 {
			at := t0.Add(time.Minute + time.Duration(i)*time.Second)
			term := fmt.Sprintf("T%d", i%50)
			switch i % 50 {
			case 7:
				at = at.Add(8 * time.Hour) // a hardware clock kept in local time
			case 9:
				at = at.Add(day - 10*time.Minute) // back from a reboot nearly a day ahead
			}
			ev := event.Event{Terminal: term, Time: at}
			if got, _ := c.skewed(&ev); got {
				t.Fatalf("event %d of %s skewed: under a day ahead is held, not dropped", i, term)
			}
			c.clamp(&ev)
			if now := t0.Add(time.Minute + time.Duration(i)*time.Second); ev.Time.Sub(now) > 10*time.Minute {
				t.Fatalf("event %d of %s detected at %s, %s ahead of the fleet", i, term, ev.Time, ev.Time.Sub(now))
			}
		}
	})
	t.Run("replay: a bad time-server push sets a tenth of the fleet an hour ahead", func(t *testing.T) {
		c := &eventClock{cfg: ClockConfig{}.withDefaults()}
		warm(c)
		for i := range 6000 {
			now := t0.Add(time.Minute + time.Duration(i)*100*time.Millisecond)
			j := (i * 7) % 600 // the pushed terminals spread through the stream
			term, at := fmt.Sprintf("T%d", j), now
			if j%10 == 0 {
				at = at.Add(time.Hour)
			}
			ev := event.Event{Terminal: term, Time: at}
			if got, _ := c.skewed(&ev); got {
				t.Fatalf("event %d of %s skewed: an hour ahead is held, not dropped", i, term)
			}
			c.clamp(&ev)
			if ev.Time.Sub(now) > time.Minute {
				t.Fatalf("event %d of %s detected %s ahead of the fleet", i, term, ev.Time.Sub(now))
			}
		}
	})
	t.Run("wrong clocks on fewer than eight terminals do not move the fleet's time", func(t *testing.T) {
		c := &eventClock{cfg: ClockConfig{}.withDefaults()}
		warm(c)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 3000 {
			// A hundred terminals in random order; seven of them run two
			// days ahead.
			n := rng.IntN(100)
			term, at := fmt.Sprintf("T%d", n), t0.Add(time.Minute+time.Duration(i)*time.Second)
			if n < 7 {
				at = at.Add(2 * day)
			}
			ev := event.Event{Terminal: term, Time: at}
			if got, _ := c.skewed(&ev); got != (n < 7) {
				t.Fatalf("event %d of %s at %s: skewed %v", i, term, at, got)
			}
		}
	})
}

// TestWrongClocksChangeNothingElse replays a day with a front-end host
// outage and a failing terminal twice: as recorded, and with seven
// terminals' clocks wrong (two days ahead, a year ahead, back at
// 2000-01-01, a few minutes fast) plus one stray event dated next year.
// Every incident raised on the clean day is raised on the other, on the
// same scope and within a minute, except incidents of the wrong-clock
// terminals themselves; nothing else is raised; almost no event is late;
// the wrong clocks are reported per terminal.
func TestWrongClocksChangeNothingElse(t *testing.T) {
	s := scenario.Scenario{Name: "wrong-clocks", Fleet: scenario.Fleet{Seed: 11, Terminals: 1500, Regions: 5, IDPrefix: "WC", RegionBase: 350100},
		Start: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), Duration: scenario.Duration(3 * time.Hour),
		Incidents: []scenario.Incident{
			{Type: "failing_terminal", At: scenario.Duration(50 * time.Minute), For: scenario.Duration(90 * time.Minute)},
			{Type: "host_outage", At: scenario.Duration(100 * time.Minute), For: scenario.Duration(20 * time.Minute)},
		}}
	var evs []event.Event
	truth, err := s.Generate(func(ev *event.Event) { evs = append(evs, *ev) })
	if err != nil {
		t.Fatal(err)
	}
	// Wrong clocks on terminals busy enough to matter, none of them the
	// failing terminal nor among the file's first events.
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.Terminal]++
	}
	first := map[string]bool{}
	for _, ev := range evs[:20] {
		first[ev.Terminal] = true
	}
	var busy []string
	for term := range count {
		if !first[term] && term != truth.Incidents[0].ScopeID {
			busy = append(busy, term)
		}
	}
	slices.SortFunc(busy, func(a, b string) int { return count[b] - count[a] })
	day := 24 * time.Hour
	shift := map[string]func(time.Time) time.Time{
		busy[0]: func(t time.Time) time.Time { return t.Add(2 * day) },
		busy[1]: func(t time.Time) time.Time { return t.Add(2 * day) },
		busy[2]: func(t time.Time) time.Time { return t.Add(365 * day) },
		busy[3]: func(time.Time) time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) },
		busy[4]: func(t time.Time) time.Time { return t.AddDate(-1, 0, 0) },
		busy[5]: func(t time.Time) time.Time { return t.Add(2 * day) },
		busy[6]: func(t time.Time) time.Time { return t.Add(3 * day) },
	}
	wantSkewed := 0
	bad := make([]event.Event, len(evs))
	copy(bad, evs)
	for i := range bad {
		if f := shift[bad[i].Terminal]; f != nil {
			bad[i].Time = f(bad[i].Time)
			wantSkewed++
		}
	}
	stray := len(bad) / 3 // one event of an ordinary terminal dated next year
	for shift[bad[stray].Terminal] != nil {
		stray++
	}
	bad[stray].Time = bad[stray].Time.AddDate(1, 0, 0)
	wantSkewed++

	clean, cleanSum := replayEvents(t, evs)
	wrong, wrongSum := replayEvents(t, bad)

	key := func(a alerting.Alert) string { return fmt.Sprintf("%s %s=%s", a.Kind, a.ScopeType, a.ScopeID) }
	firing := func(alerts []alerting.Alert) map[string]time.Time {
		m := map[string]time.Time{}
		for _, a := range alerts {
			if a.State != alerting.StateFiring || (a.ScopeType == "terminal" && shift[a.ScopeID] != nil) {
				continue
			}
			if _, ok := m[key(a)]; !ok {
				m[key(a)] = a.DetectedAt
			}
		}
		return m
	}
	want, got := firing(clean), firing(wrong)
	for k, at := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s (detected %s on the clean day) missing with wrong clocks", k, at.Format("15:04:05"))
			continue
		}
		if d := g.Sub(at); d > time.Minute || d < -time.Minute {
			t.Errorf("%s detected %s with wrong clocks, %s on the clean day", k, g.Format("15:04:05"), at.Format("15:04:05"))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s raised only with wrong clocks", k)
		}
	}
	if sc := scenario.Evaluate(truth, wrong); !sc.Passed() {
		t.Errorf("with wrong clocks the day's incidents are not all found in time: %+v", sc.Outcomes)
	}
	if got := wrongSum.Counts.ClockSkew; got != uint64(wantSkewed) {
		t.Errorf("clock_skew %d, want the %d events with wrong times", got, wantSkewed)
	}
	if wrongSum.Counts.Late > cleanSum.Counts.Late+10 {
		t.Errorf("%d late events with wrong clocks, %d on the clean day: the wrong clocks moved everyone's time", wrongSum.Counts.Late, cleanSum.Counts.Late)
	}
	reported := map[string]bool{}
	for _, k := range wrongSum.Counts.Skewed {
		reported[k.Terminal] = true
	}
	for term := range shift {
		if !reported[term] {
			t.Errorf("terminal %s with a wrong clock not reported", term)
		}
	}
	if !reported[bad[stray].Terminal] || len(reported) != len(shift)+1 {
		t.Errorf("reported %d terminals, want the %d wrong clocks and the stray event's", len(reported), len(shift))
	}
	var text strings.Builder
	wrongSum.Write(&text)
	if !strings.Contains(text.String(), "terminals with a wrong clock") || !strings.Contains(text.String(), busy[0]) {
		t.Errorf("summary does not report the wrong clocks:\n%s", text.String())
	}
}

// replayEvents writes evs as a JSONL file and replays it.
func replayEvents(t *testing.T, evs []event.Event) ([]alerting.Alert, *Summary) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	var buf []byte
	for i := range evs {
		buf = event.AppendJSON(buf[:0], &evs[i])
		bw.Write(append(buf, '\n'))
	}
	bw.Flush()
	f.Close()
	out := filepath.Join(dir, "alerts.jsonl")
	sum, err := Replay(context.Background(), ReplayOptions{Input: path, AlertsOut: out})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []alerting.Alert
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var a alerting.Alert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, a)
	}
	return alerts, sum
}

// wallSource delivers messages as if they arrived at the given wall
// times, moving the clock the pipeline reads.
type wallSource struct {
	memSource
	at  []time.Time
	now *time.Time
}

func (w *wallSource) Fetch(ctx context.Context) (ingest.Message, error) {
	w.mu.Lock()
	if w.next < len(w.at) {
		*w.now = w.at[w.next]
	}
	w.mu.Unlock()
	return w.memSource.Fetch(ctx)
}

// TestLiveFastClockIsHeldToTheWallClock: live, a terminal whose clock
// runs five minutes fast (within max_ahead, so not clock_skew) is detected
// on as of the wall clock, and the other 49 terminals' events, delivered
// two seconds after they happened, are not late. Without a wall clock
// (replay) the same stream makes them late: the limit the README states.
func TestLiveFastClockIsHeldToTheWallClock(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var msgs []ingest.Message
	var at []time.Time
	for i := range 3000 {
		wall := start.Add(time.Duration(i) * 200 * time.Millisecond)
		term, ts := fmt.Sprintf("T%02d", i%50), wall.Add(-2*time.Second)
		if i%50 == 7 {
			term, ts = "FAST", wall.Add(5*time.Minute)
		}
		v := fmt.Sprintf(`{"event_id":"e%d","ts":%q,"terminal_id":%q,"merchant_id":"M1","response_code":"00"}`, i, ts.Format(time.RFC3339Nano), term)
		msgs = append(msgs, ingest.Message{Value: []byte(v), Topic: "t", Offset: int64(i), HighWaterMark: 3000, OriginTopic: []byte("t")})
		at = append(at, wall)
	}
	run := func(live bool) *Counters {
		now := start
		o := Options{Partitions: 1, EndOfInput: true, BatchSize: 500}
		if live {
			o.WallClock = func() time.Time { return now }
		}
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		src := &wallSource{memSource: memSource{msgs: msgs}, at: at, now: &now}
		if err := p.Run(context.Background(), src); err != nil {
			t.Fatal(err)
		}
		return p.Counters()
	}
	live := run(true)
	if late, skew := live.Late.Load(), live.ClockSkew.Load(); late != 0 || skew != 0 {
		t.Errorf("live: %d late, %d clock_skew; want none", late, skew)
	}
	// Replay has no wall clock: the fast clock moves the watermark 5
	// minutes ahead, and the others' events, behind it, still land in
	// their buckets (max_late).
	if late := run(false).Late.Load(); late != 0 {
		t.Errorf("replay of the same stream: %d late; events within max_late must count", late)
	}
}
