package alerting

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Config tunes detection. The zero value of every field means "use the
// default"; Defaults documents them.
type Config struct {
	// Tick is how often, in event time, the detectors evaluate.
	Tick time.Duration `yaml:"tick" json:"tick"`
	// Lateness is how long, in event time, evaluation waits behind the
	// newest event for stragglers before it judges a tick.
	Lateness time.Duration `yaml:"lateness" json:"lateness"`
	// MaxLate is how far behind the last evaluated tick an event may
	// arrive and still count: a store-and-forward upload lands in its
	// own buckets, which the windows evaluated after it arrives include.
	// Older events are counted as late, not detected on.
	MaxLate time.Duration `yaml:"max_late" json:"max_late"`
	// Alpha is the significance level of the binomial test.
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// TerminalAlpha is the significance level for single terminals and
	// model/firmware cohorts. Terminals are nearly all the scopes tested,
	// and cohorts are tested at every tick on thin minutes, so they need a
	// stricter level for the same false-alarm rate per week (a
	// Bonferroni-style correction).
	TerminalAlpha float64 `yaml:"terminal_alpha" json:"terminal_alpha"`
	// GroupWindow is the detection window for fleet scopes (region,
	// carrier, network, host, acquirer, issuer, model cohort); a carrier
	// within a region (region+carrier) is judged on five of them.
	GroupWindow time.Duration `yaml:"group_window" json:"group_window"`
	// MerchantWindow is the detection window for a merchant's overall
	// decline rate (decline_spike): long enough for small merchants to
	// give evidence.
	MerchantWindow time.Duration `yaml:"merchant_window" json:"merchant_window"`
	// MerchantSurgeWindow is the window for fraud and MAC/key surges at a
	// merchant, at most MerchantWindow.
	MerchantSurgeWindow time.Duration `yaml:"merchant_surge_window" json:"merchant_surge_window"`
	// TerminalWindow is the detection window for terminals, which see few
	// attempts each.
	TerminalWindow time.Duration `yaml:"terminal_window" json:"terminal_window"`
	// BaselineHalfLife is how quickly a scope's learned rates forget, in
	// event time during which the scope had traffic.
	BaselineHalfLife time.Duration `yaml:"baseline_half_life" json:"baseline_half_life"`
	// PriorWeight is how many attempts of fleet-wide (peer) behaviour a
	// scope's baseline starts with; young scopes borrow their peers' rates.
	PriorWeight float64 `yaml:"prior_weight" json:"prior_weight"`
	// MinBaseline floors every baseline rate, so a scope that never failed
	// is not alarmed by its first failures.
	MinBaseline float64 `yaml:"min_baseline" json:"min_baseline"`
	// IdleTTL evicts scopes that saw no traffic for this long. Two days
	// keep a shop's learned rates over its closed nights and a closed
	// Sunday: evicted, a terminal would start every morning knowing
	// nothing about itself.
	IdleTTL time.Duration `yaml:"idle_ttl" json:"idle_ttl"`
	// MaxScopes caps the scopes (terminals, merchants, regions, issuers,
	// model cohorts...) held at once, so a producer inventing ids cannot
	// grow memory for the IdleTTL it takes idle eviction to catch up. Past
	// the cap the engine evicts down to 90% of it: never a scope with a
	// firing or pending alert or one that was a candidate at the last two
	// evaluations; among the rest, least recently seen (event time) first.
	// A scope costs about 650 bytes (BenchmarkEngineMemory: 1M terminals
	// make 1.25M scopes in 0.81 GB), so the default of 2,000,000 bounds
	// scope state near 1.3 GB and holds a 1M-terminal fleet with its
	// merchants with 60% to spare. Size it to about 1.5x the scopes held on
	// a normal day (Stats.Scopes, the declinemon_detector_scopes gauge).
	MaxScopes int `yaml:"max_scopes" json:"max_scopes"`
	// MaxRecords bounds the failure records kept for attribution; beyond
	// it the oldest are dropped and counted.
	MaxRecords int `yaml:"max_records" json:"max_records"`
	// Rules overrides thresholds per kind, keyed by kind name.
	Rules map[string]RuleConfig `yaml:"rules" json:"rules"`
	// Maintenance declares windows during which incidents in a scope are
	// recorded but do not page.
	Maintenance []MaintenanceWindow `yaml:"maintenance" json:"maintenance"`
	// ScheduledCodes are response codes of scheduled work that the
	// network announces, default ["90"]: the nightly date switch (CUP 90,
	// ISO 8583 90 "cut-over in progress"). Detection counts such attempts
	// but not as failures, so the switch does not page every night. An
	// empty list turns it off.
	ScheduledCodes []string `yaml:"scheduled_codes" json:"scheduled_codes"`
	// Labels are added to every alert (e.g. environment, team).
	Labels map[string]string `yaml:"labels" json:"labels"`
	// Location is the time zone alert texts give times in, with its UTC
	// offset shown ("since 09:41 +08:00"): the business time zone, which
	// the caller sets (pipeline: the top-level business_timezone). Nil
	// means UTC. Alert record fields stay RFC 3339 in UTC.
	Location *time.Location `yaml:"-" json:"-"`
}

// RuleConfig holds the evidence a kind needs before it fires.
type RuleConfig struct {
	Disabled    bool    `yaml:"disabled" json:"disabled"`
	MinFailures int     `yaml:"min_failures" json:"min_failures"` // failures of the cause in the window
	MinAffected int     `yaml:"min_affected" json:"min_affected"` // distinct failing terminals (group scopes)
	MinRate     float64 `yaml:"min_rate" json:"min_rate"`         // failures/attempts
	MinRatio    float64 `yaml:"min_ratio" json:"min_ratio"`       // rate / baseline rate
	// ClearAfter is how long a firing scope must stay normal before its
	// alert resolves (hysteresis: a flapping scope stays one incident).
	ClearAfter time.Duration `yaml:"clear_after" json:"clear_after"`
	// Pending is how long a new single-terminal candidate (or, for
	// decline_spike, a merchant) must keep passing before it fires, so a
	// wider scope or a more specific kind can explain it first.
	Pending  time.Duration `yaml:"pending" json:"pending"`
	Severity string        `yaml:"severity" json:"severity"`
	Team     string        `yaml:"team" json:"team"`
}

// MaintenanceWindow is a declared window for one scope.
type MaintenanceWindow struct {
	ScopeType string    `yaml:"scope_type" json:"scope_type"`
	ScopeID   string    `yaml:"scope_id" json:"scope_id"`
	Start     time.Time `yaml:"start" json:"start"`
	End       time.Time `yaml:"end" json:"end"`
	Note      string    `yaml:"note" json:"note"`
}

// Defaults returns the configuration used for zero fields.
func Defaults() Config {
	return Config{
		Tick:                10 * time.Second,
		Lateness:            30 * time.Second,
		MaxLate:             15 * time.Minute,
		Alpha:               1e-6,
		TerminalAlpha:       1e-8,
		GroupWindow:         time.Minute,
		MerchantWindow:      15 * time.Minute,
		MerchantSurgeWindow: 5 * time.Minute,
		TerminalWindow:      15 * time.Minute,
		BaselineHalfLife:    6 * time.Hour,
		PriorWeight:         100,
		MinBaseline:         0.002,
		IdleTTL:             48 * time.Hour,
		MaxScopes:           2_000_000,
		MaxRecords:          2_000_000,
		ScheduledCodes:      []string{"90"},
		Rules: map[string]RuleConfig{
			"network_outage":    {MinFailures: 10, MinAffected: 5, MinRate: 0.2, MinRatio: 4, ClearAfter: 3 * time.Minute, Severity: "critical", Team: "network"},
			"terminal_hardware": {MinFailures: 4, MinAffected: 3, MinRate: 0.25, MinRatio: 8, ClearAfter: 20 * time.Minute, Severity: "warning", Team: "field-service"},
			"issuer_outage":     {MinFailures: 5, MinAffected: 3, MinRate: 0.15, MinRatio: 4, ClearAfter: 3 * time.Minute, Severity: "critical", Team: "payments-ops"},
			"fraud_attack":      {MinFailures: 10, MinAffected: 1, MinRate: 0.15, MinRatio: 5, ClearAfter: 10 * time.Minute, Severity: "critical", Team: "risk"},
			"data_transmission": {MinFailures: 4, MinAffected: 2, MinRate: 0.25, MinRatio: 6, ClearAfter: 15 * time.Minute, Pending: 3 * time.Minute, Severity: "warning", Team: "terminal-ops"},
			"decline_spike":     {MinFailures: 12, MinAffected: 1, MinRate: 0.3, MinRatio: 3, ClearAfter: 10 * time.Minute, Pending: 2 * time.Minute, Severity: "warning", Team: "payments-ops"},
		},
	}
}

// withDefaults fills zero fields from Defaults.
func (c Config) withDefaults() Config {
	d := Defaults()
	orDefault(&c.Tick, d.Tick)
	orDefault(&c.Lateness, d.Lateness)
	orDefault(&c.MaxLate, d.MaxLate)
	orDefault(&c.GroupWindow, d.GroupWindow)
	orDefault(&c.MerchantWindow, d.MerchantWindow)
	orDefault(&c.MerchantSurgeWindow, d.MerchantSurgeWindow)
	orDefault(&c.TerminalWindow, d.TerminalWindow)
	orDefault(&c.BaselineHalfLife, d.BaselineHalfLife)
	orDefault(&c.IdleTTL, d.IdleTTL)
	orDefault(&c.Alpha, d.Alpha)
	orDefault(&c.TerminalAlpha, min(d.TerminalAlpha, c.Alpha))
	orDefault(&c.PriorWeight, d.PriorWeight)
	orDefault(&c.MinBaseline, d.MinBaseline)
	orDefault(&c.MaxScopes, d.MaxScopes)
	orDefault(&c.MaxRecords, d.MaxRecords)
	if c.ScheduledCodes == nil {
		c.ScheduledCodes = d.ScheduledCodes
	}
	rules := make(map[string]RuleConfig, len(d.Rules))
	for k, def := range d.Rules {
		r, ok := c.Rules[k]
		if !ok {
			rules[k] = def
			continue
		}
		orDefault(&r.MinFailures, def.MinFailures)
		orDefault(&r.MinAffected, def.MinAffected)
		orDefault(&r.MinRate, def.MinRate)
		orDefault(&r.MinRatio, def.MinRatio)
		orDefault(&r.ClearAfter, def.ClearAfter)
		orDefault(&r.Pending, def.Pending)
		orDefault(&r.Severity, def.Severity)
		orDefault(&r.Team, def.Team)
		rules[k] = r
	}
	c.Rules = rules
	return c
}

// orDefault sets *v to def when *v is the zero value.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every problem with c, with the offending key named.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("detection.%s must not be negative (got %s)", name, d))
		}
	}
	pos("tick", c.Tick)
	pos("lateness", c.Lateness)
	pos("max_late", c.MaxLate)
	pos("group_window", c.GroupWindow)
	pos("merchant_window", c.MerchantWindow)
	pos("merchant_surge_window", c.MerchantSurgeWindow)
	pos("terminal_window", c.TerminalWindow)
	pos("baseline_half_life", c.BaselineHalfLife)
	pos("idle_ttl", c.IdleTTL)
	finite := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("detection.%s must be a finite number (got %g)", name, v))
		}
	}
	finite("alpha", c.Alpha)
	finite("terminal_alpha", c.TerminalAlpha)
	finite("min_baseline", c.MinBaseline)
	finite("prior_weight", c.PriorWeight)
	for k, r := range c.Rules {
		finite("rules."+k+".min_rate", r.MinRate)
		finite("rules."+k+".min_ratio", r.MinRatio)
	}
	if c.Alpha < 0 || c.Alpha >= 1 {
		errs = append(errs, fmt.Errorf("detection.alpha must be in (0, 1) (got %g)", c.Alpha))
	}
	if c.TerminalAlpha < 0 || c.TerminalAlpha >= 1 {
		errs = append(errs, fmt.Errorf("detection.terminal_alpha must be in (0, 1) (got %g)", c.TerminalAlpha))
	}
	if c.MinBaseline < 0 || c.MinBaseline >= 1 {
		errs = append(errs, fmt.Errorf("detection.min_baseline must be in [0, 1) (got %g)", c.MinBaseline))
	}
	if c.PriorWeight < 0 || c.MaxRecords < 0 {
		errs = append(errs, errors.New("detection.prior_weight and detection.max_records must not be negative"))
	}
	if c.MaxScopes < 0 {
		errs = append(errs, fmt.Errorf("detection.max_scopes must not be negative (got %d)", c.MaxScopes))
	}
	full := c.withDefaults()
	if full.Tick > full.GroupWindow {
		errs = append(errs, fmt.Errorf("detection.tick (%s) must not exceed detection.group_window (%s)", full.Tick, full.GroupWindow))
	}
	for k, r := range c.Rules {
		if _, ok := ParseKind(k); !ok {
			errs = append(errs, fmt.Errorf("detection.rules.%s: unknown alert kind", k))
		}
		if r.MinRate < 0 || r.MinRate > 1 || r.MinRatio < 0 || r.MinFailures < 0 || r.MinAffected < 0 {
			errs = append(errs, fmt.Errorf("detection.rules.%s: thresholds must be non-negative and min_rate at most 1", k))
		}
	}
	for i, m := range c.Maintenance {
		if _, ok := event.ParseScopeType(m.ScopeType); !ok {
			errs = append(errs, fmt.Errorf("detection.maintenance[%d].scope_type %q is not a scope type", i, m.ScopeType))
		}
		if m.ScopeID == "" {
			errs = append(errs, fmt.Errorf("detection.maintenance[%d].scope_id is empty", i))
		}
		if !m.End.After(m.Start) {
			errs = append(errs, fmt.Errorf("detection.maintenance[%d]: end must be after start", i))
		}
	}
	return errors.Join(errs...)
}
