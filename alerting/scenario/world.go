package scenario

// A World is the second generator of this package. Scenario (generate.go)
// shares the detector's model of the world: constant independent rates,
// clean step faults, busy failing terminals, events in order. A World is
// written from how fleets behave (shared/reference/fleet-realities.md):
// heavy-tailed volumes by merchant category, per-terminal failure and
// decline rates, regions keeping different hours, weekends and a holiday,
// late and batched delivery, store-and-forward backlogs, wrong clocks,
// degrading readers, staged firmware rollouts and partial outages. Its
// faults carry the ground truth the Must-shows of issue #14 are scored
// against (world_score.go).

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// World is a fleet, a span of whole days and the faults in it.
type World struct {
	Name string `json:"name"`
	Seed uint64 `json:"seed"`
	// Terminals is the fleet size; merchants (with one to a dozen tills
	// each) are drawn until it is reached.
	Terminals int `json:"terminals"`
	Regions   int `json:"regions"`
	Carriers  int `json:"carriers"`
	Issuers   int `json:"issuers"`
	// IDPrefix makes ids differ between worlds ("SR" → SR-000123).
	IDPrefix string `json:"id_prefix"`
	// RegionBase is the first region code; codes step by 100.
	RegionBase int `json:"region_base"`
	// Start is local midnight of the first day; Days whole days follow.
	Start time.Time `json:"start"`
	Days  int       `json:"days"`
	// Holidays are day indexes (0-based) of public holidays: two to three
	// times the traffic, the usual decline mix.
	Holidays []int        `json:"holidays,omitempty"`
	Faults   []WorldFault `json:"faults,omitempty"`
	Clocks   ClockNoise   `json:"clocks"`
	// Quiet: nothing in the world may page (the quiet week Must-show).
	Quiet bool `json:"quiet,omitempty"`
	// PairedClocks: the world is also generated with correct clocks and
	// must raise the same paging incidents at the same times (the wrong
	// clock Must-show).
	PairedClocks bool `json:"paired_clocks,omitempty"`
	// CorrectClocks generates every timestamp right (the paired run);
	// nothing else changes, not even the order of arrival.
	CorrectClocks bool `json:"correct_clocks,omitempty"`
}

// WorldFault is one injected root cause. Times are local time of day on
// day Day (0-based).
type WorldFault struct {
	// Type: hardware_ramp, hardware_step, staged_firmware,
	// carrier_in_region, silent_region, flash_sale, host_outage.
	Type string   `json:"type"`
	Day  int      `json:"day"`
	At   Duration `json:"at"`
	// For is how long the fault lasts; for hardware_ramp, how long the
	// reader takes to degrade from 5% to 70% (it then stays there).
	For Duration `json:"for"`
	// PerHour (hardware faults): the terminal is chosen to carry about
	// this many attempts an hour at the reference time, which is placed
	// near At.
	PerHour float64 `json:"per_hour,omitempty"`
	// Model (staged_firmware): the model rolled out; default the till
	// model of supermarkets and chain restaurants, busy enough for a
	// cohort of ten to show a defect within the goal.
	Model string `json:"model,omitempty"`
}

// ClockNoise is how many terminals carry wrong clocks.
type ClockNoise struct {
	// RebootResets is the share of terminals per day whose daily reboot
	// (about 04:00 local) brings them back with a default or wrong date
	// until they sync 5-45 minutes later.
	RebootResets float64 `json:"reboot_resets"`
	// DaytimeResets is the share per day losing power in business hours
	// and coming back the same way.
	DaytimeResets float64 `json:"daytime_resets"`
	// Permanent terminals run a wrong clock all along (+2 days, +1 year,
	// -1 year, RTC kept in local time, ...).
	Permanent int `json:"permanent"`
	// NTPPush, when Share > 0: a bad time server sends Share of one
	// region's terminals back 1024 weeks (a GPS week rollover) on Day from
	// From to To local time.
	NTPPush NTPPush `json:"ntp_push"`
}

// NTPPush is a bad time source hitting many terminals of one region.
type NTPPush struct {
	Share float64  `json:"share"`
	Day   int      `json:"day"`
	From  Duration `json:"from"`
	To    Duration `json:"to"`
}

var worldLoc = time.FixedZone("+08:00", 8*3600)

// WithCorrectClocks returns the world with every clock right: the same
// attempts, outcomes and arrival order.
func (w World) WithCorrectClocks() World {
	w.CorrectClocks = true
	return w
}

// End is the end of the world's last day.
func (w World) End() time.Time { return w.Start.AddDate(0, 0, w.Days) }

func (w World) withDefaults() World {
	w.Terminals = cmp.Or(w.Terminals, 3000)
	w.Regions = cmp.Or(w.Regions, 10)
	w.Carriers = min(cmp.Or(w.Carriers, 3), len(carrierNames))
	w.Issuers = min(cmp.Or(w.Issuers, 14), len(issuerNames))
	w.IDPrefix = cmp.Or(w.IDPrefix, "W")
	w.RegionBase = cmp.Or(w.RegionBase, 310000)
	w.Days = cmp.Or(w.Days, 1)
	if w.Start.IsZero() {
		w.Start = time.Date(2026, 11, 23, 0, 0, 0, 0, worldLoc)
	}
	return w
}

// Worlds is the standard set: every fault kind in a fleet of its own
// (sizes, ids, region codes, seeds and start days differ), the wrong
// clock day, and a quiet week of 10,000 terminals.
func Worlds() []World {
	at := func(h, m int) Duration { return Duration(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	bg := ClockNoise{RebootResets: 0.01, DaytimeResets: 0.001, Permanent: 3}
	ramps := func(day int) []WorldFault {
		return []WorldFault{
			{Type: "hardware_ramp", Day: day, At: at(10, 30), For: at(2, 0), PerHour: 5},
			{Type: "hardware_ramp", Day: day, At: at(12, 30), For: at(1, 30), PerHour: 15},
			{Type: "hardware_ramp", Day: day, At: at(15, 0), For: at(3, 0), PerHour: 30},
			{Type: "hardware_ramp", Day: day, At: at(12, 0), For: at(1, 0), PerHour: 60},
			{Type: "hardware_ramp", Day: day, At: at(18, 0), For: at(2, 0), PerHour: 150},
			{Type: "hardware_step", Day: day, At: at(16, 30), PerHour: 30},
		}
	}
	return []World{
		{Name: "hardware-ramps-a", Seed: 101, Terminals: 3000, Regions: 10, IDPrefix: "HWA", RegionBase: 110000,
			Start: time.Date(2026, 11, 24, 0, 0, 0, 0, worldLoc), Days: 2, Clocks: bg, Faults: ramps(1)},
		{Name: "hardware-ramps-b", Seed: 202, Terminals: 2000, Regions: 7, Carriers: 4, IDPrefix: "HWB", RegionBase: 440300,
			Start: time.Date(2026, 12, 4, 0, 0, 0, 0, worldLoc), Days: 2, Clocks: bg, Faults: ramps(1)},
		{Name: "staged-firmware", Seed: 303, Terminals: 2500, Regions: 9, IDPrefix: "SF", RegionBase: 320100,
			Start: time.Date(2026, 11, 15, 0, 0, 0, 0, worldLoc), Days: 6, Clocks: bg,
			Faults: []WorldFault{{Type: "staged_firmware", Day: 1}}},
		{Name: "carrier-in-city", Seed: 404, Terminals: 3000, Regions: 12, Carriers: 4, IDPrefix: "CC", RegionBase: 330100,
			Start: time.Date(2026, 11, 25, 0, 0, 0, 0, worldLoc), Days: 2, Clocks: bg,
			Faults: []WorldFault{{Type: "carrier_in_region", Day: 1, At: at(10, 40), For: at(0, 30)}}},
		{Name: "silent-region", Seed: 505, Terminals: 4000, Regions: 11, IDPrefix: "SR", RegionBase: 510100,
			Start: time.Date(2026, 9, 30, 0, 0, 0, 0, worldLoc), Days: 3, Holidays: []int{1}, Clocks: bg,
			Faults: []WorldFault{{Type: "silent_region", Day: 2, At: at(11, 10), For: at(0, 40)}}},
		{Name: "flash-sale", Seed: 606, Terminals: 2500, Regions: 8, IDPrefix: "FS", RegionBase: 350200,
			Start: time.Date(2026, 11, 10, 0, 0, 0, 0, worldLoc), Days: 2, Clocks: bg,
			Faults: []WorldFault{{Type: "flash_sale", Day: 1, At: at(20, 0), For: at(1, 0)}}},
		{Name: "wrong-clocks", Seed: 707, Terminals: 2000, Regions: 6, IDPrefix: "WC", RegionBase: 350100,
			Start: time.Date(2026, 11, 26, 0, 0, 0, 0, worldLoc), Days: 2, PairedClocks: true,
			Clocks: ClockNoise{RebootResets: 0.05, DaytimeResets: 0.01, Permanent: 12,
				NTPPush: NTPPush{Share: 0.3, Day: 1, From: at(2, 0), To: at(10, 30)}},
			Faults: []WorldFault{
				{Type: "hardware_step", Day: 1, At: at(9, 40), PerHour: 60},
				{Type: "host_outage", Day: 1, At: at(10, 5), For: at(0, 20)},
			}},
		{Name: "quiet-week", Seed: 808, Terminals: 10000, Regions: 16, Carriers: 4, IDPrefix: "QW", RegionBase: 110100, Quiet: true,
			Start: time.Date(2026, 9, 28, 0, 0, 0, 0, worldLoc), Days: 7, Holidays: []int{3},
			Clocks: ClockNoise{RebootResets: 0.01, DaytimeResets: 0.001, Permanent: 8},
			Faults: []WorldFault{
				{Type: "flash_sale", Day: 2, At: at(12, 0), For: at(1, 0)},
				{Type: "flash_sale", Day: 5, At: at(20, 0), For: at(1, 0)},
			}},
	}
}

// FindWorld returns the standard world called name.
func FindWorld(name string) (World, error) {
	for _, w := range Worlds() {
		if w.Name == name {
			return w, nil
		}
	}
	var names []string
	for _, w := range Worlds() {
		names = append(names, w.Name)
	}
	return World{}, fmt.Errorf("no world %q (worlds: %v)", name, names)
}

// Merchant categories. Rates are attempts per till per hour at the
// category's peak hour on a weekday; shapes are relative to that peak.
type category struct {
	name       string
	share      float64    // share of merchants
	tills      [2]int     // tills per merchant, uniform in [lo, hi]
	peakMedian float64    // lognormal median of the peak rate
	peakSigma  float64    // lognormal spread within the category
	peakClamp  [2]float64 // realistic bounds
	shape      [24]float64
	week       [7]float64 // Monday..Sunday
	holiday    float64
	decline    float64    // customer-side decline share
	entry      [4]float64 // chip, contactless, swipe, qr
	wired      float64    // share on ethernet/wifi
	burstK     float64    // gamma shape of the hourly busy factor (low = bursty)
	saf        float64    // share able to store and forward
	alwaysOn   float64    // share powered at night
	handheld   bool       // own printer and battery
	models     []int      // preferred models (index into worldModels)
}

const (
	catSmallShop = iota
	catRestaurant
	catServices
	catNightlife
	catChainRestaurant
	catFuel
	catSupermarket
	numCategories
)

var categories = [numCategories]category{
	catSmallShop: {name: "small_shop", share: 0.62, tills: [2]int{1, 1}, peakMedian: 5, peakSigma: 0.6, peakClamp: [2]float64{0.8, 14},
		shape: [24]float64{0, 0, 0, 0, 0, 0, 0.02, 0.15, 0.45, 0.6, 0.7, 0.8, 0.9, 0.75, 0.65, 0.7, 0.8, 0.9, 1, 0.95, 0.7, 0.35, 0.08, 0.01},
		week:  [7]float64{1, 1, 1, 1, 1.05, 1.15, 1.1}, holiday: 2.0, decline: 0.045, entry: [4]float64{0.30, 0.25, 0.08, 0.37},
		wired: 0.1, burstK: 1, saf: 0.45, alwaysOn: 0.2, handheld: true, models: []int{0, 1, 2, 3}},
	catRestaurant: {name: "restaurant", share: 0.14, tills: [2]int{1, 2}, peakMedian: 14, peakSigma: 0.5, peakClamp: [2]float64{3, 40},
		shape: [24]float64{0.05, 0.02, 0, 0, 0, 0, 0.02, 0.1, 0.15, 0.1, 0.2, 0.7, 1, 0.7, 0.2, 0.1, 0.15, 0.5, 0.9, 1, 0.6, 0.3, 0.12, 0.08},
		week:  [7]float64{0.9, 0.9, 0.9, 1, 1.2, 1.3, 1.2}, holiday: 2.5, decline: 0.04, entry: [4]float64{0.35, 0.30, 0.07, 0.28},
		wired: 0.3, burstK: 2, saf: 0.6, alwaysOn: 0.3, handheld: true, models: []int{0, 1, 3}},
	catServices: {name: "services", share: 0.09, tills: [2]int{1, 2}, peakMedian: 4, peakSigma: 0.5, peakClamp: [2]float64{1, 10},
		shape: [24]float64{0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.7, 0.9, 1, 0.8, 0.7, 0.9, 1, 0.95, 0.8, 0.5, 0.2, 0.05, 0, 0, 0},
		week:  [7]float64{1, 1, 1, 1, 1, 0.7, 0.4}, holiday: 0.6, decline: 0.05, entry: [4]float64{0.40, 0.25, 0.10, 0.25},
		wired: 0.3, burstK: 1.5, saf: 0.5, alwaysOn: 0.1, handheld: true, models: []int{0, 1, 2}},
	catNightlife: {name: "nightlife", share: 0.05, tills: [2]int{1, 3}, peakMedian: 22, peakSigma: 0.5, peakClamp: [2]float64{5, 60},
		shape: [24]float64{0.7, 0.5, 0.3, 0.12, 0.03, 0, 0, 0, 0, 0, 0, 0.02, 0.05, 0.05, 0.05, 0.05, 0.08, 0.15, 0.3, 0.5, 0.7, 0.85, 1, 0.9},
		week:  [7]float64{0.6, 0.6, 0.7, 0.8, 1.3, 1.6, 0.9}, holiday: 2.0, decline: 0.09, entry: [4]float64{0.35, 0.40, 0.05, 0.20},
		wired: 0.3, burstK: 2, saf: 0.6, alwaysOn: 0.8, handheld: true, models: []int{0, 3}},
	catChainRestaurant: {name: "chain_restaurant", share: 0.012, tills: [2]int{2, 5}, peakMedian: 75, peakSigma: 0.3, peakClamp: [2]float64{40, 150},
		shape: [24]float64{0.02, 0, 0, 0, 0, 0, 0.1, 0.3, 0.35, 0.2, 0.3, 0.8, 1, 0.7, 0.25, 0.2, 0.25, 0.6, 0.95, 0.85, 0.45, 0.2, 0.08, 0.03},
		week:  [7]float64{0.9, 0.9, 0.9, 1, 1.2, 1.3, 1.2}, holiday: 2.5, decline: 0.03, entry: [4]float64{0.25, 0.45, 0.03, 0.27},
		wired: 0.7, burstK: 4, saf: 0.9, alwaysOn: 0.6, models: []int{4, 4, 6}},
	catFuel: {name: "fuel", share: 0.008, tills: [2]int{2, 6}, peakMedian: 80, peakSigma: 0.35, peakClamp: [2]float64{35, 180},
		shape: [24]float64{0.1, 0.06, 0.05, 0.05, 0.08, 0.2, 0.45, 0.8, 0.9, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.65, 0.75, 0.9, 1, 0.85, 0.6, 0.4, 0.25, 0.15},
		week:  [7]float64{1, 1, 1, 1, 1.1, 1, 0.9}, holiday: 2.2, decline: 0.035, entry: [4]float64{0.45, 0.30, 0.10, 0.15},
		wired: 0.7, burstK: 4, saf: 0.9, alwaysOn: 1, models: []int{5, 6}},
	catSupermarket: {name: "supermarket", share: 0.006, tills: [2]int{3, 10}, peakMedian: 110, peakSigma: 0.35, peakClamp: [2]float64{60, 220},
		shape: [24]float64{0.01, 0, 0, 0, 0, 0, 0.03, 0.2, 0.4, 0.55, 0.7, 0.8, 0.75, 0.6, 0.55, 0.6, 0.75, 0.95, 1, 0.9, 0.7, 0.45, 0.15, 0.02},
		week:  [7]float64{0.9, 0.9, 0.9, 0.95, 1.1, 1.4, 1.3}, holiday: 2.8, decline: 0.055, entry: [4]float64{0.35, 0.40, 0.05, 0.20},
		wired: 0.8, burstK: 6, saf: 0.95, alwaysOn: 0.9, models: []int{4, 4, 4, 5}},
}

// Entry modes in the order of category.entry, then the ones only retries use.
const (
	modeChip = iota
	modeContactless
	modeSwipe
	modeQR
	modeFallback
	numModes
)

var modeNames = [numModes]string{"chip", "contactless", "swipe", "qr", "fallback"}

// cardMode: read by the card reader (a failing reader fails it).
func cardMode(m uint8) bool { return m != modeQR }

// worldModels: handhelds (own printer, battery) first, then countertop /
// integrated PIN pads used at tills. Firmware lists run oldest to newest;
// versions drift across earlier rollout batches.
var worldModels = []struct {
	name string
	fw   []string
}{
	{"A8", []string{"3.0.7", "3.1.2", "3.2.1"}},
	{"N910", []string{"2.4.0", "2.5.3"}},
	{"P2", []string{"1.8.9", "1.9.4", "2.0.1"}},
	{"Q7", []string{"5.1.0", "5.2.2"}},
	{"X990", []string{"4.0.3", "4.1.0"}}, // tillModel
	{"S920", []string{"6.2.0", "6.3.1", "6.3.4"}},
	{"V2PRO", []string{"2.7.5", "2.8.0"}},
}

// tillModel is the integrated PIN pad of supermarket and chain restaurant
// tills (fuel stations, open all night, use others).
const tillModel = 4

// wTerm is one terminal of a world and its behaviour.
type wTerm struct {
	Terminal
	cat, region, merchant int
	model                 int
	fws                   []string // firmware strings this terminal may carry (index in records)
	fw                    uint8    // current firmware index
	peak                  float64  // attempts/h at its category's peak hour on a weekday
	entryCum              [4]float64
	cardShare             float64
	hwFail, netFail       float64 // background per-attempt technical failure shares
	flaky, weak           bool    // flaky-but-stable reader, weak-signal site
	signal                int32   // site RSSI (mobile)
	delivery              uint8
	batchPeriod           int64 // ns, for batch uploaders
	batchPhase            int64
	saf, alwaysOn         bool
	paperLeft             int // receipts left on the roll (handhelds)
	// generation state
	burst       float64
	seq         uint32
	pendingFw   uint8 // firmware to switch to at the first attempt after pendingFrom
	pendingFrom int64
	clocks      []clockFault
}

const (
	deliverRealtime = iota
	deliverBatch
	deliverFlaky
)

type wMerchant struct {
	id      string
	cat     int
	region  int
	terms   []int
	decline float64
}

type wRegion struct {
	code      string
	shift     int // minutes the region's day is shifted (regions keep different hours)
	nightlife bool
	carrierW  []float64 // carrier shares in the region
	hosts     [2]int
	weight    float64
}

type wIssuer struct {
	id   string
	bins []string
	cum  float64
}

// wEstate is a built world.
type wEstate struct {
	w         World
	terms     []wTerm
	merchants []wMerchant
	regions   []wRegion
	carriers  []string
	hosts     []string
	issuers   []wIssuer
	holiday   []bool // per day
}

func buildWorld(w World) *wEstate {
	w = w.withDefaults()
	rng := rand.New(rand.NewPCG(w.Seed, 0xe57a7e))
	e := &wEstate{w: w, holiday: make([]bool, w.Days)}
	for _, d := range w.Holidays {
		if d >= 0 && d < w.Days {
			e.holiday[d] = true
		}
	}
	e.carriers = carrierNames[:w.Carriers]
	// National carrier shares: one dominant, the rest smaller.
	national := []float64{0.5, 0.28, 0.17, 0.05, 0.04, 0.03, 0.02, 0.01}[:w.Carriers]
	nHosts := max(2, w.Regions/2+1)
	for i := range nHosts {
		e.hosts = append(e.hosts, fmt.Sprintf("%s-fe-%d", lower(w.IDPrefix), i+1))
	}
	shifts := []int{-120, -60, 0, 0, 0, 0, 60, 120}
	for i := range w.Regions {
		r := wRegion{code: fmt.Sprint(w.RegionBase + 100*i), shift: shifts[rng.IntN(len(shifts))], nightlife: rng.Float64() < 0.2}
		if r.nightlife {
			r.shift = max(r.shift, 60)
		}
		for _, s := range national {
			r.carrierW = append(r.carrierW, s*math.Exp(0.5*rng.NormFloat64()))
		}
		r.hosts = [2]int{i % nHosts, (i + 1 + rng.IntN(nHosts-1)) % nHosts}
		// Region sizes are heavy-tailed too: a capital and many towns.
		r.weight = math.Pow(float64(i+1), -0.8) * math.Exp(0.3*rng.NormFloat64())
		e.regions = append(e.regions, r)
	}
	rng.Shuffle(len(e.regions), func(i, j int) { e.regions[i].weight, e.regions[j].weight = e.regions[j].weight, e.regions[i].weight })
	regionCum := cumulative(len(e.regions), func(i int) float64 { return e.regions[i].weight })
	total := 0.0
	for i := range w.Issuers {
		is := wIssuer{id: issuerNames[i]}
		for range 3 + rng.IntN(4) {
			if rng.IntN(4) == 0 {
				is.bins = append(is.bins, fmt.Sprintf("62%06d", rng.IntN(1000000)))
			} else {
				is.bins = append(is.bins, fmt.Sprintf("62%04d", rng.IntN(10000)))
			}
		}
		total += 1 / math.Pow(float64(i+1), 0.9)
		is.cum = total
		e.issuers = append(e.issuers, is)
	}
	acquirer := w.IDPrefix + "ACQ"
	for len(e.terms) < w.Terminals {
		ri := pick(regionCum, rng)
		reg := &e.regions[ri]
		ci := pickCategory(rng, reg.nightlife)
		c := &categories[ci]
		m := wMerchant{id: fmt.Sprintf("M-%s-%05d", w.IDPrefix, len(e.merchants)+1), cat: ci, region: ri,
			decline: c.decline * math.Exp(0.3*rng.NormFloat64())}
		n := c.tills[0] + rng.IntN(c.tills[1]-c.tills[0]+1)
		if ci == catSmallShop && rng.Float64() < 0.12 {
			n = 2
		}
		wired := rng.Float64() < c.wired
		carrier := pickWeighted(rng, reg.carrierW)
		mi := len(e.merchants)
		for range n {
			if len(e.terms) >= w.Terminals {
				break
			}
			t := wTerm{cat: ci, region: ri, merchant: mi}
			t.ID = fmt.Sprintf("%s-%06d", w.IDPrefix, len(e.terms)+1)
			t.Merchant, t.Region, t.Acquirer = m.id, reg.code, acquirer
			if wired {
				t.Network = []string{"ethernet", "ethernet", "wifi"}[rng.IntN(3)]
				t.Carrier = e.carriers[carrier] + "-BB"
			} else {
				t.Network = []string{"4g", "4g", "4g", "4g", "4g", "4g", "5g", "5g", "gprs"}[rng.IntN(9)]
				if rng.Float64() < 0.15 { // a till on another SIM than its neighbours
					t.Carrier = e.carriers[pickWeighted(rng, reg.carrierW)]
				} else {
					t.Carrier = e.carriers[carrier]
				}
				t.signal = int32(-72 - rng.IntN(30))
			}
			if rng.Float64() < 0.75 {
				t.Host = e.hosts[reg.hosts[0]]
			} else {
				t.Host = e.hosts[reg.hosts[1]]
			}
			t.model = c.models[rng.IntN(len(c.models))]
			t.fws = worldModels[t.model].fw
			// Newest firmware on most terminals, older versions drift on.
			t.fw = uint8(len(t.fws) - 1)
			if x := rng.Float64(); x < 0.3 && len(t.fws) > 1 {
				t.fw = uint8(len(t.fws) - 2)
				if x < 0.08 && len(t.fws) > 2 {
					t.fw = uint8(len(t.fws) - 3)
				}
			}
			t.Model, t.Firmware = worldModels[t.model].name, t.fws[t.fw]
			t.Scheme = "cup"
			if rng.Float64() < 0.2 {
				t.Scheme = "iso8583"
			}
			t.peak = min(max(c.peakMedian*math.Exp(c.peakSigma*rng.NormFloat64()), c.peakClamp[0]), c.peakClamp[1])
			var mix [4]float64
			sum := 0.0
			for k := range mix {
				mix[k] = c.entry[k] * math.Exp(0.25*rng.NormFloat64())
				sum += mix[k]
			}
			acc := 0.0
			for k := range mix {
				acc += mix[k] / sum
				t.entryCum[k] = acc
			}
			t.cardShare = 1 - mix[modeQR]/sum
			// Background failures: most terminals 0.3-1% technical failures
			// all told; a few readers flaky at 3-6% all week, a few sites
			// with weak radio. Stable conditions, not incidents.
			t.hwFail = min(0.0025*math.Exp(0.5*rng.NormFloat64()), 0.008)
			t.netFail = min(0.002*math.Exp(0.5*rng.NormFloat64()), 0.006)
			if rng.Float64() < 0.015 {
				t.flaky = true
				t.hwFail = 0.03 + 0.03*rng.Float64()
			}
			if t.signal != 0 && rng.Float64() < 0.01 {
				t.weak = true
				t.netFail = 0.015 + 0.015*rng.Float64()
				t.signal = int32(-106 - rng.IntN(8))
			}
			switch x := rng.Float64(); {
			case x < 0.08:
				t.delivery = deliverBatch
				t.batchPeriod = int64(2*time.Minute) + rng.Int64N(int64(4*time.Minute))
				t.batchPhase = rng.Int64N(t.batchPeriod)
			case x < 0.15:
				t.delivery = deliverFlaky
			}
			t.saf = rng.Float64() < c.saf
			t.alwaysOn = rng.Float64() < c.alwaysOn
			if c.handheld {
				t.paperLeft = rng.IntN(250)
			}
			t.burst = 1
			m.terms = append(m.terms, len(e.terms))
			e.terms = append(e.terms, t)
		}
		e.merchants = append(e.merchants, m)
	}
	return e
}

func pickCategory(rng *rand.Rand, nightlife bool) int {
	x := rng.Float64()
	if nightlife {
		x *= 1.15 // a nightlife district: three times the bars
		if x >= 1 {
			return catNightlife
		}
	}
	for i, c := range categories {
		if x < c.share {
			return i
		}
		x -= c.share
	}
	return catSmallShop
}

func pickWeighted(rng *rand.Rand, w []float64) int {
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	x := rng.Float64() * sum
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func cumulative(n int, f func(int) float64) []float64 {
	out := make([]float64, n)
	acc := 0.0
	for i := range n {
		acc += f(i)
		out[i] = acc
	}
	return out
}

// factor is the relative traffic of category c in region r at true time
// ns (without the hourly busy factor): the category's shape at the
// region's shifted hour, the weekday, a holiday.
func (e *wEstate) factor(c, r int, ns int64) float64 {
	t := time.Unix(0, ns).In(worldLoc)
	day := int(t.Sub(e.w.Start) / (24 * time.Hour))
	mod := t.Hour()*60 + t.Minute() - e.regions[r].shift
	mod = ((mod % 1440) + 1440) % 1440
	h, frac := mod/60, float64(mod%60)/60
	cat := &categories[c]
	f := cat.shape[h]*(1-frac) + cat.shape[(h+1)%24]*frac
	f *= cat.week[(int(t.Weekday())+6)%7]
	if day >= 0 && day < len(e.holiday) && e.holiday[day] {
		f *= cat.holiday
	}
	return f
}

// expectedRate is terminal ti's attempts/h at ns, as the world means it
// (before the hourly busy factor and any fault's surge).
func (e *wEstate) expectedRate(ti int, ns int64) float64 {
	t := &e.terms[ti]
	return t.peak * e.factor(t.cat, t.region, ns)
}

// dayAt is local time of day at on day d.
func (e *wEstate) dayAt(d int, at Duration) int64 {
	return e.w.Start.AddDate(0, 0, d).Add(time.Duration(at)).UnixNano()
}

// rateOf is the expected attempts/h at ns of the terminals keep accepts
// (nil: all).
func (e *wEstate) rateOf(ns int64, keep func(*wTerm) bool) float64 {
	sum := 0.0
	for i := range e.terms {
		if keep == nil || keep(&e.terms[i]) {
			sum += e.expectedRate(i, ns)
		}
	}
	return sum
}

// sortedIDs returns the ids of terminals idx, sorted.
func (e *wEstate) sortedIDs(idx []int) []string {
	out := make([]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, e.terms[i].ID)
	}
	slices.Sort(out)
	return out
}
