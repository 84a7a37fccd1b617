package pipeline

import (
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// realistic returns n distinct event-v1 messages from a 2000-terminal fleet
// with the usual mix of approvals and declines, 10 ms of event time apart
// (a partition's events are in time order, as a fleet's are).
//
// It is a fleet in a standing outage: every terminal in one region, on one
// carrier and host, one attempt in eight a network failure, all day — the
// detector's worst case (it keeps attributing the incident at every tick).
// fleetDay is an ordinary day.
func realistic(b testing.TB, n int) [][]byte {
	b.Helper()
	codes := []string{`"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`,
		`"response_code":"00"`, `"response_code":"00"`, `"response_code":"51"`, `"terminal_error":"COMM_TIMEOUT"`}
	msgs := make([][]byte, n)
	start := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	shanghai := time.FixedZone("CST", 8*3600)
	for i := range msgs {
		ts := start.Add(time.Duration(i) * 10 * time.Millisecond).In(shanghai).Format("2006-01-02T15:04:05.000Z07:00")
		msgs[i] = []byte(`{"event_id":"evt-` + strconv.Itoa(i) + `","ts":"` + ts + `","terminal_id":"LKL-` + strconv.Itoa(i%2000) +
			`","merchant_id":"M-310-` + strconv.Itoa(i%500) + `","scheme":"cup","txn_type":"sale","amount_minor":12800,"currency":"CNY","entry_mode":"chip","card_bin":"622848","issuer_id":"ABC","acquirer_id":"LKL","host_id":"sh-fe-2","region":"310000","network":"4g","carrier":"CMCC","signal_dbm":-97,"latency_ms":412,"model":"A8","firmware":"3.2.1",` +
			codes[i%len(codes)] + `}`)
	}
	return msgs
}

// BenchmarkPathDecodeClassify is the processing path without detection
// or sinks: decode, classify, count, track the position.
func BenchmarkPathDecodeClassify(b *testing.B) { benchPath(b, true, realistic) }

// BenchmarkPathDecodeClassifyDetect adds the event-time merge, the
// windowed counts per scope and cause, and detection.
func BenchmarkPathDecodeClassifyDetect(b *testing.B) { benchPath(b, false, realistic) }

// BenchmarkPathDecodeClassifyFleetDay and ...DetectFleetDay are the same
// over the first 200,000 events of fleetDay.
func BenchmarkPathDecodeClassifyFleetDay(b *testing.B) { benchPath(b, true, fleetDay) }

func BenchmarkPathDecodeClassifyDetectFleetDay(b *testing.B) { benchPath(b, false, fleetDay) }

func benchPath(b *testing.B, noDetection bool, stream func(testing.TB, int) [][]byte) {
	const n = 200_000
	msgs := stream(b, n)
	var cfg Config
	cfg.DisableDetection = noDetection
	p, err := New(Options{Config: cfg, Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	topic := []byte("t")
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	i := 0
	for b.Loop() {
		m := ingest.Message{Value: msgs[i%n], Topic: "t", Offset: int64(i), HighWaterMark: -1, OriginTopic: topic}
		p.handle(&m)
		i++
	}
	if p.Counters().Accepted.Load() != uint64(i) {
		b.Fatalf("accepted %d of %d", p.Counters().Accepted.Load(), i)
	}
}

// fleetDay is n events of a morning of the scenario generator's fleet
// (the one `loadgen` plays): 16,000 terminals in 16 regions with their
// carriers, hosts, issuers, models and decline mix, and incidents — a
// failing terminal, a 20-minute issuer outage, an hour-long region
// outage, a card-testing attack — in time order, as JSON.
func fleetDay(b testing.TB, n int) [][]byte {
	b.Helper()
	loc := time.FixedZone("+08:00", 8*3600)
	s := scenario.Scenario{Name: "bench-day",
		Fleet: scenario.Fleet{Seed: 11, Terminals: 16_000, Regions: 16, IDPrefix: "BN", RegionBase: 310000},
		Start: time.Date(2026, 11, 27, 9, 0, 0, 0, loc), Duration: scenario.Duration(4 * time.Hour),
		Incidents: []scenario.Incident{
			{Type: "failing_terminal", At: scenario.Duration(20 * time.Minute), For: scenario.Duration(2 * time.Hour)},
			{Type: "issuer_outage", ScopeID: "ICBC", At: scenario.Duration(40 * time.Minute), For: scenario.Duration(20 * time.Minute)},
			{Type: "region_outage", ScopeID: "310300", At: scenario.Duration(70 * time.Minute), For: scenario.Duration(time.Hour)},
			{Type: "fraud_attack", At: scenario.Duration(100 * time.Minute), For: scenario.Duration(30 * time.Minute)},
		}}
	msgs := make([][]byte, 0, n)
	if _, err := s.Generate(func(ev *event.Event) {
		if len(msgs) < n {
			msgs = append(msgs, event.AppendJSON(nil, ev))
		}
	}); err != nil {
		b.Fatal(err)
	}
	if len(msgs) < n {
		b.Fatalf("the fleet's morning has %d events, want %d", len(msgs), n)
	}
	return msgs
}
