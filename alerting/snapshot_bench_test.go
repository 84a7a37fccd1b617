package alerting

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// snapFleet is a detector holding a 1M-terminal fleet: 200k merchants (5
// terminals each), 300 regions, 4 carriers, 40 hosts, 30 issuers, 20
// model cohorts, built once for the snapshot benchmarks. Every terminal
// attempts every 20 minutes for an hour of event time, so rings hold
// several buckets and baselines have learned; 2% of attempts are declined
// and 0.5% fail on the network (failure records).
var snapFleet struct {
	mu   sync.Mutex
	e    *Engine
	snap []byte
}

func snapshotFleet(b *testing.B) (*Engine, []byte) {
	snapFleet.mu.Lock()
	defer snapFleet.mu.Unlock()
	if snapFleet.e == nil {
		const n, rounds = 1_000_000, 3
		evs := bigFleet(n)
		for i := range evs {
			evs[i].Merchant = fmt.Sprintf("M%06d", i/5)
		}
		e, err := NewEngine(Config{}, func(Alert) {})
		if err != nil {
			b.Fatal(err)
		}
		step := 20 * time.Minute / n
		k := 0
		for range rounds {
			for i := range evs {
				evs[i].Time = t0.Add(time.Duration(k) * step)
				cause := event.CauseNone
				switch k % 200 {
				case 0, 50, 100, 150:
					cause = event.CauseIssuerCredit
				case 7:
					cause = event.CauseNetwork
				}
				e.Observe(&evs[i], cause)
				k++
			}
		}
		snapFleet.e, snapFleet.snap = e, e.AppendSnapshot(nil)
		runtime.GC()
	}
	return snapFleet.e, snapFleet.snap
}

// BenchmarkSnapshot1M measures AppendSnapshot of a 1M-terminal fleet into a
// reused buffer, as a checkpointing caller would.
func BenchmarkSnapshot1M(b *testing.B) {
	e, snap := snapshotFleet(b)
	buf := make([]byte, 0, len(snap)+len(snap)/8)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendSnapshot(buf[:0])
	}
	st := e.Stats()
	b.ReportMetric(float64(len(buf)), "snapshot-bytes")
	b.ReportMetric(float64(len(buf))/float64(len(e.scopes[event.ScopeTerminal])), "B/terminal")
	b.ReportMetric(float64(st.Scopes), "scopes")
	b.ReportMetric(float64(st.Records), "records")
}

// BenchmarkRestore1M measures Restore of that snapshot into a new engine,
// as at start-up: the engine that wrote it is gone.
func BenchmarkRestore1M(b *testing.B) {
	_, snap := snapshotFleet(b)
	snapFleet.mu.Lock()
	snapFleet.e = nil
	snapFleet.mu.Unlock()
	runtime.GC()
	b.ReportAllocs()
	for b.Loop() {
		e, _ := NewEngine(Config{}, func(Alert) {})
		if err := e.Restore(snap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap)), "snapshot-bytes")
}
