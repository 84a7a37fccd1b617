package alerting

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// term is a hand-made terminal for the table tests.
type term struct {
	id, merchant, region, carrier, host, model, fw, network string
}

func fleet(n int, f func(i int) term) []term {
	out := make([]term, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// outcome returns the response code and terminal error of attempt k of a
// terminal at ts; issuer defaults to "BANK".
type outcome func(t term, ts time.Time, k int) (rc, te, issuer string)

func approve(term, time.Time, int) (string, string, string) { return "00", "", "BANK" }

var t0 = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)

// traffic makes every terminal attempt once per every, staggered, from
// start for dur, in event-time order.
func traffic(start time.Time, dur, every time.Duration, terms []term, out outcome) []event.Event {
	var evs []event.Event
	for i, t := range terms {
		off := time.Duration(int64(every) * int64(i) / int64(len(terms)))
		k := 0
		for ts := start.Add(off); ts.Before(start.Add(dur)); ts = ts.Add(every) {
			rc, te, issuer := out(t, ts, k)
			ev := event.Event{ID: fmt.Sprintf("%s-%d", t.id, k), Time: ts, Terminal: t.id, Merchant: t.merchant,
				Region: t.region, Carrier: t.carrier, Host: t.host, Model: t.model, Firmware: t.fw, Network: t.network,
				Acquirer: "ACQ", Issuer: issuer, Scheme: event.SchemeCUP, ResponseCode: rc, TerminalError: te}
			evs = append(evs, ev)
			k++
		}
	}
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

func run(t *testing.T, cfg Config, evs ...[]event.Event) ([]Alert, *Engine) {
	t.Helper()
	var alerts []Alert
	e, err := NewEngine(cfg, func(a Alert) { alerts = append(alerts, a) })
	if err != nil {
		t.Fatal(err)
	}
	rules := classify.Default()
	var all []event.Event
	for _, s := range evs {
		all = append(all, s...)
	}
	slices.SortStableFunc(all, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	for i := range all {
		e.Observe(&all[i], rules.Classify(&all[i]).Cause)
	}
	e.Flush()
	return alerts, e
}

// brief renders alerts as "state kind scope=id" lines for exact comparison.
func brief(alerts []Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, fmt.Sprintf("%s %s %s=%s", a.State, a.Kind, a.ScopeType, a.ScopeID))
	}
	return out
}

func expectAlerts(t *testing.T, alerts []Alert, want ...string) {
	t.Helper()
	got := brief(alerts)
	if !slices.Equal(got, want) {
		t.Fatalf("alerts:\n  got  %s\n  want %s\ndetails:\n%s", strings.Join(got, "\n       "), strings.Join(want, "\n       "), details(alerts))
	}
}

func details(alerts []Alert) string {
	var b strings.Builder
	for _, a := range alerts {
		fmt.Fprintf(&b, "  %s %s %s=%s start=%s det=%s k=%d n=%d aff=%d p0=%.4f %s\n", a.State, a.Kind, a.ScopeType, a.ScopeID,
			a.StartsAt.Format("15:04:05"), a.DetectedAt.Format("15:04:05"), a.Failures, a.Attempts, a.Affected, a.BaselineRate, a.Summary)
	}
	return b.String()
}

// estate: 4 regions x 3 carriers, 2 hosts per region pair, 240 terminals.
func estate() []term {
	return fleet(240, func(i int) term {
		return term{
			id: fmt.Sprintf("T%03d", i), merchant: fmt.Sprintf("M%02d", i/4),
			region: fmt.Sprintf("R%d", i%4), carrier: []string{"C1", "C2", "C3"}[(i/4)%3],
			host: fmt.Sprintf("H%d", (i%4)/2*2+(i/16)%2), model: []string{"A8", "P2"}[i%2], fw: "1.0", network: "4g",
		}
	})
}

func failing(match func(term) bool, from, to time.Time, te, rc string, every int) outcome {
	return func(t term, ts time.Time, k int) (string, string, string) {
		if match(t) && !ts.Before(from) && ts.Before(to) && (every <= 1 || k%every == 0) {
			return rc, te, "BANK"
		}
		return "00", "", "BANK"
	}
}

func TestRegionOutageOneAlertThenResolves(t *testing.T) {
	onset, end := t0.Add(90*time.Minute), t0.Add(110*time.Minute)
	fl := estate()
	alerts, _ := run(t, Config{}, traffic(t0, 3*time.Hour, 30*time.Second, fl,
		failing(func(t term) bool { return t.region == "R2" }, onset, end, "COMM_TIMEOUT", "", 1)))
	expectAlerts(t, alerts, "firing network_outage region=R2", "resolved network_outage region=R2")
	fire, res := alerts[0], alerts[1]
	if ttd := fire.DetectedAt.Sub(onset); ttd < 0 || ttd > time.Minute {
		t.Errorf("detected %s after onset, want within 1m", ttd)
	}
	if d := fire.StartsAt.Sub(onset); d < 0 || d > 10*time.Second {
		t.Errorf("starts_at %s, onset was %s", fire.StartsAt, onset)
	}
	if fire.ID != res.ID || res.EndsAt == nil || res.EndsAt.Sub(end).Abs() > time.Minute {
		t.Errorf("resolved record: id %s vs %s, ends_at %v (want near %s)", res.ID, fire.ID, res.EndsAt, end)
	}
	if fire.Affected < 20 || fire.Cause != "network" || fire.Labels["severity"] != "critical" || fire.Remedy == "" {
		t.Errorf("firing record: %+v", fire)
	}
	if !strings.Contains(fire.Summary, "Region R2") || !strings.Contains(fire.Summary, "COMM_TIMEOUT") {
		t.Errorf("summary %q", fire.Summary)
	}
}

func TestCarrierAcrossRegionsIsOneCarrierAlert(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(),
		failing(func(t term) bool { return t.carrier == "C3" }, onset, onset.Add(20*time.Minute), "NET_REGISTER_FAIL", "", 1)))
	expectAlerts(t, alerts, "firing network_outage carrier=C3", "resolved network_outage carrier=C3")
}

func TestHostOutageBeatsItsRegions(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(),
		failing(func(t term) bool { return t.host == "H2" }, onset, onset.Add(20*time.Minute), "HOST_UNREACHABLE", "", 1)))
	expectAlerts(t, alerts, "firing network_outage host=H2", "resolved network_outage host=H2")
}

func TestLowVolumeIsNotAnIncident(t *testing.T) {
	// One terminal: 3 attempts, 1 hardware failure.
	one := fleet(1, func(int) term {
		return term{id: "SOLO", merchant: "M", region: "R", carrier: "C", host: "H", model: "A8"}
	})
	alerts, _ := run(t, Config{}, traffic(t0, 3*time.Minute, time.Minute, one,
		func(_ term, _ time.Time, k int) (string, string, string) {
			if k == 1 {
				return "", "CHIP_READ_FAIL", "BANK"
			}
			return "00", "", "BANK"
		}))
	expectAlerts(t, alerts)
}

func TestFailingTerminal(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 3*time.Hour, time.Minute, estate(),
		failing(func(t term) bool { return t.id == "T117" }, onset, t0.Add(3*time.Hour), "CHIP_READ_FAIL", "", 2)))
	expectAlerts(t, alerts, "firing terminal_hardware terminal=T117")
	if ttd := alerts[0].DetectedAt.Sub(onset); ttd > 15*time.Minute {
		t.Errorf("detected after %s", ttd)
	}
	if alerts[0].Labels["merchant_id"] != "M29" {
		t.Errorf("labels %v", alerts[0].Labels)
	}
}

func TestModelCohortIsOneModelAlert(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour+45*time.Minute, time.Minute, estate(),
		failing(func(t term) bool { return t.model == "P2" }, onset, onset.Add(30*time.Minute), "CONTACTLESS_READ_FAIL", "", 2)))
	expectAlerts(t, alerts, "firing terminal_hardware model=P2/1.0", "resolved terminal_hardware model=P2/1.0")
}

func TestInhibitionTerminalInsideNetworkOutage(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	inRegion := func(t term) bool { return t.region == "R1" }
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		if inRegion(tm) && !ts.Before(onset) {
			if tm.id == "T001" && k%2 == 0 { // a terminal in the region also shows reader faults
				return "", "CHIP_READ_FAIL", "BANK"
			}
			return "", "COMM_TIMEOUT", "BANK"
		}
		return "00", "", "BANK"
	}
	alerts, e := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(), out))
	expectAlerts(t, alerts, "firing network_outage region=R1")
	if e.Stats().Inhibited == 0 {
		t.Error("the terminal's hardware alert was not counted as inhibited")
	}
}

func TestHysteresisFlappingScopeIsOneIncident(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	// Region R3 fails for 2 minutes, recovers for 1, repeatedly, for 20 minutes.
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		d := ts.Sub(onset)
		if tm.region == "R3" && d >= 0 && d < 20*time.Minute && (d/time.Minute)%3 != 2 {
			return "", "COMM_TIMEOUT", "BANK"
		}
		return "00", "", "BANK"
	}
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour+30*time.Minute, 30*time.Second, estate(), out))
	expectAlerts(t, alerts, "firing network_outage region=R3", "resolved network_outage region=R3")
}

func TestMaintenanceWindowRecordsButDoesNotPage(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		issuer := []string{"ICBC", "ABC", "BOC"}[k%3]
		if issuer == "ABC" && !ts.Before(onset) && ts.Before(onset.Add(30*time.Minute)) {
			return "91", "", issuer
		}
		return "00", "", issuer
	}
	cfg := Config{Maintenance: []MaintenanceWindow{{ScopeType: "issuer", ScopeID: "ABC", Start: onset.Add(-5 * time.Minute), End: onset.Add(time.Hour), Note: "core banking upgrade"}}}
	alerts, _ := run(t, cfg, traffic(t0, 2*time.Hour+30*time.Minute, 30*time.Second, estate(), out))
	expectAlerts(t, alerts, "firing issuer_outage issuer=ABC", "resolved issuer_outage issuer=ABC")
	if l := alerts[0].Labels; l["paging"] != "false" || l["maintenance"] != "true" || l["severity"] != "info" {
		t.Errorf("labels %v", l)
	}
	if ttd := alerts[0].DetectedAt.Sub(onset); ttd > 2*time.Minute {
		t.Errorf("issuer outage detected after %s", ttd)
	}
	// Outside the window the same incident pages.
	alerts, _ = run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(), out))
	if len(alerts) == 0 || alerts[0].Labels["paging"] != "true" || alerts[0].Labels["severity"] != "critical" {
		t.Fatalf("without a window: %s", details(alerts))
	}
}

func TestIssuerTimeoutsClusteringIsIssuerOutage(t *testing.T) {
	// 98 (issuer response too late) is a network-cause code; concentrated on
	// one issuer across every region and carrier it means the issuer is down.
	onset := t0.Add(90 * time.Minute)
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		issuer := []string{"ICBC", "ABC", "BOC"}[k%3]
		if issuer == "BOC" && !ts.Before(onset) {
			return "98", "", issuer
		}
		return "00", "", issuer
	}
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(), out))
	expectAlerts(t, alerts, "firing issuer_outage issuer=BOC")
	if alerts[0].Cause != "network" {
		t.Errorf("cause %s", alerts[0].Cause)
	}
}

func TestFraudAttackAtMerchant(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(),
		failing(func(t term) bool { return t.merchant == "M07" }, onset, onset.Add(30*time.Minute), "", "59", 2)))
	expectAlerts(t, alerts, "firing fraud_attack merchant=M07")
}

func TestMACErrorsAtMerchant(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, time.Minute, estate(),
		failing(func(t term) bool { return t.merchant == "M11" }, onset, onset.Add(30*time.Minute), "RESP_MAC_MISMATCH", "", 1)))
	expectAlerts(t, alerts, "firing data_transmission merchant=M11")
}

func TestDeclineSpikeAtMerchant(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	alerts, _ := run(t, Config{}, traffic(t0, 2*time.Hour, 30*time.Second, estate(),
		failing(func(t term) bool { return t.merchant == "M21" }, onset, onset.Add(30*time.Minute), "", "51", 2)))
	expectAlerts(t, alerts, "firing decline_spike merchant=M21")
	if alerts[0].Cause != "issuer_credit" {
		t.Errorf("cause %s", alerts[0].Cause)
	}
}

func TestBackgroundNoiseAndDailyShapeRaiseNothing(t *testing.T) {
	// A day with quiet nights, busy lunch, and constant insufficient-funds
	// and wrong-PIN declines.
	fl := estate()
	var evs []event.Event
	for h := 0; h < 24; h++ {
		every := []time.Duration{8 * time.Minute, 3 * time.Minute, time.Minute, 30 * time.Second}[min(3, h/6+h%2)]
		evs = append(evs, traffic(t0.Add(time.Duration(h)*time.Hour), time.Hour, every, fl, func(_ term, _ time.Time, k int) (string, string, string) {
			switch k % 23 {
			case 3:
				return "51", "", "BANK"
			case 11:
				return "55", "", "BANK"
			}
			return "00", "", "BANK"
		})...)
	}
	alerts, _ := run(t, Config{}, evs)
	expectAlerts(t, alerts)
}

func TestLateEventsAreCounted(t *testing.T) {
	var alerts []Alert
	e, _ := NewEngine(Config{Lateness: 10 * time.Second, MaxLate: 20 * time.Second}, func(a Alert) { alerts = append(alerts, a) })
	ev := func(ts time.Time) *event.Event {
		return &event.Event{ID: "x", Time: ts, Terminal: "T", Merchant: "M", ResponseCode: "00", Scheme: event.SchemeCUP}
	}
	if !e.Observe(ev(t0), event.CauseNone) || !e.Observe(ev(t0.Add(time.Minute)), event.CauseNone) {
		t.Fatal("in-order events refused")
	}
	if !e.Observe(ev(t0.Add(55*time.Second)), event.CauseNone) {
		t.Error("event within lateness refused")
	}
	// The tick to 00:50 is evaluated: 00:35 is within MaxLate of it.
	if !e.Observe(ev(t0.Add(35*time.Second)), event.CauseNone) {
		t.Error("store-and-forward event within max_late refused")
	}
	if e.Observe(ev(t0.Add(5*time.Second)), event.CauseNone) {
		t.Error("event beyond max_late accepted")
	}
	if got := e.Stats().Late; got != 1 {
		t.Errorf("late = %d, want 1", got)
	}
}

func TestDeterministicReplay(t *testing.T) {
	onset := t0.Add(90 * time.Minute)
	evs := traffic(t0, 2*time.Hour, 30*time.Second, estate(),
		failing(func(t term) bool { return t.region == "R0" }, onset, onset.Add(10*time.Minute), "COMM_TIMEOUT", "", 1))
	a1, _ := run(t, Config{}, evs)
	a2, _ := run(t, Config{}, evs)
	if len(a1) == 0 || fmt.Sprint(a1) != fmt.Sprint(a2) {
		t.Fatalf("replays differ or are empty:\n%s\n%s", details(a1), details(a2))
	}
}

func TestIdleScopesAreEvicted(t *testing.T) {
	fl := estate()
	_, e := run(t, Config{IdleTTL: 30 * time.Minute},
		traffic(t0, 10*time.Minute, time.Minute, fl, approve),
		traffic(t0.Add(3*time.Hour), 20*time.Minute, time.Minute, fl[:10], approve))
	st := e.Stats()
	if st.EvictedScopes == 0 || st.Scopes > 100 {
		t.Errorf("evicted %d, scopes held %d", st.EvictedScopes, st.Scopes)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{Tick: -time.Second, Alpha: 2, MaxScopes: -1, Rules: map[string]RuleConfig{"nope": {}},
		Maintenance: []MaintenanceWindow{{ScopeType: "planet", Start: t0, End: t0}}}
	err := bad.Validate()
	for _, want := range []string{"detection.tick", "detection.alpha", "detection.max_scopes", "detection.rules.nope", "maintenance[0].scope_type", "maintenance[0].scope_id", "end must be after start"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want mention of %s", err, want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config invalid: %v", err)
	}
}

// TestScheduledDateSwitchDoesNotPage: the nightly date switch (response
// code 90 at every terminal for a few minutes) is announced work, not an
// issuer outage; with scheduled_codes emptied it would page.
func TestScheduledDateSwitchDoesNotPage(t *testing.T) {
	at := t0.Add(90 * time.Minute)
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		if !ts.Before(at) && ts.Before(at.Add(6*time.Minute)) {
			return "90", "", "BANK"
		}
		return "00", "", "BANK"
	}
	evs := traffic(t0, 2*time.Hour, 30*time.Second, estate(), out)
	alerts, _ := run(t, Config{}, evs)
	expectAlerts(t, alerts)
	alerts, _ = run(t, Config{ScheduledCodes: []string{}}, evs)
	if len(alerts) == 0 {
		t.Error("with scheduled_codes empty, the switch raises nothing: the test shows nothing")
	}
}

// TestCarrierInOneRegionIsItsOwnScope: one carrier degraded to 30%
// timeouts in one region only, diluted in the region (its other carriers
// approve) and in the carrier (its other regions approve), is one
// region+carrier outage found within five minutes; nothing else fires.
func TestCarrierInOneRegionIsItsOwnScope(t *testing.T) {
	terms := fleet(720, func(i int) term {
		return term{id: fmt.Sprintf("T%04d", i), merchant: fmt.Sprintf("M%03d", i/3), region: fmt.Sprintf("R%d", i%6),
			carrier: fmt.Sprintf("C%d", (i/6)%4), host: fmt.Sprintf("H%d", i%3), model: "A8", fw: "1.0", network: "4g"}
	})
	onset := t0.Add(90 * time.Minute)
	out := func(tm term, ts time.Time, k int) (string, string, string) {
		if tm.region == "R2" && tm.carrier == "C1" && !ts.Before(onset) && ts.Before(onset.Add(25*time.Minute)) && k%10 < 3 {
			return "", "COMM_TIMEOUT", "BANK"
		}
		return "00", "", "BANK"
	}
	alerts, _ := run(t, Config{}, traffic(t0, 3*time.Hour, 30*time.Second, terms, out))
	expectAlerts(t, alerts, "firing network_outage region+carrier=R2/C1", "resolved network_outage region+carrier=R2/C1")
	if len(alerts) > 0 {
		a := alerts[0]
		if d := a.DetectedAt.Sub(onset); d > 5*time.Minute {
			t.Errorf("found %s after onset, want <= 5m", d)
		}
		if a.Labels["region"] != "R2" || a.Labels["carrier"] != "C1" {
			t.Errorf("labels %v: want region R2 and carrier C1 for routing and inhibition", a.Labels)
		}
		t.Log(a.Summary, " — ", a.Remedy)
	}
}
