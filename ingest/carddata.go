package ingest

// The card-data policy (PCI DSS requirement 3: sensitive authentication
// data is never stored after authorization; a PAN is masked wherever it is
// displayed). One detector decides, for every byte of a message:
//
//   - a card number: 13 to 19 digits that pass the Luhn check and do not
//     start with 0 (ISO/IEC 7812 issues no cards there, and zero-padded
//     identifiers would otherwise look like cards), written plain or in
//     groups joined by up to three separators — spaces, tabs, dashes,
//     dots, underscores, slashes, Unicode spaces, dashes and invisible
//     joiners ("4111 1111 1111 1111", "3782-822463-10005",
//     "4111.1111.1111.1111"); fullwidth digits count. 13 digits that read
//     as Unix milliseconds of 2001..2096 are a timestamp. Any consecutive
//     groups adding up to 13..19 digits are checked. Digits glued to a
//     card number without a separator (a run of more than 19 digits) make
//     an identifier, not a card number: telling the two apart would reject
//     most long order numbers;
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

// A run is digit groups joined by separators: at most maxSep separator
// characters between two groups — ASCII space, tab, '-', '.', '_', '/', or
// a Unicode space, dash or invisible joiner. Fullwidth digits (U+FF10..19)
// count as digits.
const maxSep = 3

// asciiSep marks the ASCII separator bytes.
var asciiSep = [256]bool{' ': true, '\t': true, '-': true, '.': true, '_': true, '/': true}

// digitAt returns the value and byte width of the digit at b[i], or width 0.
func digitAt(b []byte, i int) (byte, int) {
	c := b[i]
	if c >= '0' && c <= '9' {
		return c - '0', 1
	}
	if c == 0xEF && i+2 < len(b) && b[i+1] == 0xBC && b[i+2] >= 0x90 && b[i+2] <= 0x99 {
		return b[i+2] - 0x90, 3
	}
	return 0, 0
}

// sepAt returns the byte width of the separator at b[i], or 0.
func sepAt(b []byte, i int) int {
	c := b[i]
	if c < 0x80 {
		if asciiSep[c] {
			return 1
		}
		return 0
	}
	switch {
	case c == 0xC2 && i+1 < len(b) && b[i+1] == 0xA0: // no-break space
		return 2
	case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] <= 0x8D || (b[i+2] >= 0x90 && b[i+2] <= 0x95)):
		return 3 // U+2000..200D spaces and joiners, U+2010..2015 dashes
	case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x81 && b[i+2] == 0xA0: // word joiner
		return 3
	case c == 0xE3 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2] == 0x80: // ideographic space
		return 3
	case c == 0xEF && i+2 < len(b) && ((b[i+1] == 0xBC && (b[i+2] == 0x8D || b[i+2] == 0x8E)) || (b[i+1] == 0xBB && b[i+2] == 0xBF)):
		return 3 // fullwidth hyphen and full stop, zero-width no-break space
	}
	return 0
}

// digitRun is one run's digits: value, byte offset and width of each, the
// indexes where groups start, and Luhn prefix sums. Its buffers are reused
// within one scan and stay on the stack for ordinary strings.
type digitRun struct {
	val    []byte
	at     []int32
	width  []byte
	groups []int32 // digit index where each group starts, then len(val)
	sum    [2][]int32
}

// scanCardData calls found(start, end) for every stretch of b that holds
// card data and reports whether there was any. found may be nil. Work is
// linear in len(b): at most 19 candidate spans per group start, each
// checked in constant time from prefix sums.
func scanCardData(b []byte, found func(start, end int)) bool {
	if !mayHoldCardData(b) {
		return false
	}
	var (
		valBuf   [64]byte
		atBuf    [64]int32
		widthBuf [64]byte
		groupBuf [32]int32
		sum0Buf  [65]int32
		sum1Buf  [65]int32
	)
	r := digitRun{val: valBuf[:0], at: atBuf[:0], width: widthBuf[:0], groups: groupBuf[:0]}
	r.sum[0], r.sum[1] = sum0Buf[:0], sum1Buf[:0]
	return r.scan(b, found)
}

// cardScanner is scanCardData for one goroutine (a Decoder's), with its
// working memory kept from call to call: scanCardData's moves to the heap
// at every call, which was most of decoding's allocations on a fleet whose
// ids hold long digit runs.
type cardScanner struct{ r digitRun }

// holds reports whether b holds a card number or track data.
func (c *cardScanner) holds(b []byte) bool {
	if !mayHoldCardData(b) {
		return false
	}
	if c.r.val == nil {
		c.r = digitRun{val: make([]byte, 0, 64), at: make([]int32, 0, 64), width: make([]byte, 0, 64), groups: make([]int32, 0, 32)}
		c.r.sum[0], c.r.sum[1] = make([]int32, 0, 65), make([]int32, 0, 65)
	}
	return c.r.scan(b, nil)
}

// scan is scanCardData over r's working memory.
func (r *digitRun) scan(b []byte, found func(start, end int)) bool {
	any := false
	hit := func(start, end int) {
		any = true
		if found != nil {
			found(start, end)
		}
	}
	for i := 0; i < len(b); {
		if _, w := digitAt(b, i); w == 0 {
			i++
			continue
		}
		r.val, r.at, r.width, r.groups = r.val[:0], r.at[:0], r.width[:0], r.groups[:0]
		j := i
		for {
			r.groups = append(r.groups, int32(len(r.val)))
			for j < len(b) {
				d, w := digitAt(b, j)
				if w == 0 {
					break
				}
				r.val, r.at, r.width = append(r.val, d), append(r.at, int32(j)), append(r.width, byte(w))
				j += w
			}
			// Up to maxSep separators, then a digit, continue the run.
			k, seps := j, 0
			for k < len(b) && seps < maxSep {
				w := sepAt(b, k)
				if w == 0 {
					break
				}
				k += w
				seps++
			}
			if seps == 0 || k >= len(b) {
				break
			}
			if _, w := digitAt(b, k); w == 0 {
				break
			}
			j = k
		}
		r.groups = append(r.groups, int32(len(r.val)))
		r.check(b, hit)
		i = j
	}
	return any
}

// check reports the card numbers and track data of one run.
func (r *digitRun) check(b []byte, hit func(start, end int)) {
	n := len(r.val)
	if n >= 13 {
		// sum[p][i]: the Luhn sum of digits before i, doubling those whose
		// index has parity p. For digits [x, y) the doubled ones have the
		// parity of y, so the span's sum is sum[y%2][y] - sum[y%2][x].
		for p := range r.sum {
			r.sum[p] = append(r.sum[p][:0], 0)
			acc := int32(0)
			for i, d := range r.val {
				v := int32(d)
				if i%2 == p {
					v *= 2
					if v > 9 {
						v -= 9
					}
				}
				acc += v
				r.sum[p] = append(r.sum[p], acc)
			}
		}
		g := r.groups
		for a := 0; a < len(g)-1; a++ {
			x := g[a]
			if r.val[x] == 0 {
				continue // ISO/IEC 7812 issues no card numbers starting with 0
			}
			for z := a + 1; z < len(g) && g[z]-x <= 19; z++ {
				y := g[z]
				if y-x >= 13 && (r.sum[y%2][y]-r.sum[y%2][x])%10 == 0 && !(y-x == 13 && epochMillis(r.val[x:y])) {
					hit(int(r.at[x]), int(r.at[y-1])+int(r.width[y-1]))
				}
			}
		}
	}
	first := digitGroup{int(r.at[0]), int(r.at[r.groups[1]-1]) + int(r.width[r.groups[1]-1])}
	lastStart := r.groups[len(r.groups)-2]
	last := digitGroup{int(r.at[lastStart]), int(r.at[n-1]) + int(r.width[n-1])}
	checkTrack1(b, first, int(r.groups[1]), hit)
	checkTrack2(b, last, int(int32(n)-lastStart), hit)
}

// epochMillis reports 13 digits that read as a Unix time in milliseconds
// between 2001 and 2096: shippers add such timestamps, and the only 13-digit
// cards (old Visa) start with 4, above that range.
func epochMillis(d []byte) bool {
	v := int64(0)
	for _, x := range d {
		v = v*10 + int64(x)
	}
	return v >= 978_307_200_000 && v < 4_000_000_000_000
}

// mayHoldCardData is the cheap filter: card data needs at least 12 digits
// (fullwidth digits are three bytes, each counted).
func mayHoldCardData(b []byte) bool {
	digits := 0
	for _, c := range b {
		if (c >= '0' && c <= '9') || (c >= 0x90 && c <= 0x99) {
			digits++
		}
	}
	return digits >= 12
}

type digitGroup struct{ start, end int }

// checkTrack2 reports track 2 data: an account number of 12..19 digits
// followed by '=' (or 'D', as some terminals write it) and an expiry, up
// to the end of the service code and discretionary data.
func checkTrack2(b []byte, g digitGroup, digits int, hit func(start, end int)) {
	if digits < 12 || digits > 19 || g.end+4 >= len(b) {
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
func checkTrack1(b []byte, g digitGroup, digits int, hit func(start, end int)) {
	if digits < 12 || digits > 19 || g.start == 0 || g.end >= len(b) {
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
