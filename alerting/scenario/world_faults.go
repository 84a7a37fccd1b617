package scenario

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Goals of the Must-shows (issue #14), from the reference time of each
// fault's truth.
const (
	GoalHardware       = 30 * time.Minute // terminal hardware at >= 30 attempts/h, from 25% failing
	GoalStagedFirmware = 30 * time.Minute // from the tenth terminal's first attempt on the new version
	GoalCarrierRegion  = 5 * time.Minute
	GoalSilentRegion   = 3 * time.Minute
	GoalHostOutage     = 5 * time.Minute // reported, not a Must-show
	// HardwareMustRate: below this many attempts an hour a terminal's
	// hardware fault is reported by volume band, not held to the goal.
	HardwareMustRate = 30.0
)

// resolve places a fault on the estate: picks its scope and states its
// truth. used marks terminals already given a fault.
func (e *wEstate) resolve(spec WorldFault, rng *rand.Rand, used []bool) (*wFault, error) {
	f := &wFault{typ: spec.Type, end: e.w.End().UnixNano()}
	tr := &f.truth
	tr.Type = spec.Type
	at := e.dayAt(spec.Day, spec.At)
	switch spec.Type {
	case FaultHardwareRamp, FaultHardwareStep:
		ti, ref, err := e.pickBusyTerminal(spec, rng, used)
		if err != nil {
			return nil, err
		}
		t := &e.terms[ti]
		f.term, used[ti] = ti, true
		f.onset = ref
		if spec.Type == FaultHardwareRamp {
			// The reference is when the terminal's failure share (card
			// reads failing, plus what it fails anyway) passes 25%.
			f.rampLen = int64(spec.For)
			bg := t.cardShare*t.hwFail + t.netFail
			q := (0.25 - bg) / t.cardShare
			frac := (q - 0.05) / 0.65
			f.onset = ref - int64(frac*float64(f.rampLen))
		}
		tr.Kind, tr.ScopeType, tr.ScopeID = "terminal_hardware", "terminal", t.ID
		tr.Reference = time.Unix(0, ref).In(worldLoc)
		tr.VolumePerHour = e.expectedRate(ti, ref)
		tr.Goal, tr.Page, tr.MaxPages = GoalHardware, true, 1
		tr.MustShow = tr.VolumePerHour >= HardwareMustRate
		tr.RelatedScopes = []string{"terminal", "merchant", "model"}
		tr.Affected = []TerminalRef{e.ref(ti)}
	case FaultStagedFirmware:
		return e.resolveFirmware(f, spec, rng, used)
	case FaultCarrierInRegion:
		ri, ci, err := e.pickCarrierRegion(at)
		if err != nil {
			return nil, err
		}
		reg, car := e.regions[ri].code, e.carriers[ci]
		f.member = make([]bool, len(e.terms))
		for i := range e.terms {
			f.member[i] = e.terms[i].Region == reg && e.terms[i].Carrier == car
		}
		f.onset, f.end = at, at+int64(spec.For)
		f.rate = 0.30
		f.codes = []string{"COMM_TIMEOUT", "COMM_TIMEOUT", "COMM_TIMEOUT", "NET_REGISTER_FAIL", "NET_REGISTER_FAIL", "PPP_DIAL_FAIL", "WEAK_SIGNAL", "RECV_FAIL"}
		tr.Kind, tr.ScopeType, tr.ScopeID = "network_outage", "region+carrier", reg+"/"+car
		tr.Goal, tr.Page, tr.MaxPages, tr.MustShow = GoalCarrierRegion, true, 1, true
		tr.Note = fmt.Sprintf("%s is %.0f%% of region %s's traffic, region %s is %.0f%% of %s's", car,
			100*e.rateOf(at, func(t *wTerm) bool { return t.Region == reg && t.Carrier == car })/e.rateOf(at, func(t *wTerm) bool { return t.Region == reg }),
			reg, reg, 100*e.rateOf(at, func(t *wTerm) bool { return t.Region == reg && t.Carrier == car })/e.rateOf(at, func(t *wTerm) bool { return t.Carrier == car }), car)
	case FaultSilentRegion:
		ri := e.pickRegion(at, 0.06, 0.25)
		reg := e.regions[ri].code
		f.onset, f.end = at, at+int64(spec.For)
		f.silent = make([]*silentTerm, len(e.terms))
		f.member = make([]bool, len(e.terms))
		var idx []int
		total := 0.0
		for i := range e.terms {
			if e.terms[i].Region == reg {
				idx = append(idx, i)
				total += e.expectedRate(i, at)
			}
		}
		// The cut backbone carries about 85% of the region's traffic;
		// the rest keeps working, with some timeouts.
		order := slices.Clone(idx)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		cut := 0.0
		held := 0
		for _, i := range order {
			if cut < 0.85*total {
				st := &silentTerm{until: f.end + rng.Int64N(3*nsMinute)}
				st.backlogAt = st.until + rng.Int64N(nsMinute)
				if rng.Float64() < 0.15 { // uploads its stored batch much later
					st.backlogAt = st.until + 30*nsMinute + rng.Int64N(90*nsMinute)
				}
				f.silent[i] = st
				cut += e.expectedRate(i, at)
				held++
			} else {
				f.member[i] = true
			}
		}
		f.rate = 0.15
		f.codes = []string{"COMM_TIMEOUT", "COMM_TIMEOUT", "COMM_TIMEOUT", "RECV_FAIL", "HOST_UNREACHABLE"}
		tr.Kind, tr.ScopeType, tr.ScopeID = "network_outage", "region", reg
		tr.Goal, tr.Page, tr.MaxPages, tr.MustShow = GoalSilentRegion, true, 1, true
		tr.Note = fmt.Sprintf("%d of %d terminals (%.0f%% of traffic) silent", held, len(idx), 100*cut/total)
		for _, i := range idx {
			if f.silent[i] != nil {
				tr.Held = append(tr.Held, e.terms[i].ID)
			}
		}
		slices.Sort(tr.Held)
	case FaultHostOutage:
		hosts := slices.Clone(e.hosts)
		slices.SortFunc(hosts, func(a, b string) int {
			ra := e.rateOf(at, func(t *wTerm) bool { return t.Host == a })
			rb := e.rateOf(at, func(t *wTerm) bool { return t.Host == b })
			return int(math.Copysign(1, rb-ra))
		})
		host := hosts[min(1, len(hosts)-1)] // the second busiest
		f.member = make([]bool, len(e.terms))
		for i := range e.terms {
			f.member[i] = e.terms[i].Host == host
		}
		f.onset, f.end = at, at+int64(spec.For)
		f.rate = 0.7
		f.codes = []string{"HOST_UNREACHABLE", "HOST_UNREACHABLE", "COMM_TIMEOUT", "RECV_FAIL", "TLS_HANDSHAKE_FAIL"}
		tr.Kind, tr.ScopeType, tr.ScopeID = "network_outage", "host", host
		tr.Goal, tr.Page, tr.MaxPages = GoalHostOutage, true, 1
	case FaultFlashSale:
		mi, err := e.pickFlashMerchant(at, rng, used)
		if err != nil {
			return nil, err
		}
		f.merchant = mi
		f.onset, f.end = at, at+int64(spec.For)
		f.rate = 0.28 + 0.12*rng.Float64()
		m := &e.merchants[mi]
		for _, ti := range m.terms {
			used[ti] = true
		}
		tr.ScopeType, tr.ScopeID = "merchant", m.id
		tr.Page, tr.MaxPages = false, 0
		tr.RelatedScopes = []string{"merchant", "terminal"}
		tr.Note = fmt.Sprintf("%s, %d tills, x3 volume, %.0f%% customer-side declines (51/61/65)", categories[m.cat].name, len(m.terms), 100*f.rate)
	default:
		return nil, fmt.Errorf("unknown fault type %q", spec.Type)
	}
	if f.onset == 0 {
		f.onset = at
	}
	tr.Onset = time.Unix(0, f.onset).In(worldLoc)
	tr.End = time.Unix(0, f.end).In(worldLoc)
	if tr.Reference.IsZero() {
		tr.Reference = tr.Onset
	}
	if f.member != nil {
		for i, in := range f.member {
			if in || (f.silent != nil && f.silent[i] != nil) {
				tr.Affected = append(tr.Affected, e.ref(i))
			}
		}
		if tr.VolumePerHour == 0 {
			for i := range e.terms {
				if f.member[i] || (f.silent != nil && f.silent[i] != nil) {
					tr.VolumePerHour += e.expectedRate(i, f.onset)
				}
			}
		}
	}
	if spec.Type == FaultFlashSale {
		for _, ti := range e.merchants[f.merchant].terms {
			tr.Affected = append(tr.Affected, e.ref(ti))
			tr.VolumePerHour += e.expectedRate(ti, f.onset)
		}
	}
	return f, nil
}

// pickBusyTerminal finds a terminal carrying about spec.PerHour attempts
// an hour near spec.At on its day, and the time it does.
func (e *wEstate) pickBusyTerminal(spec WorldFault, rng *rand.Rand, used []bool) (int, int64, error) {
	want := spec.PerHour
	lo, hi := want*0.88, want*1.12
	if want >= HardwareMustRate {
		lo = max(lo, HardwareMustRate+0.5)
	}
	type cand struct {
		ti int
		at int64
	}
	// Independent failures rarely share a model: prefer a model no other
	// failing terminal of the world has.
	taken := map[int]bool{}
	for i, u := range used {
		if u {
			taken[e.terms[i].model] = true
		}
	}
	for _, span := range []int64{90 * nsMinute, 6 * nsHour, -90 * nsMinute, -6 * nsHour} {
		distinct := span > 0
		span = max(span, -span)
		var cands []cand
		for off := -span; off <= span; off += 10 * nsMinute {
			at := e.dayAt(spec.Day, spec.At) + off
			for i := range e.terms {
				t := &e.terms[i]
				if used[i] || t.flaky || t.weak || t.cardShare*0.7+t.hwFail < 0.32 || (distinct && taken[t.model]) {
					continue
				}
				// Steady traffic around the reference, not a passing peak.
				r := e.expectedRate(i, at)
				if r < lo || r > hi || e.expectedRate(i, at-nsHour) < 0.5*lo {
					continue
				}
				cands = append(cands, cand{i, at})
			}
		}
		if len(cands) > 0 {
			c := cands[rng.IntN(len(cands))]
			return c.ti, c.at, nil
		}
	}
	return 0, 0, fmt.Errorf("no terminal carries about %.0f attempts/h near %s", want, time.Duration(spec.At))
}

// pickCarrierRegion finds a region and a carrier that is not dominant
// there, in a region that is not dominant in the carrier's traffic: the
// outage is diluted in either dimension alone.
func (e *wEstate) pickCarrierRegion(at int64) (int, int, error) {
	byRegion := make([]float64, len(e.regions))
	byCarrier := make([]float64, len(e.carriers))
	both := make([][]float64, len(e.regions))
	total := 0.0
	for i := range both {
		both[i] = make([]float64, len(e.carriers))
	}
	for i := range e.terms {
		t := &e.terms[i]
		r := e.expectedRate(i, at)
		total += r
		byRegion[t.region] += r
		for c, name := range e.carriers {
			if t.Carrier == name {
				byCarrier[c] += r
				both[t.region][c] += r
			}
		}
	}
	bestR, bestC, best := -1, -1, 0.0
	for r := range e.regions {
		for c := range e.carriers {
			v := both[r][c]
			if byRegion[r] == 0 || byCarrier[c] == 0 {
				continue
			}
			inRegion, ofCarrier, regionShare := v/byRegion[r], v/byCarrier[c], byRegion[r]/total
			if inRegion < 0.15 || inRegion > 0.40 || ofCarrier > 0.35 || regionShare < 0.04 || regionShare > 0.3 {
				continue
			}
			if v > best {
				bestR, bestC, best = r, c, v
			}
		}
	}
	if bestR < 0 {
		// A small fleet: the pair nearest to a quarter of its region.
		penalty := math.Inf(1)
		for r := range e.regions {
			for c := range e.carriers {
				if both[r][c] == 0 {
					continue
				}
				if p := math.Abs(both[r][c]/byRegion[r]-0.25) + both[r][c]/byCarrier[c]; p < penalty {
					bestR, bestC, penalty = r, c, p
				}
			}
		}
	}
	if bestR < 0 {
		return 0, 0, errors.New("no mobile carrier in any region")
	}
	return bestR, bestC, nil
}

// pickRegion returns the busiest region carrying between lo and hi of the
// fleet's traffic at at.
func (e *wEstate) pickRegion(at int64, lo, hi float64) int {
	vol := make([]float64, len(e.regions))
	total := 0.0
	for i := range e.terms {
		r := e.expectedRate(i, at)
		vol[e.terms[i].region] += r
		total += r
	}
	best, bestV := 0, -1.0
	for r, v := range vol {
		if v/total >= lo && v/total <= hi && v > bestV {
			best, bestV = r, v
		}
	}
	if bestV < 0 {
		for r, v := range vol {
			if v > bestV {
				best, bestV = r, v
			}
		}
	}
	return best
}

func (e *wEstate) pickFlashMerchant(at int64, rng *rand.Rand, used []bool) (int, error) {
	var cands []int
	for mi, m := range e.merchants {
		if (m.cat != catSupermarket && m.cat != catChainRestaurant) || len(m.terms) < 3 {
			continue
		}
		free := true
		for _, ti := range m.terms {
			free = free && !used[ti]
		}
		if free && e.factor(m.cat, m.region, at) > 0.3 {
			cands = append(cands, mi)
		}
	}
	if len(cands) == 0 {
		return 0, errors.New("no busy merchant open at that time")
	}
	return cands[rng.IntN(len(cands))], nil
}

// resolveFirmware: a new version for one model goes out in stages, a
// pilot and then growing batches on successive nights (01:00-04:00
// local). Terminals powered at night take it then; the others at their
// first attempt next morning. The version fails a quarter of chip reads.
func (e *wEstate) resolveFirmware(f *wFault, spec WorldFault, rng *rand.Rand, used []bool) (*wFault, error) {
	batches := []int{3, 5, 10, 20, 40}
	need := 0
	for night, b := range batches {
		if spec.Day+night < e.w.Days {
			need += b
		}
	}
	count := make([]int, len(worldModels))
	for i := range e.terms {
		count[e.terms[i].model]++
	}
	f.model = -1
	for m, mod := range worldModels {
		if mod.name == spec.Model || (spec.Model == "" && m == tillModel) {
			f.model = m
		}
	}
	if f.model < 0 {
		return nil, fmt.Errorf("no model %q", spec.Model)
	}
	if count[f.model] < need+10 {
		return nil, fmt.Errorf("model %s has %d terminals, a rollout of %d needs more", worldModels[f.model].name, count[f.model], need)
	}
	old := worldModels[f.model].fw
	newest := old[len(old)-1]
	parts := strings.Split(newest, ".")
	var major, minor int
	fmt.Sscanf(parts[0]+" "+parts[1], "%d %d", &major, &minor)
	version := fmt.Sprintf("%d.%d.0", major, minor+1)
	fws := append(slices.Clone(old), version)
	f.newFw = uint8(len(old))
	var pool []int
	for i := range e.terms {
		if e.terms[i].model == f.model {
			e.terms[i].fws = fws
			if !used[i] {
				pool = append(pool, i)
			}
		}
	}
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	f.first = map[int]int64{}
	k := 0
	for night, n := range batches {
		day := spec.Day + night
		if day >= e.w.Days {
			break
		}
		for range n {
			ti := pool[k]
			k++
			t := &e.terms[ti]
			t.pendingFw = f.newFw
			t.pendingFrom = e.dayAt(day, Duration(time.Hour))
			if t.alwaysOn {
				t.pendingFrom += rng.Int64N(3 * nsHour)
			}
			used[ti] = true
			f.cohort = append(f.cohort, ti)
		}
	}
	f.onset = e.dayAt(spec.Day, Duration(time.Hour))
	tr := &f.truth
	tr.Type = spec.Type
	tr.Kind, tr.ScopeType, tr.ScopeID = "terminal_hardware", "model", worldModels[f.model].name+"/"+version
	tr.Goal, tr.Page, tr.MaxPages, tr.MustShow = GoalStagedFirmware, true, 1, true
	tr.RelatedScopes = []string{"terminal", "model"}
	tr.RelatedKinds = []string{"terminal_hardware"}
	tr.Onset = time.Unix(0, f.onset).In(worldLoc)
	tr.End = e.w.End()
	for _, ti := range f.cohort {
		r := e.ref(ti)
		r.Firmware = []string{version}
		tr.Affected = append(tr.Affected, r)
	}
	tr.Note = fmt.Sprintf("%s %s -> %s on %d of %d terminals, batches %v", worldModels[f.model].name, newest, version, len(f.cohort), count[f.model], batches)
	return f, nil
}

func (e *wEstate) ref(ti int) TerminalRef {
	t := &e.terms[ti]
	return TerminalRef{ID: t.ID, Merchant: t.Merchant, Region: t.Region, Carrier: t.Carrier, Network: t.Network,
		Host: t.Host, Acquirer: t.Acquirer, Model: t.Model, Firmware: slices.Clone(t.fws)}
}

// assignClocks gives terminals their wrong clocks (from their own random
// stream, so a world with correct clocks has the same attempts). Terminals
// of a terminal or firmware fault keep theirs right: their truth is told
// in their own timestamps.
func (e *wEstate) assignClocks(rng *rand.Rand, used []bool, faults []*wFault) {
	c := e.w.Clocks
	resetTo := func(from int64) clockFault {
		cf := clockFault{from: from, to: from + 5*nsMinute + rng.Int64N(40*nsMinute)}
		switch x := rng.Float64(); {
		case x < 0.35:
			cf.base = time.Date(2000, 1, 1, 0, 0, 0, 0, worldLoc).UnixNano()
		case x < 0.5:
			cf.base = time.Unix(1, 0).UnixNano() // 1970
		case x < 0.7:
			cf.base = time.Date(2025, 6, 18, 0, 0, 0, 0, worldLoc).UnixNano() // the firmware's build date
		default:
			cf.offset = int64(1+rng.IntN(3)) * nsDay
		}
		return cf
	}
	restart := make([]int64, len(e.terms))
	for i := range restart {
		restart[i] = []int64{3, 4, 4, 4, 4, 5}[rng.IntN(6)] * nsHour
	}
	for d := range e.w.Days {
		day := e.dayAt(d, 0)
		for i := range e.terms {
			if used[i] {
				continue
			}
			if rng.Float64() < c.RebootResets {
				e.terms[i].clocks = append(e.terms[i].clocks, resetTo(day+restart[i]+rng.Int64N(15*nsMinute)))
			}
			if rng.Float64() < c.DaytimeResets {
				e.terms[i].clocks = append(e.terms[i].clocks, resetTo(day+9*nsHour+rng.Int64N(11*nsHour)))
			}
		}
	}
	if c.Permanent > 0 {
		offsets := []int64{2 * nsDay, 365 * nsDay, -365 * nsDay, 8 * nsHour, -8 * nsHour, 31 * nsDay}
		var cands []int
		noon := e.dayAt(0, Duration(12*time.Hour))
		for i := range e.terms {
			if !used[i] && e.expectedRate(i, noon) >= 3 {
				cands = append(cands, i)
			}
		}
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		for k := range min(c.Permanent, len(cands)) {
			t := &e.terms[cands[k]]
			t.clocks = append(t.clocks, clockFault{from: math.MinInt64, to: math.MaxInt64, offset: offsets[k%len(offsets)]})
		}
	}
	if c.NTPPush.Share > 0 {
		busy := map[string]bool{}
		for _, f := range faults {
			if f.typ == FaultSilentRegion || f.typ == FaultCarrierInRegion {
				busy[strings.Split(f.truth.ScopeID, "/")[0]] = true
			}
		}
		var regions []int
		for r := range e.regions {
			if !busy[e.regions[r].code] {
				regions = append(regions, r)
			}
		}
		ri := regions[rng.IntN(len(regions))]
		from, to := e.dayAt(c.NTPPush.Day, c.NTPPush.From), e.dayAt(c.NTPPush.Day, c.NTPPush.To)
		for i := range e.terms {
			if e.terms[i].region == ri && !used[i] && rng.Float64() < c.NTPPush.Share {
				e.terms[i].clocks = append(e.terms[i].clocks, clockFault{from: from, to: to, offset: -1024 * 7 * nsDay})
			}
		}
	}
}
