package cardtest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Window is the shortest run of a card number's digits, in order, that
// reveals more than PCI DSS 3.4 lets a display keep (the first 6 and the
// last 4). Any 11 consecutive digits of a 13–19 digit number include at
// least one digit from the middle; a correctly masked number never shows
// more than 10 of its digits in a row (6 and 4, joined when the mask is
// dropped instead of drawn).
const Window = 11

// maxGap is how many separator characters may sit between two digits of
// one number: "4111 1111", "4111-1111", `4111","1111` (an array of
// groups), "4111\u00201111" once unescaped.
const maxGap = 3

// Finder looks for known card numbers (and other known secrets) in any
// output. It is built from the planted numbers, not from a pattern: it
// does not share the product's idea of what a card number looks like, so
// it is not fooled by the same blind spots.
//
// What counts as found, after decoding the output (see Find):
//
//   - any Window consecutive digits of a planted number appearing in order
//     in a run of digits, where the digits may be separated by up to
//     maxGap non-alphanumeric characters (spaces, dashes, dots, quotes,
//     commas) but not by letters or mask characters (*, #, X, •);
//   - a masked rendering that keeps the number's length ("411111******1111")
//     but shows a digit from the middle (anything beyond first 6 and last
//     4), e.g. "4111111111**1111" or "******1111111111";
//   - a literal secret (AddLiteral), case-insensitively.
type Finder struct {
	pans     []string
	windows  map[uint64][]int32 // value of a Window-digit substring → indexes in pans
	byLen    map[int][]int32
	literals [][2]string // as registered, lower case
}

// NewFinder returns a Finder for the given card numbers (digits only).
func NewFinder(pans ...string) *Finder {
	f := &Finder{windows: map[uint64][]int32{}, byLen: map[int][]int32{}}
	for _, p := range pans {
		f.Add(p)
	}
	return f
}

// Add registers a card number (digits only, at least Window long).
func (f *Finder) Add(pan string) {
	if len(pan) < Window {
		panic(fmt.Sprintf("cardtest: card number %q shorter than %d digits", pan, Window))
	}
	for _, c := range []byte(pan) {
		if c < '0' || c > '9' {
			panic(fmt.Sprintf("cardtest: card number %q is not all digits", pan))
		}
	}
	idx := int32(len(f.pans))
	f.pans = append(f.pans, pan)
	for i := 0; i+Window <= len(pan); i++ {
		v, _ := strconv.ParseUint(pan[i:i+Window], 10, 64)
		if ws := f.windows[v]; len(ws) == 0 || ws[len(ws)-1] != idx {
			f.windows[v] = append(ws, idx)
		}
	}
	f.byLen[len(pan)] = append(f.byLen[len(pan)], idx)
}

// AddLiteral registers a secret to find verbatim (case-insensitive), such
// as a PIN block.
func (f *Finder) AddLiteral(s string) {
	f.literals = append(f.literals, [2]string{s, strings.ToLower(s)})
}

// Hit is one finding.
type Hit struct {
	Secret string // the planted card number or literal
	// Rule: "full" (the whole number), "window" (Window+ consecutive
	// digits of it), "masked-middle" (a masked rendering showing a middle
	// digit) or "literal".
	Rule string
	// Encoding the output had to be decoded from: "" (as is, or after
	// unescaping), "url", "base64", "hex" or "bytes" (a Go []byte dump).
	Encoding string
	Context  string // the decoded text around the hit
}

func (h Hit) String() string {
	enc := ""
	if h.Encoding != "" {
		enc = " in " + h.Encoding
	}
	return fmt.Sprintf("%s (%s%s) near %q", h.Secret, h.Rule, enc, h.Context)
}

// Contains reports whether out holds any registered secret.
func (f *Finder) Contains(out []byte) bool { return len(f.Find(out)) > 0 }

// Find returns what out reveals, at most one hit per secret and rule.
// It searches out as is and after undoing, repeatedly, JSON and Go string
// escapes (\uXXXX, \UXXXXXXXX, \xXX, \\, \", \/ ...), so a number escaped
// once, or escaped again when a log line quotes a JSON message, is seen;
// and it also searches URL-decoded text, base64 and hex tokens decoded to
// bytes, and Go []byte dumps ("[52 49 49 ...]").
func (f *Finder) Find(out []byte) []Hit {
	var hits []Hit
	seen := map[string]bool{}
	report := func(h Hit) {
		k := h.Secret + "\x00" + h.Rule
		if !seen[k] {
			seen[k] = true
			hits = append(hits, h)
		}
	}
	unescaped := unescapeAll(out)
	f.scan(out, "", report)
	if !bytes.Equal(unescaped, out) {
		f.scan(unescaped, "", report)
	}
	for _, v := range decodedVariants(unescaped) {
		f.scan(v.text, v.encoding, report)
		if u := unescapeAll(v.text); !bytes.Equal(u, v.text) {
			f.scan(u, v.encoding, report)
		}
	}
	return hits
}

func isMask(r rune) bool {
	switch r {
	case '*', '#', 'X', 'x', '•', '●', '∗', '×':
		return true
	}
	return false
}

// digitValue returns r's value when r is a decimal digit in any script
// (fullwidth "４" counts as 4).
func digitValue(r rune) (int, bool) {
	if r >= '0' && r <= '9' {
		return int(r - '0'), true
	}
	if r < 0x80 || !unicode.IsDigit(r) {
		return 0, false
	}
	// Unicode decimal digits come in runs of ten starting at a zero.
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return int(r-start) % 10, true
}

// segment is a maximal stretch of card characters (digits and masks)
// without separators; a chain is segments joined by short separator gaps.
type segment struct{ chars []byte } // '0'..'9' or '*'

func (f *Finder) scan(text []byte, encoding string, report func(Hit)) {
	if len(f.literals) > 0 {
		lower := bytes.ToLower(text)
		for _, lit := range f.literals {
			if i := bytes.Index(lower, []byte(lit[1])); i >= 0 {
				report(Hit{Secret: lit[0], Rule: "literal", Encoding: encoding, Context: excerpt(text, i, i+len(lit[1]))})
			}
		}
	}
	var segs []segment
	var cur []byte
	chainStart, gap, digits := -1, 0, 0
	flush := func(end int) {
		if len(cur) > 0 {
			segs = append(segs, segment{cur})
			cur = nil
		}
		if digits >= 8 {
			f.checkChain(segs, text, chainStart, end, encoding, report)
		}
		segs, chainStart, gap, digits = nil, -1, 0, 0
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		d, isDigit := digitValue(r)
		switch {
		case isDigit || isMask(r):
			if chainStart < 0 {
				chainStart = i
			}
			if gap > 0 && len(cur) > 0 {
				segs = append(segs, segment{cur})
				cur = nil
			}
			gap = 0
			if isDigit {
				cur = append(cur, byte('0'+d))
				digits++
			} else {
				cur = append(cur, '*')
			}
		case unicode.IsLetter(r) || r == utf8.RuneError && size == 1 && text[i] >= 0x80:
			flush(i)
		default: // a separator
			if chainStart >= 0 {
				gap++
				if gap > maxGap {
					flush(i)
				}
			}
		}
		i += size
	}
	flush(len(text))
}

func (f *Finder) checkChain(segs []segment, text []byte, start, end int, encoding string, report func(Hit)) {
	ctx := func() string { return excerpt(text, start, end) }
	// Window rule: runs of digits across separators, broken by masks.
	var run []byte
	reported := map[int32]bool{}
	check := func() {
		if len(run) < Window {
			return
		}
		var v uint64
		const mod = 100_000_000_000 // 10^Window
		for i, c := range run {
			v = (v*10 + uint64(c-'0')) % mod
			if i+1 < Window {
				continue
			}
			for _, idx := range f.windows[v] {
				if reported[idx] {
					continue
				}
				reported[idx] = true
				pan := f.pans[idx]
				rule := "window"
				if bytes.Contains(run, []byte(pan)) {
					rule = "full"
				}
				report(Hit{Secret: pan, Rule: rule, Encoding: encoding, Context: ctx()})
			}
		}
	}
	hasMask := false
	for _, s := range segs {
		for _, c := range s.chars {
			if c == '*' {
				hasMask = true
				check()
				run = run[:0]
				continue
			}
			run = append(run, c)
		}
	}
	check()
	if !hasMask {
		return
	}
	// Masked-middle rule: any stretch of whole segments as long as a
	// planted number, with masks standing in for digits.
	for i := range segs {
		var tok []byte
		for j := i; j < len(segs) && len(tok)+len(segs[j].chars) <= MaxLen; j++ {
			tok = append(tok, segs[j].chars...)
			if len(tok) < MinLen || bytes.IndexByte(tok, '*') < 0 {
				continue
			}
			for _, idx := range f.byLen[len(tok)] {
				if pan := f.pans[idx]; revealsMiddle(tok, pan) {
					report(Hit{Secret: pan, Rule: "masked-middle", Encoding: encoding, Context: ctx()})
				}
			}
		}
	}
}

// revealsMiddle reports whether tok (digits and '*', as long as pan) is a
// masked rendering of pan — every visible digit in place, at least 8 of
// them — that shows a digit outside the first 6 and last 4.
func revealsMiddle(tok []byte, pan string) bool {
	visible, middle := 0, false
	for i, c := range tok {
		if c == '*' {
			continue
		}
		if c != pan[i] {
			return false
		}
		visible++
		if i >= 6 && i < len(pan)-4 {
			middle = true
		}
	}
	return visible >= 8 && middle
}

func excerpt(text []byte, start, end int) string {
	lo, hi := max(0, start-40), min(len(text), end+40)
	return string(text[lo:hi])
}

// unescapeAll undoes string escapes until nothing changes (at most four
// rounds: a JSON message quoted in a JSON log line quoted in a test
// failure is three).
func unescapeAll(b []byte) []byte {
	for range 4 {
		u := unescape(b)
		if bytes.Equal(u, b) {
			break
		}
		b = u
	}
	return b
}

func hexVal(b []byte) (uint64, bool) {
	v, err := strconv.ParseUint(string(b), 16, 32)
	return v, err == nil
}

func unescape(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		switch c := b[i+1]; c {
		case 'u', 'U', 'x':
			n := 4
			switch c {
			case 'U':
				n = 8
			case 'x':
				n = 2
			}
			if i+2+n <= len(b) {
				if v, ok := hexVal(b[i+2 : i+2+n]); ok {
					if c == 'x' {
						out = append(out, byte(v))
					} else {
						out = utf8.AppendRune(out, rune(v))
					}
					i += 1 + n
					continue
				}
			}
			out = append(out, b[i])
		case 'n':
			out = append(out, '\n')
			i++
		case 't':
			out = append(out, '\t')
			i++
		case 'r':
			out = append(out, '\r')
			i++
		case 'b', 'f':
			out = append(out, ' ')
			i++
		case '"', '\\', '/', '\'':
			out = append(out, c)
			i++
		default:
			out = append(out, b[i])
		}
	}
	return out
}

type variant struct {
	encoding string
	text     []byte
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// decodedVariants returns the encoded parts of text, decoded: the whole
// text URL-decoded, base64 and hex tokens, and Go []byte dumps.
func decodedVariants(text []byte) []variant {
	var out []variant
	if bytes.IndexByte(text, '%') >= 0 {
		out = append(out, variant{"url", urlDecode(text)})
	}
	for i := 0; i < len(text); {
		if !isB64(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isB64(text[j]) {
			j++
		}
		for pad := 0; pad < 2 && j < len(text) && text[j] == '='; pad++ {
			j++
		}
		tok := text[i:j]
		i = j
		if len(tok) >= 16 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				t := bytes.TrimRight(tok, "=")
				if enc == base64.StdEncoding || enc == base64.URLEncoding {
					t = tok
				}
				if d, err := enc.DecodeString(string(t)); err == nil {
					out = append(out, variant{"base64", d})
					break
				}
			}
		}
		// Hex: the longest even-length stretch of hex digits inside tok.
		for h := 0; h < len(tok); {
			if !isHex(tok[h]) {
				h++
				continue
			}
			k := h
			for k < len(tok) && isHex(tok[k]) {
				k++
			}
			if k-h >= 2*MinLen {
				for _, s := range [][]byte{tok[h : h+(k-h)/2*2], tok[k-(k-h)/2*2 : k]} {
					if d, err := hex.DecodeString(string(s)); err == nil {
						out = append(out, variant{"hex", d})
					}
				}
			}
			h = k
		}
	}
	out = append(out, byteDumps(text)...)
	return out
}

func urlDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			v, _ := strconv.ParseUint(string(b[i+1:i+3]), 16, 8)
			out = append(out, byte(v))
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// byteDumps decodes "[52 49 49 ...]" and "[52,49,49,...]" (Go's %v of a
// []byte, JSON arrays of bytes) with at least MinLen elements.
func byteDumps(text []byte) []variant {
	var out []variant
	for i := 0; i < len(text); i++ {
		if text[i] != '[' {
			continue
		}
		var bs []byte
		j, n, digits := i+1, 0, 0
		ok := true
		for ; j < len(text) && text[j] != ']'; j++ {
			c := text[j]
			switch {
			case c >= '0' && c <= '9':
				n = n*10 + int(c-'0')
				digits++
				if digits > 3 || n > 255 {
					ok = false
				}
			case c == ' ' || c == ',':
				if digits > 0 {
					bs = append(bs, byte(n))
				}
				n, digits = 0, 0
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok || j >= len(text) {
			continue
		}
		if digits > 0 {
			bs = append(bs, byte(n))
		}
		if len(bs) >= MinLen {
			out = append(out, variant{"bytes", bs})
		}
		i = j
	}
	return out
}
