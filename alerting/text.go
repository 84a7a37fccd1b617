package alerting

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// The texts turn each cause's ops guidance (reference/causes.md) into one
// sentence about this scope and one first action.

// footprint is what a new incident's failures have in common and how far
// they spread: what the alert text says besides the counts.
type footprint struct {
	codes  []string                    // most frequent codes, most frequent first
	spread [event.NumScopeTypes]int    // distinct values per dimension among its failures
	single [event.NumScopeTypes]string // the value when spread is 1
}

// footprintOf reads the footprint of s's failures in sp from the records.
func footprintOf(recs []record, s *scope, sp span) footprint {
	var fp footprint
	codes := map[string]int{}
	var seen [event.NumScopeTypes]map[*scope]struct{}
	for i := range recs {
		rec := &recs[i]
		if rec.dims[s.typ] != s || !sp.has(rec.ts) {
			continue
		}
		codes[rec.code]++
		for t, d := range rec.dims {
			if d == nil {
				continue
			}
			if seen[t] == nil {
				seen[t] = map[*scope]struct{}{}
			}
			seen[t][d] = struct{}{}
			fp.single[t] = d.id
		}
	}
	for t := range seen {
		fp.spread[t] = len(seen[t])
	}
	for c := range codes {
		fp.codes = append(fp.codes, c)
	}
	slices.SortFunc(fp.codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(codes[b], codes[a]), cmp.Compare(a, b))
	})
	if len(fp.codes) > 3 {
		fp.codes = fp.codes[:3]
	}
	return fp
}

// timeLayout is how alert texts give a time: the clock time in the
// business time zone with its UTC offset ("09:41 +08:00").
const timeLayout = "15:04 -07:00"

// describe writes an alert's summary and first action; times are given in
// loc (nil: UTC).
func describe(a *Alert, fp footprint, loc *time.Location) (summary, remedy string) {
	st, _ := event.ParseScopeType(a.ScopeType)
	if loc == nil {
		loc = time.UTC
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %.0f%% of attempts failing", st.Label(), a.ScopeID, a.Rate*100)
	if a.Affected > 1 && st != event.ScopeTerminal {
		fmt.Fprintf(&b, " on %d terminals", a.Affected)
	}
	if a.Kind == KindDeclineSpike {
		fmt.Fprintf(&b, " (mostly %s)", a.Cause)
	} else if len(fp.codes) > 0 {
		fmt.Fprintf(&b, " with %s", codesText(fp.codes))
	}
	fmt.Fprintf(&b, " since %s (%d of %d, normal %.1f%%)", a.StartsAt.In(loc).Format(timeLayout), a.Failures, a.Attempts, a.BaselineRate*100)
	b.WriteString(spreadNote(a.Kind, st, fp))
	return b.String(), remedyFor(a, st, fp)
}

// referenceRules give the codes in alert texts their meaning: the
// embedded rules, built from the reference response-code and
// terminal-error tables. Read-only once loaded.
var referenceRules = sync.OnceValue(classify.Default)

// codesText names the codes for what they are, most frequent first:
// "response codes 91 (issuer or switch inoperative), 96 (system
// malfunction at a processing node)", "terminal errors
// COMM_TIMEOUT/HOST_UNREACHABLE" (terminal error ids say what they are),
// or both joined by "and". A code is a response code when it has two
// characters (event-v1 response_code), else a terminal error.
func codesText(codes []string) string {
	var response, terminal []string
	for _, c := range codes {
		if len(c) != 2 {
			terminal = append(terminal, c)
			continue
		}
		if m := referenceRules().Describe(c); m != "" {
			c += " (" + m + ")"
		}
		response = append(response, c)
	}
	plural := func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	var parts []string
	if len(response) > 0 {
		parts = append(parts, plural(len(response), "response code ", "response codes ")+strings.Join(response, ", "))
	}
	if len(terminal) > 0 {
		parts = append(parts, plural(len(terminal), "terminal error ", "terminal errors ")+strings.Join(terminal, "/"))
	}
	if len(parts) == 2 && len(codes[0]) != 2 {
		parts[0], parts[1] = parts[1], parts[0]
	}
	return strings.Join(parts, " and ")
}

// spreadNote says what the failures share and what they do not, which is
// what tells an on-call engineer where to look.
func spreadNote(k Kind, st event.ScopeType, fp footprint) string {
	many := func(t event.ScopeType, what string) string {
		switch n := fp.spread[t]; {
		case n > 1:
			return fmt.Sprintf("; %d %s affected", n, what)
		case n == 1:
			return fmt.Sprintf("; only %s %s", strings.TrimSuffix(what, "s"), fp.single[t])
		}
		return ""
	}
	switch k {
	case KindNetworkOutage:
		switch st {
		case event.ScopeRegion:
			return many(event.ScopeCarrier, "carriers") + many(event.ScopeHost, "hosts")
		case event.ScopeCarrier:
			return many(event.ScopeRegion, "regions")
		case event.ScopeHost:
			return many(event.ScopeCarrier, "carriers") + many(event.ScopeRegion, "regions")
		case event.ScopeRegionCarrier:
			return many(event.ScopeHost, "hosts") + "; its other carriers and regions approve normally"
		default:
			return many(event.ScopeRegion, "regions")
		}
	case KindIssuerOutage:
		return many(event.ScopeMerchant, "merchants") + many(event.ScopeHost, "hosts")
	case KindFraudAttack:
		if st == event.ScopeMerchant {
			return many(event.ScopeIssuer, "issuers") + many(event.ScopeTerminal, "terminals")
		}
		return many(event.ScopeMerchant, "merchants")
	case KindTerminalHardware:
		if st == event.ScopeTerminal {
			return "; neighbours approve normally"
		}
		return many(event.ScopeMerchant, "merchants")
	case KindDataTransmission:
		return many(event.ScopeTerminal, "terminals")
	}
	return ""
}

func remedyFor(a *Alert, st event.ScopeType, fp footprint) string {
	id := a.ScopeID
	switch a.Kind {
	case KindNetworkOutage:
		switch st {
		case event.ScopeCarrier:
			return fmt.Sprintf("Open a ticket with carrier %s; fail affected terminals over to a second SIM, Wi-Fi or wired link; clear queued reversals once the link is back.", id)
		case event.ScopeHost:
			return fmt.Sprintf("Confirm acquirer host %s is up; move its terminals to the backup host IP/DNS.", id)
		case event.ScopeRegionCarrier:
			p := st.Parts(id)
			if len(p) == 2 {
				return fmt.Sprintf("Open a ticket with carrier %s for region %s (base stations, backhaul, APN there); fail affected terminals over to a second SIM, Wi-Fi or wired link.", p[1], p[0])
			}
		case event.ScopeRegion:
			if fp.spread[event.ScopeCarrier] > 1 {
				return fmt.Sprintf("All carriers fail in region %s: check acquirer connectivity and power for the region; fail terminals over to another link.", id)
			}
			return fmt.Sprintf("Check carrier coverage and acquirer connectivity in region %s; fail terminals over to another link (4G/Wi-Fi/wired).", id)
		case event.ScopeNetwork:
			return fmt.Sprintf("Every %s terminal is affected: check the shared %s path (APN, gateway, ISP) and fail over to another link type.", id, id)
		default:
			return fmt.Sprintf("Check %s %s front-end connectivity; fail over to a backup route and confirm with the network team.", strings.ToLower(st.Label()), id)
		}
	case KindIssuerOutage:
		return fmt.Sprintf("No terminal work needed: suppress terminal tickets, ask cardholders for another card, and escalate to the scheme/%s %s; check whether a maintenance window was announced.", strings.ToLower(st.Label()), id)
	case KindTerminalHardware:
		if st == event.ScopeModel {
			return fmt.Sprintf("Batch defect likely on %s: halt any rollout and roll the firmware back through the TMS; raise it with the vendor.", id)
		}
		return fmt.Sprintf("Dispatch a technician or swap terminal %s: clean or replace the card reader, check battery and printer; pull it from service if tampering is reported.", id)
	case KindDataTransmission:
		return fmt.Sprintf("Run sign-in / key exchange on the affected terminals of %s %s; verify key injection and review recent key or configuration changes.", strings.ToLower(st.Label()), id)
	case KindFraudAttack:
		if st == event.ScopeIssuer {
			return fmt.Sprintf("Possible BIN attack on issuer %s: alert the issuer and risk team, apply velocity caps per BIN, block manual and fallback entry.", id)
		}
		return fmt.Sprintf("Possible card testing at merchant %s: review with the risk team, cap velocity per terminal, block manual/fallback entry, consider holding settlement.", id)
	case KindDeclineSpike:
		if c, ok := event.ParseCause(a.Cause); ok && CustomerSide(c) {
			return fmt.Sprintf("Merchant %s: cardholders' own declines (%s: funds, limits, PIN, expired cards) far above normal, as in a sale or promotion; not a technical incident, nothing to fix on the terminals: tell the merchant (ask for another card or payment method) and its account manager.", id, a.Cause)
		}
		return fmt.Sprintf("Merchant %s declines far above normal, mostly %s: check recent changes at the merchant (configuration, card mix, policy) and contact its account manager.", id, a.Cause)
	}
	return "Investigate the scope."
}
