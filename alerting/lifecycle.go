package alerting

import (
	"time"

	"github.com/declinemon/declinemon/event"
)

// An incident fires once, is updated while its scope keeps passing, and
// resolves once its scope has looked normal for the rule's ClearAfter
// (settle). A terminal inside a firing network outage does not fire
// (inhibition), and an incident in a declared maintenance window fires
// without paging.

// incident is a firing alert and what the engine needs to keep it.
type incident struct {
	alert      Alert
	rule       *rule
	scope      *scope
	quietSince int64  // event time the scope first looked normal again; 0 while anomalous
	confirmed  uint64 // tick at which the scope last passed
	silence    *silenceState
}

// alarm is a scope found anomalous, about to fire.
type alarm struct {
	kind      Kind
	cause     event.Cause
	scope     *scope
	start     int64 // onset, event time; 0 if unknown
	tally     tally
	footprint footprint
	silence   *silenceNote // a region gone quiet (see silence.go)
}

func (e *Engine) fire(r *rule, al alarm, T int64) {
	s := al.scope
	start := time.Unix(0, al.start).UTC()
	if al.start == 0 {
		start = time.Unix(0, T).UTC()
	}
	detected := time.Unix(0, T).UTC()
	a := Alert{
		ID:         alertID(al.kind, s.typ.String(), s.id, al.cause.String(), start),
		State:      StateFiring,
		Kind:       al.kind,
		Cause:      al.cause.String(),
		ScopeType:  s.typ.String(),
		ScopeID:    s.id,
		StartsAt:   start,
		DetectedAt: detected,
		Labels:     e.labels(al.kind, al.cause, s, detected),
	}
	setCounts(&a, al.tally)
	// Dimension labels let a router (Alertmanager inhibition) relate a
	// terminal alert to an outage of its region, carrier, host...
	if s.typ == event.ScopeTerminal && s.dims != nil {
		for t, d := range s.dims {
			if d != nil && event.ScopeType(t) != event.ScopeTerminal && event.ScopeType(t) != event.ScopeRegionCarrier {
				a.Labels[dimLabel(event.ScopeType(t))] = d.id
			}
		}
	} else if s.typ == event.ScopeRegionCarrier {
		// Label names cannot hold "+": a composite scope carries one
		// label per dimension, which Alertmanager's inhibition matches.
		parts := s.typ.Parts(s.id)
		a.Labels[dimLabel(event.ScopeRegion)] = parts[0]
		if len(parts) > 1 {
			a.Labels[dimLabel(event.ScopeCarrier)] = parts[1]
		}
	} else {
		a.Labels[dimLabel(s.typ)] = s.id
	}
	a.Summary, a.Remedy = describe(&a, al.footprint, e.cfg.Location)
	inc := &incident{alert: a, rule: r, scope: s, confirmed: e.tickNo}
	if al.silence != nil {
		inc.alert.Summary, inc.alert.Remedy = silenceText(&inc.alert, al.silence, e.cfg.Location)
		a.Summary, a.Remedy = inc.alert.Summary, inc.alert.Remedy
		inc.silence = &silenceState{share: al.silence.share}
	}
	s.seq.down = 0 // recovery is counted from now
	if r.idx == ruleHardware && s.typ == event.ScopeTerminal && s.dims != nil {
		if m := s.dims[event.ScopeModel]; m != nil && m.incident(ruleHardware) == nil {
			// The cohort's evidence so far was mostly this terminal's,
			// which has its alert now: the cohort starts over.
			m.seq.up, m.seq.since, m.seq.n, m.seq.k = 0, 0, 0, 0
		}
	}
	s.setIncident(r.idx, inc)
	r.active = append(r.active, inc)
	e.stats.Fired++
	e.emit(a)
}

// update re-confirms a firing incident. Its records keep the numbers of
// the detection window, the window its summary describes, so attempts,
// failures, rate, affected and the sentence always agree (they used to
// take a later peak while the sentence kept the first window).
func (e *Engine) update(inc *incident) {
	inc.confirmed, inc.quietSince = e.tickNo, 0
}

// settle resolves incidents of r that were not re-confirmed at T once they
// have looked normal for ClearAfter.
func (e *Engine) settle(r *rule, T int64) {
	keep := r.active[:0]
	for _, inc := range r.active {
		if inc.confirmed == e.tickNo || e.stillFailing(inc, T) {
			inc.quietSince = 0
			keep = append(keep, inc)
			continue
		}
		if inc.quietSince == 0 {
			inc.quietSince = T
		}
		after := r.cfg.ClearAfter
		if inc.silence != nil {
			after = max(after, silenceClear) // a flapping link is one incident
		}
		if T-inc.quietSince >= int64(after) {
			e.resolve(inc, inc.quietSince)
			continue
		}
		keep = append(keep, inc)
	}
	clear(r.active[len(keep):])
	r.active = keep
}

func (e *Engine) resolve(inc *incident, at int64) {
	a := inc.alert
	a.State = StateResolved
	end := time.Unix(0, at).UTC()
	a.EndsAt = &end
	inc.scope.setIncident(inc.rule.idx, nil)
	if sequential(inc.rule, inc.scope.typ) {
		inc.scope.seq.up, inc.scope.seq.since = 0, 0 // a new fault starts from no evidence
	}
	e.stats.Resolved++
	e.emit(a)
}

// underNetworkOutage reports whether any scope of the terminal has a firing
// network outage: its terminal alerts are inhibited.
func (e *Engine) underNetworkOutage(term *scope) bool {
	if term.dims == nil {
		return false
	}
	for _, s := range term.dims {
		if s != nil && s != term && s.incident(ruleNetwork) != nil {
			return true
		}
	}
	return false
}

// underCohort reports whether the terminal's model/firmware cohort has a
// firing hardware incident: one firmware defect, one alert, not one per
// terminal running it.
func (e *Engine) underCohort(r *rule, term *scope) bool {
	if r.idx != ruleHardware || term.dims == nil {
		return false
	}
	m := term.dims[event.ScopeModel]
	return m != nil && m.incident(ruleHardware) != nil
}

// labels are the routing labels of a new alert of kind k in s: the
// configured ones, the kind's severity and team, and whether it pages,
// which a maintenance window declared for s turns off.
func (e *Engine) labels(k Kind, cause event.Cause, s *scope, at time.Time) map[string]string {
	cfg := e.cfg.Rules[k.String()]
	l := make(map[string]string, len(e.cfg.Labels)+4)
	for key, v := range e.cfg.Labels {
		l[key] = v
	}
	l["severity"] = cfg.Severity
	l["team"] = cfg.Team
	l["paging"] = "true"
	if k == KindDeclineSpike && CustomerSide(cause) {
		// Cardholders' own declines surging (a sale, a promotion): a
		// notice for the merchant's account manager, never a page.
		l["paging"], l["severity"], l["notice"] = "false", "info", "merchant"
	}
	for _, m := range e.cfg.Maintenance {
		if m.ScopeType == s.typ.String() && m.ScopeID == s.id && !at.Before(m.Start) && at.Before(m.End) {
			l["maintenance"] = "true"
			l["paging"] = "false"
			l["severity"] = "info"
			if m.Note != "" {
				l["maintenance_note"] = m.Note
			}
		}
	}
	return l
}

// CustomerSide reports the causes on the cardholder's side — funds,
// limits, expired or restricted cards (issuer_credit), a wrong PIN or a
// card pulled too early (operator_error): nothing for operations to fix,
// so they never page.
func CustomerSide(c event.Cause) bool {
	return c == event.CauseIssuerCredit || c == event.CauseOperatorError
}

// dimLabel is the label carrying a dimension's value; merchant_id rather
// than merchant, as in the event.
func dimLabel(t event.ScopeType) string {
	if t == event.ScopeMerchant {
		return "merchant_id"
	}
	return t.String()
}

func setCounts(a *Alert, t tally) {
	a.Attempts, a.Failures, a.Affected = t.attempts, t.failures, t.affected
	if t.attempts > 0 {
		a.Rate = round4(float64(t.failures) / float64(t.attempts))
	}
	a.BaselineRate = round4(t.baseline)
}

func round4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }
