package alerting

import (
	"math"

	"github.com/declinemon/declinemon/event"
)

// The statistical rule.
//
// Under "nothing is wrong", the failures of a cause among n attempts in a
// scope are Binomial(n, p0), with p0 the scope's learned baseline for that
// cause. A scope is anomalous when the exact upper tail P(X >= k) is below
// alpha. The exact tail (not a normal approximation) stays valid for the
// small counts of a single terminal, where it matters most: 3 failures in 5
// attempts at p0=0.5% has P≈1.2e-6, while 1 failure in 3 has P≈1.5e-2.
//
// Significance alone is not enough in big scopes, where a harmless 0.5
// point rise is "significant" over 100k attempts, so each kind also demands
// an effect size (rate >= MinRate and rate >= MinRatio*p0) and a minimum of
// evidence (MinFailures, MinAffected). alpha is small (1e-6 by default)
// because many scopes are tested every tick: with ~10^5 tests a day that
// bounds false alarms from noise to ~0.1 a day before the effect-size gates,
// which cut it further.

// binomTail returns P(X >= k) for X ~ Binomial(n, p).
func binomTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	if float64(k) <= float64(n)*p {
		return 1 // at or below the mean: never anomalous, and the sum below would be slow
	}
	lk, _ := math.Lgamma(float64(k + 1))
	ln, _ := math.Lgamma(float64(n + 1))
	lnk, _ := math.Lgamma(float64(n - k + 1))
	logTerm := ln - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
	term := math.Exp(logTerm)
	if term == 0 {
		return 0
	}
	sum := term
	odds := p / (1 - p)
	for i := k; i < n; i++ {
		term *= float64(n-i) / float64(i+1) * odds
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return math.Min(sum, 1)
}

// surprise is the log-likelihood ratio n*KL(k/n || p0): how much better the
// observed rate explains the window than the baseline does. Attribution
// picks, among overlapping significant scopes, the one with the largest
// surprise: the scope that concentrates the failures best.
func surprise(k, n int, p0 float64) float64 {
	if n <= 0 || k <= 0 {
		return 0
	}
	r := float64(k) / float64(n)
	if r <= p0 {
		return 0
	}
	s := float64(k) * math.Log(r/p0)
	if k < n {
		s += float64(n-k) * math.Log((1-r)/(1-p0))
	}
	return s
}

// passes applies rule r's test to k failures in n attempts of a scope of
// type t, aff of them on distinct terminals, against baseline rate p0. A
// firing scope only has to stay clearly abnormal (half the thresholds, no
// significance test) to keep firing; this is the hysteresis that stops a
// flapping scope from opening a new incident every minute.
func (e *Engine) passes(r *rule, t event.ScopeType, k, n, aff int, p0 float64, firing bool) bool {
	if n <= 0 || k <= 0 {
		return false
	}
	rate := float64(k) / float64(n)
	c := r.cfg
	if firing {
		return k >= max(1, c.MinFailures/2) && rate >= c.MinRate/2 && rate >= c.MinRatio/2*p0
	}
	if k < c.MinFailures || rate < c.MinRate || rate < c.MinRatio*p0 {
		return false
	}
	if t == event.ScopeTerminal {
		return binomTail(k, n, p0) <= e.cfg.TerminalAlpha
	}
	if aff < c.MinAffected {
		return false
	}
	if t == event.ScopeModel {
		// Cohorts are judged at every tick on a minute of a few
		// terminals' attempts at night: as thin, and as often, as single
		// terminals.
		return binomTail(k, n, p0) <= e.cfg.TerminalAlpha
	}
	return binomTail(k, n, p0) <= e.cfg.Alpha
}
