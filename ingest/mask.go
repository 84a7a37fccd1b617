package ingest

import (
	"bytes"
	"math"
	"strconv"
)

const maskByte = '*'

// Mask returns a copy of a message with its card data overwritten by '*',
// found by the same detector the decoder rejects with (carddata.go): card
// numbers and track data in any string, field name or bare number (every
// digit of them, separators kept); every value of a card-data field name,
// at any depth (nested objects and arrays entirely); a card_bin beyond its
// first 6 digits when it is longer than 8. Length and structure are kept
// so the copy still shows what was wrong with it.
//
// Mask works on raw bytes, tolerating any malformation, because the
// messages that need it most are the ones that failed to parse. A string
// with JSON escapes is checked in its unescaped form; if it holds card
// data, its whole content is masked (positions in the escaped form would
// not line up).
func Mask(data []byte) []byte {
	out := bytes.Clone(data)
	maskCardData(out)
	return out
}

// CarriesCardData reports whether Mask would change anything: the check for
// bytes the decoder cannot parse (a malformed message, a Kafka key).
func CarriesCardData(data []byte) bool {
	return carriesCardData(data)
}

func carriesCardData(data []byte) bool {
	return maskCardData(bytes.Clone(data))
}

// maskCardData masks b in place and reports whether it held card data.
func maskCardData(b []byte) bool {
	found := false
	fill := func(p []byte) {
		for i := range p {
			p[i] = maskByte
		}
	}
	fillAlnum := func(p []byte) bool {
		any := false
		for i, c := range p {
			if isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') {
				p[i] = maskByte
				any = true
			}
		}
		return any
	}
	maskSpans := func(p []byte) bool {
		return scanCardData(p, func(start, end int) {
			for i := start; i < end; i++ {
				if p[i] != ' ' && p[i] != '-' {
					p[i] = maskByte
				}
			}
		})
	}
	var (
		scratch   []byte
		depth     int
		maskFrom  = -1 // mask everything while depth >= maskFrom
		sensitive bool // the next value belongs to a card-data field
		bin       bool // the next value belongs to card_bin
	)
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case '"':
			j, escaped := i+1, false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			j = min(j, len(b))
			content := b[i+1 : j]
			k := j + 1
			for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
				k++
			}
			isKey := k < len(b) && b[k] == ':'
			text := content
			if escaped {
				scratch = unescapeLoose(scratch[:0], content)
				text = scratch
			}
			switch {
			case maskFrom >= 0 || (sensitive && !isKey):
				fill(content)
				found = true
			case escaped && (scanCardData(text, nil) || scanCardData(content, nil)):
				// Checked as written too: whoever reads the copy sees the
				// raw digits.
				fill(content)
				found = true
			case !escaped && maskSpans(content):
				found = true
			}
			if isKey && maskFrom < 0 {
				if sensitiveName(text) != "" {
					sensitive, found = true, true
				}
				bin = string(text) == "card_bin"
			} else if !isKey {
				if bin && len(content) > 8 && allDigits(content) {
					fill(content[6:])
					found = true
				}
				sensitive, bin = false, false
			}
			i = j + 1
		case '{', '[':
			depth++
			if sensitive && maskFrom < 0 {
				maskFrom = depth
			}
			sensitive, bin = false, false
			i++
		case '}', ']':
			if depth == maskFrom {
				maskFrom = -1
			}
			depth--
			sensitive, bin = false, false
			i++
		case ',':
			sensitive, bin = false, false
			i++
		default:
			// Bare text: numbers, literals, or whatever a broken message holds.
			j := i
			for j < len(b) && !bytes.ContainsRune([]byte(`"{}[],`), rune(b[j])) {
				j++
			}
			region := b[i:j]
			switch {
			case maskFrom >= 0 || sensitive:
				if fillAlnum(region) {
					found = true
					sensitive = false
				}
			case bin:
				if d := bytes.IndexFunc(region, func(r rune) bool { return r >= '0' && r <= '9' }); d >= 0 {
					e := d
					for e < len(region) && isDigit(region[e]) {
						e++
					}
					if e-d > 8 {
						fill(region[d+6 : e])
						found = true
					}
				}
				if maskSpans(region) {
					found = true
				}
			default:
				if maskSpans(region) {
					found = true
				}
			}
			if maskFloatCards(region) {
				found = true
			}
			i = j
		}
	}
	if maskNamedValues(b) {
		found = true
	}
	return found
}

// maskFloatCards masks numbers written with a fraction or exponent whose
// value is a card number (4.111111111111111e15).
func maskFloatCards(region []byte) bool {
	found := false
	for i := 0; i < len(region); {
		if !isDigit(region[i]) {
			i++
			continue
		}
		j := i
		for j < len(region) && (isDigit(region[j]) || region[j] == '.' || region[j] == 'e' || region[j] == 'E' || region[j] == '+' || region[j] == '-') {
			j++
		}
		if floatHoldsCard(region[i:j]) {
			for k := i; k < j; k++ {
				if isDigit(region[k]) {
					region[k] = maskByte
				}
			}
			found = true
		}
		i = j
	}
	return found
}

// floatHoldsCard reports a number with a fraction or exponent whose value
// is a whole card number.
func floatHoldsCard(num []byte) bool {
	if !bytes.ContainsAny(num, ".eE") {
		return false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	if err != nil || v < 0 {
		v = -v
	}
	if err != nil || v < 1e12 || v >= 1e19 || v != math.Trunc(v) {
		return false
	}
	return scanCardData(strconv.AppendFloat(nil, v, 'f', 0, 64), nil)
}

// maskNamedValues is the text pass for copies that are not JSON: a
// card-data name as a bare word followed by ':' or '=' (or by a quoted
// value), as in {'cvv': '123'}, {"cvv" "123"} or pan=...&cvv=123, has the
// value after it masked.
func maskNamedValues(b []byte) bool {
	found := false
	word := func(c byte) bool {
		return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') || c == '_' || c == '-' || c == '.'
	}
	for i := 0; i < len(b); {
		if !word(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && word(b[j]) {
			j++
		}
		if sensitiveName(b[i:j]) == "" {
			i = j
			continue
		}
		k, quoted, assigned := j, false, false
		for k < len(b) && k-j < 8 {
			switch c := b[k]; {
			case c == '"' || c == '\'' || c == '`':
				quoted = true
			case c == ':' || c == '=':
				assigned = true
			case c == ' ' || c == '\t':
			default:
				goto value
			}
			k++
		}
	value:
		if assigned || quoted {
			v := k
			for v < len(b) && (isDigit(b[v]) || b[v]|0x20 >= 'a' && b[v]|0x20 <= 'z') {
				b[v] = maskByte
				v++
			}
			if v > k {
				found = true
			}
			k = v
		}
		i = max(k, j)
	}
	return found
}

// unescapeLoose decodes JSON string escapes as far as they are well formed
// and keeps anything else as it is. Non-ASCII \u escapes become '?': only
// ASCII digits and separators matter to the detector.
func unescapeLoose(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			continue
		}
		i++
		e := s[i]
		if e != 'u' {
			switch e {
			case '"', '\\', '/':
			default:
				dst = append(dst, '\\') // not an escape: keep it as written
			case 'n':
				e = '\n'
			case 't':
				e = '\t'
			case 'r':
				e = '\r'
			case 'b':
				e = '\b'
			case 'f':
				e = '\f'
			}
			dst = append(dst, e)
			continue
		}
		r, ok := rune(0), i+5 <= len(s)
		for k := i + 1; ok && k < i+5; k++ {
			h := s[k]
			r <<= 4
			switch {
			case h >= '0' && h <= '9':
				r |= rune(h - '0')
			case h|0x20 >= 'a' && h|0x20 <= 'f':
				r |= rune(h|0x20-'a') + 10
			default:
				ok = false
			}
		}
		if !ok {
			dst = append(dst, '\\', e)
			continue
		}
		if r < 0x80 {
			dst = append(dst, byte(r))
		} else {
			dst = append(dst, '?')
		}
		i += 4
	}
	return dst
}
