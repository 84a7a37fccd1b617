package pipeline

import (
	"math/big"
	"testing"
)

func TestAmountsNeverOverflowOrMixCurrencies(t *testing.T) {
	var a Amounts
	const big62 = int64(1) << 62
	for range 8 {
		a.Add("CNY", big62)
	}
	a.Add("JPY", 1500)
	a.Add("KWD", 1234)
	a.Add("", 7)
	a.Add("USD", -1) // absent amount
	want := new(big.Int).Lsh(big.NewInt(1), 65)
	got := map[string]CurrencyAmount{}
	for _, c := range a.Totals() {
		got[c.Currency] = c
	}
	if c := got["CNY"]; c.Minor.Cmp(want) != 0 || c.Count != 8 || c.Major() != "368934881474191032.32" {
		t.Errorf("CNY: %v (%s), want %v", c.Minor, c.Major(), want)
	}
	if c := got["JPY"]; c.Major() != "1500" {
		t.Errorf("JPY: %s", c.Major())
	}
	if c := got["KWD"]; c.Major() != "1.234" {
		t.Errorf("KWD: %s", c.Major())
	}
	if c := got["(none)"]; c.Major() != "7" {
		t.Errorf("no currency: %s", c.Major())
	}
	if _, ok := got["USD"]; ok {
		t.Error("an absent amount was counted")
	}
}
