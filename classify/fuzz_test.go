package classify

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/event"
)

// maxErrLen bounds a Parse error: it names the line and quotes a clipped
// field, never a whole (up to 64 KiB) line.
const maxErrLen = 512

// FuzzRules feeds arbitrary rules files to Parse and LoadFile. Invariants:
// no panic; an error is short and comes without rules; accepted rules
// satisfy the format, round-trip through formatRule, and classify exactly
// as a replay of the rows in file order says ("a later row for the same
// key replaces an earlier one").
func FuzzRules(f *testing.F) {
	f.Add([]byte(defaultRules))
	for _, line := range strings.Split(defaultRules, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			f.Add([]byte(line + "\n"))
		}
	}
	for _, s := range []string{
		// Overrides, both directions between * and one scheme.
		"response\t*\t05\tissuer_credit\nresponse\tcup\t05\tnetwork\n",
		"response\tcup\t05\tnetwork\nresponse\t*\t05\tpolicy\n",
		"terminal\t*\tCOMM_TIMEOUT\tnetwork\t-\tx\nterminal\t*\tCOMM_TIMEOUT\thardware\n",
		"response\t\t00\tapproved\n",
		"response\tiso8583\t 05 \tissuer_credit\tno\tpadded code\r\n",
		"response\tcup\té\tpolicy\n", // two bytes, one rune
		"response\tcup\t05\tissuer_credit\tno\tmeaning\twith\ttabs\n",
		"kind\tscheme\tcode\tcause\nresponse\tcup\t00\tapproved\n",
		// Malformed.
		"",
		"\n\n# only comments\n",
		"response\tvisa\t00\tapproved",
		"response\tcup\t000\tapproved",
		"response\tcup\t05\tbroken",
		"response\tcup\t\tnetwork",
		"terminal\t*\tX\tapproved",
		"bogus\t*\tX\tnetwork",
		"response\tcup",
		"Response\tcup\t05\tnetwork",
		"response\tcup\t05\tNetwork ",
		" response\tcup\t05\tnetwork",
		"terminal\t*\tX\rY\tapproved",
		strings.Repeat("x", 70000),
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "rules.tsv")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatalf("Parse returned rules with error %v", err)
			}
			if len(err.Error()) > maxErrLen {
				t.Fatalf("error is %d bytes, want at most %d: %.200q...", len(err.Error()), maxErrLen, err.Error())
			}
		} else {
			checkRules(t, r)
		}

		// LoadFile adds only the file and its name.
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		lr, lerr := LoadFile(path)
		switch {
		case (err == nil) != (lerr == nil):
			t.Fatalf("Parse error %v, LoadFile error %v", err, lerr)
		case lerr != nil:
			if want := "rules file " + path + ": " + err.Error(); lerr.Error() != want {
				t.Fatalf("LoadFile error %q, want %q", lerr, want)
			}
		case !reflect.DeepEqual(lr.Rules(), r.Rules()):
			t.Fatal("LoadFile and Parse disagree")
		}
	})
}

func checkRules(t *testing.T, r *Rules) {
	t.Helper()
	rules := r.Rules()
	if len(rules) == 0 {
		t.Fatal("accepted a file without rules")
	}
	// Model of the documented semantics: rows apply in file order; * is
	// both schemes.
	terminal := map[string]event.Cause{}
	response := map[event.Scheme]map[string]event.Cause{event.SchemeISO8583: {}, event.SchemeCUP: {}}
	var text strings.Builder
	for _, rule := range rules {
		switch {
		case rule.Code == "" || strings.TrimSpace(rule.Code) != rule.Code || strings.ContainsAny(rule.Code, "\t\n"):
			t.Fatalf("accepted code %q", rule.Code)
		case rule.Cause >= event.NumCauses:
			t.Fatalf("accepted cause %d", rule.Cause)
		case rule.Scheme > event.SchemeCUP:
			t.Fatalf("accepted scheme %d", rule.Scheme)
		case rule.Terminal && (rule.Cause == event.CauseNone || rule.Scheme != event.SchemeUnset):
			t.Fatalf("accepted terminal rule %+v", rule)
		case !rule.Terminal && len(rule.Code) != 2:
			t.Fatalf("accepted response code %q", rule.Code)
		}
		switch {
		case rule.Terminal:
			terminal[rule.Code] = rule.Cause
		case rule.Scheme == event.SchemeUnset:
			response[event.SchemeISO8583][rule.Code] = rule.Cause
			response[event.SchemeCUP][rule.Code] = rule.Cause
		default:
			response[rule.Scheme][rule.Code] = rule.Cause
		}
		text.WriteString(formatRule(rule))
	}

	again, err := Parse(strings.NewReader(text.String()))
	if err != nil {
		t.Fatalf("formatted rules do not parse: %v\n%s", err, text.String())
	}
	if !reflect.DeepEqual(again.Rules(), rules) {
		t.Fatalf("round trip changed the rules:\n got %+v\nwant %+v", again.Rules(), rules)
	}

	check := func(ev event.Event, want event.Cause, known bool) {
		t.Helper()
		got := r.Classify(&ev)
		if got.Cause != want || got.Known != known {
			t.Fatalf("Classify(%+v) = %+v, want %s known=%v", ev, got, want, known)
		}
	}
	for code, c := range terminal {
		for s := event.SchemeUnset; s <= event.SchemeCUP+1; s++ {
			check(event.Event{Scheme: s, ResponseCode: "00", TerminalError: code}, c, true)
		}
	}
	for s, codes := range response {
		for code, c := range codes {
			check(event.Event{Scheme: s, ResponseCode: code}, c, true)
			if _, ok := terminal[code]; !ok {
				// An unknown terminal error still decides, over any code.
				check(event.Event{Scheme: s, ResponseCode: code, TerminalError: code}, event.CauseUnknown, false)
			}
			check(event.Event{Scheme: event.SchemeUnset, ResponseCode: code}, event.CauseUnknown, false)
			check(event.Event{Scheme: event.SchemeCUP + 1, ResponseCode: code}, event.CauseUnknown, false)
		}
	}
	for _, code := range []string{"", "0", "000", "\x00\x00", "\xff\xff"} {
		for s := event.SchemeISO8583; s <= event.SchemeCUP; s++ {
			want, ok := response[s][code]
			if !ok {
				want = event.CauseUnknown
			}
			check(event.Event{Scheme: s, ResponseCode: code}, want, ok)
		}
	}
}

// formatRule writes rule back in the rules-file format.
func formatRule(rule Rule) string {
	kind, scheme := "response", rule.Scheme.String()
	if rule.Terminal {
		kind = "terminal"
	}
	if rule.Scheme == event.SchemeUnset {
		scheme = "*"
	}
	return strings.Join([]string{kind, scheme, rule.Code, rule.Cause.String(), rule.Retryable, rule.Meaning}, "\t") + "\n"
}
