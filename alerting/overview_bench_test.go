package alerting

import (
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// BenchmarkEngineOverview measures what one console overview costs the
// detection goroutine with 1M active terminals (2% declines): the pipeline
// takes one at most every 2 s, and only while someone looks.
func BenchmarkEngineOverview(b *testing.B) {
	const n = 1_000_000
	evs := bigFleet(n)
	e, _ := NewEngine(Config{}, func(Alert) {})
	ts := t0
	for round := range 3 {
		for i := range evs {
			ts = ts.Add(300 * time.Microsecond) // ~5 min of event time per round
			evs[i].Time = ts
			cause := event.CauseNone
			if (i+round)%50 == 0 {
				cause = event.CauseIssuerCredit
			}
			e.Observe(&evs[i], cause)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		ov := e.Overview(12, []ScopeKey{{event.ScopeTerminal, "T0000042"}})
		if len(ov.Top[event.ScopeTerminal]) == 0 {
			b.Fatal("no terminal in the overview")
		}
	}
	b.ReportMetric(float64(e.Stats().Scopes), "scopes")
}
