package alerting

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// rule is one detector: failures of one cause, attributed over a set of
// overlapping scope types.
type rule struct {
	idx    int
	kind   Kind
	cause  event.Cause // event.CauseNone: all declines (decline_spike)
	scopes []event.ScopeType
	nb     [event.NumScopeTypes]int32 // buckets in this rule's window per scope type
	cfg    RuleConfig
	active []*incident
	// pending holds candidates waiting out cfg.Pending, with the tick they
	// first passed.
	pending map[*scope]int64
}

const (
	ruleNetwork = iota
	ruleMaintenance
	ruleHardware
	ruleDataTransmission
	ruleFraud
	ruleDeclineSpike
	numRules
)

// kindFor maps a winning scope to the alert kind: network-cause failures
// (68/98 "response too late", timeouts) concentrated on one issuer mean the
// issuer is down, not the network.
func (r *rule) kindFor(t event.ScopeType) Kind {
	if r.idx == ruleNetwork && t == event.ScopeIssuer {
		return KindIssuerOutage
	}
	return r.kind
}

// incident is a firing alert and what the engine needs to keep it.
type incident struct {
	alert      Alert
	rule       *rule
	scope      *scope
	quietSince int64  // event time the scope first looked normal again; 0 while anomalous
	confirmed  uint64 // tick at which the scope last passed
}

// record is one failure kept for attribution: when, which code, and every
// scope the attempt belonged to. dims never point at an evicted scope:
// eviction clears them (forgetEvicted).
type record struct {
	ts   int64
	code string
	dims [event.NumScopeTypes]*scope
}

type recordQueue struct {
	recs      []record
	head      int
	retention int64
}

func (q *recordQueue) live() []record { return q.recs[q.head:] }

func (q *recordQueue) prune(before int64) {
	for q.head < len(q.recs) && q.recs[q.head].ts < before {
		q.recs[q.head] = record{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.recs) {
		n := copy(q.recs, q.recs[q.head:])
		clear(q.recs[n:])
		q.recs = q.recs[:n]
		q.head = 0
	}
}

// recordCauses are the causes whose failures are attributed across scopes.
var recordCauses = [...]event.Cause{event.CauseNetwork, event.CauseMaintenance, event.CauseHardware, event.CauseDataTransmission, event.CauseFraudRisk}

// Stats are counters about the engine's own work.
type Stats struct {
	Observed       uint64 // events counted into windows
	Late           uint64 // events older than the lateness bound, not detected on
	Fired          uint64
	Resolved       uint64
	Inhibited      uint64 // terminal alerts muted by a network outage over the terminal
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

	scopes [event.NumScopeTypes]map[string]*scope
	models map[[2]string]*scope

	queues [event.NumCauses]*recordQueue

	pool      baseline // fleet-wide (peer) rates
	poolDecay float32
	tickCount bucket32

	tick, lateness int64
	started        bool
	maxTs          int64
	nextTick       int64 // end of the next tick to evaluate
	tickNo         uint64
	gen            uint64

	dirtyMerchants []*scope
	stats          Stats

	nScopes int // scopes held: the sum of the maps' lengths
	sweepAt int // nScopes above which Observe runs the cap sweep

	// scratch reused across evaluations
	touched []*scope
	cands   []*scope
	chosen  []bool
	covered []bool
	pairs   map[[2]*scope]struct{}
}

type bucket32 struct {
	n int
	f [event.NumCauses]int
}

// slotEpoch keeps bucket slots small enough for int32 at 1 s buckets
// until the 2080s.
var slotEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// NewEngine returns an engine that calls emit for every alert record, in
// event-time order.
func NewEngine(cfg Config, emit func(Alert)) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid detection config: %w", err)
	}
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg, emit: emit, tick: int64(cfg.Tick), lateness: int64(cfg.Lateness),
		models: make(map[[2]string]*scope), pairs: make(map[[2]*scope]struct{}), sweepAt: cfg.MaxScopes}
	for t := range e.scopes {
		e.scopes[t] = make(map[string]*scope)
		var window time.Duration
		switch event.ScopeType(t) {
		case event.ScopeTerminal:
			// Fewer, wider buckets: terminals are most of the state.
			window, e.nb[t] = cfg.TerminalWindow, 10
		case event.ScopeMerchant:
			window, e.nb[t] = cfg.MerchantWindow, 15
		default:
			window, e.nb[t] = cfg.GroupWindow, 6
		}
		e.width[t] = max(int64(window)/int64(e.nb[t]), int64(time.Second))
		// Room for buckets ahead of the watermark (lateness) so they never
		// overwrite buckets still inside the window.
		e.ringLen[t] = int(e.nb[t]) + int((e.lateness+e.tick+e.width[t]-1)/e.width[t])
		e.decay[t] = float32(math.Pow(0.5, float64(e.width[t])/float64(cfg.BaselineHalfLife)))
	}
	e.poolDecay = float32(math.Pow(0.5, float64(cfg.Tick)/float64(time.Hour)))
	mk := func(idx int, k Kind, c event.Cause, scopes ...event.ScopeType) {
		r := &rule{idx: idx, kind: k, cause: c, scopes: scopes, cfg: cfg.Rules[k.String()], nb: e.nb, pending: map[*scope]int64{}}
		if c == event.CauseFraudRisk || c == event.CauseDataTransmission {
			// Surges at a merchant are judged on a shorter window than its
			// overall decline rate, so their onset is not diluted.
			t := event.ScopeMerchant
			r.nb[t] = int32(min(max(int64(cfg.MerchantSurgeWindow)/e.width[t], 1), int64(e.nb[t])))
		}
		e.rules[idx] = r
	}
	mk(ruleNetwork, KindNetworkOutage, event.CauseNetwork,
		event.ScopeRegion, event.ScopeCarrier, event.ScopeNetwork, event.ScopeHost, event.ScopeAcquirer, event.ScopeIssuer)
	mk(ruleMaintenance, KindIssuerOutage, event.CauseMaintenance, event.ScopeIssuer, event.ScopeHost)
	mk(ruleHardware, KindTerminalHardware, event.CauseHardware, event.ScopeTerminal, event.ScopeModel)
	mk(ruleDataTransmission, KindDataTransmission, event.CauseDataTransmission, event.ScopeTerminal, event.ScopeMerchant, event.ScopeHost)
	mk(ruleFraud, KindFraudAttack, event.CauseFraudRisk, event.ScopeMerchant, event.ScopeIssuer)
	mk(ruleDeclineSpike, KindDeclineSpike, event.CauseNone, event.ScopeMerchant)
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

func (e *Engine) slot(t event.ScopeType, ts int64) int32 {
	return int32((ts - slotEpoch) / e.width[t])
}

func (e *Engine) newScope(t event.ScopeType, id string) *scope {
	e.nScopes++
	return &scope{typ: t, id: id, ring: make([]bucket, e.ringLen[t])}
}

func (e *Engine) lookup(t event.ScopeType, id string) *scope {
	m := e.scopes[t]
	s, ok := m[id]
	if !ok {
		s = e.newScope(t, id)
		m[id] = s
	}
	return s
}

func (e *Engine) lookupModel(model, firmware string) *scope {
	k := [2]string{model, firmware}
	s, ok := e.models[k]
	if !ok {
		id := model
		if firmware != "" {
			id = model + "/" + firmware
		}
		s = e.newScope(event.ScopeModel, id)
		e.models[k] = s
	}
	return s
}

// Observe counts one classified attempt (cause is event.CauseNone for an
// approval) and runs every evaluation its event time completes. It returns
// false when the event is late: older than the last evaluated tick.
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
	if ts < e.nextTick-e.tick || ts <= slotEpoch {
		e.stats.Late++
		return false
	}
	e.stats.Observed++

	term := e.scopes[event.ScopeTerminal][ev.Terminal]
	if term == nil {
		term = e.lookup(event.ScopeTerminal, ev.Terminal)
	}
	if term.dims == nil {
		term.dims = new([event.NumScopeTypes]*scope)
	}
	dims := term.dims
	dims[event.ScopeTerminal] = term
	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		var id string
		if t == event.ScopeModel {
			if ev.Model == "" {
				dims[t] = nil
			} else {
				dims[t] = e.lookupModel(ev.Model, ev.Firmware)
			}
			continue
		}
		id = ev.ScopeID(t)
		if id == "" {
			dims[t] = nil
			continue
		}
		if s := dims[t]; s != nil && !s.evicted && s.id == id {
			continue
		}
		dims[t] = e.lookup(t, id)
	}
	for t, s := range dims {
		if s == nil {
			continue
		}
		s.add(e.slot(event.ScopeType(t), ts), cause, e.decay[t])
		if ts > s.last {
			s.last = ts
		}
	}
	e.tickCount.n++
	if cause != event.CauseNone {
		e.tickCount.f[declines]++
		e.tickCount.f[cause]++
		if m := dims[event.ScopeMerchant]; m != nil && m.dirtyTick != e.tickNo+1 {
			m.dirtyTick = e.tickNo + 1
			e.dirtyMerchants = append(e.dirtyMerchants, m)
		}
		if q := e.queues[cause]; q != nil {
			if held := len(q.recs) - q.head; held >= max(1, e.cfg.MaxRecords/len(recordCauses)) {
				q.prune(q.recs[q.head].ts + 1)
				e.stats.RecordsDropped += uint64(held - (len(q.recs) - q.head))
			}
			q.recs = append(q.recs, record{ts: ts, code: ev.Code(), dims: *dims})
		}
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

func (e *Engine) evaluate(T int64) {
	e.tickNo++
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
	// evalDeclineSpike consumes the list, but not when decline_spike is
	// disabled.
	e.dirtyMerchants = e.dirtyMerchants[:0]
	e.updatePool()
	if e.tickNo%60 == 0 {
		e.evict(T)
	}
}

// updatePool folds this tick's fleet-wide counts into the peer baseline.
// While a cause has a firing incident its observed count is replaced by
// the expected one, so an outage does not teach the fleet that failing is
// normal.
func (e *Engine) updatePool() {
	tc := &e.tickCount
	if tc.n == 0 {
		return
	}
	d := e.poolDecay
	e.pool.n = e.pool.n*d + float32(tc.n)
	for c := range tc.f {
		obs := float32(tc.f[c])
		if e.causeFiring(event.Cause(c)) && e.pool.n > 0 {
			obs = float32(tc.n) * e.pool.f[c] / e.pool.n
		}
		e.pool.f[c] = e.pool.f[c]*d + obs
	}
	*tc = bucket32{}
}

func (e *Engine) causeFiring(c event.Cause) bool {
	for _, r := range e.rules {
		if len(r.active) > 0 && (r.cause == c || (r.cause == event.CauseNone && c == event.CauseNone)) {
			return true
		}
	}
	return false
}

// expected is the null rate a scope is tested against: the larger of its
// own baseline and its peers' (an alert means "far above its own history
// and above its peers"), floored by MinBaseline. Testing against the larger
// keeps a terminal that happened never to fail from alarming on ordinary
// fleet noise.
func (e *Engine) expected(s *scope, c int) float64 {
	pool := e.poolRate(c)
	return max(s.baselineRate(c, pool, e.cfg.PriorWeight), pool, e.cfg.MinBaseline)
}

func (e *Engine) poolRate(c int) float64 {
	if e.pool.n <= 0 {
		return 0
	}
	return float64(e.pool.f[c]) / float64(e.pool.n)
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
