package classify

import (
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	r := Default()
	for code, want := range map[string]string{
		"91":               "issuer or switch inoperative",          // "(no stand-in available)" dropped
		"55":               "PIN entered is wrong",                  // an acronym keeps its capitals
		"N3":               "cash service not available",            // "Visa: " qualifier dropped
		"89":               "PIN unacceptable for this transaction", // "Private-use range; Mastercard: " dropped
		"98":               "CUP received no answer from issuer",    // iso8583 only reserves it: cup's meaning
		"A0":               "MAC verification failed",               // cup only
		"HOST_UNREACHABLE": "TCP connect to acquirer host failed or refused",
		"ZZ":               "",
	} {
		if got := r.Describe(code); got != want {
			t.Errorf("Describe(%q) = %q, want %q", code, got, want)
		}
	}
	// An operator's rules file gives its own meanings; a row for every
	// scheme applies to both.
	own, err := Parse(strings.NewReader("response\t*\tQ1\tnetwork\tlater\tGateway queue full, try later\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := own.Describe("Q1"); got != "gateway queue full" {
		t.Errorf("Describe(Q1) from an operator's rules = %q", got)
	}
}
