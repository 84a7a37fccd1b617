package alerting

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Stats are counters about the engine's own work.
type Stats struct {
	Observed       uint64 // events counted into windows
	Late           uint64 // events older than the lateness bound, not detected on
	Fired          uint64
	Resolved       uint64
	Inhibited      uint64 // terminal alerts muted by a network outage or a cohort alert over the terminal
	Suppressed     uint64 // decline spikes explained by a more specific alert
	RecordsDropped uint64 // failure records dropped at MaxRecords
	EvictedScopes  uint64 // scopes evicted, idle (IdleTTL) or at MaxScopes
	EvictedAtCap   uint64 // of EvictedScopes, those evicted because MaxScopes was reached
	CapSweeps      uint64 // sweeps run because MaxScopes was reached
	Scopes         int    // scopes held now
	Records        int    // failure records held now
}

// Engine is the detector. Not safe for concurrent use: feed it from one
// goroutine (one engine per partition or per instance, see the docs).
type Engine struct {
	cfg   Config
	emit  func(Alert)
	rules [numRules]*rule

	width   [event.NumScopeTypes]int64 // bucket width, ns
	nb      [event.NumScopeTypes]int32 // buckets in the detection window
	ringLen [event.NumScopeTypes]int
	decay   [event.NumScopeTypes]float32
	hold    [event.NumScopeTypes]int32 // probation of learned buckets, in slots (see learn)

	scopes [event.NumScopeTypes]map[string]*scope
	models map[[2]string]*scope

	queues [event.NumCauses]*recordQueue

	pool      baseline // fleet-wide (peer) rates
	poolDecay float32
	tickCount tickCounts

	tick, lateness int64
	maxLate        int64
	started        bool
	maxTs          int64
	nextTick       int64 // end of the next tick to evaluate
	tickNo         uint64

	changed merchantSet // merchants with a decline since the last evaluation
	stats   Stats

	timeline [TimelineMinutes]minuteCount // the fleet per minute, for the console (not checkpointed)
	failing  []*scope                     // scopes with a recent failure, for the console (see overview.go)

	peerKeys [][2]string // updatePeers' buffer

	fleetVol   volume   // the fleet's attempts per minute (see silence.go)
	silenceBuf []*scope // evalSilence's buffer

	nScopes int // scopes held: the sum of the maps' lengths
	sweepAt int // nScopes above which Observe runs the cap sweep

	eval evaluation // the rule being evaluated; buffers reused across ticks
}

// NewEngine returns an engine that calls emit for every alert record, in
// event-time order.
func NewEngine(cfg Config, emit func(Alert)) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid detection config: %w", err)
	}
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg, emit: emit, tick: int64(cfg.Tick), lateness: int64(cfg.Lateness), maxLate: int64(cfg.MaxLate),
		models: make(map[[2]string]*scope), sweepAt: cfg.MaxScopes,
		changed: merchantSet{in: map[*scope]struct{}{}}}
	for t := range e.scopes {
		e.scopes[t] = make(map[string]*scope)
		var window time.Duration
		switch event.ScopeType(t) {
		case event.ScopeTerminal:
			// Fewer, wider buckets: terminals are most of the state.
			window, e.nb[t] = cfg.TerminalWindow, 10
		case event.ScopeMerchant:
			window, e.nb[t] = cfg.MerchantWindow, 15
		case event.ScopeRegionCarrier:
			// A carrier in one region is a fraction of either: a partial
			// outage there needs a few minutes to show.
			window, e.nb[t] = 5*cfg.GroupWindow, 10
		default:
			window, e.nb[t] = cfg.GroupWindow, 6
		}
		e.width[t] = max(int64(window)/int64(e.nb[t]), int64(time.Second))
		// Room for buckets ahead of the watermark (lateness) so they never
		// overwrite buckets still inside the window.
		e.ringLen[t] = int(e.nb[t]) + int((e.lateness+e.tick+e.width[t]-1)/e.width[t])
		e.decay[t] = float32(math.Pow(0.5, float64(e.width[t])/float64(cfg.BaselineHalfLife)))
		if event.ScopeType(t) == event.ScopeTerminal || event.ScopeType(t) == event.ScopeModel {
			e.hold[t] = int32(int64(probationTime) / e.width[t])
		}
	}
	e.poolDecay = float32(math.Pow(0.5, float64(cfg.Tick)/float64(time.Hour)))
	e.newRules()
	for _, c := range recordCauses {
		q := &recordQueue{}
		for _, r := range e.rules {
			if r.cause == c {
				for _, t := range r.scopes {
					q.retention = max(q.retention, e.width[t]*int64(e.nb[t]+1))
				}
			}
		}
		e.queues[c] = q
	}
	return e, nil
}

// Observe counts one classified attempt (cause is event.CauseNone for an
// approval) and runs every evaluation its event time completes. An event
// older than the last evaluated tick by up to MaxLate (store-and-forward)
// is counted in its buckets, where the windows evaluated from now on see
// it. It returns false when the event is late: older than that.
func (e *Engine) Observe(ev *event.Event, cause event.Cause) bool {
	ts := ev.Time.UnixNano()
	if !e.started {
		if ts <= slotEpoch {
			e.stats.Late++
			return false
		}
		e.started = true
		e.nextTick = (ts/e.tick + 1) * e.tick
		e.maxTs = ts
	}
	if ts < e.nextTick-e.tick-e.maxLate || ts <= slotEpoch {
		e.stats.Late++
		return false
	}
	if cause == event.CauseMaintenance && slices.Contains(e.cfg.ScheduledCodes, ev.ResponseCode) {
		cause = event.CauseNone // the announced date switch: not a failure
	}
	e.stats.Observed++

	term := e.scopes[event.ScopeTerminal][ev.Terminal]
	if term == nil {
		term = e.lookup(event.ScopeTerminal, ev.Terminal)
	}
	// The terminal's dims are resolved here rather than in a helper: this
	// runs for every event, and only ids that changed are looked up.
	if term.dims == nil {
		term.dims = new([event.NumScopeTypes]*scope)
	}
	dims := term.dims
	dims[event.ScopeTerminal] = term
	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		if t == event.ScopeModel {
			if ev.Model == "" {
				dims[t] = nil
			} else {
				dims[t] = e.lookupModel(ev.Model, ev.Firmware)
			}
			continue
		}
		if t == event.ScopeRegionCarrier {
			// Checked against the terminal's last cell before the id is
			// built: a terminal rarely moves.
			if s := dims[t]; s != nil && !s.evicted && event.IsRegionCarrier(s.id, ev.Region, ev.Carrier) {
				continue
			}
		}
		id := ev.ScopeID(t)
		if id == "" {
			dims[t] = nil
			continue
		}
		if s := dims[t]; s != nil && !s.evicted && s.id == id {
			continue
		}
		dims[t] = e.lookup(t, id)
	}
	landed := true // in the cohort's ring
	for t, s := range dims {
		if s == nil {
			continue
		}
		slot := e.slot(event.ScopeType(t), ts)
		if t == int(event.ScopeTerminal) || t == int(event.ScopeModel) {
			// A bucket the ring is about to reuse for a newer slot goes
			// into the sequential evidence first, if evaluation has not
			// added it. (A late event older than the ring reuses nothing.)
			if b := &s.ring[int(slot)%len(s.ring)]; b.slot < slot && b.slot > s.seq.slot && b.n > 0 {
				e.seqCatchUp(s, b.slot+1)
			}
		}
		if !s.add(slot, cause, e.decay[t], e.hold[t]) && t == int(event.ScopeModel) {
			landed = false
		}
		if ts > s.last {
			s.last = ts
		}
	}
	if m := dims[event.ScopeModel]; m != nil && landed && cause == event.CauseHardware && term.incident(ruleHardware) != nil &&
		e.slot(event.ScopeModel, ts) > m.seq.slot {
		m.seq.x++ // see seqState.x
	}
	if r := dims[event.ScopeRegion]; r != nil {
		if r.vol == nil {
			r.vol = new(volume)
		}
		r.vol.add(ts, cause == event.CauseNetwork)
	}
	e.fleetVol.add(ts, cause == event.CauseNetwork)
	e.tickCount.n++
	e.countMinute(ts, cause)
	if cause != event.CauseNone {
		e.countFailure(ev, cause, ts, dims)
	}
	if ts > e.maxTs {
		e.maxTs = ts
	}
	e.advance(e.maxTs - e.lateness)
	if e.nScopes > e.sweepAt {
		e.sweep()
	}
	return true
}

// countFailure notes a failed attempt for the detectors that look beyond
// the buckets: the fleet-wide counts, the merchants decline_spike tests at
// the next evaluation and, for the attributed causes, a failure record.
func (e *Engine) countFailure(ev *event.Event, cause event.Cause, ts int64, dims *[event.NumScopeTypes]*scope) {
	e.tickCount.f[declines]++
	e.tickCount.f[cause]++
	for _, s := range dims {
		if s != nil {
			if s.failSeen == 0 {
				e.failing = append(e.failing, s)
			}
			s.failSeen = ts
		}
	}
	if m := dims[event.ScopeMerchant]; m != nil {
		e.changed.add(m)
	}
	if q := e.queues[cause]; q != nil {
		limit := max(1, e.cfg.MaxRecords/len(recordCauses))
		dropped := q.push(record{ts: ts, code: ev.Code(), dims: *dims}, limit)
		e.stats.RecordsDropped += uint64(dropped)
	}
}

// Flush evaluates every tick up to the newest event time seen, as if the
// lateness bound had passed: call it at the end of a finite input.
func (e *Engine) Flush() {
	if e.started {
		e.advance(e.maxTs + e.tick)
	}
}

func (e *Engine) advance(watermark int64) {
	if !e.started {
		return
	}
	// After a long gap in event time, skip empty ticks rather than evaluate
	// them one by one; incidents still resolve at the first evaluation.
	if gap := watermark - e.nextTick; gap > int64(48*time.Hour) {
		e.nextTick += (gap / e.tick) * e.tick
	}
	for e.nextTick <= watermark {
		e.evaluate(e.nextTick)
		e.nextTick += e.tick
	}
}

// evaluate runs every detector at tick end T, then folds the tick into the
// fleet baseline and, every 60 ticks, evicts idle scopes.
func (e *Engine) evaluate(T int64) {
	e.tickNo++
	e.updatePeers()
	for _, c := range recordCauses {
		e.queues[c].prune(T - e.queues[c].retention)
	}
	for _, r := range e.rules {
		if r.cfg.Disabled {
			continue
		}
		if r.idx == ruleDeclineSpike {
			e.evalDeclineSpike(r, T)
		} else {
			e.evalRule(r, T)
		}
	}
	e.changed.reset()
	e.updatePool()
	if e.tickNo%60 == 0 {
		e.evict(T)
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Scopes = e.nScopes
	for _, c := range recordCauses {
		s.Records += len(e.queues[c].live())
	}
	return s
}

// Active returns the firing alerts, oldest first.
func (e *Engine) Active() []Alert {
	var out []Alert
	for _, r := range e.rules {
		for _, inc := range r.active {
			out = append(out, inc.alert)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return a.DetectedAt.Compare(b.DetectedAt) })
	return out
}

// Watermark is the event time up to which detection has evaluated.
func (e *Engine) Watermark() time.Time {
	if !e.started {
		return time.Time{}
	}
	return time.Unix(0, e.nextTick-e.tick).UTC()
}
