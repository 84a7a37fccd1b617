package alerting

import (
	"strings"
	"testing"
	"time"
)

func TestCodesText(t *testing.T) {
	for _, tc := range []struct {
		codes []string
		want  string
	}{
		{[]string{"91", "96"}, "response codes 91 (issuer or switch inoperative), 96 (system malfunction at a processing node)"},
		{[]string{"A0"}, "response code A0 (MAC verification failed)"},
		{[]string{"COMM_TIMEOUT", "HOST_UNREACHABLE"}, "terminal errors COMM_TIMEOUT/HOST_UNREACHABLE"},
		{[]string{"HOST_UNREACHABLE", "98", "COMM_TIMEOUT"}, "terminal errors HOST_UNREACHABLE/COMM_TIMEOUT and response code 98 (CUP received no answer from issuer)"},
		{[]string{"98", "HOST_UNREACHABLE"}, "response code 98 (CUP received no answer from issuer) and terminal error HOST_UNREACHABLE"},
		{[]string{"Q9"}, "response code Q9"}, // not in the rules: no meaning to give
	} {
		if got := codesText(tc.codes); got != tc.want {
			t.Errorf("codesText(%v)\n got %q\nwant %q", tc.codes, got, tc.want)
		}
	}
}

// TestSummaryInBusinessZone: an alert's summary gives its onset in
// Config.Location with the offset shown, and in UTC without one; the
// record's times stay UTC.
func TestSummaryInBusinessZone(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	a := Alert{Kind: KindIssuerOutage, ScopeType: "issuer", ScopeID: "ICBC", Rate: 0.4, Affected: 12, Failures: 40, Attempts: 100,
		BaselineRate: 0.01, StartsAt: time.Date(2026, 11, 27, 1, 41, 30, 0, time.UTC)}
	fp := footprint{codes: []string{"91"}}
	sum, _ := describe(&a, fp, shanghai)
	if want := "Issuer ICBC: 40% of attempts failing on 12 terminals with response code 91 (issuer or switch inoperative) since 09:41 +08:00 (40 of 100, normal 1.0%)"; sum != want {
		t.Errorf("summary in Asia/Shanghai:\n got %q\nwant %q", sum, want)
	}
	if sum, _ := describe(&a, fp, nil); !strings.Contains(sum, "since 01:41 +00:00 ") {
		t.Errorf("summary without a location is not in UTC: %q", sum)
	}
	if a.StartsAt.Location() != time.UTC {
		t.Error("describe changed the record's time zone")
	}
}

// TestEngineUsesConfigLocation: the engine writes its summaries in
// Config.Location.
func TestEngineUsesConfigLocation(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	terms := fleet(40, func(i int) term {
		return term{id: "T" + string(rune('A'+i%26)) + string(rune('a'+i/26)), merchant: "M1", region: "R1", carrier: "C1", host: "H1", model: "X", fw: "1", network: "4g"}
	})
	normal := traffic(t0, 2*time.Hour, time.Minute, terms, approve)
	outage := traffic(t0.Add(2*time.Hour), 20*time.Minute, 20*time.Second, terms, func(term, time.Time, int) (string, string, string) {
		return "", "COMM_TIMEOUT", "BANK"
	})
	alerts, _ := run(t, Config{Location: kolkata}, normal, outage)
	if len(alerts) == 0 {
		t.Fatal("no alert")
	}
	if s := alerts[0].Summary; !strings.Contains(s, "+05:30 (") || !strings.Contains(s, "terminal error") {
		t.Errorf("summary not in Asia/Kolkata or codes unlabelled: %q", s)
	}
}
