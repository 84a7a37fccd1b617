package cardtest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestFinderFindsPlantedNumbers(t *testing.T) {
	const visa, amex, up = "4556737586899855", "378282246310005", "6228480402564890018"
	fd := NewFinder(visa, amex, up)
	fd.AddLiteral("04A1C9E3B2F07D65")
	f := func(name, out, wantSecret, wantRule string) {
		t.Helper()
		hits := fd.Find([]byte(out))
		for _, h := range hits {
			if h.Secret == wantSecret && (wantRule == "" || h.Rule == wantRule) {
				return
			}
		}
		t.Errorf("%s: %q: want %s (%s), got %v", name, out, wantSecret, wantRule, hits)
	}
	f("plain", `terminal T1 card 4556737586899855 ok`, visa, "full")
	f("spaces", `{"note":"4556 7375 8689 9855"}`, visa, "full")
	f("dashes", `4556-7375-8689-9855`, visa, "full")
	f("amex grouping", `3782 822463 10005`, amex, "full")
	f("irregular", `455 67375 868 99855`, visa, "full")
	f("mixed separators", `4556.7375/8689_9855`, visa, "full")
	f("json escaped digits", `{"terminal_id":"\u0034\u0035\u0035\u0036\u0037\u0033\u0037\u0035\u0038\u0036\u0038\u0039\u0039\u0038\u0035\u0035"}`, visa, "full")
	f("half escaped", `"4\u00355\u00367\u00337\u00358\u00368\u00399\u003855"`, visa, "full")
	f("escaped separators", `4556\u00207375\u002d8689\u00209855`, visa, "full")
	f("double escaped in a log line", `{"msg":"rejected","value":"{\"p\\u0061n\":\"\\u0034556 7375 8689 9855\"}"}`, visa, "full")
	f("go quoted", `value="\x34556737586899855"`, visa, "full")
	f("fullwidth digits", `４５５６７３７５８６８９９８５５`, visa, "full")
	f("array of groups", `["4556","7375","8689","9855"]`, visa, "full")
	f("track 1", `%B4556737586899855^DOE/JOHN^2812101000000?`, visa, "full")
	f("track 2", `;6228480402564890018=28121010000?`, up, "full")
	f("emv track 2", `6228480402564890018D2812101F`, up, "full")
	f("float rendering", `amount=6.228480402564890e+18`, up, "window")
	f("partial: 11 digits", `ref 73758689985`, visa, "window")
	f("prefix masked only", `******7586899855`, visa, "masked-middle")
	f("mask too short", `4556737586**9855`, visa, "masked-middle")
	f("masked with separators, middle shown", `4556 7375 86** 9855`, visa, "masked-middle")
	f("url encoded", `q=%34%35%35%36%37%33%37%35%38%36%38%39%39%38%35%35`, visa, "full")
	f("base64", `payload=`+base64.StdEncoding.EncodeToString([]byte(`{"pan":"4556 7375 8689 9855"}`)), visa, "full")
	f("base64 raw url", `v=`+base64.RawURLEncoding.EncodeToString([]byte(`card 378282246310005!`)), amex, "full")
	f("hex", `value=`+hex.EncodeToString([]byte(`{"pan":"6228480402564890018"}`)), up, "full")
	f("go byte dump", fmt.Sprintf("{Key:[] Value:%v}", []byte(`{"pan":"4556737586899855"}`)), visa, "full")
	f("json byte array", mustJSON(t, []int{52, 53, 53, 54, 55, 51, 55, 53, 56, 54, 56, 57, 57, 56, 53, 53}), visa, "full")
	f("pin block literal, other case", `pin_block=04a1c9e3b2f07d65`, "04A1C9E3B2F07D65", "literal")
	f("pin block escaped", `"\u0030\u0034A1C9E3B2F07D65"`, "04A1C9E3B2F07D65", "literal")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFinderIgnoresMaskedAndUnrelated(t *testing.T) {
	const visa, amex, up = "4556737586899855", "378282246310005", "6228480402564890018"
	fd := NewFinder(visa, amex, up)
	f := func(name, out string) {
		t.Helper()
		if hits := fd.Find([]byte(out)); len(hits) > 0 {
			t.Errorf("%s: %q flagged: %v", name, out, hits)
		}
	}
	f("first 6 last 4", `455673******9855`)
	f("first 6 last 4 with separators", `4556 73** **** 9855`)
	f("last 4 only", `**** **** **** 9855`)
	f("X mask", `455673XXXXXX9855`)
	f("hash mask", `378282#####0005`)
	f("bullet mask", `622848•••••••••0018`)
	f("mask dropped: 6+4 joined", `4556739855`)
	f("mask dropped with ellipsis", `455673…9855`)
	f("fully masked", `****************`)
	f("19-digit first 6 last 4", `{"pan":"622848*********0018"}`)
	f("bin only", `{"card_bin":"622848"}`)
	f("10 digits from the middle", `7375868998`)
	f("another card", `4111 1111 1111 1111`)
	f("digits broken by letters", `4556a7375b8689c9855`)
	f("far apart", `4556    7375    8689    9855`)
	f("timestamps and offsets", `{"ts":"2026-11-27T10:00:02.772000794Z","offset":455673,"partition":3,"lag":0}`)
	f("masked in JSON log", `{"level":"warn","msg":"message rejected","terminal_id":"455673******9855","offset":12}`)
}

// TestFinderOnEveryPlantedLine: the finder sees each line's planted
// numbers in the line itself — behind escapes, separators and track
// framing — and nothing in the clean lines.
func TestFinderOnEveryPlantedLine(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		c := NewCorpus(Options{Seed: seed})
		fd := c.Finder()
		for _, l := range c.Lines {
			hits := fd.Find(l.Data)
			found := map[string]bool{}
			for _, h := range hits {
				found[h.Secret] = true
			}
			for _, card := range l.Cards {
				if !found[card.PAN] {
					t.Errorf("seed %d %s: planted %s not found in %.300s", seed, l.Kind, card.PAN, l.Data)
				}
			}
			for _, s := range l.Literals {
				if !found[s] {
					t.Errorf("seed %d %s: literal %s not found", seed, l.Kind, s)
				}
			}
			if len(l.Cards) == 0 && len(l.Literals) == 0 && len(hits) > 0 {
				t.Errorf("seed %d %s: finder flags a line with nothing planted: %v", seed, l.Kind, hits)
			}
		}
	}
}

func TestCorpusShape(t *testing.T) {
	c := NewCorpus(Options{Seed: 1})
	kinds := map[string]bool{}
	hot := map[string]int{}
	for _, l := range c.Lines {
		kinds[strings.SplitN(l.Kind, "/", 2)[0]] = true
		if l.Hot != "" {
			hot[l.Hot]++
		}
		for _, card := range l.Cards {
			if !Luhn(card.PAN) || len(card.PAN) < MinLen {
				t.Errorf("%s: planted %s is not a 13–19 digit Luhn-valid number", l.Kind, card.PAN)
			}
		}
		if l.Want == TooLarge && len(l.Data) <= 64<<10 {
			t.Errorf("%s: %d bytes is not over the limit", l.Kind, len(l.Data))
		}
		if l.Want != TooLarge && len(l.Data) > 4096 {
			t.Errorf("%s: %d bytes", l.Kind, len(l.Data))
		}
		if strings.ContainsAny(string(l.Data), "\n\r") {
			t.Errorf("%s: line break inside a line", l.Kind)
		}
	}
	for _, k := range []string{"clean", "field", "checked-field", "note", "key", "sensitive-key", "escaped-value", "escaped-key", "number", "track", "malformed", "oversized", "hot"} {
		if !kinds[k] {
			t.Errorf("no %s lines", k)
		}
	}
	for _, s := range HotScopes() {
		if hot[s] < 20 {
			t.Errorf("hot scope %s has %d lines", s, hot[s])
		}
	}
	for i := 1; i < len(c.Lines); i++ {
		if c.Lines[i].Time.Before(c.Lines[i-1].Time) {
			t.Fatal("lines not in event-time order")
		}
	}
	// Clean lines are valid JSON; so are planted ones except malformed and
	// oversized (which is valid JSON, only too large).
	for _, l := range c.Lines {
		if strings.HasPrefix(l.Kind, "malformed/") {
			if json.Valid(l.Data) {
				t.Errorf("%s is valid JSON", l.Kind)
			}
			continue
		}
		if !json.Valid(l.Data) {
			t.Errorf("%s is not valid JSON: %.200s", l.Kind, l.Data)
		}
	}
	again := NewCorpus(Options{Seed: 1})
	if string(again.JSONL()) != string(c.JSONL()) {
		t.Error("same seed, different corpus")
	}
	canary := NewCorpus(Options{Seed: 1, Canary: true})
	if canary.Count(Sensitive)+canary.Count(TooLarge) != 0 || len(canary.Cards()) != 0 || len(canary.Canaries) != len(HotScopes()) {
		t.Errorf("canary corpus: %d sensitive, %d cards, canaries %v", canary.Count(Sensitive), len(canary.Cards()), canary.Canaries)
	}
	for _, tok := range canary.Canaries {
		if strings.ContainsAny(tok, "0123456789") {
			t.Errorf("canary %s has digits", tok)
		}
	}
}

func TestLookalikesAreNotCards(t *testing.T) {
	g := NewGen(9)
	for range 100 {
		d := g.lookalikeDigits(16)
		if !luhnFree(d) {
			t.Fatalf("%s has a Luhn-valid window", d)
		}
	}
}
