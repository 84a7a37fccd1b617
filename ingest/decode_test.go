package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

const good = `{"event_id":"t-8812-000417","ts":"2026-11-27T12:03:11.482+08:00","terminal_id":"LKL-8812","merchant_id":"M-310-0042","scheme":"cup","txn_type":"sale","amount_minor":12800,"currency":"CNY","entry_mode":"chip","card_bin":"622848","issuer_id":"ABC","acquirer_id":"LKL","host_id":"sh-fe-2","region":"310000","network":"4g","carrier":"CMCC","signal_dbm":-97,"latency_ms":0,"model":"A8","firmware":"3.2.1","terminal_error":"COMM_TIMEOUT"}`

func TestDecodeGood(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var ev event.Event
	if err := d.Decode([]byte(good), &ev); err != nil {
		t.Fatal(err)
	}
	want := event.Event{
		ID: "t-8812-000417", Time: time.Date(2026, 11, 27, 4, 3, 11, 482e6, time.UTC),
		Terminal: "LKL-8812", Merchant: "M-310-0042", Scheme: event.SchemeCUP, TxnType: "sale",
		AmountMinor: 12800, Currency: "CNY", EntryMode: "chip", CardBIN: "622848", Issuer: "ABC",
		Acquirer: "LKL", Host: "sh-fe-2", Region: "310000", Network: "4g", Carrier: "CMCC",
		SignalDBM: -97, HasSignal: true, LatencyMS: 0, Model: "A8", Firmware: "3.2.1",
		TerminalError: "COMM_TIMEOUT", BatteryPct: -1,
	}
	if ev != want {
		t.Fatalf("got  %+v\nwant %+v", ev, want)
	}
}

func TestDecodeDefaultsAndEscapes(t *testing.T) {
	d := NewDecoder(DecoderConfig{DefaultScheme: event.SchemeCUP})
	var ev event.Event
	msg := `{ "event_id" : "e\u00e9\"1", "ts":"2026-01-02T03:04:05z", "terminal_id":"T\/1","merchant_id":"M1",
	  "response_code":"05", "unknown":{"a":[1,-2.5E+3,true,false,null,{}]}, "amount_minor": null }`
	if err := d.Decode([]byte(msg), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "eé\"1" || ev.Terminal != "T/1" || ev.Scheme != event.SchemeCUP || ev.TxnType != "sale" || ev.AmountMinor != -1 {
		t.Fatalf("unexpected %+v", ev)
	}
	if !ev.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("time %v", ev.Time)
	}
}

func TestDecodeRejects(t *testing.T) {
	base := func(extra string) string {
		return `{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1","response_code":"00"` + extra + `}`
	}
	f := func(name, msg string, reason Reason, field string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{MaxMessageBytes: 4096})
			var ev event.Event
			err := d.Decode([]byte(msg), &ev)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("want rejection %s, got %v", reason, err)
			}
			if de.Reason != reason || de.Field != field {
				t.Fatalf("got %s/%q (%v), want %s/%q", de.Reason, de.Field, err, reason, field)
			}
			if strings.Contains(err.Error(), "4111") {
				t.Fatalf("error message leaks card data: %v", err)
			}
		})
	}
	f("empty", ``, ReasonInvalidJSON, "")
	f("garbage", `hello`, ReasonInvalidJSON, "")
	f("array", `[1,2]`, ReasonInvalidJSON, "")
	f("truncated", `{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T`, ReasonInvalidJSON, "terminal_id")
	f("trailing", base("")+"x", ReasonInvalidJSON, "")
	f("bad unknown value", base(`,"x":tru`), ReasonInvalidJSON, "")
	f("control char", "{\"event_id\":\"a\x01\"}", ReasonInvalidJSON, "event_id")
	f("bad utf8", "{\"event_id\":\"a\xff\"}", ReasonInvalidJSON, "event_id")
	f("missing event_id", `{"ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1","response_code":"00"}`, ReasonMissingField, "event_id")
	f("missing ts", `{"event_id":"e","terminal_id":"T1","merchant_id":"M1","response_code":"00"}`, ReasonMissingField, "ts")
	f("missing terminal", `{"event_id":"e","ts":"2026-11-27T04:03:11Z","merchant_id":"M1","response_code":"00"}`, ReasonMissingField, "terminal_id")
	f("missing merchant", `{"event_id":"e","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","response_code":"00"}`, ReasonMissingField, "merchant_id")
	f("no outcome", `{"event_id":"e","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1"}`, ReasonMissingField, "response_code")
	f("empty outcome", `{"event_id":"e","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1","response_code":"","terminal_error":null}`, ReasonMissingField, "response_code")
	f("null event_id", `{"event_id":null}`, ReasonMissingField, "event_id")
	f("number event_id", `{"event_id":12}`, ReasonBadType, "event_id")
	f("string amount", base(`,"amount_minor":"12"`), ReasonBadType, "amount_minor")
	f("float amount", base(`,"amount_minor":12.5`), ReasonBadType, "amount_minor")
	f("object region", base(`,"region":{"a":1}`), ReasonBadType, "region")
	f("bool scheme", base(`,"scheme":true`), ReasonBadType, "scheme")
	f("bad ts", base(`,"ts":"yesterday"`), ReasonBadTimestamp, "ts")
	f("ts no zone", base(`,"ts":"2026-11-27T04:03:11"`), ReasonBadTimestamp, "ts")
	f("ts feb 30", base(`,"ts":"2026-02-30T04:03:11Z"`), ReasonBadTimestamp, "ts")
	f("ts hour 24", base(`,"ts":"2026-02-03T24:03:11Z"`), ReasonBadTimestamp, "ts")
	f("ts 10 fraction digits", base(`,"ts":"2026-02-03T04:03:11.1234567891Z"`), ReasonBadTimestamp, "ts")
	f("negative amount", base(`,"amount_minor":-1`), ReasonOutOfRange, "amount_minor")
	f("huge amount", base(`,"amount_minor":99999999999999999999999`), ReasonOutOfRange, "amount_minor")
	f("battery 101", base(`,"battery_pct":101`), ReasonOutOfRange, "battery_pct")
	f("negative latency", base(`,"latency_ms":-5`), ReasonOutOfRange, "latency_ms")
	f("empty event_id", base(`,"event_id":""`), ReasonOutOfRange, "event_id")
	f("long terminal", base(`,"terminal_id":"`+strings.Repeat("x", 65)+`"`), ReasonOutOfRange, "terminal_id")
	f("3 char code", base(`,"response_code":"000"`), ReasonOutOfRange, "response_code")
	f("short bin", base(`,"card_bin":"6228"`), ReasonOutOfRange, "card_bin")
	f("bad scheme", base(`,"scheme":"visa"`), ReasonInvalidValue, "scheme")
	f("bad network", base(`,"network":"3g"`), ReasonInvalidValue, "network")
	f("bad currency", base(`,"currency":"cny"`), ReasonInvalidValue, "currency")
	f("letters in bin", base(`,"card_bin":"62A848"`), ReasonInvalidValue, "card_bin")
	f("pan", base(`,"pan":"4111111111111111"`), ReasonSensitiveData, "pan")
	f("card_number", base(`,"card_number":4111111111111111`), ReasonSensitiveData, "card_number")
	f("track2", base(`,"track2":"4111111111111111=25121011234"`), ReasonSensitiveData, "track2")
	f("cvv", base(`,"cvv":"123"`), ReasonSensitiveData, "cvv")
	f("cvv2", base(`,"cvv2":"123"`), ReasonSensitiveData, "cvv2")
	f("pin", base(`,"pin":"1234"`), ReasonSensitiveData, "pin")
	f("pin_block", base(`,"pin_block":"0412AC89ABCDEF67"`), ReasonSensitiveData, "pin_block")
	f("track1", base(`,"track1":"B4111111111111111^DOE/JOHN^2512"`), ReasonSensitiveData, "track1")
	f("long bin", base(`,"card_bin":"4111111111111111"`), ReasonSensitiveData, "card_bin")
	f("pan in broken json", `{"pan":"4111111111111111","ts":`, ReasonSensitiveData, "pan")
	f("pan with bad type", base(`,"amount_minor":"x","pan":"4111111111111111"`), ReasonSensitiveData, "")
	f("too large", base(`,"x":"`+strings.Repeat("a", 5000)+`"`), ReasonTooLarge, "")
	f("deep nesting", base(`,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)), ReasonInvalidJSON, "")
}

func TestMask(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(Mask([]byte(in))); got != want {
			t.Errorf("Mask(%s)\n got %s\nwant %s", in, got, want)
		}
	}
	f(`{"pan":"4111111111111111","a":1}`, `{"pan":"****************","a":1}`)
	f(`{"card_number": 4111111111111111}`, `{"card_number": ****************}`)
	f(`{"cvv":"123","pin_block":"AB\"CD"}`, `{"cvv":"***","pin_block":"******"}`)
	f(`{"card_bin":"4111111111111111"}`, `{"card_bin":"****************"}`)
	f(`{"card_bin":"123456789012"}`, `{"card_bin":"123456******"}`)
	f(`{"card_bin":"62284801"}`, `{"card_bin":"62284801"}`)
	f(`{"note":"card 4111111111111111 failed"}`, `{"note":"card **************** failed"}`)
	f(`{"track2":"4111111111111111=2512101`, `{"track2":"************************`)
	f(`{"ts":"2026-11-27T04:03:11Z","amount_minor":12800}`, `{"ts":"2026-11-27T04:03:11Z","amount_minor":12800}`)
}

// TestDecodeMatchesEncodingJSON cross-checks the hand-written scanner with
// encoding/json on every valid line of the fixture.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, line := range fixtureLines(t) {
		var ev event.Event
		err := NewDecoder(DecoderConfig{}).Decode(line, &ev)
		var generic map[string]any
		jsonErr := json.Unmarshal(line, &generic)
		if jsonErr != nil && err == nil {
			t.Errorf("accepted invalid JSON %s", line)
		}
		if err != nil || jsonErr != nil {
			continue
		}
		if generic["event_id"] != ev.ID || generic["terminal_id"] != ev.Terminal || generic["merchant_id"] != ev.Merchant {
			t.Errorf("field mismatch on %s: %+v", line, ev)
		}
	}
}

func fixtureLines(tb testing.TB) [][]byte {
	tb.Helper()
	f, err := os.Open("testdata/events.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

func FuzzDecode(f *testing.F) {
	for _, line := range fixtureLines(f) {
		f.Add(line)
	}
	f.Add([]byte(good))
	for _, seed := range []string{
		`{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"4111 1111 1111 1111","merchant_id":"M1","response_code":"05"}`,
		`{"event_id":"e1","note":"%B4111111111111112^DOE/JOHN^2512?","card":{"P\u0041N":[378282246310005]}}`,
		`{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"898310048990001","response_code":"05","x":";6011000990139424=25121011?"}`,
		`{"pan":"6212-3456-7890-1232","ts":`,
	} {
		f.Add([]byte(seed))
	}
	d := NewDecoder(DecoderConfig{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev event.Event
		err := d.Decode(data, &ev)
		if err == nil {
			if !json.Valid(data) {
				t.Fatalf("accepted invalid JSON: %q", data)
			}
			if ev.ID == "" || ev.Terminal == "" || ev.Merchant == "" || (ev.ResponseCode == "" && ev.TerminalError == "") {
				t.Fatalf("accepted event without required fields: %q", data)
			}
			if len(ev.CardBIN) > 8 {
				t.Fatalf("accepted long card_bin")
			}
			if names, numbers := oracleCardData(t, data); names || numbers {
				t.Fatalf("accepted a message with card data: %q", data)
			}
			// Forwarding re-encodes the event: the copy must decode to
			// the same event.
			again := event.AppendJSON(nil, &ev)
			var ev2 event.Event
			if err := NewDecoder(DecoderConfig{}).Decode(again, &ev2); err != nil || ev2 != ev {
				t.Fatalf("re-encoded event differs: %v\n%+v\n%+v\n%s", err, ev, ev2, again)
			}
			return
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason >= NumReasons {
			t.Fatalf("unexpected error type %T %v", err, err)
		}
		masked := Mask(data)
		if len(masked) != len(data) {
			t.Fatalf("mask changed length")
		}
		if names, numbers := oracleCardData(t, data); (names || numbers) && de.Reason != ReasonSensitiveData && de.Reason != ReasonTooLarge {
			t.Fatalf("message with card data rejected as %s: %q", de.Reason, data)
		}
		if _, numbers := oracleCardData(t, masked); numbers {
			t.Fatalf("card data left after masking: %q -> %q", data, masked)
		}
	})
}

// TestSpecialMatchesTable checks the eight-bytes-at-a-time scan against the
// byte table for every byte value at every position.
func TestSpecialMatchesTable(t *testing.T) {
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(b[i])
			}
			m := special(x)
			first := -1
			for i, c := range b {
				if !plain[c] {
					first = i
					break
				}
			}
			got := -1
			if m != 0 {
				got = bitsTrailing(m) / 8
			}
			if got != first {
				t.Fatalf("byte %#x at %d: special says %d, table says %d", c, pos, got, first)
			}
		}
	}
}

func bitsTrailing(m uint64) int {
	n := 0
	for m&1 == 0 {
		m >>= 1
		n++
	}
	return n
}

// The per-field caches of low-cardinality values must never let card data
// through: a value is cached only after it passed the check, and a clean
// value sharing a slot does not vouch for another.
func TestLabelCacheKeepsTheCardDataCheck(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	msg := func(field, v string) []byte {
		return []byte(`{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1","response_code":"00","` +
			field + `":"` + v + `"}`)
	}
	pan := "4111111111111111"
	for _, field := range []string{"region", "carrier", "model", "firmware", "issuer_id", "acquirer_id", "host_id", "terminal_error"} {
		var ev event.Event
		for round := range 3 {
			// Fill every slot with clean values first, then the PAN, again.
			for i := range 600 {
				if err := d.Decode(msg(field, "v-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))), &ev); err != nil {
					t.Fatalf("%s: clean value rejected: %v", field, err)
				}
			}
			err := d.Decode(msg(field, pan), &ev)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != ReasonSensitiveData {
				t.Fatalf("%s round %d: a card number was accepted (err %v)", field, round, err)
			}
		}
		// A repeated clean value is the same interned string.
		var a, b event.Event
		if err := d.Decode(msg(field, "SH-01"), &a); err != nil {
			t.Fatal(err)
		}
		if err := d.Decode(msg(field, "SH-01"), &b); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("%s: %+v then %+v", field, a, b)
		}
	}
}
