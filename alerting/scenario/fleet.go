// Package scenario generates synthetic POS fleets and their transaction
// attempts, with injected incidents and the ground truth to score the
// detectors against. Everything is a parameter (fleet size, ids, traffic
// level and shape, decline noise), and a seed makes a scenario repeatable.
package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Fleet describes the synthetic estate. Zero fields take defaults.
type Fleet struct {
	Seed      uint64 `json:"seed"`
	Terminals int    `json:"terminals"`
	Merchants int    `json:"merchants"`
	Regions   int    `json:"regions"`
	Carriers  int    `json:"carriers"`
	Hosts     int    `json:"hosts"`
	Issuers   int    `json:"issuers"`
	Models    int    `json:"models"`
	// IDPrefix makes ids differ between scenarios ("LKL" → LKL-000123).
	IDPrefix string `json:"id_prefix"`
	// RegionBase is the first region code; codes step by 100 (310000, 310100...).
	RegionBase int `json:"region_base"`
	// AttemptsPerTerminalHour is the mean traffic per terminal at the
	// day's average; the daily shape scales it (quiet nights, peaks at lunch
	// and in the evening).
	AttemptsPerTerminalHour float64 `json:"attempts_per_terminal_hour"`
	// BackgroundDecline is the share of attempts declined for ordinary
	// reasons (insufficient funds, wrong PIN, expired card...).
	BackgroundDecline float64 `json:"background_decline"`
	// BackgroundFailure is the share of attempts failing for ordinary
	// technical reasons (an odd timeout, a chip misread) spread over the fleet.
	BackgroundFailure float64 `json:"background_failure"`
	// Scheme is "cup", "iso8583" or "mixed".
	Scheme string `json:"scheme"`
}

func (f Fleet) withDefaults() Fleet {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&f.Terminals, 3000)
	def(&f.Merchants, f.Terminals/4+1)
	def(&f.Regions, 12)
	def(&f.Carriers, 3)
	def(&f.Hosts, 4)
	def(&f.Issuers, 10)
	def(&f.Models, 4)
	def(&f.RegionBase, 310000)
	if f.IDPrefix == "" {
		f.IDPrefix = "T"
	}
	if f.AttemptsPerTerminalHour <= 0 {
		f.AttemptsPerTerminalHour = 20
	}
	if f.BackgroundDecline <= 0 {
		f.BackgroundDecline = 0.06
	}
	if f.BackgroundFailure <= 0 {
		f.BackgroundFailure = 0.01
	}
	if f.Scheme == "" {
		f.Scheme = "mixed"
	}
	return f
}

// Terminal is one synthetic device and the scopes it belongs to.
type Terminal struct {
	ID, Merchant, Region, Carrier, Network, Host, Acquirer, Model, Firmware string
	Scheme                                                                  string
	weight                                                                  float64
}

type issuer struct {
	id   string
	bins []string
}

// estate is a built fleet.
type estate struct {
	f         Fleet
	terms     []Terminal
	cum       []float64 // cumulative terminal weights
	issuers   []issuer
	issuerCum []float64
	regions   []string
	carriers  []string
	hosts     []string
	models    [][2]string
}

var carrierNames = []string{"CMCC", "CUCC", "CTCC", "CBN", "PCCW", "SMT", "HKT", "CSL"}
var issuerNames = []string{"ICBC", "ABC", "BOC", "CCB", "BOCOM", "CMB", "CITIC", "CEB", "HXB", "CMBC", "GDB", "SPDB", "PAB", "CIB", "PSBC", "BOS"}
var modelNames = []string{"A8", "P2", "N910", "V2PRO", "X990", "S920", "Q7", "L3"}

func build(f Fleet) *estate {
	f = f.withDefaults()
	rng := rand.New(rand.NewPCG(f.Seed, 0x5eed))
	e := &estate{f: f}
	for i := 0; i < f.Regions; i++ {
		e.regions = append(e.regions, fmt.Sprint(f.RegionBase+100*i))
	}
	for i := 0; i < f.Carriers; i++ {
		name := carrierNames[i%len(carrierNames)]
		if i >= len(carrierNames) {
			name = fmt.Sprintf("%s%d", name, i/len(carrierNames))
		}
		e.carriers = append(e.carriers, name)
	}
	for i := 0; i < f.Hosts; i++ {
		e.hosts = append(e.hosts, fmt.Sprintf("%s-fe-%d", lower(f.IDPrefix), i+1))
	}
	for i := 0; i < f.Models; i++ {
		m := modelNames[i%len(modelNames)]
		e.models = append(e.models, [2]string{m, fmt.Sprintf("%d.%d.%d", 2+i%3, i%5, 1+rng.IntN(9))})
	}
	total := 0.0
	for i := 0; i < f.Issuers; i++ {
		name := issuerNames[i%len(issuerNames)]
		if i >= len(issuerNames) {
			name = fmt.Sprintf("%s%d", name, i/len(issuerNames))
		}
		is := issuer{id: name}
		for j := 0; j < 3; j++ {
			is.bins = append(is.bins, fmt.Sprintf("62%04d", rng.IntN(10000)))
		}
		e.issuers = append(e.issuers, is)
		total += 1 / float64(i+1) // Zipf-like market share
		e.issuerCum = append(e.issuerCum, total)
	}
	acquirers := []string{f.IDPrefix + "ACQ"}
	total = 0
	for i := 0; i < f.Terminals; i++ {
		regionIdx := rng.IntN(len(e.regions))
		t := Terminal{
			ID:       fmt.Sprintf("%s-%06d", f.IDPrefix, i+1),
			Merchant: fmt.Sprintf("M-%s-%05d", f.IDPrefix, rng.IntN(f.Merchants)+1),
			Region:   e.regions[regionIdx],
			Acquirer: acquirers[0],
		}
		// Wired terminals (a quarter) have no mobile carrier.
		if rng.Float64() < 0.25 {
			t.Network = []string{"ethernet", "wifi"}[rng.IntN(2)]
			t.Carrier = e.carriers[rng.IntN(len(e.carriers))] + "-BB"
		} else {
			t.Network = []string{"4g", "4g", "4g", "5g"}[rng.IntN(4)]
			t.Carrier = e.carriers[rng.IntN(len(e.carriers))]
		}
		// Each region is served by two hosts; every host serves several regions.
		h := (regionIdx + rng.IntN(2)) % len(e.hosts)
		t.Host = e.hosts[h]
		m := e.models[rng.IntN(len(e.models))]
		t.Model, t.Firmware = m[0], m[1]
		switch f.Scheme {
		case "cup", "iso8583":
			t.Scheme = f.Scheme
		default:
			t.Scheme = []string{"cup", "cup", "iso8583"}[rng.IntN(3)]
		}
		t.weight = math.Exp(rng.NormFloat64() * 0.5) // some tills are busier
		total += t.weight
		e.terms = append(e.terms, t)
		e.cum = append(e.cum, total)
	}
	// Normalise weights so the mean terminal sees AttemptsPerTerminalHour.
	for i := range e.terms {
		e.terms[i].weight *= float64(len(e.terms)) / total
	}
	return e
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// dailyShape is the relative traffic level by hour of day (mean 1): quiet
// nights, a lunch peak and an evening peak.
var dailyShape = func() [24]float64 {
	raw := [24]float64{0.15, 0.08, 0.05, 0.04, 0.05, 0.1, 0.3, 0.7, 1.0, 1.1, 1.2, 1.6, 2.0, 1.7, 1.2, 1.1, 1.2, 1.5, 1.9, 2.0, 1.7, 1.2, 0.7, 0.35}
	sum := 0.0
	for _, v := range raw {
		sum += v
	}
	for i := range raw {
		raw[i] *= 24 / sum
	}
	return raw
}()

func shapeAt(t time.Time) float64 {
	h := t.Hour()
	frac := float64(t.Minute()*60+t.Second()) / 3600
	return dailyShape[h]*(1-frac) + dailyShape[(h+1)%24]*frac
}

func pick(cum []float64, rng *rand.Rand) int {
	x := rng.Float64() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Terminals returns the scenario fleet's terminals.
func (s Scenario) Terminals() []Terminal {
	return append([]Terminal(nil), build(s.Fleet).terms...)
}
