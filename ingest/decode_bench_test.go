package ingest

import (
	"encoding/json"
	"testing"

	"github.com/declinemon/declinemon/event"
)

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(DecoderConfig{})
	msg := []byte(good)
	var ev event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := d.Decode(msg, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEncodingJSON is the baseline the hand-written scanner was
// chosen against: encoding/json into a tagged struct, no validation.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	type wire struct {
		EventID       string `json:"event_id"`
		TS            string `json:"ts"`
		TerminalID    string `json:"terminal_id"`
		MerchantID    string `json:"merchant_id"`
		Scheme        string `json:"scheme"`
		TxnType       string `json:"txn_type"`
		AmountMinor   *int64 `json:"amount_minor"`
		Currency      string `json:"currency"`
		EntryMode     string `json:"entry_mode"`
		CardBIN       string `json:"card_bin"`
		IssuerID      string `json:"issuer_id"`
		AcquirerID    string `json:"acquirer_id"`
		HostID        string `json:"host_id"`
		Region        string `json:"region"`
		Network       string `json:"network"`
		Carrier       string `json:"carrier"`
		SignalDBM     *int   `json:"signal_dbm"`
		LatencyMS     *int   `json:"latency_ms"`
		Model         string `json:"model"`
		Firmware      string `json:"firmware"`
		TerminalError string `json:"terminal_error"`
		ResponseCode  string `json:"response_code"`
	}
	msg := []byte(good)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		var w wire
		if err := json.Unmarshal(msg, &w); err != nil {
			b.Fatal(err)
		}
	}
}
