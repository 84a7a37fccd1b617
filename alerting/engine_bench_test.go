package alerting

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// bigFleet returns n terminals' events templates with realistic sharing:
// 4 terminals per merchant, 300 regions, 4 carriers, 40 hosts, 20 models.
func bigFleet(n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{
			ID: "e", Terminal: fmt.Sprintf("T%07d", i), Merchant: fmt.Sprintf("M%06d", i/4),
			Region: fmt.Sprintf("R%03d", i%300), Carrier: fmt.Sprintf("C%d", i%4), Network: "4g",
			Host: fmt.Sprintf("H%02d", i%40), Acquirer: "ACQ", Issuer: fmt.Sprintf("I%02d", i%30),
			Model: fmt.Sprintf("MD%02d", i%20), Firmware: "1.0", Scheme: event.SchemeCUP, ResponseCode: "00",
		}
	}
	return evs
}

// BenchmarkEngineMemory reports the detector state held per active
// terminal with 1M terminals (including their share of merchant, region...
// state), after every terminal has been seen.
func BenchmarkEngineMemory(b *testing.B) {
	const n = 1_000_000
	evs := bigFleet(n)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, _ := NewEngine(Config{}, func(Alert) {})
		for i := range evs {
			evs[i].Time = t0.Add(time.Duration(i) * time.Millisecond)
			cause := event.CauseNone
			if i%50 == 0 {
				cause = event.CauseIssuerCredit
			}
			e.Observe(&evs[i], cause)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/terminal")
		b.ReportMetric(float64(e.Stats().Scopes), "scopes")
		runtime.KeepAlive(e)
	}
}

// BenchmarkEngineObserve measures events/s into detection with 1M active
// terminals (round robin, 2% declines, 0.5% network failures).
func BenchmarkEngineObserve(b *testing.B) {
	const n = 1_000_000
	evs := bigFleet(n)
	e, _ := NewEngine(Config{}, func(Alert) {})
	ts := t0
	for i := range evs {
		evs[i].Time = ts
		e.Observe(&evs[i], event.CauseNone)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%n]
		ts = ts.Add(time.Millisecond / 10) // 10k events/s of event time
		ev.Time = ts
		cause := event.CauseNone
		switch i % 200 {
		case 0, 50, 100, 150:
			cause = event.CauseIssuerCredit
		case 7:
			cause = event.CauseNetwork
		}
		e.Observe(ev, cause)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEngineObserveFlood measures events/s when every event brings a
// new terminal and merchant id (a broken or hostile producer) with the
// scope cap reached: the cost of the cap sweeps, amortised.
func BenchmarkEngineObserveFlood(b *testing.B) {
	const maxScopes = 200_000
	fleet := bigFleet(1_000)
	e, _ := NewEngine(Config{MaxScopes: maxScopes}, func(Alert) {})
	ids := make([]string, 2*maxScopes) // made-up ids, recycled once the cap has long turned over
	for i := range ids {
		ids[i] = fmt.Sprintf("X%08d", i)
	}
	ts := t0
	i := 0
	next := func() *event.Event {
		ev := &fleet[i%len(fleet)]
		ts = ts.Add(time.Millisecond / 10)
		ev.Time, ev.Terminal, ev.Merchant = ts, ids[i%len(ids)], ids[(i+maxScopes/2)%len(ids)]
		i++
		return ev
	}
	for range 2 * maxScopes {
		e.Observe(next(), event.CauseNone)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(next(), event.CauseNone)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(e.Stats().CapSweeps), "sweeps")
}
