package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
)

// Incident is one injected fault and what the detector should say about it.
type Incident struct {
	// Type selects the fault: region_outage, carrier_outage, host_outage,
	// failing_terminal, model_defect, issuer_outage, fraud_attack,
	// mac_errors, decline_spike.
	Type string `json:"type"`
	// At and For place it relative to the scenario start.
	At  Duration `json:"at"`
	For Duration `json:"for"`
	// ScopeID targets a specific scope; empty lets the generator pick one
	// (deterministically from the seed).
	ScopeID string `json:"scope_id,omitempty"`
	// FailRate is the share of the scope's attempts that fail (default per type).
	FailRate float64 `json:"fail_rate,omitempty"`
	// Maintenance declares a maintenance window over the incident: it must
	// be recorded but not page.
	Maintenance bool `json:"maintenance,omitempty"`
}

// Duration is a time.Duration that reads and writes as "15m".
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parsing duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Scenario is a fleet, a time span and incidents.
type Scenario struct {
	Name      string     `json:"name"`
	Fleet     Fleet      `json:"fleet"`
	Start     time.Time  `json:"start"`
	Duration  Duration   `json:"duration"`
	Incidents []Incident `json:"incidents"`
}

// Expected is a ground-truth incident: the alert the detector should raise.
type Expected struct {
	Type        string    `json:"type"`
	Kind        string    `json:"kind"`
	ScopeType   string    `json:"scope_type"`
	ScopeID     string    `json:"scope_id"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Maintenance bool      `json:"maintenance,omitempty"`
	// Notice: customer-side declines (funds, limits, PIN) that must be
	// raised for the merchant without paging anyone.
	Notice    bool `json:"notice,omitempty"`
	Terminals int  `json:"terminals"` // terminals in the scope
}

// Truth is what a scenario contains.
type Truth struct {
	Scenario    string                       `json:"scenario"`
	Events      int                          `json:"events"`
	Incidents   []Expected                   `json:"incidents"`
	Maintenance []alerting.MaintenanceWindow `json:"maintenance,omitempty"`
}

type fault struct {
	exp       Expected
	scope     event.ScopeType
	id        string
	rate      float64
	codes     []code
	probesMin float64 // extra card-testing attempts per minute (fraud)
	terms     []int   // terminals of the merchant (fraud probes)
}

type code struct {
	terminal bool
	v        string
}

func tcodes(vs ...string) []code {
	out := make([]code, len(vs))
	for i, v := range vs {
		out[i] = code{terminal: true, v: v}
	}
	return out
}

func rcodes(vs ...string) []code {
	out := make([]code, len(vs))
	for i, v := range vs {
		out[i] = code{v: v}
	}
	return out
}

// Generate produces the scenario's events in event-time order (within a
// second they may be shuffled, as real shippers deliver them) and returns
// the ground truth. emit must not keep ev.
func (s Scenario) Generate(emit func(ev *event.Event)) (Truth, error) {
	e := build(s.Fleet)
	rng := rand.New(rand.NewPCG(e.f.Seed, 0x9e3779b97f4a7c15))
	truth := Truth{Scenario: s.Name}
	var faults []*fault
	for _, inc := range s.Incidents {
		f, err := e.fault(inc, s.Start, rng)
		if err != nil {
			return Truth{}, fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		faults = append(faults, f)
		truth.Incidents = append(truth.Incidents, f.exp)
		if inc.Maintenance {
			truth.Maintenance = append(truth.Maintenance, alerting.MaintenanceWindow{
				ScopeType: f.exp.ScopeType, ScopeID: f.exp.ScopeID,
				Start: f.exp.Start.Add(-10 * time.Minute), End: f.exp.End.Add(10 * time.Minute),
				Note: "scheduled issuer maintenance",
			})
		}
	}
	loc := time.FixedZone("+08:00", 8*3600)
	var ev event.Event
	seq := 0
	perSecond := float64(len(e.terms)) * e.f.AttemptsPerTerminalHour / 3600
	end := s.Start.Add(time.Duration(s.Duration))
	var batch []int64
	for sec := s.Start; sec.Before(end); sec = sec.Add(time.Second) {
		var active []*fault
		for _, f := range faults {
			if !sec.Before(f.exp.Start) && sec.Before(f.exp.End) {
				active = append(active, f)
			}
		}
		n := poisson(rng, perSecond*shapeAt(sec.In(loc)))
		batch = batch[:0]
		for range n {
			batch = append(batch, int64(rng.IntN(1e9)))
		}
		slices.Sort(batch)
		for _, off := range batch {
			ti := pick(e.cum, rng)
			seq++
			e.attempt(&ev, ti, sec.Add(time.Duration(off)).In(loc), seq, active, rng, false)
			emit(&ev)
		}
		for _, f := range active {
			if f.probesMin <= 0 {
				continue
			}
			for range poisson(rng, f.probesMin/60) {
				ti := f.terms[rng.IntN(len(f.terms))]
				seq++
				e.attempt(&ev, ti, sec.Add(time.Duration(rng.IntN(1e9))).In(loc), seq, active, rng, true)
				emit(&ev)
			}
		}
	}
	truth.Events = seq
	return truth, nil
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 50 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

var (
	bgDeclines = rcodes("51", "51", "51", "55", "55", "05", "54", "61", "14", "41", "57", "12")
	bgFailures = tcodes("COMM_TIMEOUT", "CHIP_READ_FAIL", "RECV_FAIL", "CARD_REMOVED_EARLY", "USER_CANCEL", "MAG_READ_FAIL", "WEAK_SIGNAL", "PRINTER_NO_PAPER")
)

func (e *estate) attempt(ev *event.Event, ti int, ts time.Time, seq int, active []*fault, rng *rand.Rand, probe bool) {
	t := &e.terms[ti]
	ev.Reset()
	ev.ID = fmt.Sprintf("%s-%09d", t.ID, seq)
	ev.Time = ts
	ev.Terminal, ev.Merchant, ev.Region, ev.Carrier = t.ID, t.Merchant, t.Region, t.Carrier
	ev.Network, ev.Host, ev.Acquirer, ev.Model, ev.Firmware = t.Network, t.Host, t.Acquirer, t.Model, t.Firmware
	ev.Scheme, _ = event.ParseScheme(t.Scheme)
	ev.TxnType = "sale"
	ev.Currency = "CNY"
	is := &e.issuers[pick(e.issuerCum, rng)]
	ev.Issuer = is.id
	ev.CardBIN = is.bins[rng.IntN(len(is.bins))]
	ev.EntryMode = []string{"chip", "chip", "contactless", "contactless", "qr", "swipe"}[rng.IntN(6)]
	ev.AmountMinor = int64(math.Exp(7+rng.NormFloat64())) + 100
	ev.LatencyMS = int32(300 + rng.IntN(900))
	if t.Network == "4g" || t.Network == "5g" {
		ev.SignalDBM, ev.HasSignal = int32(-70-rng.IntN(40)), true
	}
	if probe {
		ev.EntryMode = "manual"
		ev.AmountMinor = int64(100 + rng.IntN(300))
	}
	for _, f := range active {
		if !e.hits(f, t, ev, probe) || rng.Float64() >= f.rate {
			continue
		}
		c := f.codes[rng.IntN(len(f.codes))]
		if c.terminal {
			ev.TerminalError = c.v
			ev.LatencyMS = 0
		} else {
			ev.ResponseCode = c.v
		}
		return
	}
	switch x := rng.Float64(); {
	case probe:
		ev.ResponseCode = []string{"00", "14", "54", "05"}[rng.IntN(4)]
	case x < e.f.BackgroundFailure:
		ev.TerminalError = bgFailures[rng.IntN(len(bgFailures))].v
		ev.LatencyMS = 0
	case x < e.f.BackgroundFailure+e.f.BackgroundDecline:
		ev.ResponseCode = bgDeclines[rng.IntN(len(bgDeclines))].v
	default:
		ev.ResponseCode = "00"
	}
}

func (e *estate) hits(f *fault, t *Terminal, ev *event.Event, probe bool) bool {
	switch f.scope {
	case event.ScopeRegion:
		return t.Region == f.id
	case event.ScopeCarrier:
		return t.Carrier == f.id
	case event.ScopeHost:
		return t.Host == f.id
	case event.ScopeTerminal:
		return t.ID == f.id
	case event.ScopeModel:
		return t.Model+"/"+t.Firmware == f.id
	case event.ScopeIssuer:
		return ev.Issuer == f.id
	case event.ScopeMerchant:
		if f.probesMin > 0 {
			return probe && t.Merchant == f.id
		}
		return t.Merchant == f.id
	}
	return false
}

// fault resolves an incident against the estate: picks its scope and
// failure codes, and states the expected alert.
func (e *estate) fault(inc Incident, start time.Time, rng *rand.Rand) (*fault, error) {
	f := &fault{rate: inc.FailRate, id: inc.ScopeID}
	f.exp = Expected{Type: inc.Type, Start: start.Add(time.Duration(inc.At)), End: start.Add(time.Duration(inc.At + inc.For)), Maintenance: inc.Maintenance}
	rate := func(d float64) {
		if f.rate == 0 {
			f.rate = d
		}
	}
	choose := func(vals []string) {
		if f.id == "" {
			f.id = vals[rng.IntN(len(vals))]
		}
	}
	merchants := map[string][]int{}
	for i, t := range e.terms {
		merchants[t.Merchant] = append(merchants[t.Merchant], i)
	}
	var merchantIDs []string
	for m := range merchants {
		merchantIDs = append(merchantIDs, m)
	}
	slices.Sort(merchantIDs)
	pickMerchant := func(minTerms int) {
		if f.id != "" {
			return
		}
		for range 10000 {
			m := merchantIDs[rng.IntN(len(merchantIDs))]
			if len(merchants[m]) >= minTerms {
				f.id = m
				return
			}
		}
		f.id = merchantIDs[0]
	}
	switch inc.Type {
	case "region_outage":
		f.scope, f.exp.Kind = event.ScopeRegion, "network_outage"
		choose(e.regions)
		rate(0.85)
		f.codes = tcodes("COMM_TIMEOUT", "HOST_UNREACHABLE", "PPP_DIAL_FAIL", "COMM_LINK_DOWN")
	case "carrier_outage":
		f.scope, f.exp.Kind = event.ScopeCarrier, "network_outage"
		choose(e.carriers)
		rate(0.85)
		f.codes = tcodes("NET_REGISTER_FAIL", "PPP_DIAL_FAIL", "COMM_TIMEOUT")
	case "host_outage":
		f.scope, f.exp.Kind = event.ScopeHost, "network_outage"
		choose(e.hosts)
		rate(0.9)
		f.codes = append(tcodes("HOST_UNREACHABLE", "COMM_TIMEOUT", "TLS_HANDSHAKE_FAIL"), rcodes("98")...)
	case "failing_terminal":
		f.scope, f.exp.Kind = event.ScopeTerminal, "terminal_hardware"
		if f.id == "" {
			// A till busy enough to show its fault within minutes
			// (>= 40 attempts an hour at onset); else the busiest.
			busiest := 0
			for i, t := range e.terms {
				if t.weight > e.terms[busiest].weight {
					busiest = i
				}
			}
			f.id = e.terms[busiest].ID
			load := e.f.AttemptsPerTerminalHour * shapeAt(f.exp.Start.In(time.FixedZone("+08:00", 8*3600)))
			for range 10000 {
				t := e.terms[rng.IntN(len(e.terms))]
				if t.weight*load >= 40 {
					f.id = t.ID
					break
				}
			}
		}
		rate(0.7)
		f.codes = tcodes("CHIP_READ_FAIL", "MAG_READ_FAIL", "CONTACTLESS_READ_FAIL", "PINPAD_FAIL")
	case "model_defect":
		f.scope, f.exp.Kind = event.ScopeModel, "terminal_hardware"
		var ids []string
		for _, m := range e.models {
			ids = append(ids, m[0]+"/"+m[1])
		}
		choose(ids)
		rate(0.35)
		f.codes = tcodes("CONTACTLESS_READ_FAIL", "CHIP_READ_FAIL", "READER_COMM_ERROR")
	case "issuer_outage":
		f.scope, f.exp.Kind = event.ScopeIssuer, "issuer_outage"
		var ids []string
		for _, is := range e.issuers[:min(4, len(e.issuers))] { // a busy issuer
			ids = append(ids, is.id)
		}
		choose(ids)
		rate(0.9)
		f.codes = rcodes("91", "96", "91")
	case "fraud_attack":
		f.scope, f.exp.Kind = event.ScopeMerchant, "fraud_attack"
		pickMerchant(1)
		rate(0.7)
		f.codes = rcodes("59", "34", "07", "65", "75", "59", "41")
		f.probesMin = 6
		f.terms = merchants[f.id]
	case "mac_errors":
		f.scope, f.exp.Kind = event.ScopeMerchant, "data_transmission"
		pickMerchant(3)
		rate(0.9)
		f.codes = tcodes("RESP_MAC_MISMATCH", "KEY_CHECK_FAIL", "MAC_CALC_FAIL")
	case "decline_spike":
		f.scope, f.exp.Kind = event.ScopeMerchant, "decline_spike"
		pickMerchant(3)
		rate(0.5)
		f.codes = rcodes("51", "61", "51", "05")
		f.exp.Notice = true // insufficient funds, over limit, do not honor: the cardholders' side
	default:
		return nil, fmt.Errorf("unknown incident type %q", inc.Type)
	}
	f.exp.ScopeType, f.exp.ScopeID = f.scope.String(), f.id
	for i := range e.terms {
		ev := event.Event{}
		if f.scope == event.ScopeIssuer || e.hits(f, &e.terms[i], &ev, true) {
			f.exp.Terminals++
		}
	}
	return f, nil
}
