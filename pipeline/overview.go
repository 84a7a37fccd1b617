package pipeline

import (
	"slices"
	"sync"
	"time"

	"github.com/declinemon/declinemon/alerting"
)

// The ops console reads the detector while Run feeds it. The engine is
// not safe for concurrent use, so Run copies an overview out at a flush,
// at most every overviewEvery and only while the console has asked for
// one in the last overviewIdle: replay and consoles nobody watches pay
// nothing.
const (
	overviewEvery = 2 * time.Second
	overviewIdle  = time.Minute
	overviewLimit = 12 // scopes per list
	overviewWants = 32 // scopes asked for by drill-downs, newest kept
)

type overviews struct {
	mu     sync.Mutex
	last   alerting.Overview
	have   bool
	taken  time.Time // when last was taken
	asked  time.Time // when the console last asked
	wanted []alerting.ScopeKey
}

// Overview returns the detector's state as of the latest flush that took
// one (false before the first), and asks that the next ones include the
// scopes in want (a drill-down page). The view is at most a few seconds
// old while the console keeps asking.
func (p *Pipeline) Overview(want ...alerting.ScopeKey) (alerting.Overview, bool) {
	o := &p.overview
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked = time.Now()
	for _, k := range want {
		if i := slices.Index(o.wanted, k); i >= 0 {
			o.wanted = append(o.wanted[:i], o.wanted[i+1:]...)
		}
		o.wanted = append(o.wanted, k)
		if len(o.wanted) > overviewWants {
			o.wanted = o.wanted[1:]
		}
	}
	return o.last, o.have
}

// takeOverview copies the detector's overview out when one is due (Run's
// goroutine, at a flush); force: the last flush.
func (p *Pipeline) takeOverview(force bool) {
	if p.engine == nil {
		return
	}
	o := &p.overview
	now := time.Now()
	o.mu.Lock()
	// The last flush always takes one, so a console opened after the input
	// ended (demo --stay, replay) has the final state.
	due := force || (!o.asked.IsZero() && now.Sub(o.asked) < overviewIdle && now.Sub(o.taken) >= overviewEvery)
	want := append([]alerting.ScopeKey(nil), o.wanted...)
	o.mu.Unlock()
	if !due {
		return
	}
	v := p.engine.Overview(overviewLimit, want)
	v.Taken = now
	o.mu.Lock()
	o.last, o.have, o.taken = v, true, now
	o.mu.Unlock()
}
