package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/event"
)

// The oracle below restates the card-data policy from the README with
// encoding/json and regular expressions, apart from the product's
// byte-level detector, so the fuzz test and the tables check the detector
// against the policy rather than against itself.

var (
	oracleRun    = regexp.MustCompile(`[0-9]+(?:(?:[ \t\-._/]|\x{00A0}|[\x{2000}-\x{200D}]|[\x{2010}-\x{2015}]|\x{2060}|\x{3000}|\x{FF0D}|\x{FF0E}|\x{FEFF}){1,3}[0-9]+)*`)
	oracleTrack2 = regexp.MustCompile(`(?:^|[^0-9])[0-9]{12,19}[=D][0-9]{4}`)
	oracleTrack1 = regexp.MustCompile(`[Bb][0-9]{12,19}\^`)
	oracleGroup  = regexp.MustCompile(`[0-9]+`)
	oracleUEsc   = regexp.MustCompile(`\\u00([2-7][0-9a-fA-F])`)
	oracleNames  = map[string]bool{"pan": true, "cardnumber": true, "cardno": true, "primaryaccountnumber": true,
		"track1": true, "track2": true, "trackdata": true, "cvv": true, "cvv2": true, "cvc": true, "cvc2": true,
		"cav2": true, "pin": true, "pinblock": true}
)

func oracleLuhn(digits string) bool {
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d = d * 2
			if d > 9 {
				d = d/10 + d%10
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// oracleText reports a card number or track data in s.
func oracleText(s string) bool {
	s = strings.Map(func(r rune) rune { // fullwidth digits are digits
		if r >= '０' && r <= '９' {
			return '0' + (r - '０')
		}
		return r
	}, s)
	if oracleTrack2.MatchString(s) || oracleTrack1.MatchString(s) {
		return true
	}
	for _, run := range oracleRun.FindAllString(s, -1) {
		groups := oracleGroup.FindAllString(run, -1)
		for a := range groups {
			joined := ""
			for z := a; z < len(groups); z++ {
				joined += groups[z]
				if len(joined) > 19 {
					break
				}
				ms, _ := strconv.ParseInt(joined, 10, 64)
				if len(joined) == 13 && ms >= 978307200000 && ms < 4000000000000 {
					continue // a Unix-millisecond timestamp
				}
				if len(joined) >= 13 && joined[0] != '0' && oracleLuhn(joined) {
					return true
				}
			}
		}
	}
	return false
}

func oracleName(k string) bool {
	k = strings.NewReplacer("_", "", "-", "", ".", "", " ", "").Replace(strings.ToLower(k))
	return oracleNames[k]
}

// oracleCardData reports card-data field names and card numbers (or track
// data) in a message: walked as JSON when it is valid, otherwise as text
// with its \u00XX escapes decoded.
func oracleCardData(t testing.TB, data []byte) (names, numbers bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if json.Valid(data) && dec.Decode(&v) == nil {
		var walk func(v any, top bool)
		walk = func(v any, top bool) {
			switch x := v.(type) {
			case map[string]any:
				cup := top && x["scheme"] == "cup"
				for k, e := range x {
					if oracleName(k) {
						names = true
					}
					if oracleText(k) {
						numbers = true
					}
					if s, ok := e.(string); ok && cup && k == "merchant_id" && len(s) == 15 &&
						strings.Trim(s, "0123456789") == "" && !strings.HasPrefix(s, "34") && !strings.HasPrefix(s, "37") {
						continue // a China UnionPay merchant code
					}
					walk(e, false)
				}
			case []any:
				for _, e := range x {
					walk(e, false)
				}
			case string:
				if oracleText(x) {
					numbers = true
				}
			case json.Number:
				if oracleText(x.String()) {
					numbers = true
				}
			}
		}
		walk(v, true)
		return names, numbers
	}
	text := oracleUEsc.ReplaceAllStringFunc(string(data), func(m string) string {
		n, _ := strconv.ParseUint(m[2:], 16, 8)
		return string(rune(n))
	})
	return false, oracleText(text)
}

func TestOracleItself(t *testing.T) {
	for _, s := range []string{"4111111111111111", "4111 1111 1111 1111", "3782-822463-10005", "x6011000990139424y",
		";4000000000000002=25121011?", "%B4000000000000002^DOE/J^2512?"} {
		if !oracleText(s) {
			t.Errorf("oracle misses %q", s)
		}
	}
	for _, s := range []string{"4111111111111112", "411111******1111", "12345678901234567890123", "2026-11-27T04:03:11Z",
		"41111111111111112512"} { // a card number glued to an expiry is a long identifier (documented)
		if oracleText(s) {
			t.Errorf("oracle flags %q", s)
		}
	}
}

// Luhn-valid numbers of every length the policy covers, one per scheme.
var testPANs = []string{
	"4222222222222",       // Visa 13
	"4111111111111111",    // Visa 16
	"4000000000000000006", // Visa 19
	"5555555555554444",    // Mastercard
	"2223000048400011",    // Mastercard 2-series
	"378282246310005",     // Amex 15
	"6011000990139424",    // Discover
	"6212345678901232",    // UnionPay 16
	"6250941006528599",    // UnionPay
	"3530111333300000",    // JCB
	"6759649826438453",    // Maestro
	"36227206271667",      // Diners 14
}

func TestCardDataRejectedEverywhere(t *testing.T) {
	const head = `{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","merchant_id":"M1","response_code":"05"`
	d := NewDecoder(DecoderConfig{})
	f := func(name, msg string, field string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			var ev event.Event
			err := d.Decode([]byte(msg), &ev)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != ReasonSensitiveData || de.Field != field {
				t.Fatalf("got %v, want sensitive_data on %q", err, field)
			}
			if _, numbers := oracleCardData(t, Mask([]byte(msg))); numbers {
				t.Fatalf("masked copy still holds card data: %s", Mask([]byte(msg)))
			}
			if oracleText(err.Error()) {
				t.Fatalf("error text holds card data: %v", err)
			}
		})
	}
	for _, pan := range testPANs {
		grouped := pan[:4] + " " + pan[4:8] + " " + pan[8:12] + " " + pan[12:]
		dashed := pan[:4] + "-" + pan[4:10] + "-" + pan[10:]
		for _, field := range []string{"event_id", "terminal_id", "merchant_id", "terminal_error", "issuer_id",
			"acquirer_id", "host_id", "region", "carrier", "model", "firmware"} {
			f(field+"/"+pan, head+`,"`+field+`":"`+pan+`"}`, field)
			f(field+"/grouped/"+pan, head+`,"`+field+`":"x `+grouped+` y"}`, field)
			f(field+"/dashed/"+pan, head+`,"`+field+`":"`+dashed+`"}`, field)
		}
		f("note/"+pan, head+`,"note":"card `+grouped+` declined"}`, "")
		f("nested/"+pan, head+`,"card":{"meta":[1,{"x":"`+pan+`"}]}}`, "")
		f("number/"+pan, head+`,"ref":`+pan+`}`, "")
		f("amount/"+pan, head+`,"amount_minor":`+pan+`}`, "amount_minor")
		f("key/"+pan, head+`,"`+pan+`":1}`, "")
		f("escaped digits/"+pan, head+`,"note":"\u00`+strconv.FormatInt(int64(pan[0]), 16)+pan[1:]+`"}`, "")
		f("track2/"+pan, head+`,"note":";`+pan+`=2512101123400001?"}`, "")
		f("track1/"+pan, head+`,"note":"%B`+pan+`^DOE/JOHN^2512101?"}`, "")
	}
	for _, key := range []string{"pan", "PAN", "Pan", "p\\u0061n", "card_number", "cardNumber", "CARD-NUMBER", "track2",
		"Track_2", "cvv", "CVV2", "pin", "pinBlock", "PIN_BLOCK"} {
		want := sensitiveName([]byte(strings.ReplaceAll(key, `\u0061`, "a")))
		f("key "+key, head+`,"`+key+`":"123"}`, want)
		f("nested key "+key, head+`,"card":{"x":[{"`+key+`":null}]}}`, want)
	}
	for name, pan := range map[string]string{
		"dots": "4111.1111.1111.1111", "underscores": "4111_1111_1111_1111", "slashes": "4111/1111/1111/1111",
		"double spaces": "4111  1111  1111  1111", "tab": "4111\\t1111\\t1111\\t1111", "no-break space": "4111\u00a01111\u00a01111\u00a01111",
		"zero-width space": "4111\u200b1111\u200b1111\u200b1111", "en dash": "4111\u20131111\u20131111\u20131111",
		"fullwidth digits": "４１１１１１１１１１１１１１１１", "ideographic space": "4111\u30001111\u30001111\u30001111",
	} {
		f("separators/"+name, head+`,"terminal_id":"`+pan+`"}`, "terminal_id")
	}
	f("float", head+`,"x":4.111111111111111e15}`, "")
	f("track2 not luhn", head+`,"note":"4111111111111112=25121011234"}`, "")
	f("track2 D", head+`,"note":"4111111111111112D25121011234"}`, "")
	f("malformed with pan", `{"event_id":"e1","note":"4111 1111 1111 1111",`, "")
	f("luhn merchant id outside cup", head[:len(head)-len(`"merchant_id":"M1","response_code":"05"`)]+`"merchant_id":"102310058120007","response_code":"05"}`, "merchant_id")
	f("amex merchant id", head[:len(head)-len(`"merchant_id":"M1","response_code":"05"`)]+`"merchant_id":"378282246310005","response_code":"05"}`, "merchant_id")
}

func TestLongDigitStringsThatAreNotCards(t *testing.T) {
	const head = `{"event_id":"e1","ts":"2026-11-27T04:03:11Z","terminal_id":"T1","response_code":"05"`
	d := NewDecoder(DecoderConfig{})
	for name, extra := range map[string]string{
		"cup merchant id":   `,"merchant_id":"898310048990001","scheme":"cup"`,
		"cup merchant luhn": `,"scheme":"cup","merchant_id":"102310058120007"`,
		"not luhn":          `,"merchant_id":"M1","note":"4111111111111112"`,
		"too long":          `,"merchant_id":"M1","order":"20261127120311482000123"`,
		"too short":         `,"merchant_id":"M1","order":"411111111111"`,
		"bin":               `,"merchant_id":"M1","card_bin":"62284801"`,
		"timestamp":         `,"merchant_id":"M1","at":"2026-11-27 04:03:11.123456789"`,
		"amount":            `,"merchant_id":"M1","amount_minor":123456789012`,
		"epoch millis":      `,"merchant_id":"M1","sent_ms":1764225600004,"ts_ms":"1764225600004"`,
	} {
		msg := head + extra + "}"
		var ev event.Event
		if err := d.Decode([]byte(msg), &ev); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !oracleLuhn("102310058120007") {
		t.Fatal("the Luhn-valid CUP merchant id above is not Luhn-valid; pick another")
	}
}

func TestMaskCardData(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(Mask([]byte(in))); got != want {
			t.Errorf("Mask(%s)\n got %s\nwant %s", in, got, want)
		}
	}
	f(`{"p\u0061n":"4111 1111 1111 1111"}`, `{"p\u0061n":"*******************"}`)
	f(`{"PAN":"1"}`, `{"PAN":"*"}`)
	f(`{"card":{"Pan":{"n":"4111","x":[4111,true]}},"a":1}`, `{"card":{"Pan":{"*":"****","*":[****,****]}},"a":1}`)
	f(`{"note":"4111-1111-1111-1111 ok"}`, `{"note":"****-****-****-**** ok"}`)
	f(`{"note":"\u0034111111111111111"}`, `{"note":"*********************"}`)
	f(`{"t":";4111111111111112=2512101?"}`, `{"t":";************************?"}`)
	f(`{"t":"%B4111111111111112^DOE/JOHN^2512?"}`, `{"t":"%*******************************?"}`)
	f(`{"ref":4111111111111111,"n":12}`, `{"ref":****************,"n":12}`)
	f(`{"4111111111111111":1}`, `{"****************":1}`)
	f(`broken 4111111111111111 {"pan`, `broken **************** {"pan`)
	f(`{'cvv': '123', 'pan': 'x'}`, `{'cvv': '***', 'pan': '*'}`)
	f(`{"cvv" "123"}`, `{"cvv" "***"}`)
	f(`pan=4111&cvv=123&x=1`, `pan=****&cvv=***&x=1`)
	f(`{"x":4.111111111111111e15,`, `{"x":*****************e15,`)
	f(`{"x":41.11111111111111e14,`, `{"x":*****************e14,`)
	f(`{"note":"enter the pin now"`, `{"note":"enter the pin now"`)
}

// BenchmarkScanHostile is one 60 KiB string of single digits joined by
// dashes: the worst case for the grouped-run check, which must stay linear.
func BenchmarkScanHostile(b *testing.B) {
	msg := []byte(`{"event_id":"e1","note":"` + strings.Repeat("1-", 30<<10) + `"}`)
	d := NewDecoder(DecoderConfig{MaxMessageBytes: 1 << 20})
	var ev event.Event
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		d.Decode(msg, &ev)
		Mask(msg)
	}
}

// TestCardScannerReuseMatchesAFreshScan: a Decoder's scanner keeps its
// working memory from value to value. Over values that grow it (digit runs
// far beyond 64 digits), then short ones, PANs among ids and after them,
// its verdict is the fresh scan's every time: nothing of one value is left
// to the next.
func TestCardScannerReuseMatchesAFreshScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	pans := []string{"4111111111111111", "6228480402564890018", "5500 0000 0000 0004", "4111-1111-1111-1111"}
	var c cardScanner
	hits := 0
	for i := range 20000 {
		var b []byte
		switch i % 5 {
		case 0: // a long run of digits, some separators
			for range 10 + rng.IntN(300) {
				if rng.IntN(12) == 0 {
					b = append(b, " -"[rng.IntN(2)])
				} else {
					b = append(b, byte('0'+rng.IntN(10)))
				}
			}
		case 1: // an id with a long numeric part
			b = fmt.Appendf(nil, "BN-%06d-%09d", rng.IntN(1e6), rng.IntN(1e9))
		case 2: // a PAN inside text
			b = fmt.Appendf(nil, "ref %s x%d", pans[rng.IntN(len(pans))], rng.IntN(100))
		case 3: // short values
			b = fmt.Appendf(nil, "%d", rng.IntN(1e6))
		default: // a PAN after a long run
			b = fmt.Appendf(nil, "%0120d %s", rng.IntN(1e9), pans[rng.IntN(len(pans))])
		}
		got, want := c.holds(b), scanCardData(b, nil)
		if got != want {
			t.Fatalf("value %d %q: reused scanner says %v, a fresh scan %v", i, b, got, want)
		}
		if want {
			hits++
		}
	}
	if hits < 4000 {
		t.Fatalf("only %d values held card data: the test does not exercise the hits", hits)
	}
}
