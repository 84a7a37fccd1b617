package pipeline

import (
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/ingest"
)

// realistic returns n distinct event-v1 messages from a 2000-terminal fleet
// with the usual mix of approvals and declines, 10 ms of event time apart
// (a partition's events are in time order, as a fleet's are).
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
func BenchmarkPathDecodeClassify(b *testing.B) { benchPath(b, true) }

// BenchmarkPathDecodeClassifyDetect adds the event-time merge, the
// windowed counts per scope and cause, and detection.
func BenchmarkPathDecodeClassifyDetect(b *testing.B) { benchPath(b, false) }

func benchPath(b *testing.B, noDetection bool) {
	msgs := realistic(b, 4096)
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
		m := ingest.Message{Value: msgs[i&4095], Topic: "t", Offset: int64(i), HighWaterMark: -1, OriginTopic: topic}
		p.handle(&m)
		i++
	}
	if p.Counters().Accepted.Load() != uint64(i) {
		b.Fatalf("accepted %d of %d", p.Counters().Accepted.Load(), i)
	}
}
