package pipeline

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Terminals reboot daily and a reset one may come back with a wrong or
// default clock until it syncs: no single terminal may move the
// detector's notion of time. Before the event-time merge, each accepted
// event's time is screened. Live (run), an event dated more than
// max_ahead after the monitor's wall clock cannot be right. Without a
// wall clock (replay of recorded days, the demo), the reference is the
// fleet's own time: the newest event time a quarter of the recently active
// terminals have reached, which wrong clocks on fewer terminals cannot
// move. An event more than max_ahead_of_fleet (a day) ahead of it is
// caught; one ahead by less than that but by more than a minute (or
// four times the fleet's recent spread, in sparse traffic) is held to the
// fleet's time for detection, as a slightly fast clock is held to the wall
// clock live: a clock hours fast no longer moves everyone's time, and the
// first event after a lull (which looks the same until the fleet follows)
// is still counted. Events dated more than
// max_behind before that reference are wrong too (a default clock of
// 2000-01-01). Such events are counted as clock_skew, excluded from
// detection and reported per terminal (a wrong clock is a finding for
// field service); they are still stored and forwarded as they came.
// Until events from three terminals are in, a recording is screened only
// by the wall clock (live) or not at all (replay).

// ClockConfig is the `clock:` section.
type ClockConfig struct {
	// MaxAhead: an event dated more than this after the wall clock (run)
	// is clock_skew. Default 10m.
	MaxAhead time.Duration `yaml:"max_ahead"`
	// MaxAheadOfFleet: without a wall clock (replay, demo), an event dated
	// more than this after the fleet's time is clock_skew. Default 24h
	// (the fleet's time jumps over closed nights). Events ahead by less
	// are held to the fleet's time for detection (see holdAhead).
	MaxAheadOfFleet time.Duration `yaml:"max_ahead_of_fleet"`
	// MaxBehind: an event dated more than this before the fleet's time is
	// clock_skew (store-and-forward uploads are minutes to hours late).
	// Default 168h.
	MaxBehind time.Duration `yaml:"max_behind"`
}

func (c ClockConfig) withDefaults() ClockConfig {
	c.MaxAhead = cmp.Or(c.MaxAhead, 10*time.Minute)
	c.MaxAheadOfFleet = cmp.Or(c.MaxAheadOfFleet, 24*time.Hour)
	c.MaxBehind = cmp.Or(c.MaxBehind, 7*24*time.Hour)
	return c
}

// The fleet's time is read from a sample of recent events: the newest
// time that a quarter of the distinct terminals in the sample have
// reached (at least three). Wrong clocks on fewer terminals than that
// cannot move it; a fleet that really moves on (a recording with a gap of
// days) moves it within a few hundred events.
const (
	clockSample  = 1024 // recent events sampled
	clockRefresh = 256  // events between recomputations once warm
)

// eventClock screens event times (one pipeline goroutine).
type eventClock struct {
	cfg  ClockConfig
	wall func() time.Time // nil: no wall clock (replay)
	now  time.Time        // wall's reading for the event skewed last noted

	ring          [clockSample]terminalTime
	seed          maphash.Seed
	n             int // events noted
	lastRecompute int // n at the last recomputation
	fleet         int64
	spread        int64 // how far the fleet's time leads the time twice as many terminals reached
	known         bool
	// recompute's scratch: the distinct terminals sampled and their newest times.
	table [2 * clockSample]clockEntry
	gen   uint32
	times []int64
}

type terminalTime struct {
	hash uint64 // of the terminal id
	ts   int64
}

type clockEntry struct {
	hash uint64
	gen  uint32
	at   int32 // index in times
}

// skewed notes ev's time and reports whether it is implausible, and by
// how much (positive: ahead).
func (c *eventClock) skewed(ev *event.Event) (bool, time.Duration) {
	ts := ev.Time.UnixNano()
	c.note(ev.Terminal, ts)
	if c.wall != nil {
		c.now = c.wall()
		if d := time.Duration(ts - c.now.UnixNano()); d > c.cfg.MaxAhead {
			return true, d
		}
	}
	if !c.known {
		return false, 0
	}
	d := time.Duration(ts - c.fleet)
	if c.wall == nil && d > min(c.holdBound(), c.cfg.MaxAheadOfFleet) && c.n-c.lastRecompute >= c.recheckEvery() {
		// Sparse traffic can outrun the regular recomputation: look
		// again before holding or flagging it (at most every 16 events
		// once warm, so a flood of wrong times costs little, and the first
		// morning after a closed night is held for a few events only).
		c.fleet, c.spread, c.known = c.recompute()
		c.lastRecompute = c.n
		d = time.Duration(ts - c.fleet)
	}
	ahead := c.wall == nil && d > c.cfg.MaxAheadOfFleet
	if ahead || d < -c.cfg.MaxBehind {
		return true, d
	}
	return false, 0
}

// clamp holds a clock that is fast by less than max_ahead to the wall
// clock (live): the event is detected on as if it happened now, so it
// cannot push the watermark past the rest of the fleet. Without a wall
// clock, an event more than holdBound ahead of the fleet's time is held
// to the fleet's time the same way. (It is stored with the time it
// carries.) It follows skewed of the same event, whose wall-clock reading
// it uses.
func (c *eventClock) clamp(ev *event.Event) {
	if c.wall == nil {
		if c.known && ev.Time.UnixNano()-c.fleet > int64(c.holdBound()) {
			ev.Time = time.Unix(0, c.fleet).In(ev.Time.Location())
		}
		return
	}
	if ev.Time.After(c.now) {
		ev.Time = c.now
	}
}

// note samples one event (every event counts, wrong ones too, so a fleet
// that really moves on moves the clock) and recomputes the fleet's time
// after 16, 64 and 256 events, then every clockRefresh.
func (c *eventClock) note(terminal string, ts int64) {
	if c.n == 0 {
		c.seed = maphash.MakeSeed()
	}
	c.ring[c.n%clockSample] = terminalTime{maphash.String(c.seed, terminal), ts}
	c.n++
	if c.n == 16 || c.n == 64 || c.n%clockRefresh == 0 {
		c.fleet, c.spread, c.known = c.recompute()
		c.lastRecompute = c.n
	}
}

// recheckEvery is how many events apart an event ahead of the fleet's time
// may trigger a recomputation: 64 while the sample is small (a few wrong
// clocks could be most of it), 16 once it holds clockRefresh events.
func (c *eventClock) recheckEvery() int {
	if c.n < clockRefresh {
		return 64
	}
	return 16
}

// holdBound is how far ahead of the fleet's time an event may be without
// a wall clock before it is held to it: a minute (a clock a few minutes
// fast would otherwise move the watermark past everyone's windows), or
// four times the fleet's spread when traffic is sparse.
func (c *eventClock) holdBound() time.Duration {
	return max(time.Minute, 4*time.Duration(c.spread))
}

// recompute returns the newest time reached by a quarter of the distinct
// terminals sampled (at least three): each terminal counts once, at its
// newest sampled time. spread is how far
// that time leads the one reached by twice as many terminals: the pace of
// the fleet's arrivals, minutes apart in a sparse night.
func (c *eventClock) recompute() (fleet, spread int64, ok bool) {
	k := min(c.n, clockSample)
	// Each terminal once, at its newest time: an open-addressed table
	// keyed by the terminal's hash, emptied by moving to a new generation.
	if c.gen++; c.gen == 0 {
		clear(c.table[:])
		c.gen = 1
	}
	c.times = c.times[:0]
	for _, t := range c.ring[:k] {
		for i := t.hash; ; i++ {
			e := &c.table[i%uint64(len(c.table))]
			if e.gen != c.gen {
				*e = clockEntry{hash: t.hash, gen: c.gen, at: int32(len(c.times))}
				c.times = append(c.times, t.ts)
				break
			}
			if e.hash == t.hash {
				c.times[e.at] = max(c.times[e.at], t.ts)
				break
			}
		}
	}
	// A quarter of the terminals sampled (at least three): wrong clocks
	// on fewer — even a bad time-server push setting dozens ahead by the
	// same hour — cannot move it. In sparse traffic the sample reaches
	// back hours and this lags the newest events; the hold bound's spread
	// grows with it.
	n := len(c.times)
	q := max(3, n/4)
	if n < q {
		return 0, 0, false
	}
	slices.Sort(c.times)
	fleet = c.times[n-q]
	return fleet, fleet - c.times[n-min(2*q, n)], true
}

// ClockSkew is one terminal whose events carried a wrong time.
type ClockSkew struct {
	Terminal string
	Merchant string
	Events   uint64
	// Offset is the last skewed event's time minus the reference (wall
	// clock or fleet time): positive when the clock runs ahead.
	Offset time.Duration
	Last   time.Time // the last skewed event's (wrong) time
}

// skewTally keeps the terminals with wrong clocks, at most maxSkewed
// (then only counted). Safe for concurrent use.
type skewTally struct {
	mu      sync.Mutex
	byTerm  map[string]*ClockSkew
	dropped uint64
}

const maxSkewed = 10_000

func (t *skewTally) add(ev *event.Event, off time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byTerm == nil {
		t.byTerm = map[string]*ClockSkew{}
	}
	s := t.byTerm[ev.Terminal]
	if s == nil {
		if len(t.byTerm) >= maxSkewed {
			t.dropped++
			return
		}
		s = &ClockSkew{Terminal: ev.Terminal, Merchant: ev.Merchant}
		t.byTerm[ev.Terminal] = s
	}
	s.Events++
	s.Offset, s.Last = off, ev.Time
}

// list returns the terminals, most skewed events first.
func (t *skewTally) list() []ClockSkew {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ClockSkew, 0, len(t.byTerm))
	for _, s := range t.byTerm {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ClockSkew) int {
		return cmp.Or(cmp.Compare(b.Events, a.Events), cmp.Compare(a.Terminal, b.Terminal))
	})
	return out
}

// ClockSkews lists the terminals whose events carried a wrong time, most
// events first (safe while Run runs).
func (p *Pipeline) ClockSkews() []ClockSkew { return p.skews.list() }
