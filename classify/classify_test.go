package classify

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/classify/internal/rulesgen"
	"github.com/declinemon/declinemon/event"
)

func TestClassify(t *testing.T) {
	r := Default()
	f := func(name string, scheme event.Scheme, code, termErr string, want event.Cause, known bool) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			ev := event.Event{Scheme: scheme, ResponseCode: code, TerminalError: termErr}
			got := r.Classify(&ev)
			if got.Cause != want || got.Known != known {
				t.Fatalf("got %s known=%v, want %s known=%v", got.Cause, got.Known, want, known)
			}
		})
	}
	iso, cup := event.SchemeISO8583, event.SchemeCUP
	// Approvals, both schemes.
	f("iso 00", iso, "00", "", event.CauseNone, true)
	f("iso partial 10", iso, "10", "", event.CauseNone, true)
	f("iso 08", iso, "08", "", event.CauseNone, true)
	f("cup 00", cup, "00", "", event.CauseNone, true)
	f("cup A2 defective success", cup, "A2", "", event.CauseNone, true)
	// Every cause is reachable.
	f("cup 19 hardware", cup, "19", "", event.CauseHardware, true)
	f("chip read fail", iso, "", "CHIP_READ_FAIL", event.CauseHardware, true)
	f("comm timeout", cup, "", "COMM_TIMEOUT", event.CauseNetwork, true)
	f("cup 98 network", cup, "98", "", event.CauseNetwork, true)
	f("cup A0 mac", cup, "A0", "", event.CauseDataTransmission, true)
	f("iso 51 funds", iso, "51", "", event.CauseIssuerCredit, true)
	f("cup 91 issuer down", cup, "91", "", event.CauseMaintenance, true)
	f("iso 59 fraud", iso, "59", "", event.CauseFraudRisk, true)
	f("cup 55 wrong pin", cup, "55", "", event.CauseOperatorError, true)
	f("cup 03 merchant", cup, "03", "", event.CauseMerchantAccount, true)
	f("cup 57 policy", cup, "57", "", event.CausePolicy, true)
	f("iso 06 mapped unknown", iso, "06", "", event.CauseUnknown, true)
	// Scheme matters: the same code means different things.
	f("cup 12 operator", cup, "12", "", event.CauseOperatorError, true)
	f("iso 12 policy", iso, "12", "", event.CausePolicy, true)
	// Terminal error takes precedence, even over an approval code.
	f("precedence over approval", cup, "00", "PRINTER_FAIL", event.CauseHardware, true)
	f("precedence over decline", cup, "51", "MAC_CALC_FAIL", event.CauseDataTransmission, true)
	// Unknown codes.
	f("unknown response", cup, "Q9", "", event.CauseUnknown, false)
	f("unknown terminal error", cup, "00", "FLUX_CAPACITOR", event.CauseUnknown, false)
	f("no scheme", event.SchemeUnset, "00", "", event.CauseUnknown, false)
}

func TestEveryCauseHasARule(t *testing.T) {
	seen := map[event.Cause]bool{}
	for _, r := range Default().Rules() {
		seen[r.Cause] = true
	}
	for c := event.CauseNone; c < event.NumCauses; c++ {
		if !seen[c] {
			t.Errorf("no default rule yields %s", c)
		}
	}
}

func TestParseOverridesAndErrors(t *testing.T) {
	ext := defaultRules + "response\tcup\tQ9\tfraud_risk\tno\tacquirer-specific risk code\nterminal\t*\tCOMM_TIMEOUT\thardware\t-\tmodem fault on this fleet\nresponse\t*\tZZ\tpolicy\n"
	r, err := Parse(strings.NewReader(ext))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ev   event.Event
		want event.Cause
	}{
		{event.Event{Scheme: event.SchemeCUP, ResponseCode: "Q9"}, event.CauseFraudRisk},
		{event.Event{Scheme: event.SchemeCUP, TerminalError: "COMM_TIMEOUT"}, event.CauseHardware},
		{event.Event{Scheme: event.SchemeISO8583, ResponseCode: "ZZ"}, event.CausePolicy},
		{event.Event{Scheme: event.SchemeCUP, ResponseCode: "ZZ"}, event.CausePolicy},
	} {
		if got := r.Classify(&tc.ev); got.Cause != tc.want || !got.Known {
			t.Errorf("%+v: got %+v, want %s", tc.ev, got, tc.want)
		}
	}
	for _, bad := range []string{
		"response\tvisa\t00\tapproved",
		"response\tcup\t000\tapproved",
		"response\tcup\t05\tbroken",
		"terminal\t*\tX\tapproved",
		"bogus\t*\tX\tnetwork",
		"response\tcup",
		"",
	} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := LoadFile("testdata/does-not-exist.tsv"); err == nil {
		t.Error("LoadFile of a missing file succeeded")
	}
}

var update = flag.Bool("update", false, "rewrite rules/default.tsv from the reference tables")

// TestDefaultRulesUpToDate regenerates the default rules from the reference
// tables, when they are present beside the repository, and compares.
func TestDefaultRulesUpToDate(t *testing.T) {
	const ref = "../../shared/reference"
	if _, err := os.Stat(ref); err != nil {
		t.Skip("reference tables not present beside the repository")
	}
	var buf bytes.Buffer
	if err := rulesgen.Generate(ref, &buf); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("rules/default.tsv", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if buf.String() != defaultRules {
		t.Fatal("rules/default.tsv is stale: run go generate ./classify")
	}
}

func BenchmarkClassify(b *testing.B) {
	r := Default()
	evs := []event.Event{
		{Scheme: event.SchemeCUP, ResponseCode: "00"},
		{Scheme: event.SchemeCUP, ResponseCode: "51"},
		{Scheme: event.SchemeISO8583, ResponseCode: "05"},
		{Scheme: event.SchemeCUP, TerminalError: "COMM_TIMEOUT"},
	}
	b.ReportAllocs()
	var sink event.Cause
	for i := 0; b.Loop(); i++ {
		sink += r.Classify(&evs[i&3]).Cause
	}
	_ = sink
}
