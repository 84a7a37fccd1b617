package ingest

// The card-data policy (PCI DSS requirement 3: sensitive authentication
// data is never stored after authorization; a PAN is masked wherever it is
// displayed). One detector decides, for every byte of a message:
//
//   - a card number: a run of 13 to 19 digits that passes the Luhn check
//     and does not start with 0 (ISO/IEC 7812 issues no cards there, and
//     zero-padded identifiers would otherwise look like cards),
//     written plain or in groups separated by single spaces or dashes
//     ("4111 1111 1111 1111", "3782-822463-10005"). A run is bounded by
//     non-digits; a run of more than 19 digits is an identifier, not a
//     card number, but any consecutive groups of a grouped run that add up
//     to 13..19 digits are checked on their own;
//   - track data: a 12..19 digit account number followed by '=' or 'D' and
//     four digits (track 2), or preceded by 'B' and followed by '^'
//     (track 1), Luhn-valid or not;
//   - a field name, at any depth and in any case, with '_', '-', '.' and
//     spaces ignored, that names card data (sensitiveNames).
//
// The decoder rejects a message with any of them as sensitive_data, and
// Mask overwrites exactly what the decoder found, so the two can never
// disagree about what card data is.

// sensitiveNames are the field names whose values are card data whatever
// they hold: event-v1's list and their common spellings. They match with
// case, '_', '-', '.' and spaces ignored ("PAN", "cardNumber", "Track-2").
var sensitiveNames = [...]string{
	"pan", "card_number", "card_no", "primary_account_number",
	"track1", "track2", "track_data",
	"cvv", "cvv2", "cvc", "cvc2", "cav2",
	"pin", "pin_block",
}

// sensitiveName returns the card-data field name key stands for, or "".
// key is the unescaped field name.
func sensitiveName(key []byte) string {
	if len(key) < 3 || len(key) > 40 {
		return ""
	}
	var buf [40]byte
	n := normaliseName(buf[:0], key)
	for _, s := range sensitiveNames {
		var sb [40]byte
		if string(n) == string(normaliseName(sb[:0], []byte(s))) {
			return s
		}
	}
	return ""
}

func normaliseName(dst, key []byte) []byte {
	for _, c := range key {
		switch {
		case c == '_' || c == '-' || c == '.' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// maxGroups bounds how many digit groups of one grouped run are kept;
// a longer run is checked in overlapping windows of this many groups.
const maxGroups = 24

type digitGroup struct{ start, end int }

// scanCardData calls found(start, end) for every stretch of b that holds
// card data and reports whether there was any. found may be nil.
func scanCardData(b []byte, found func(start, end int)) bool {
	if !mayHoldCardData(b) {
		return false
	}
	any := false
	hit := func(start, end int) {
		any = true
		if found != nil {
			found(start, end)
		}
	}
	var groups [maxGroups]digitGroup
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		// One run: digit groups joined by single separators.
		n := 0
		j := i
		for {
			start := j
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			if n == maxGroups {
				checkGroups(b, groups[:n], hit)
				// Keep enough groups that no 19-digit span is cut.
				copy(groups[:], groups[n-18:n])
				n = 18
			}
			groups[n] = digitGroup{start, j}
			n++
			if j+1 < len(b) && (b[j] == ' ' || b[j] == '-') && isDigit(b[j+1]) {
				j++
				continue
			}
			break
		}
		checkGroups(b, groups[:n], hit)
		checkTrack1(b, groups[0], hit)
		checkTrack2(b, groups[n-1], hit)
		i = j
	}
	return any
}

// mayHoldCardData is the cheap filter: card data needs at least 12 digits.
func mayHoldCardData(b []byte) bool {
	digits := 0
	for _, c := range b {
		if isDigit(c) {
			digits++
		}
	}
	return digits >= 12
}

// checkGroups reports every sequence of consecutive groups holding 13..19
// digits in all that passes the Luhn check.
func checkGroups(b []byte, groups []digitGroup, hit func(start, end int)) {
	for a := range groups {
		digits := 0
		for z := a; z < len(groups); z++ {
			digits += groups[z].end - groups[z].start
			if digits > 19 {
				break
			}
			if digits >= 13 && b[groups[a].start] != '0' && luhn(b, groups[a:z+1]) {
				hit(groups[a].start, groups[z].end)
			}
		}
	}
}

// luhn reports whether the digits of groups pass the Luhn (mod 10) check.
func luhn(b []byte, groups []digitGroup) bool {
	sum, double := 0, false
	for g := len(groups) - 1; g >= 0; g-- {
		for i := groups[g].end - 1; i >= groups[g].start; i-- {
			d := int(b[i] - '0')
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return sum%10 == 0
}

// checkTrack2 reports track 2 data: an account number of 12..19 digits
// followed by '=' (or 'D', as some terminals write it) and an expiry, up
// to the end of the service code and discretionary data.
func checkTrack2(b []byte, g digitGroup, hit func(start, end int)) {
	if n := g.end - g.start; n < 12 || n > 19 || g.end+4 >= len(b) {
		return
	}
	if sep := b[g.end]; (sep == '=' || sep == 'D') && allDigits(b[g.end+1:g.end+5]) {
		end := g.end + 5
		for end < len(b) && (isDigit(b[end]) || b[end] == '=' || b[end] == 'D') {
			end++
		}
		hit(g.start, end)
	}
}

// checkTrack1 reports track 1 data: 'B', an account number of 12..19
// digits and '^' (then name, expiry...), up to the end sentinel.
func checkTrack1(b []byte, g digitGroup, hit func(start, end int)) {
	if n := g.end - g.start; n < 12 || n > 19 || g.start == 0 || g.end >= len(b) {
		return
	}
	if b[g.end] == '^' && (b[g.start-1] == 'B' || b[g.start-1] == 'b') {
		end := g.end + 1
		for end < len(b) && b[end] != '?' && b[end] != '"' && b[end] != '\\' {
			end++
		}
		hit(g.start-1, end)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// isCUPMerchantID reports a China UnionPay merchant code: exactly 15
// digits. It is the one documented place where a long digit string is
// expected, so it is exempt from the card-number check — unless it starts
// with 34 or 37, the American Express ranges, whose card numbers are also
// 15 digits long.
func isCUPMerchantID(v []byte) bool {
	return len(v) == 15 && allDigits(v) && !(v[0] == '3' && (v[1] == '4' || v[1] == '7'))
}
