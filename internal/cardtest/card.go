// Package cardtest is test support for the rule that card data never
// leaves declinemon: it generates card numbers (PANs) of every scheme and
// length with valid Luhn check digits, plants them in event-v1 JSON lines
// in the ways a careless or hostile sender might (documented fields, keys,
// sensitive keys at any case and depth, JSON escapes, numbers, track data,
// malformed and oversized lines), and finds them again in any output.
//
// The Finder is deliberately independent of the product: it imports
// nothing from declinemon and does not detect card numbers by pattern. It
// knows the exact numbers that were planted and looks for them, after
// undoing the encodings an output may apply (JSON and Go escapes, URL
// encoding, base64, hex, Go byte-slice dumps) and ignoring the separators
// a sender or a formatter may put between digits. A bug in the product's
// detector or masker therefore cannot hide itself in the Finder.
//
// It leaves to its callers what to run the lines through and which
// outputs to collect.
package cardtest

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Scheme is a card brand: the issuer identification number (IIN) prefixes
// it owns and the PAN lengths it issues.
type Scheme struct {
	Name     string
	Prefixes []PrefixRange
	Lengths  []int
}

// PrefixRange is an inclusive range of IIN prefixes with the same number
// of digits, e.g. Mastercard's 2221–2720.
type PrefixRange struct{ Lo, Hi int }

// Schemes are the brands the generator covers (prefixes from the public
// IIN tables; a few ranges are simplified to their common core).
var Schemes = []Scheme{
	{Name: "visa", Prefixes: []PrefixRange{{4, 4}}, Lengths: []int{13, 16, 19}},
	{Name: "mastercard", Prefixes: []PrefixRange{{51, 55}, {2221, 2720}}, Lengths: []int{16}},
	{Name: "amex", Prefixes: []PrefixRange{{34, 34}, {37, 37}}, Lengths: []int{15}},
	{Name: "diners", Prefixes: []PrefixRange{{300, 305}, {36, 36}, {38, 39}}, Lengths: []int{14}},
	{Name: "discover", Prefixes: []PrefixRange{{6011, 6011}, {644, 649}, {65, 65}, {622126, 622925}}, Lengths: []int{16, 17, 18, 19}},
	{Name: "unionpay", Prefixes: []PrefixRange{{62, 62}}, Lengths: []int{16, 17, 18, 19}},
	{Name: "jcb", Prefixes: []PrefixRange{{3528, 3589}}, Lengths: []int{16, 17, 18, 19}},
	{Name: "maestro", Prefixes: []PrefixRange{{5018, 5018}, {5020, 5020}, {5038, 5038}, {5893, 5893}, {6304, 6304}, {6759, 6759}, {6761, 6763}}, Lengths: []int{12, 13, 14, 15, 16, 17, 18, 19}},
	{Name: "mir", Prefixes: []PrefixRange{{2200, 2204}}, Lengths: []int{16, 17, 18, 19}},
}

// SchemeNamed returns the scheme called name.
func SchemeNamed(name string) (Scheme, bool) {
	for _, s := range Schemes {
		if s.Name == name {
			return s, true
		}
	}
	return Scheme{}, false
}

// MinLen and MaxLen bound the card numbers that event-v1 treats as card
// data (a Luhn-valid run of 13 to 19 digits).
const (
	MinLen = 13
	MaxLen = 19
)

// Luhn reports whether digits (ASCII digits only) pass the Luhn check.
func Luhn(digits string) bool {
	if len(digits) < 2 {
		return false
	}
	sum := 0
	for i := 0; i < len(digits); i++ {
		c := digits[len(digits)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// CheckDigit returns the digit that makes payload+digit pass the Luhn check.
func CheckDigit(payload string) byte {
	sum := 0
	for i := 0; i < len(payload); i++ {
		d := int(payload[len(payload)-1-i] - '0')
		if i%2 == 0 { // doubled once the check digit is appended
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// Card is one generated card number.
type Card struct {
	Scheme string
	PAN    string // digits only
}

// Gen generates card numbers and test lines from a seed; the same seed
// gives the same output.
type Gen struct {
	rng  *rand.Rand
	seen map[string]bool
	next int // round-robin position in combos
}

// NewGen returns a generator seeded with seed.
func NewGen(seed uint64) *Gen {
	return &Gen{rng: rand.New(rand.NewPCG(seed, 0x6361726474657374)), seen: map[string]bool{}}
}

// Card returns a fresh Luhn-valid card number of scheme s and the given
// length (one of s.Lengths). It never returns the same number twice, so
// every planted number identifies its line.
func (g *Gen) Card(s Scheme, length int) Card {
	for {
		pr := s.Prefixes[g.rng.IntN(len(s.Prefixes))]
		prefix := fmt.Sprint(pr.Lo + g.rng.IntN(pr.Hi-pr.Lo+1))
		var b strings.Builder
		b.WriteString(prefix)
		for b.Len() < length-1 {
			b.WriteByte(byte('0' + g.rng.IntN(10)))
		}
		payload := b.String()
		pan := payload + string(CheckDigit(payload))
		if !g.seen[pan] && !repetitive(pan) {
			g.seen[pan] = true
			return Card{Scheme: s.Name, PAN: pan}
		}
	}
}

// repetitive rejects numbers with a run of 5 equal digits: they make
// 11-digit windows of different numbers collide more often than chance.
func repetitive(pan string) bool {
	run := 1
	for i := 1; i < len(pan); i++ {
		if pan[i] == pan[i-1] {
			run++
			if run >= 5 {
				return true
			}
		} else {
			run = 1
		}
	}
	return false
}

// combos lists every (scheme, length) pair with a length event-v1 treats
// as card data, so round-robin generation covers them all.
var combos = func() (out []struct {
	s Scheme
	n int
}) {
	for _, s := range Schemes {
		for _, n := range s.Lengths {
			if n >= MinLen && n <= MaxLen {
				out = append(out, struct {
					s Scheme
					n int
				}{s, n})
			}
		}
	}
	return out
}()

// NextCard returns a card of the next (scheme, length) pair in turn, so
// that any run of len(Combos()) calls covers every scheme and every length
// from 13 to 19.
func (g *Gen) NextCard() Card {
	c := combos[g.next%len(combos)]
	g.next++
	return g.Card(c.s, c.n)
}

// NumCombos is how many (scheme, length) pairs NextCard cycles through.
func NumCombos() int { return len(combos) }

// Format is how a card number is written.
type Format uint8

const (
	Plain     Format = iota // 4111111111111111
	Spaces                  // 4111 1111 1111 1111 (Amex 3782 822463 10005)
	Dashes                  // 4111-1111-1111-1111
	Irregular               // groups of 3–6 digits, one separator kind per number
	Unusual                 // card groups joined by dots, double spaces, slashes, Unicode spaces or dashes
	Fullwidth               // fullwidth digits ４１１１…, as East Asian input methods type them
	NumFormats
)

var formatNames = [NumFormats]string{"plain", "spaces", "dashes", "irregular", "unusual", "fullwidth"}

// unusualSeps are separators people and programs put between digit groups
// besides a space or a dash.
var unusualSeps = []string{".", "  ", "/", "_", "\u00a0", "\u200b", "\u2013", "\u3000", " - "}

func (f Format) String() string {
	if f < NumFormats {
		return formatNames[f]
	}
	return "invalid"
}

// groups is how a number of each length is printed on cards and receipts.
func groups(pan string, scheme string) []int {
	switch {
	case scheme == "amex" || len(pan) == 15:
		return []int{4, 6, 5}
	case len(pan) == 14:
		return []int{4, 6, 4}
	case len(pan) == 13:
		return []int{4, 4, 5}
	case len(pan) == 17:
		return []int{4, 4, 4, 5}
	case len(pan) == 18:
		return []int{4, 4, 4, 6}
	case len(pan) == 19:
		return []int{4, 4, 4, 4, 3}
	}
	return []int{4, 4, 4, 4}
}

// Render writes c in format f; Irregular draws its grouping from g.
func (g *Gen) Render(c Card, f Format) string {
	var sizes []int
	sep := " "
	switch f {
	case Plain:
		return c.PAN
	case Spaces:
		sizes = groups(c.PAN, c.Scheme)
	case Dashes:
		sizes, sep = groups(c.PAN, c.Scheme), "-"
	case Fullwidth:
		return strings.Map(func(r rune) rune { return '０' + (r - '0') }, c.PAN)
	case Unusual:
		sizes, sep = groups(c.PAN, c.Scheme), unusualSeps[g.rng.IntN(len(unusualSeps))]
	case Irregular:
		if g.rng.IntN(2) == 0 {
			sep = "-"
		}
		for rest := len(c.PAN); rest > 0; {
			n := min(3+g.rng.IntN(4), rest)
			if rest-n > 0 && rest-n < 3 {
				n = rest // no group shorter than 3 digits
			}
			sizes = append(sizes, n)
			rest -= n
		}
	}
	var b strings.Builder
	i := 0
	for k, n := range sizes {
		if k > 0 {
			b.WriteString(sep)
		}
		b.WriteString(c.PAN[i : i+n])
		i += n
	}
	return b.String()
}

// Track1 is magnetic-stripe track 1 data for c: %B<pan>^NAME^YYMM<svc><dd>?
func (g *Gen) Track1(c Card) string {
	return fmt.Sprintf("%%B%s^%s/%s^%s101%06d?", c.PAN, g.pick(surnames), g.pick(givenNames), g.expiry(), g.rng.IntN(1e6))
}

// Track2 is track 2 data for c in one of its forms: ;<pan>=YYMM…? with
// sentinels, <pan>=YYMM… without, or the EMV tag 57 form <pan>D<yymm>….
func (g *Gen) Track2(c Card, form int) string {
	switch form % 3 {
	case 0:
		return fmt.Sprintf(";%s=%s101%05d?", c.PAN, g.expiry(), g.rng.IntN(1e5))
	case 1:
		return fmt.Sprintf("%s=%s101%05d", c.PAN, g.expiry(), g.rng.IntN(1e5))
	}
	return fmt.Sprintf("%sD%s101%05dF", c.PAN, g.expiry(), g.rng.IntN(1e5))
}

func (g *Gen) expiry() string {
	return fmt.Sprintf("%02d%02d", 27+g.rng.IntN(5), 1+g.rng.IntN(12))
}

func (g *Gen) pick(from []string) string { return from[g.rng.IntN(len(from))] }

var (
	surnames   = []string{"WANG", "LI", "ZHANG", "LIU", "CHEN", "DOE", "SMITH"}
	givenNames = []string{"WEI", "FANG", "JING", "JOHN", "MARY", "MIN"}
)
