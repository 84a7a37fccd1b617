package ingest

import (
	"encoding/binary"
	"math/bits"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a minimal, strict JSON tokenizer over one message. It exists
// because event decoding is the hot path: encoding/json costs ~20 allocations
// and several microseconds per event, this costs none (see BenchmarkDecode).
// Strings without escapes are returned as sub-slices of the input; escaped
// strings are decoded into a scratch buffer owned by the Decoder.
type scanner struct {
	b   []byte
	i   int
	buf []byte // scratch for unescaped strings; reused across calls
}

const maxDepth = 64

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at end of input.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// plain marks bytes that can appear unescaped in a JSON string and need no
// further check: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special has the high bit set in every byte of x that is '"', '\\', a
// control character or non-ASCII. Only the lowest set byte is exact, which
// is the one str uses.
func special(x uint64) uint64 {
	zero := func(v uint64) uint64 { return (v - lsb) & ^v & msb }
	return zero(x^(lsb*'"')) | zero(x^(lsb*'\\')) | ((x - lsb*0x20) & ^x & msb) | (x & msb)
}

// str reads a JSON string starting at s.i (which holds '"'). The returned
// bytes are valid until the next call that unescapes.
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	s.i++
	start := s.i
	b := s.b
	i := s.i
	// Eight bytes at a time while none needs attention (SWAR), then
	// byte by byte.
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := special(x); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		i += 8
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	if i < len(b) && b[i] == '"' { // the common case: plain ASCII
		s.i = i + 1
		return b[start:i], true
	}
	s.i = i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(out) {
				return nil, false
			}
			return out, true
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		s.i++
	}
	return nil, false
}

func (s *scanner) strEscaped(start int) ([]byte, bool) {
	s.buf = append(s.buf[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(s.buf) {
				return nil, false
			}
			return s.buf, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			s.buf = append(s.buf, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return nil, false
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			s.buf = append(s.buf, e)
		case 'b':
			s.buf = append(s.buf, '\b')
		case 'f':
			s.buf = append(s.buf, '\f')
		case 'n':
			s.buf = append(s.buf, '\n')
		case 'r':
			s.buf = append(s.buf, '\r')
		case 't':
			s.buf = append(s.buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					lo, ok := s.hex4()
					if !ok {
						return nil, false
					}
					r2 = utf16.DecodeRune(r, lo)
				}
				r = r2
			}
			s.buf = utf8.AppendRune(s.buf, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// number scans a JSON number. isInt reports whether it has no fraction or
// exponent; val is its value when isInt and it fits in int64 (ok=false on
// overflow is reported through fits).
func (s *scanner) number() (val int64, isInt, fits, ok bool) {
	start := s.i
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	if s.i >= len(s.b) {
		return 0, false, false, false
	}
	isInt, fits = true, true
	var u uint64
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			d := uint64(s.b[s.i] - '0')
			if u > (1<<63-d)/10 {
				fits = false
			}
			u = u*10 + d
			s.i++
		}
	default:
		return 0, false, false, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		isInt = false
		s.i++
		if !s.digits() {
			return 0, false, false, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		isInt = false
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return 0, false, false, false
		}
	}
	if s.i == start {
		return 0, false, false, false
	}
	if neg {
		return -int64(u), isInt, fits, true
	}
	if u > 1<<63-1 {
		fits = false
	}
	return int64(u), isInt, fits, true
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skip consumes any JSON value, validating its syntax.
func (s *scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.peek() {
	case '"':
		_, ok := s.str()
		return ok
	case '{':
		s.i++
		if s.expect('}') {
			return true
		}
		for {
			if s.peek() != '"' {
				return false
			}
			if _, ok := s.str(); !ok || !s.expect(':') || !s.skip(depth+1) {
				return false
			}
			if s.expect(',') {
				continue
			}
			return s.expect('}')
		}
	case '[':
		s.i++
		if s.expect(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.expect(',') {
				continue
			}
			return s.expect(']')
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, _, _, ok := s.number()
		return ok
	}
	return false
}

// parseTimestamp parses RFC 3339 (optional fraction of up to 9 digits, "Z"
// or a numeric offset) without allocating.
func parseTimestamp(b []byte) (time.Time, bool) {
	if len(b) < 20 {
		return time.Time{}, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || b[4] != '-' || b[7] != '-' ||
		(b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i := 19
	nanos := 0
	if b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nanos = nanos*10 + int(b[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 || n > 9 {
			return time.Time{}, false
		}
		for ; n < 9; n++ {
			nanos *= 10
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return time.Time{}, false
		}
		oh, ok1 := num(b[i+1 : i+3])
		om, ok2 := num(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(secs, int64(nanos)).UTC(), true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 for a proleptic Gregorian date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
