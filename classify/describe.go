package classify

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/declinemon/declinemon/event"
)

// Describe says in a few words what a response code or terminal error
// means, for texts people read ("91" → "issuer or switch inoperative"),
// or "" when the rules give no meaning. It is the first clause of the
// rules' meaning column, without parenthesised detail or a leading
// "Visa:"-style qualifier. Callers that do not know the scheme get the
// iso8583 meaning, or the cup one when iso8583 has no row for the code or
// only a reserved/private-use placeholder; a row for every scheme (*)
// applies to both.
func (r *Rules) Describe(code string) string {
	var terminal string
	var response [3]string // by scheme
	for _, rule := range r.rules {
		switch {
		case rule.Code != code:
		case rule.Terminal:
			terminal = rule.Meaning
		case rule.Scheme == event.SchemeUnset:
			response[event.SchemeISO8583], response[event.SchemeCUP] = rule.Meaning, rule.Meaning
		default:
			response[rule.Scheme] = rule.Meaning
		}
	}
	if len(code) != 2 {
		return shortMeaning(terminal)
	}
	m := response[event.SchemeISO8583]
	if m == "" || (placeholder(m) && response[event.SchemeCUP] != "") {
		m = response[event.SchemeCUP]
	}
	return shortMeaning(m)
}

// placeholder reports a meaning that only says the code is left to
// national or private use.
func placeholder(m string) bool {
	return strings.HasPrefix(m, "Reserved") || strings.HasPrefix(m, "Private-use")
}

// shortMeaning cuts a meaning down to its first clause:
// "Issuer or switch inoperative (no stand-in available)" → "issuer or
// switch inoperative"; "Visa: cash service not available" → "cash service
// not available".
func shortMeaning(m string) string {
	m = strings.TrimSpace(m)
	for {
		// A leading qualifier of a few words: "Visa: ", "e.g. CUP: ",
		// "Private-use range; ".
		i := strings.Index(m, ": ")
		if j := strings.Index(m, "; "); j >= 0 && (i < 0 || j < i) && placeholder(m) {
			i = j
		}
		if i < 0 || strings.ContainsAny(m[:i], "()") || len(strings.Fields(m[:i])) > 3 {
			break
		}
		m = m[i+2:]
	}
	m = dropParenthesised(m)
	if i := strings.Index(m, "; "); i > 0 {
		m = m[:i]
	}
	// "Issuer down, signed off, ..." → "Issuer down"; but not a list
	// ("merchant name, TID, MID or host parameters missing").
	if i := strings.Index(m, ", "); i > 0 && len(strings.Fields(m[:i])) >= 3 {
		m = m[:i]
	}
	m = strings.TrimSpace(m)
	// Lower-case the first letter unless it starts an acronym (PIN, MAC).
	if first, n := utf8.DecodeRuneInString(m); n > 0 {
		if next, _ := utf8.DecodeRuneInString(m[n:]); !unicode.IsUpper(next) {
			m = string(unicode.ToLower(first)) + m[n:]
		}
	}
	return m
}

// dropParenthesised removes " (...)" groups, nested ones included.
func dropParenthesised(m string) string {
	var b strings.Builder
	depth := 0
	for _, c := range m {
		switch {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
