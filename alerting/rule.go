package alerting

import "github.com/declinemon/declinemon/event"

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
	holds  holds
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

// newRules builds the detectors. Scope types are listed in the order
// attribution meets them, which breaks ties between equal candidates.
func (e *Engine) newRules() {
	mk := func(idx int, k Kind, c event.Cause, scopes ...event.ScopeType) {
		r := &rule{idx: idx, kind: k, cause: c, scopes: scopes, cfg: e.cfg.Rules[k.String()], nb: e.nb, holds: newHolds()}
		if c == event.CauseFraudRisk || c == event.CauseDataTransmission {
			// Surges at a merchant are judged on a shorter window than its
			// overall decline rate, so their onset is not diluted.
			t := event.ScopeMerchant
			r.nb[t] = int32(min(max(int64(e.cfg.MerchantSurgeWindow)/e.width[t], 1), int64(e.nb[t])))
		}
		e.rules[idx] = r
	}
	mk(ruleNetwork, KindNetworkOutage, event.CauseNetwork,
		event.ScopeRegion, event.ScopeCarrier, event.ScopeRegionCarrier, event.ScopeNetwork, event.ScopeHost, event.ScopeAcquirer, event.ScopeIssuer)
	mk(ruleMaintenance, KindIssuerOutage, event.CauseMaintenance, event.ScopeIssuer, event.ScopeHost)
	mk(ruleHardware, KindTerminalHardware, event.CauseHardware, event.ScopeTerminal, event.ScopeModel)
	mk(ruleDataTransmission, KindDataTransmission, event.CauseDataTransmission, event.ScopeTerminal, event.ScopeMerchant, event.ScopeHost)
	mk(ruleFraud, KindFraudAttack, event.CauseFraudRisk, event.ScopeMerchant, event.ScopeIssuer)
	mk(ruleDeclineSpike, KindDeclineSpike, event.CauseNone, event.ScopeMerchant)
}

// kindFor maps a winning scope to the alert kind: network-cause failures
// (68/98 "response too late", timeouts) concentrated on one issuer mean the
// issuer is down, not the network.
func (r *rule) kindFor(t event.ScopeType) Kind {
	if r.idx == ruleNetwork && t == event.ScopeIssuer {
		return KindIssuerOutage
	}
	return r.kind
}

// evalRule runs one record-based detector at tick end T: attribute its
// cause's failures to scopes (attribute.go), then act on every scope
// attribution took, in the order it took them.
func (e *Engine) evalRule(r *rule, T int64) {
	if r.idx == ruleNetwork {
		e.evalSilence(r, T)
	}
	ev := &e.eval
	ev.begin(e, r, T)
	ev.attribute(e)
	for _, i := range ev.taken {
		e.act(ev, &ev.cands[i])
	}
	r.holds.expire()
	e.settle(r, T)
	ev.release()
}

// act turns one attribution decision into the incident lifecycle: a new
// hold, an update of the scope's incident, or a new incident.
func (e *Engine) act(ev *evaluation, c *candidate) {
	r, s, T := ev.rule, c.s, ev.T
	switch c.verdict {
	case verdictKept:
		// Firing but not re-confirmed: settle decides.
	case verdictHeld:
		if ev.mostlyCovered(s) {
			return // a wider scope explains it: never fires
		}
		r.holds.renew(s, T)
	case verdictConfirmed:
		if c.firing {
			e.update(s.incident(r.idx))
			return
		}
		if s.typ == event.ScopeTerminal && (e.underNetworkOutage(s) || e.underCohort(r, s)) {
			e.stats.Inhibited++
			return
		}
		sp := ev.span[s.typ]
		at := e.onset(s, int(r.cause), max(r.cfg.MinRate/2, 2*c.baseline), sp)
		start := firstFailureSince(ev.recs, s, sp, at)
		if sequential(r, s.typ) && s.seq.since != 0 && s.seq.since < start {
			// The evidence that fired it began before the window: its
			// first failure is the onset.
			start = firstFailureSince(ev.recs, s, span{from: s.seq.since, to: T}, s.seq.since)
		}
		e.fire(r, alarm{
			kind: r.kindFor(s.typ), cause: r.cause, scope: s,
			start:     start,
			tally:     c.tally,
			footprint: footprintOf(ev.recs, s, sp),
		}, T)
	}
}
