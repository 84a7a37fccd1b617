package alerting

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Evidence that accumulates.
//
// The window test (evidence.go) judges a scope on its last 15 minutes. A
// terminal making 30 attempts an hour has seven attempts there: too few to
// clear the thresholds until most of them fail, so a reader that degrades
// over two hours was caught an hour after it passed 25% failing, and one
// that failed outright at such a terminal took most of an hour. A staged
// firmware rollout is the same problem one level up: ten terminals on the
// new version fail a little each, never enough in one window.
//
// So terminals and model/firmware cohorts also keep a CUSUM (Page, 1954)
// of the log-likelihood ratio of "failing at rate p1" against "failing at
// its normal rate p0", updated with every complete bucket of attempts
// (90 s for a terminal) as if one attempt at a time:
//
//	up   = max(0, up + L)    L = log(p1/p0) for a failure,
//	down = max(0, down - L)      log((1-p1)/(1-p0)) for any other attempt
//
// up is the evidence since the change that something is wrong: a
// low-volume scope is judged on all of its attempts since the onset, not
// on one window, and a clean step and a slow ramp are both found as soon
// as the evidence suffices. Under p0, up exceeds h with probability at
// most e^-h per excursion (Wald), so h = 16 keeps a fleet's quiet week
// free of noise alarms; p1 is the failure rate the rule calls a fault (a
// terminal's MinRate, a cohort's MinRatio times its peers' rate), and a
// scope that is merely flaky at its usual rate drifts down, not up.
//
// down is the evidence of recovery: it grows with every attempt that
// succeeds and collapses with a failure. A terminal's hardware alert
// resolves only once down says it is back (recoveryEvidence: about a dozen
// clean attempts in a row), not because a thin afternoon hour held too
// few attempts to fail the window test.
//
// What a terminal or cohort learns as normal waits an hour on probation
// (see learn), so a fault's early phase is not learned as normal.

// seqState is a scope's sequential evidence for the hardware rule.
type seqState struct {
	up, down float32
	// since is the start of the bucket in which up last left zero: the
	// onset of the run of evidence (0 while up is zero).
	since int64
	// slot is the newest bucket slot added (seqCatchUp).
	slot int32
	// n and k are the attempts and failures since since: what an alert
	// the evidence fires reports.
	n, k uint32
	// x (cohorts) counts failures of terminals with their own hardware
	// alert, not yet taken out of the buckets added: a terminal already
	// alerted is not evidence that its firmware is bad.
	x uint32
}

const (
	// alarmEvidence is the log-likelihood ratio (up) at which a scope is
	// anomalous: e^16, about nine million to one.
	alarmEvidence = 16
	// recoveryEvidence is the ratio (down) at which a firing scope looks
	// normal again: about 20 to 1 that it no longer fails at p1.
	recoveryEvidence = 3
	// maxUp and maxDown cap the sums, so evidence of a fault that is over
	// (or of a recovery that is over) is forgotten within dozens of
	// attempts, not after as many as built it up.
	maxUp   = 2 * alarmEvidence
	maxDown = 2 * recoveryEvidence
)

// sequential reports whether the sequential test applies to scopes of
// type t under rule r: the hardware rule's terminals and cohorts.
func sequential(r *rule, t event.ScopeType) bool {
	return r.idx == ruleHardware && (t == event.ScopeTerminal || t == event.ScopeModel)
}

// seqRates are the null and alternative failure rates of s's test.
func (e *Engine) seqRates(s *scope) (p0, p1 float64) {
	r := e.rules[ruleHardware]
	c := int(r.cause)
	p0 = e.expected(s, c)
	if s.typ == event.ScopeModel {
		p0 = max(p0, float64(s.peer))
		p1 = r.cfg.MinRatio * p0
	} else {
		// A terminal is held to its own history and its peers': its
		// rate, weakly shrunk towards the fleet's, plus one standard
		// error (a few hundred attempts tell a rate only roughly, and a
		// test against too low a rate alarms on a reader that is flaky
		// but always was), and at least the fleet's rate.
		n := float64(s.base.n) + seqPrior
		pool := e.poolRate(c)
		mean := (float64(s.base.f[c]) + seqPrior*pool) / n
		p0 = max(mean+math.Sqrt(mean*(1-mean)/n), pool, e.cfg.MinBaseline)
		p1 = max(r.cfg.MinRate, r.cfg.MinRatio*p0)
	}
	return p0, min(p1, 0.5)
}

// seqCatchUp adds to s's sequential evidence its buckets not yet added,
// up to (not including) slot to, oldest first. A bucket is added once it is
// complete: when evaluation passes its end (no accepted event can land in
// it after that) or when the ring reuses it. So the evidence at a tick is
// exactly that of the attempts before it, as for the window test.
func (e *Engine) seqCatchUp(s *scope, to int32) {
	q := &s.seq
	if to <= q.slot+1 {
		return
	}
	var pending [16]*bucket
	todo := pending[:0]
	for i := range s.ring {
		if b := &s.ring[i]; b.n > 0 && b.slot > q.slot && b.slot < to {
			todo = append(todo, b)
		}
	}
	q.slot = to - 1
	if len(todo) == 0 || (s.typ == event.ScopeTerminal && s.base.n < minSeqHistory) {
		// A terminal without history is judged by the window test alone.
		return
	}
	slices.SortFunc(todo, func(a, b *bucket) int { return cmp.Compare(a.slot, b.slot) })
	r := e.rules[ruleHardware]
	if s.typ == event.ScopeTerminal && s.dims != nil {
		if m := s.dims[event.ScopeModel]; m != nil && m.incident(ruleHardware) != nil {
			return // a firing cohort explains them: no evidence against its terminals
		}
	}
	p0, p1 := e.seqRates(s)
	if p1 <= p0 {
		return
	}
	lf, lok := math.Log(p1/p0), math.Log1p(-p1)-math.Log1p(-p0)
	for _, b := range todo {
		f := float64(b.f[r.cause])
		if q.x > 0 {
			used := min(q.x, uint32(b.f[r.cause]))
			q.x -= used
			f -= float64(used)
		}
		l := f*lf + (float64(b.n)-f)*lok
		up := min(float64(q.up)+l, maxUp)
		if up <= 0 {
			q.up, q.since, q.n, q.k = 0, 0, 0, 0
		} else {
			if q.up == 0 {
				q.since = slotEpoch + int64(b.slot)*e.width[s.typ]
			}
			q.up = float32(up)
			q.n += b.n
			q.k += uint32(f)
		}
		q.down = float32(min(max(float64(q.down)-l, 0), maxDown))
	}
}

// seqAlarm reports whether s's sequential evidence is past the alarm level.
func (s *scope) seqAlarm() bool { return s.seq.up >= alarmEvidence }

// seqRecovered reports whether a firing s has shown it is back to normal.
func (s *scope) seqRecovered() bool { return s.seq.down >= recoveryEvidence }

// updatePeers sets each model/firmware cohort's peer rate: the hardware
// failure rate its model's other firmware versions learned, so a new
// version is judged against the same hardware on the old software, not
// against the fleet (an old model's worn readers are not a regression).
func (e *Engine) updatePeers() {
	c := int(e.rules[ruleHardware].cause)
	// Sum in a fixed order: float sums depend on it, and a restored
	// engine must decide exactly as the one that wrote the snapshot.
	keys := e.peerKeys[:0]
	for k := range e.models {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	e.peerKeys = keys
	for i := 0; i < len(keys); {
		j := i
		var n, f float64
		for ; j < len(keys) && keys[j][0] == keys[i][0]; j++ {
			s := e.models[keys[j]]
			n += float64(s.base.n)
			f += float64(s.base.f[c])
		}
		for _, k := range keys[i:j] {
			s := e.models[k]
			pn, pf := n-float64(s.base.n), f-float64(s.base.f[c])
			s.peer = 0
			if pn >= minPeerAttempts {
				s.peer = float32(max(pf, 0) / pn)
			}
		}
		i = j
	}
}

// silentRelease is how long a firing terminal or cohort may send nothing
// before its hardware alert resolves without evidence of recovery.
const silentRelease = 6 * time.Hour

// seqPrior is how many attempts of the fleet's rate a terminal's own rate
// is shrunk with in the sequential test, and minSeqHistory how many
// (decayed) attempts of its own it needs before the test applies.
const (
	seqPrior      = 20
	minSeqHistory = 40
)

// minPeerAttempts is how much (decayed) history the other versions of a
// model need before they serve as a cohort's peers.
const minPeerAttempts = 200

// seqPasses is the sequential test of a new candidate: its evidence is
// past the alarm level and failures it alone explains are still coming
// (residual failures in its window; for a cohort, failures of several
// terminals in its run that no narrower scope explains, as the window test
// asks of any group). It sets the candidate's run tally: what the alert
// reports is the evidence that fired it.
func (ev *evaluation) seqPasses(e *Engine, c *candidate) bool {
	r := ev.rule
	if c.firing || !sequential(r, c.s.typ) || !c.s.seqAlarm() || c.residual < 1 {
		return false
	}
	q := &c.s.seq
	c.run = tally{failures: int(q.k), attempts: int(q.n), affected: 1, baseline: c.baseline}
	if c.s.typ == event.ScopeTerminal {
		return true
	}
	k, aff, top := ev.runFailures(c.s, q.since)
	c.run.affected = aff
	// A firmware defect shows on many of its terminals; one broken
	// terminal in a small cohort (most of the failures) is that
	// terminal's own alert.
	return aff >= r.cfg.MinAffected && k >= r.cfg.MinFailures && 2*top <= k
}

// runFailures counts the failure records of s since from that no taken
// scope explains, the distinct terminals they came from and the most any
// one of them holds.
func (ev *evaluation) runFailures(s *scope, from int64) (k, terminals, top int) {
	per := map[*scope]int{}
	for i := range ev.recs {
		rec := &ev.recs[i]
		if ev.covered[i] || rec.dims[s.typ] != s || rec.ts < from {
			continue
		}
		k++
		if t := rec.dims[event.ScopeTerminal]; t != nil {
			per[t]++
			top = max(top, per[t])
		}
	}
	return k, len(per), top
}

// stillFailing reports whether a firing incident that did not pass this
// tick's test must keep firing anyway: a terminal or cohort with a
// hardware fault has not yet shown it recovered. A scope silent for
// silentRelease is let go (a till taken out of service or swapped).
func (e *Engine) stillFailing(inc *incident, T int64) bool {
	s := inc.scope
	if !sequential(inc.rule, s.typ) {
		return false
	}
	e.seqCatchUp(s, e.slot(s.typ, T))
	return !s.seqRecovered() && T-s.last < int64(min(silentRelease, e.cfg.IdleTTL))
}

// validEvidence reports whether x can be a CUSUM sum (Restore's check).
func validEvidence(x float32) bool { return x >= 0 && x <= maxUp }

// probation holds a terminal's or cohort's complete buckets for an hour
// before they join its baseline, and drops them if the scope turns suspect
// or fires meanwhile. Folding a bucket as soon as it leaves the window
// taught a degrading reader its own first hour of failures: by the time
// the evidence was conclusive, "normal" had risen from 0.5% to 2% and the
// alert came half an hour later. An hour is what the sequential test
// takes, at worst, to make a ramp at 30 attempts an hour a suspect.
type probation struct {
	sum  baseline // the held buckets' counts, not decayed
	from int32    // slot of the first held bucket
	k    int32    // buckets held
}

const probationTime = time.Hour

// probationDrop is the evidence (up) at which held buckets are dropped:
// about two failures in quick succession at a terminal failing 1%.
const probationDrop = 6

// learn folds complete bucket b into the baseline: at once for most scopes,
// after probation (hold slots) for terminals and cohorts. Nothing is
// learned while the scope is in an incident, nor, for those on probation,
// while its sequential evidence makes it a suspect.
func (s *scope) learn(b *bucket, decay float32, hold int32) {
	if s.firingAny() {
		s.dropProbation()
		return
	}
	if hold <= 0 {
		s.base.fold(b, decay)
		return
	}
	if s.seq.up >= probationDrop {
		s.dropProbation()
		return
	}
	p := s.probe
	if p == nil {
		p = &probation{}
		s.probe = p
	}
	if p.k == 0 {
		p.from = b.slot
	}
	p.k++
	p.sum.n += float32(b.n)
	for i := range p.sum.f {
		p.sum.f[i] += float32(b.f[i])
	}
	if b.slot-p.from >= hold {
		d := float32(math.Pow(float64(decay), float64(p.k)))
		s.base.n = s.base.n*d + p.sum.n
		for i := range s.base.f {
			s.base.f[i] = s.base.f[i]*d + p.sum.f[i]
		}
		*p = probation{}
	}
}

func (s *scope) dropProbation() {
	if s.probe != nil {
		*s.probe = probation{}
	}
}
