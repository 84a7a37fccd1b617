package cardtest

import (
	"strings"
	"testing"
)

func TestLuhnKnownNumbers(t *testing.T) {
	f := func(pan string, want bool) {
		t.Helper()
		if got := Luhn(pan); got != want {
			t.Errorf("Luhn(%s) = %v, want %v", pan, got, want)
		}
	}
	// Published test numbers of the schemes.
	f("4111111111111111", true)
	f("4222222222222", true) // Visa 13
	f("5555555555554444", true)
	f("2223003122003222", true) // Mastercard 2-series
	f("378282246310005", true)  // Amex
	f("30569309025904", true)   // Diners 14
	f("6011111111111117", true) // Discover
	f("3530111333300000", true) // JCB
	f("6200000000000005", true) // UnionPay
	f("6228480402564890018", true)
	f("4111111111111112", false)
	f("", false)
	f("41111111a1111111", false)
	for _, payload := range []string{"411111111111111", "37828224631000", "622848040256489001"} {
		full := payload + string(CheckDigit(payload))
		if !Luhn(full) {
			t.Errorf("CheckDigit(%s) gives %s, not Luhn-valid", payload, full)
		}
	}
}

func TestGeneratorCoversEverySchemeAndLength(t *testing.T) {
	g := NewGen(7)
	schemes := map[string]bool{}
	lengths := map[int]bool{}
	for range 3 * NumCombos() {
		c := g.NextCard()
		if !Luhn(c.PAN) {
			t.Fatalf("%s %s fails Luhn", c.Scheme, c.PAN)
		}
		if len(c.PAN) < MinLen || len(c.PAN) > MaxLen {
			t.Fatalf("NextCard gave %d digits", len(c.PAN))
		}
		s, _ := SchemeNamed(c.Scheme)
		ok := false
		for _, pr := range s.Prefixes {
			for p := pr.Lo; p <= pr.Hi; p++ {
				if strings.HasPrefix(c.PAN, itoa(p)) {
					ok = true
				}
			}
		}
		if !ok {
			t.Errorf("%s %s outside the scheme's prefixes", c.Scheme, c.PAN)
		}
		schemes[c.Scheme] = true
		lengths[len(c.PAN)] = true
	}
	for _, s := range Schemes {
		if !schemes[s.Name] {
			t.Errorf("scheme %s never generated", s.Name)
		}
	}
	for n := MinLen; n <= MaxLen; n++ {
		if !lengths[n] {
			t.Errorf("length %d never generated", n)
		}
	}
	mae, _ := SchemeNamed("maestro")
	if c := g.Card(mae, 12); len(c.PAN) != 12 || !Luhn(c.PAN) {
		t.Errorf("12-digit Maestro %s", c.PAN)
	}
	mc, _ := SchemeNamed("mastercard")
	two := false
	for range 200 {
		if c := g.Card(mc, 16); c.PAN[0] == '2' {
			two = true
		}
	}
	if !two {
		t.Error("no Mastercard 2-series number in 200 draws")
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func TestRender(t *testing.T) {
	g := NewGen(1)
	f := func(c Card, fm Format, want string) {
		t.Helper()
		if got := g.Render(c, fm); got != want {
			t.Errorf("Render(%s, %s) = %q, want %q", c.PAN, fm, got, want)
		}
	}
	visa := Card{"visa", "4111111111111111"}
	amex := Card{"amex", "378282246310005"}
	f(visa, Plain, "4111111111111111")
	f(visa, Spaces, "4111 1111 1111 1111")
	f(visa, Dashes, "4111-1111-1111-1111")
	f(amex, Spaces, "3782 822463 10005")
	f(amex, Dashes, "3782-822463-10005")
	f(Card{"unionpay", "6228480402564890018"}, Spaces, "6228 4804 0256 4890 018")
	f(Card{"diners", "30569309025904"}, Dashes, "3056-930902-5904")
	for range 50 {
		c := g.NextCard()
		r := g.Render(c, Irregular)
		digits := strings.NewReplacer(" ", "", "-", "").Replace(r)
		if digits != c.PAN || (!strings.ContainsAny(r, " -")) {
			t.Fatalf("irregular %q of %s", r, c.PAN)
		}
		for _, grp := range strings.FieldsFunc(r, func(r rune) bool { return r == ' ' || r == '-' }) {
			if len(grp) < 3 {
				t.Fatalf("irregular %q has a group shorter than 3", r)
			}
		}
	}
}

func TestTrackData(t *testing.T) {
	g := NewGen(3)
	c := Card{"visa", "4111111111111111"}
	if tr := g.Track1(c); !strings.HasPrefix(tr, "%B4111111111111111^") || strings.Count(tr, "^") != 2 || !strings.HasSuffix(tr, "?") {
		t.Errorf("track 1 %q", tr)
	}
	for form, prefix := range []string{";4111111111111111=", "4111111111111111=", "4111111111111111D"} {
		if tr := g.Track2(c, form); !strings.HasPrefix(tr, prefix) {
			t.Errorf("track 2 form %d %q", form, tr)
		}
	}
}
