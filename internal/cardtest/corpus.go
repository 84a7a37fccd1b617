package cardtest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options shape a corpus. Zero fields take the defaults in brackets.
type Options struct {
	Seed uint64
	// Start is the event time of the first line [2026-11-27T10:00:00Z].
	Start time.Time
	// Duration is the event-time span of the clean traffic [22m]; the
	// hot scopes fail between 5 and 19 minutes in.
	Duration time.Duration
	// Terminals is the size of the clean fleet [60].
	Terminals int
	// Every is how often each clean terminal sends an event [20s].
	Every time.Duration
	// MaxMessageBytes is the size limit the oversized lines exceed [65536].
	MaxMessageBytes int
	// Canary builds the control corpus: clean lines and the hot-scope
	// lines only, with a harmless token (letters only) where the card
	// number would be. Every line must be accepted, and the tokens must
	// reach the outputs the real corpus is checked on, which proves the
	// check would see a card number that got through.
	Canary bool
}

func (o Options) withDefaults() Options {
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	}
	if o.Duration == 0 {
		o.Duration = 22 * time.Minute
	}
	if o.Terminals == 0 {
		o.Terminals = 60
	}
	if o.Every == 0 {
		o.Every = 20 * time.Second
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 10
	}
	return o
}

// ShipperField is an unknown (forward-compatible) field one clean line in
// eight carries. An event re-encoded from its decoded form never has it;
// a copy of the raw message does.
const ShipperField = "shipper"

// Corpus is a stream of event-v1 lines in event-time order: a clean
// fleet's traffic with planted lines mixed in.
type Corpus struct {
	Lines []Line
	// Canaries maps a hot scope type to its token (canary corpora only).
	Canaries map[string]string
}

// fleetTerminal is a terminal's fixed attributes.
type fleetTerminal struct {
	id, merchant, region, carrier, host, acquirer, model, firmware, network string
}

var (
	regions   = []string{"310000", "320100", "330100", "440300"}
	carriers  = []string{"CMCC", "CUCC", "CTCC"}
	hosts     = []string{"sh-fe-1", "sh-fe-2", "bj-fe-1"}
	acquirers = []string{"LKL", "UMS"}
	issuers   = []string{"ABC", "BOC", "ICBC", "CCB", "CMB"}
	models    = [][2]string{{"A8", "3.2.1"}, {"X990", "3.4.5"}, {"N910", "1.0.7"}}
	networks  = []string{"4g", "wifi", "ethernet"}
	bins      = []string{"622848", "621700", "436742", "625802", "52063880"}
	entry     = []string{"chip", "contactless", "qr", "swipe"}
)

type outcome struct{ key, val string }

func (g *Gen) terminal(id string) fleetTerminal {
	m := models[g.rng.IntN(len(models))]
	return fleetTerminal{id: id, merchant: fmt.Sprintf("M%03d", g.rng.IntN(12)), region: g.pick(regions),
		carrier: g.pick(carriers), host: g.pick(hosts), acquirer: g.pick(acquirers), model: m[0], firmware: m[1],
		network: g.pick(networks)}
}

// event builds a valid event-v1 object.
func (g *Gen) event(id string, ts time.Time, t fleetTerminal, issuer string, out outcome) object {
	o := object{
		{`"event_id"`, quote(id)},
		{`"ts"`, quote(ts.Format(time.RFC3339Nano))},
		{`"terminal_id"`, quote(t.id)},
		{`"merchant_id"`, quote(t.merchant)},
		{`"scheme"`, `"cup"`},
		{quote(out.key), quote(out.val)},
		{`"txn_type"`, `"sale"`},
		{`"amount_minor"`, fmt.Sprint(100 + g.rng.IntN(500000))},
		{`"currency"`, `"CNY"`},
		{`"entry_mode"`, quote(g.pick(entry))},
		{`"card_bin"`, quote(g.pick(bins))},
		{`"issuer_id"`, quote(issuer)},
		{`"acquirer_id"`, quote(t.acquirer)},
		{`"host_id"`, quote(t.host)},
		{`"region"`, quote(t.region)},
		{`"network"`, quote(t.network)},
		{`"carrier"`, quote(t.carrier)},
		{`"signal_dbm"`, fmt.Sprint(-60 - g.rng.IntN(50))},
		{`"latency_ms"`, fmt.Sprint(80 + g.rng.IntN(900))},
		{`"model"`, quote(t.model)},
		{`"firmware"`, quote(t.firmware)},
		{`"battery_pct"`, fmt.Sprint(g.rng.IntN(101))},
	}
	return o
}

// cleanOutcome draws a normal day's outcome: mostly approvals, some
// insufficient funds, a little network and hardware noise.
func (g *Gen) cleanOutcome() outcome {
	switch x := g.rng.Float64(); {
	case x < 0.92:
		return outcome{"response_code", "00"}
	case x < 0.96:
		return outcome{"response_code", "51"}
	case x < 0.98:
		return outcome{"response_code", "05"}
	case x < 0.99:
		return outcome{"terminal_error", "COMM_TIMEOUT"}
	}
	return outcome{"terminal_error", "CHIP_READ_FAIL"}
}

// hotSpec is a scope that fails hard for a while: if its lines were
// accepted, detection would raise an alert naming the scope, and the
// summary would list its terminal or merchant.
type hotSpec struct {
	scope     string // alert scope type
	field     string // the event field carrying the card number
	terminals int
	from, to  time.Duration
	every     time.Duration
	failRate  float64
	fail      []outcome
}

var hotSpecs = []hotSpec{
	{"terminal", "terminal_id", 1, 5 * time.Minute, 15 * time.Minute, 20 * time.Second, 0.9,
		[]outcome{{"terminal_error", "CHIP_READ_FAIL"}, {"terminal_error", "PRINTER_FAIL"}}},
	{"model", "firmware", 8, 5 * time.Minute, 15 * time.Minute, 20 * time.Second, 0.75,
		[]outcome{{"terminal_error", "CHIP_READ_FAIL"}, {"terminal_error", "PRINTER_FAIL"}}},
	{"merchant", "merchant_id", 4, 8 * time.Minute, 13 * time.Minute, 15 * time.Second, 0.7,
		[]outcome{{"response_code", "59"}, {"response_code", "34"}}},
	{"region", "region", 12, 9 * time.Minute, 11 * time.Minute, 10 * time.Second, 0.9,
		[]outcome{{"terminal_error", "COMM_TIMEOUT"}, {"terminal_error", "HOST_UNREACHABLE"}}},
	{"carrier", "carrier", 12, 11 * time.Minute, 13 * time.Minute, 10 * time.Second, 0.9,
		[]outcome{{"terminal_error", "COMM_TIMEOUT"}, {"terminal_error", "HOST_UNREACHABLE"}}},
	{"host", "host_id", 12, 13 * time.Minute, 15 * time.Minute, 10 * time.Second, 0.9,
		[]outcome{{"terminal_error", "COMM_TIMEOUT"}, {"terminal_error", "HOST_UNREACHABLE"}}},
	{"acquirer", "acquirer_id", 12, 15 * time.Minute, 17 * time.Minute, 10 * time.Second, 0.9,
		[]outcome{{"terminal_error", "COMM_TIMEOUT"}, {"terminal_error", "HOST_UNREACHABLE"}}},
	{"issuer", "issuer_id", 12, 17 * time.Minute, 19 * time.Minute, 10 * time.Second, 0.9,
		[]outcome{{"response_code", "98"}, {"response_code", "68"}}},
}

// HotScopes lists the scope types the corpus makes fail under a planted
// card number (or, in a canary corpus, a token).
func HotScopes() []string {
	out := make([]string, len(hotSpecs))
	for i, s := range hotSpecs {
		out[i] = s.scope
	}
	return out
}

func (g *Gen) canary(scope string) string {
	var b strings.Builder
	b.WriteString("CANARY" + strings.ToUpper(scope))
	for range 8 {
		b.WriteByte(byte('A' + g.rng.IntN(26)))
	}
	return b.String()
}

func (g *Gen) hot(o Options, s hotSpec, k int, seq *int) ([]Line, string) {
	var c Card
	var value string
	f := Format(k % int(NumFormats))
	if o.Canary {
		value = g.canary(s.scope)
	} else {
		c = g.NextCard()
		value = g.Render(c, f)
	}
	prefix := "H" + strings.ToUpper(s.scope[:2])
	var lines []Line
	for i := range s.terminals {
		t := g.terminal(fmt.Sprintf("%s%02d", prefix, i))
		t.network = "4g"
		switch s.field {
		case "terminal_id":
			t.id = value
		case "merchant_id":
			t.merchant = value
		case "region":
			t.region = value
		case "carrier":
			t.carrier = value
		case "host_id":
			t.host = value
		case "acquirer_id":
			t.acquirer = value
		case "firmware":
			t.model, t.firmware = "Q7", value
		}
		for at := s.from + time.Duration(g.rng.Int64N(int64(s.every))); at < s.to; at += s.every {
			out := outcome{"response_code", "00"}
			if g.rng.Float64() < s.failRate {
				out = s.fail[g.rng.IntN(len(s.fail))]
			}
			issuer := g.pick(issuers)
			if s.field == "issuer_id" {
				issuer = value
			}
			ts := o.Start.Add(at)
			*seq++
			l := Line{Data: []byte(g.event(fmt.Sprintf("h-%d", *seq), ts, t, issuer, out).String()), Key: t.id, Time: ts, Hot: s.scope}
			if o.Canary {
				l.Kind, l.Canary, l.Want = "canary/"+s.scope, value, Accepted
			} else {
				l.Kind, l.Cards, l.Want = fmt.Sprintf("hot/%s/%s %s", s.scope, s.field, cardLabel(c, f)), []Card{c}, Sensitive
			}
			lines = append(lines, l)
		}
	}
	return lines, value
}

// luhnFree reports whether no window of 13 to 19 consecutive digits of
// digits passes the Luhn check (a lookalike no policy may call a card).
func luhnFree(digits string) bool {
	for n := MinLen; n <= MaxLen && n <= len(digits); n++ {
		for i := 0; i+n <= len(digits); i++ {
			if Luhn(digits[i : i+n]) {
				return false
			}
		}
	}
	return true
}

func (g *Gen) lookalikeDigits(n int) string {
	for {
		var b strings.Builder
		b.WriteByte(byte('1' + g.rng.IntN(9)))
		for b.Len() < n {
			b.WriteByte(byte('0' + g.rng.IntN(10)))
		}
		if s := b.String(); luhnFree(s) && !repetitive(s) {
			return s
		}
	}
}

// NewCorpus builds a corpus. The same options give the same lines.
func NewCorpus(o Options) *Corpus {
	o = o.withDefaults()
	g := NewGen(o.Seed)
	fleet := make([]fleetTerminal, o.Terminals)
	for i := range fleet {
		fleet[i] = g.terminal(fmt.Sprintf("T%04d", i))
	}
	var lines []Line
	seq := 0
	for _, t := range fleet {
		for at := time.Duration(g.rng.Int64N(int64(o.Every))); at < o.Duration; at += o.Every*4/5 + time.Duration(g.rng.Int64N(int64(o.Every)*2/5)) {
			ts := o.Start.Add(at)
			seq++
			ev := g.event(fmt.Sprintf("c-%d", seq), ts, t, g.pick(issuers), g.cleanOutcome())
			if seq%8 == 0 {
				ev = ev.with(quote(ShipperField), `"fluent-bit/2.2"`)
			}
			lines = append(lines, Line{Data: []byte(ev.String()), Kind: "clean", Want: Accepted, Key: t.id, Time: ts})
		}
	}
	c := &Corpus{}
	if o.Canary {
		c.Canaries = map[string]string{}
	}
	for k, s := range hotSpecs {
		hot, value := g.hot(o, s, k, &seq)
		lines = append(lines, hot...)
		if o.Canary {
			c.Canaries[s.scope] = value
		}
	}
	if !o.Canary {
		base := func() (object, fleetTerminal, time.Time) {
			t := fleet[g.rng.IntN(len(fleet))]
			ts := o.Start.Add(time.Duration(g.rng.Int64N(int64(o.Duration))))
			seq++
			return g.event(fmt.Sprintf("p-%d", seq), ts, t, g.pick(issuers), g.cleanOutcome()), t, ts
		}
		p := &planter{g: g, base: base}
		p.fields()
		p.notes()
		p.keys()
		p.sensitiveKeyLines()
		p.escapes()
		p.numbers()
		p.tracks()
		p.malformed()
		p.oversized(o.MaxMessageBytes)
		lines = append(lines, p.out...)

		// Lookalikes: long digit strings that are not card numbers (no
		// Luhn-valid 13–19 digit window; a 12-digit Maestro is below the
		// policy's 13). They must be accepted.
		look := func(kind string, ev object, t fleetTerminal, ts time.Time) {
			lines = append(lines, Line{Data: []byte(ev.String()), Kind: "clean/lookalike/" + kind, Want: Accepted, Key: t.id, Time: ts})
		}
		for range 3 {
			ev, t, ts := base()
			t.id = "SN" + g.lookalikeDigits(16)
			look("terminal-serial", ev.set("terminal_id", quote(t.id)), t, ts)
		}
		{
			ev, t, ts := base()
			d := g.lookalikeDigits(16)
			look("spaced-order-number", ev.with(`"note"`, quote("order "+d[:4]+" "+d[4:8]+" "+d[8:12]+" "+d[12:])), t, ts)
		}
		{
			ev, t, ts := base()
			mae, _ := SchemeNamed("maestro")
			look("maestro-12", ev.with(`"note"`, quote("ref "+g.Card(mae, 12).PAN)), t, ts)
		}
	}
	slices.SortStableFunc(lines, func(a, b Line) int { return a.Time.Compare(b.Time) })
	c.Lines = lines
	return c
}

// JSONL is the corpus as a JSONL file.
func (c *Corpus) JSONL() []byte {
	var b bytes.Buffer
	for _, l := range c.Lines {
		b.Write(l.Data)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Count returns how many lines want w.
func (c *Corpus) Count(w Want) int {
	n := 0
	for _, l := range c.Lines {
		if l.Want == w {
			n++
		}
	}
	return n
}

// Cards returns every planted card number, each once.
func (c *Corpus) Cards() []Card {
	seen := map[string]bool{}
	var out []Card
	for _, l := range c.Lines {
		for _, card := range l.Cards {
			if !seen[card.PAN] {
				seen[card.PAN] = true
				out = append(out, card)
			}
		}
	}
	return out
}

// Finder returns a Finder for every card number and literal planted in c.
func (c *Corpus) Finder() *Finder {
	f := NewFinder()
	for _, l := range c.Lines {
		for _, card := range l.Cards {
			f.Add(card.PAN)
		}
		for _, s := range l.Literals {
			f.AddLiteral(s)
		}
	}
	return f
}

// KindOf returns the kind of the line a card number or literal was
// planted in, for failure messages.
func (c *Corpus) KindOf(secret string) string {
	for _, l := range c.Lines {
		for _, card := range l.Cards {
			if card.PAN == secret {
				return l.Kind
			}
		}
		for _, s := range l.Literals {
			if s == secret {
				return l.Kind
			}
		}
	}
	return "?"
}
