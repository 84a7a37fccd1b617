package pipeline

import (
	"cmp"
	"math/big"
	"math/bits"
	"slices"
)

// Amounts sums amount_minor per currency. Sums are 128-bit, so no feed can
// overflow them (2^64 events of the largest accepted amount still fit), and
// amounts in different currencies are never added together.
type Amounts struct {
	sums map[string]*amountSum
}

type amountSum struct {
	hi, lo uint64
	n      uint64
}

// maxCurrencies bounds the table; further codes are summed under
// otherCurrencies (a feed with that many currencies is garbage anyway).
const (
	maxCurrencies   = 64
	noCurrency      = "(none)"
	otherCurrencies = "(other)"
)

// Add counts one amount (ignored when negative, i.e. absent).
func (a *Amounts) Add(currency string, minor int64) {
	if minor < 0 {
		return
	}
	if a.sums == nil {
		a.sums = map[string]*amountSum{}
	}
	if currency == "" {
		currency = noCurrency
	}
	s := a.sums[currency]
	if s == nil {
		if len(a.sums) >= maxCurrencies {
			currency = otherCurrencies
			s = a.sums[currency]
		}
		if s == nil {
			s = &amountSum{}
			a.sums[currency] = s
		}
	}
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, uint64(minor), 0)
	s.hi += carry
	s.n++
}

// CurrencyAmount is one currency's total.
type CurrencyAmount struct {
	Currency string
	Count    uint64
	Minor    *big.Int // total in minor units
}

// Major formats the total in major units with the currency's ISO 4217
// minor-unit exponent ("1234.56"); codes without a known exponent, and the
// "(none)" and "(other)" rows, are shown in minor units.
func (c CurrencyAmount) Major() string {
	exp, ok := minorUnits(c.Currency)
	if !ok || exp == 0 {
		return c.Minor.String()
	}
	r := new(big.Rat).SetFrac(c.Minor, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
	return r.FloatString(exp)
}

// Totals returns the currencies by descending number of amounts.
func (a *Amounts) Totals() []CurrencyAmount {
	out := make([]CurrencyAmount, 0, len(a.sums))
	for cur, s := range a.sums {
		v := new(big.Int).SetUint64(s.hi)
		v.Lsh(v, 64)
		v.Or(v, new(big.Int).SetUint64(s.lo))
		out = append(out, CurrencyAmount{Currency: cur, Count: s.n, Minor: v})
	}
	slices.SortFunc(out, func(x, y CurrencyAmount) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Currency, y.Currency))
	})
	return out
}

// minorUnits is the ISO 4217 exponent of a currency: 2 for most, 0 and 3
// for the listed exceptions.
func minorUnits(currency string) (int, bool) {
	switch currency {
	case noCurrency, otherCurrencies:
		return 0, false
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0, true
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3, true
	}
	return 2, len(currency) == 3
}
