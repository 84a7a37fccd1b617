package alerting

import "github.com/declinemon/declinemon/event"

// baseline is an exponentially weighted count of past attempts and
// failures: rate = f/n weights each bucket by its volume, so quiet nights
// and busy lunches count in proportion to the evidence they carry.
type baseline struct {
	n float32
	f [event.NumCauses]float32
}

func (b *baseline) fold(bk *bucket, decay float32) {
	b.n = b.n*decay + float32(bk.n)
	for i := range b.f {
		b.f[i] = b.f[i]*decay + float32(bk.f[i])
	}
}

// baselineRate is the scope's own learned rate for counter c, shrunk
// towards the fleet-wide (peer) rate by prior pseudo-attempts, so a young
// scope borrows its peers' behaviour until it has its own.
func (s *scope) baselineRate(c int, pool, prior float64) float64 {
	return (float64(s.base.f[c]) + prior*pool) / (float64(s.base.n) + prior)
}

// expected is the null rate a scope is tested against: the larger of its
// own baseline and its peers' (an alert means "far above its own history
// and above its peers"), floored by MinBaseline. Testing against the larger
// keeps a terminal that happened never to fail from alarming on ordinary
// fleet noise.
func (e *Engine) expected(s *scope, c int) float64 {
	pool := e.poolRate(c)
	return max(s.baselineRate(c, pool, e.cfg.PriorWeight), pool, e.cfg.MinBaseline)
}

func (e *Engine) poolRate(c int) float64 {
	if e.pool.n <= 0 {
		return 0
	}
	return float64(e.pool.f[c]) / float64(e.pool.n)
}

// tickCounts are the fleet-wide counts of the tick being filled.
type tickCounts struct {
	n int
	f [event.NumCauses]int
}

// updatePool folds this tick's fleet-wide counts into the peer baseline.
// While a cause has a firing incident its observed count is replaced by
// the expected one, so an outage does not teach the fleet that failing is
// normal.
func (e *Engine) updatePool() {
	tc := &e.tickCount
	if tc.n == 0 {
		return
	}
	d := e.poolDecay
	e.pool.n = e.pool.n*d + float32(tc.n)
	for c := range tc.f {
		obs := float32(tc.f[c])
		if e.causeFiring(event.Cause(c)) && e.pool.n > 0 {
			obs = float32(tc.n) * e.pool.f[c] / e.pool.n
		}
		e.pool.f[c] = e.pool.f[c]*d + obs
	}
	*tc = tickCounts{}
}

func (e *Engine) causeFiring(c event.Cause) bool {
	for _, r := range e.rules {
		if len(r.active) > 0 && (r.cause == c || (r.cause == event.CauseNone && c == event.CauseNone)) {
			return true
		}
	}
	return false
}
