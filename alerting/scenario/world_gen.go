package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Fault types of a World.
const (
	FaultHardwareRamp    = "hardware_ramp"
	FaultHardwareStep    = "hardware_step"
	FaultStagedFirmware  = "staged_firmware"
	FaultCarrierInRegion = "carrier_in_region"
	FaultSilentRegion    = "silent_region"
	FaultFlashSale       = "flash_sale"
	FaultHostOutage      = "host_outage"
)

// wFault is a fault resolved against the estate.
type wFault struct {
	truth      FaultTruth
	typ        string
	onset, end int64
	term       int     // hardware
	rampLen    int64   // hardware_ramp: 5% → 70%
	rate       float64 // network faults: share failing; flash: decline share
	codes      []string
	member     []bool // terminals the fault hits (network, flash)
	model      int    // firmware
	newFw      uint8
	cohort     []int
	first      map[int]int64 // firmware: first attempt on the new version
	merchant   int
	silent     []*silentTerm // indexed by terminal; nil: not held
}

// silentTerm is a terminal cut off by a silent region.
type silentTerm struct {
	until     int64 // it reconnects
	backlogAt int64 // it uploads what it stored
	tries     int
	stored    int
}

// pendingEv is an attempt waiting for its arrival.
type pendingEv struct {
	arrive, ts int64
	order      uint64
	term       int32
	seq        uint32
	amount     int64
	latency    int32
	rc, te     string
	mode       uint8
	issuer     uint8
	bin        uint8
	fw         uint8
	txn        uint8
	signal     int8
	battery    int8
	held       bool // stored during an outage, uploaded later
}

// evMeta is what the generator knows about an emitted event beyond it.
type evMeta struct {
	trueTime time.Time
	wrong    bool // the timestamp is wrong (a wrong clock)
	held     bool // store-and-forward backlog
}

type clockFault struct {
	from, to int64
	offset   int64 // added to the true time, or
	base     int64 // when non-zero: the clock restarted at base at from
}

const (
	nsSecond = int64(time.Second)
	nsMinute = int64(time.Minute)
	nsHour   = int64(time.Hour)
	nsDay    = 24 * nsHour
)

var txnNames = []string{"sale", "refund", "void", "balance_inquiry"}

type worldGen struct {
	e       *wEstate
	rng     *rand.Rand
	faults  []*wFault
	active  []*wFault
	heap    []pendingEv
	order   uint64
	start   int64
	end     int64
	now     int64 // the minute being generated
	surge   []float64
	cutoff  []bool // issuers with a late date switch (CUP 90)
	ev      event.Event
	idbuf   []byte
	truth   WorldTruth
	wrongOn []bool
	correct bool
	newest  int64 // the newest true time delivered so far
}

// Generate emits the world's events in arrival order (the order a Kafka
// topic would hold them) and returns the ground truth. emit must not keep
// ev. The same world and seed give the same events in the same order.
func (w World) Generate(emit func(ev *event.Event)) (WorldTruth, error) {
	return w.generate(func(ev *event.Event, _ *evMeta) { emit(ev) })
}

func (w World) generate(emit func(*event.Event, *evMeta)) (WorldTruth, error) {
	e := buildWorld(w)
	w = e.w
	g := &worldGen{e: e, rng: rand.New(rand.NewPCG(w.Seed, 0x7a11c)), start: w.Start.UnixNano(), end: w.End().UnixNano(),
		surge: make([]float64, len(e.merchants)), cutoff: make([]bool, len(e.issuers)), wrongOn: make([]bool, len(e.terms)),
		correct: w.CorrectClocks}
	g.truth = WorldTruth{World: w.Name, Start: w.Start, End: w.End(), Terminals: len(e.terms), Merchants: len(e.merchants),
		Regions: len(e.regions), Days: w.Days, PairedClocks: w.PairedClocks, Quiet: w.Quiet, Behind: make([]int, len(BehindThresholds))}
	for _, d := range w.Holidays {
		g.truth.Holidays = append(g.truth.Holidays, w.Start.AddDate(0, 0, d))
	}
	frng := rand.New(rand.NewPCG(w.Seed, 0xfa017))
	used := make([]bool, len(e.terms))
	for i, spec := range w.Faults {
		f, err := e.resolve(spec, frng, used)
		if err != nil {
			return WorldTruth{}, fmt.Errorf("world %s fault %d (%s): %w", w.Name, i, spec.Type, err)
		}
		f.truth.ID = fmt.Sprintf("%s/%d-%s", w.Name, i+1, spec.Type)
		g.faults = append(g.faults, f)
	}
	e.assignClocks(rand.New(rand.NewPCG(w.Seed, 0xc10c)), used, g.faults)
	// Two issuers finish their date switch (日切) late: CUP 90 for a few
	// minutes after 23:00.
	crng := rand.New(rand.NewPCG(w.Seed, 0x90))
	for range 2 {
		g.cutoff[crng.IntN(len(e.issuers))] = true
	}
	g.run(emit)
	g.finish()
	return g.truth, nil
}

func (g *worldGen) run(emit func(*event.Event, *evMeta)) {
	e := g.e
	nr := len(e.regions)
	fac := make([]float64, numCategories*nr)
	var meta evMeta
	out := func(r *pendingEv) {
		g.materialize(r, &meta)
		emit(&g.ev, &meta)
	}
	for m := g.start; m < g.end; m += nsMinute {
		g.now = m
		if (m-g.start)%nsHour == 0 {
			for i := range e.terms {
				t := &e.terms[i]
				k := categories[t.cat].burstK
				t.burst = gammaDraw(g.rng, k) / k
			}
		}
		// Active: the faults an attempt created now may meet, retries a
		// few minutes on included (each check below has the exact span).
		g.active = g.active[:0]
		for _, f := range g.faults {
			if m+6*nsMinute > f.onset && m < f.end+6*nsMinute {
				g.active = append(g.active, f)
			}
		}
		clear(g.surge)
		for _, f := range g.active {
			if f.typ == FaultFlashSale && m >= f.onset && m < f.end {
				// Three times the traffic, reached within five minutes.
				g.surge[f.merchant] = 1 + 2*min(1, float64(m-f.onset)/float64(5*nsMinute))
			}
		}
		mid := m + 30*nsSecond
		for c := range numCategories {
			for r := range nr {
				fac[c*nr+r] = e.factor(c, r, mid)
			}
		}
		for i := range e.terms {
			t := &e.terms[i]
			f := fac[t.cat*nr+t.region]
			if f <= 0 {
				continue
			}
			lambda := t.peak * f * t.burst / 60
			if s := g.surge[t.merchant]; s > 0 {
				lambda *= s
			}
			for range poisson(g.rng, lambda) {
				g.attempt(i, m+g.rng.Int64N(nsMinute), -1, 0)
			}
		}
		for len(g.heap) > 0 && g.heap[0].arrive < m+nsMinute {
			r := g.pop()
			out(&r)
		}
	}
	for len(g.heap) > 0 {
		r := g.pop()
		out(&r)
	}
}

func (g *worldGen) finish() {
	for _, f := range g.faults {
		if f.typ == FaultStagedFirmware {
			var firsts []int64
			for _, ti := range f.cohort {
				if at, ok := f.first[ti]; ok {
					firsts = append(firsts, at)
				}
			}
			slices.Sort(firsts)
			if len(firsts) >= 10 {
				ref := firsts[9]
				f.truth.Reference = time.Unix(0, ref).In(worldLoc)
				f.truth.VolumePerHour = 0
				for _, ti := range f.cohort {
					if at, ok := f.first[ti]; ok && at <= ref {
						f.truth.VolumePerHour += g.e.expectedRate(ti, ref)
					}
				}
			} else {
				f.truth.Reference = f.truth.End
				f.truth.Note = fmt.Sprintf("only %d terminals transacted on the new firmware", len(firsts))
			}
			for i, ti := range f.cohort {
				if at, ok := f.first[ti]; ok {
					f.truth.Affected[i].Since = time.Unix(0, at).In(worldLoc)
				} else {
					f.truth.Affected[i].Since = f.truth.End // never ran it
				}
			}
			f.truth.CohortFirst = nil
			for _, at := range firsts {
				f.truth.CohortFirst = append(f.truth.CohortFirst, time.Unix(0, at).In(worldLoc))
			}
		}
		g.truth.Faults = append(g.truth.Faults, f.truth)
	}
	for i, wrong := range g.wrongOn {
		if wrong {
			g.truth.WrongClockTerminals = append(g.truth.WrongClockTerminals, g.e.terms[i].ID)
		}
	}
	slices.Sort(g.truth.WrongClockTerminals)
}

// attempt is one customer at terminal ti at true time at. mode < 0 draws
// the entry mode from the terminal's mix; depth counts retries.
func (g *worldGen) attempt(ti int, at int64, mode int, depth int) {
	if at >= g.end {
		return
	}
	e, rng := g.e, g.rng
	t := &e.terms[ti]
	if t.pendingFw != 0 && at >= t.pendingFrom {
		t.fw, t.pendingFw = t.pendingFw, 0
	}
	if mode < 0 {
		x := rng.Float64()
		mode = 0
		for mode < 3 && x >= t.entryCum[mode] {
			mode++
		}
	}
	t.seq++
	r := pendingEv{ts: at, term: int32(ti), seq: t.seq, mode: uint8(mode), fw: t.fw, latency: -1, battery: -1}
	r.issuer = uint8(pickIssuer(e.issuers, rng))
	r.bin = uint8(rng.IntN(len(e.issuers[r.issuer].bins)))
	r.amount = amountFor(t.cat, rng)
	if x := rng.Float64(); x > 0.97 {
		r.txn = uint8(1 + rng.IntN(3))
	}
	if t.signal != 0 {
		r.signal = int8(rng.IntN(9) - 4)
	}
	if categories[t.cat].handheld {
		hours := float64((at-g.start)%nsDay)/float64(nsHour) - 8
		r.battery = int8(min(100, max(12, 100-int(6*max(0, hours))-rng.IntN(5))))
	}
	for _, f := range g.active {
		if f.typ == FaultSilentRegion && f.silent[ti] != nil && at >= f.onset && at < f.silent[ti].until {
			g.silentAttempt(f, f.silent[ti], ti, &r, depth)
			return
		}
	}
	for _, f := range g.active {
		if f.typ == FaultStagedFirmware && t.model == f.model && t.fw == f.newFw && at >= f.onset {
			if old, ok := f.first[ti]; !ok || at < old {
				f.first[ti] = at
			}
		}
	}
	g.outcome(t, ti, &r)
	if r.te == "" || r.rc != "" {
		r.latency = int32(150 + rng.IntN(600))
		if t.Network == "gprs" {
			r.latency += int32(800 + rng.IntN(1500))
		}
	}
	r.arrive = g.deliver(t, ti, at)
	for _, f := range g.faults {
		// Nothing gets out of a cut-off terminal until it reconnects.
		if f.typ == FaultSilentRegion && f.silent[ti] != nil && r.arrive >= f.onset && r.arrive < f.silent[ti].until {
			r.arrive = f.silent[ti].backlogAt
		}
	}
	g.push(r)
	g.retry(ti, &r, depth)
}

// outcome decides the attempt's response code / terminal error: the
// faults first, then the terminal's and merchant's ordinary behaviour.
func (g *worldGen) outcome(t *wTerm, ti int, r *pendingEv) {
	rng := g.rng
	at := r.ts
	decline := g.e.merchants[t.merchant].decline
	var declineCodes []string
	for _, f := range g.active {
		if at < f.onset || at >= f.end {
			continue
		}
		switch f.typ {
		case FaultHardwareRamp, FaultHardwareStep:
			if ti == f.term && cardMode(r.mode) && rng.Float64() < f.readerFail(at) {
				r.te = readFailure(r.mode, rng)
				return
			}
		case FaultStagedFirmware:
			// The defect: a quarter of chip reads fail on the new version.
			if t.model == f.model && t.fw == f.newFw && r.mode == modeChip && rng.Float64() < 0.25 {
				r.te = []string{"CHIP_READ_FAIL", "CHIP_READ_FAIL", "CHIP_FALLBACK"}[rng.IntN(3)]
				return
			}
		case FaultCarrierInRegion, FaultHostOutage, FaultSilentRegion:
			if f.member[ti] && rng.Float64() < f.rate {
				r.te = f.codes[rng.IntN(len(f.codes))]
				return
			}
		case FaultFlashSale:
			if t.merchant == f.merchant {
				// Cards run into balances and limits as the sale goes on.
				decline = f.rate * min(1, 0.5+float64(at-f.onset)/float64(20*nsMinute))
				declineCodes = []string{"51", "51", "51", "51", "61", "61", "61", "65", "65"}
			}
		}
	}
	x := rng.Float64()
	if cardMode(r.mode) {
		if x < t.hwFail {
			r.te = readFailure(r.mode, rng)
			return
		}
		x -= t.hwFail
	}
	if x < t.netFail {
		if t.weak && rng.IntN(2) == 0 {
			r.te = "WEAK_SIGNAL"
		} else {
			r.te = []string{"COMM_TIMEOUT", "COMM_TIMEOUT", "RECV_FAIL", "SEND_FAIL", "HOST_UNREACHABLE"}[rng.IntN(5)]
		}
		return
	}
	x -= t.netFail
	if x < 0.0004 { // the switch or the issuer answered too late
		r.rc = []string{"68", "98"}[rng.IntN(2)]
		return
	}
	x -= 0.0004
	if t.Scheme == "cup" && g.cutoff[r.issuer] && rng.Float64() < 0.6 {
		if tod := (at - g.start) % nsDay; tod >= 23*nsHour && tod < 23*nsHour+4*nsMinute {
			r.rc = "90" // date switch in progress
			return
		}
	}
	if x < decline {
		if declineCodes != nil {
			r.rc = declineCodes[rng.IntN(len(declineCodes))]
		} else {
			r.rc = bgDeclineCodes[rng.IntN(len(bgDeclineCodes))]
		}
		return
	}
	x -= decline
	if x < 0.012 { // the cashier or the cardholder
		switch rng.IntN(4) {
		case 0:
			r.te = "USER_CANCEL"
		case 1:
			r.te = "USER_TIMEOUT"
		case 2:
			if r.mode == modeChip {
				r.te = "CARD_REMOVED_EARLY"
			} else {
				r.te = "USER_CANCEL"
			}
		default:
			r.rc = "55"
		}
		return
	}
	r.rc = "00"
	if categories[t.cat].handheld {
		// The receipt roll runs out; the cashier notices after a sale or
		// two and changes it.
		t.paperLeft--
		if t.paperLeft < 0 {
			r.te = "PRINTER_NO_PAPER"
			if t.paperLeft <= -1-rng.IntN(4)/3 {
				t.paperLeft = 120 + rng.IntN(130)
			}
		}
	}
}

var bgDeclineCodes = []string{"51", "51", "51", "51", "05", "05", "54", "54", "61", "14", "57", "41", "65", "12"}

func readFailure(mode uint8, rng *rand.Rand) string {
	if rng.IntN(8) == 0 {
		return "READER_COMM_ERROR"
	}
	switch mode {
	case modeContactless:
		return "CONTACTLESS_READ_FAIL"
	case modeSwipe, modeFallback:
		return "MAG_READ_FAIL"
	}
	return "CHIP_READ_FAIL"
}

// readerFail is a failing reader's share of card reads failing at at.
func (f *wFault) readerFail(at int64) float64 {
	if f.typ == FaultHardwareStep {
		return 0.7
	}
	return 0.05 + 0.65*min(1, max(0, float64(at-f.onset)/float64(f.rampLen)))
}

// retry: customers try again after a failure, often another way.
func (g *worldGen) retry(ti int, r *pendingEv, depth int) {
	if depth >= 3 {
		return
	}
	rng := g.rng
	p, lo, hi, mode := 0.0, 5, 30, -1
	switch r.te {
	case "CHIP_FALLBACK":
		p, mode = 0.85, modeFallback
	case "CHIP_READ_FAIL", "CONTACTLESS_READ_FAIL", "MAG_READ_FAIL", "READER_COMM_ERROR":
		p = 0.65
		mode = []int{modeChip, modeChip, modeContactless, modeSwipe, modeQR}[rng.IntN(5)]
	case "COMM_TIMEOUT", "RECV_FAIL", "SEND_FAIL", "HOST_UNREACHABLE", "WEAK_SIGNAL", "NET_REGISTER_FAIL", "PPP_DIAL_FAIL", "TLS_HANDSHAKE_FAIL":
		p, lo, hi, mode = 0.6, 10, 45, int(r.mode)
	case "USER_CANCEL", "USER_TIMEOUT", "CARD_REMOVED_EARLY":
		p, lo, hi, mode = 0.5, 5, 20, int(r.mode)
	case "":
		switch r.rc {
		case "51", "61", "05", "65":
			p, lo, hi = 0.25, 20, 90
		case "55":
			p, lo, hi, mode = 0.7, 8, 25, int(r.mode)
		case "90", "68", "98":
			p, lo, hi, mode = 0.5, 10, 40, int(r.mode)
		}
	}
	if p > 0 && rng.Float64() < p {
		g.attempt(ti, r.ts+int64(lo)*nsSecond+rng.Int64N(int64(hi-lo)*nsSecond), mode, depth+1)
	}
}

// silentAttempt: the terminal cannot reach anyone. It times out a couple
// of times, then either stores approvals offline (store and forward) to
// upload when the link is back, or the merchant takes QR payments outside
// the terminal. Whatever it records arrives with the backlog.
func (g *worldGen) silentAttempt(f *wFault, st *silentTerm, ti int, r *pendingEv, depth int) {
	t, rng := &g.e.terms[ti], g.rng
	st.tries++
	switch {
	case st.tries <= 2:
		r.te = []string{"COMM_TIMEOUT", "COMM_TIMEOUT", "HOST_UNREACHABLE"}[rng.IntN(3)]
	case !t.saf:
		if rng.Float64() < 0.85 {
			t.seq-- // paid by QR code on the customer's phone: no attempt here
			return
		}
		r.te = "COMM_TIMEOUT"
	case st.stored >= 150:
		r.te = "SAF_QUEUE_FULL"
	case r.amount > 50000: // above the offline floor limit
		r.rc = "Z3"
	default:
		r.rc = "Y3"
		st.stored++
	}
	r.held = true
	r.arrive = st.backlogAt + int64(st.tries)*30*int64(time.Millisecond)
	g.push(*r)
	if r.te != "" && depth < 3 && rng.Float64() < 0.6 {
		g.attempt(ti, r.ts+10*nsSecond+rng.Int64N(30*nsSecond), int(r.mode), depth+1)
	}
}

// deliver is when the attempt reaches the topic.
func (g *worldGen) deliver(t *wTerm, ti int, at int64) int64 {
	rng := g.rng
	d := int64(math.Exp(math.Log(0.4)+0.9*rng.NormFloat64()) * float64(nsSecond))
	d = min(d, 20*nsSecond)
	if rng.Float64() < 0.02 {
		d += 5*nsSecond + rng.Int64N(55*nsSecond)
	}
	switch t.delivery {
	case deliverBatch:
		k := (at + nsSecond - t.batchPhase + t.batchPeriod - 1) / t.batchPeriod
		return t.batchPhase + k*t.batchPeriod + rng.Int64N(2*nsSecond)
	case deliverFlaky:
		if rng.Float64() < 0.2 {
			d += 10*nsSecond + rng.Int64N(110*nsSecond)
		}
	}
	for _, f := range g.active {
		// The log upload rides the same degraded link.
		if f.typ == FaultCarrierInRegion && f.member[ti] && at >= f.onset && at < f.end && rng.Float64() < 0.3 {
			d += 5*nsSecond + rng.Int64N(85*nsSecond)
		}
	}
	return at + d
}

func (g *worldGen) push(r pendingEv) {
	g.order++
	r.order = g.order
	h := append(g.heap, r)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	g.heap = h
}

func (g *worldGen) pop() pendingEv {
	h := g.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if l+1 < n && h[l+1].before(&h[l]) {
			c = l + 1
		}
		if !h[c].before(&h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	g.heap = h
	return top
}

func (a *pendingEv) before(b *pendingEv) bool {
	if a.arrive != b.arrive {
		return a.arrive < b.arrive
	}
	return a.order < b.order
}

// materialize fills g.ev from r, with the terminal's clock applied.
func (g *worldGen) materialize(r *pendingEv, meta *evMeta) {
	t := &g.e.terms[r.term]
	ev := &g.ev
	ev.Reset()
	b := append(g.idbuf[:0], t.ID...)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(r.seq), 10)
	g.idbuf = b
	ev.ID = string(b)
	ts, wrong := t.clock(r.ts)
	meta.trueTime = time.Unix(0, r.ts).In(worldLoc)
	meta.held = r.held
	meta.wrong = false
	if wrong {
		g.wrongOn[r.term] = true
		if !g.correct {
			meta.wrong = true
			g.truth.WrongClockEvents++
			ev.Time = time.Unix(0, ts).In(worldLoc)
		}
	}
	if !meta.wrong {
		ev.Time = meta.trueTime
	}
	ev.Terminal, ev.Merchant, ev.Region, ev.Carrier = t.ID, t.Merchant, t.Region, t.Carrier
	ev.Network, ev.Host, ev.Acquirer, ev.Model, ev.Firmware = t.Network, t.Host, t.Acquirer, t.Model, t.fws[r.fw]
	ev.Scheme, _ = event.ParseScheme(t.Scheme)
	ev.TxnType = txnNames[r.txn]
	ev.EntryMode = modeNames[r.mode]
	ev.Currency = "CNY"
	ev.AmountMinor = r.amount
	is := &g.e.issuers[r.issuer]
	ev.Issuer = is.id
	if r.mode != modeQR {
		ev.CardBIN = is.bins[r.bin]
	}
	ev.ResponseCode, ev.TerminalError = r.rc, r.te
	ev.LatencyMS = r.latency
	if t.signal != 0 {
		ev.SignalDBM, ev.HasSignal = t.signal+int32(r.signal), true
	}
	ev.BatteryPct = r.battery
	g.truth.Events++
	if !meta.wrong {
		for i, th := range BehindThresholds {
			if g.newest-r.ts > int64(th) {
				g.truth.Behind[i]++
			}
		}
		g.newest = max(g.newest, r.ts)
	}
	if r.held {
		g.truth.BacklogEvents++
	}
	if r.arrive-r.ts > nsMinute {
		g.truth.LateEvents++
	}
}

// clock is what the terminal's clock said at true time ns.
func (t *wTerm) clock(ns int64) (int64, bool) {
	for _, c := range t.clocks {
		if ns >= c.from && ns < c.to {
			if c.base != 0 {
				return c.base + (ns - c.from), true
			}
			return ns + c.offset, true
		}
	}
	return ns, false
}

func pickIssuer(is []wIssuer, rng *rand.Rand) int {
	x := rng.Float64() * is[len(is)-1].cum
	for i := range is {
		if x < is[i].cum {
			return i
		}
	}
	return len(is) - 1
}

// amountFor draws a ticket size in fen by category.
func amountFor(cat int, rng *rand.Rand) int64 {
	median := [numCategories]float64{4500, 15000, 20000, 30000, 6000, 30000, 12000}[cat]
	return int64(median*math.Exp(0.8*rng.NormFloat64())) + 100
}

// gammaDraw draws Gamma(k, 1) (Marsaglia and Tsang), k >= 1.
func gammaDraw(rng *rand.Rand, k float64) float64 {
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}
