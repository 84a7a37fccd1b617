package alerting

import (
	"math"
	"testing"
)

func TestBinomTail(t *testing.T) {
	f := func(k, n int, p, want float64) {
		t.Helper()
		got := binomTail(k, n, p)
		if math.Abs(got-want) > want*1e-6+1e-15 {
			t.Errorf("binomTail(%d,%d,%g) = %g, want %g", k, n, p, got, want)
		}
	}
	f(0, 10, 0.1, 1)
	f(11, 10, 0.1, 0)
	f(10, 10, 0.5, math.Pow(0.5, 10))
	// P(X>=3 | n=5, p=0.005) = C(5,3)p^3q^2 + C(5,4)p^4q + p^5
	p := 0.005
	q := 1 - p
	f(3, 5, p, 10*p*p*p*q*q+5*p*p*p*p*q+p*p*p*p*p)
	// 1 failure in 3 at 0.5%
	f(1, 3, p, 1-q*q*q)
	// huge evidence underflows to 0, never NaN
	if got := binomTail(300, 400, 0.01); got != 0 && got > 1e-300 {
		t.Errorf("expected vanishing tail, got %g", got)
	}
}

func TestSurprise(t *testing.T) {
	if surprise(0, 10, 0.1) != 0 || surprise(1, 100, 0.1) != 0 {
		t.Error("no surprise expected at or below baseline")
	}
	// A carrier failing 700/800 beats the whole fleet failing 1000/10000.
	if surprise(700, 800, 0.01) <= surprise(1000, 10000, 0.01) {
		t.Error("concentrated failures should be more surprising")
	}
}
