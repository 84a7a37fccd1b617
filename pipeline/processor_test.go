package pipeline

import (
	"strconv"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/ingest"
)

// realistic returns n distinct event-v1 messages from a 2000-terminal fleet
// with the usual mix of approvals and declines.
func realistic(b testing.TB, n int) [][]byte {
	b.Helper()
	codes := []string{`"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`,
		`"response_code":"00"`, `"response_code":"00"`, `"response_code":"51"`, `"terminal_error":"COMM_TIMEOUT"`}
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(`{"event_id":"evt-` + strconv.Itoa(i) + `","ts":"2026-11-27T12:03:` + strconv.Itoa(10+i%50) + `.482+08:00","terminal_id":"LKL-` + strconv.Itoa(i%2000) +
			`","merchant_id":"M-310-` + strconv.Itoa(i%500) + `","scheme":"cup","txn_type":"sale","amount_minor":12800,"currency":"CNY","entry_mode":"chip","card_bin":"622848","issuer_id":"ABC","acquirer_id":"LKL","host_id":"sh-fe-2","region":"310000","network":"4g","carrier":"CMCC","signal_dbm":-97,"latency_ms":412,"model":"A8","firmware":"3.2.1",` +
			codes[i%len(codes)] + `}`)
	}
	return msgs
}

// BenchmarkDecodeClassify is the hot path without detection.
func BenchmarkDecodeClassify(b *testing.B) { benchProcess(b, nil) }

// BenchmarkDecodeClassifyDetect adds the windowed counts per scope and cause
// and detection.
func BenchmarkDecodeClassifyDetect(b *testing.B) {
	eng, err := alerting.NewEngine(alerting.Config{}, func(alerting.Alert) {})
	if err != nil {
		b.Fatal(err)
	}
	benchProcess(b, eng)
}

func benchProcess(b *testing.B, eng *alerting.Engine) {
	msgs := realistic(b, 4096)
	p := NewProcessor(ingest.NewDecoder(ingest.DecoderConfig{}), classify.Default(), eng)
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	i := 0
	for b.Loop() {
		if r := p.Process(msgs[i&4095]); r.Reject != nil {
			b.Fatal(r.Reject)
		}
		i++
	}
}
