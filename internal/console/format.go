package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
)

var funcs = template.FuncMap{
	"join": strings.Join,
}

var kindLabel = [alerting.NumKinds]string{
	alerting.KindNetworkOutage:    "Network outage",
	alerting.KindTerminalHardware: "Failing terminal hardware",
	alerting.KindIssuerOutage:     "Issuer outage",
	alerting.KindFraudAttack:      "Fraud attack",
	alerting.KindDataTransmission: "Key / MAC (data transmission)",
	alerting.KindDeclineSpike:     "Decline spike",
}

var scopePlural = [event.NumScopeTypes]string{
	event.ScopeTerminal: "Terminals", event.ScopeMerchant: "Merchants", event.ScopeRegion: "Regions",
	event.ScopeCarrier: "Carriers", event.ScopeNetwork: "Network types", event.ScopeHost: "Hosts",
	event.ScopeAcquirer: "Acquirers", event.ScopeIssuer: "Issuers", event.ScopeModel: "Models/firmware",
	event.ScopeRegionCarrier: "Carriers in regions",
}

var causeLabels = map[string]string{
	"approved": "Approved", "hardware": "Hardware", "network": "Network", "data_transmission": "Data transmission",
	"issuer_credit": "Issuer / credit", "maintenance": "Maintenance", "fraud_risk": "Fraud / risk",
	"operator_error": "Operator error", "merchant_account": "Merchant account", "policy": "Policy", "unknown": "Unknown",
	"declines": "All declines",
}

func causeLabel(c string) string {
	if l, ok := causeLabels[c]; ok {
		return l
	}
	return c
}

// zoneName is "Asia/Shanghai, UTC+08:00".
func zoneName(loc *time.Location, at time.Time) string {
	_, off := at.In(loc).Zone()
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	return fmt.Sprintf("%s, UTC%s%02d:%02d", loc.String(), sign, off/3600, off%3600/60)
}

// clock prints t in the business zone: the time of day when t is on the
// same business day as ref, with the date otherwise.
func (c *Console) clock(t, ref time.Time) string {
	if t.IsZero() {
		return "–"
	}
	lt, lr := t.In(c.o.Location), ref.In(c.o.Location)
	if lt.YearDay() == lr.YearDay() && lt.Year() == lr.Year() {
		return lt.Format("15:04:05")
	}
	return lt.Format("Mon 2 Jan 15:04")
}

func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func pct(x float64) string {
	switch {
	case x <= 0:
		return "0%"
	case x < 0.001:
		return "<0.1%"
	case x < 0.1:
		return strconv.FormatFloat(x*100, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(x*100, 'f', 0, 64) + "%"
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
