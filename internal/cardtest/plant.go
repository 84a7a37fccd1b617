package cardtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Want is what event-v1 says must happen to a line.
type Want uint8

const (
	// Accepted: a valid event without card data.
	Accepted Want = iota
	// Sensitive: rejected with reason sensitive_data (card data anywhere,
	// also when the message is otherwise malformed).
	Sensitive
	// TooLarge: rejected with reason too_large (over max_message_bytes).
	TooLarge
)

func (w Want) String() string {
	switch w {
	case Accepted:
		return "accepted"
	case Sensitive:
		return "sensitive_data"
	case TooLarge:
		return "too_large"
	}
	return "invalid"
}

// Line is one test message.
type Line struct {
	Data []byte
	// Kind says what was planted where and how, e.g.
	// "field/terminal_id/exact dashes unionpay-19"; "clean" for normal
	// events.
	Kind string
	// Cards are the card numbers planted in the line (none for clean
	// lines and for card data without a number, such as a CVV).
	Cards []Card
	// Literals are other planted secrets long enough to search for
	// verbatim (PIN blocks).
	Literals []string
	Want     Want
	// Key is the Kafka key a log shipper would use: the terminal id as
	// sent (so it carries the card number when terminal_id does).
	Key  string
	Time time.Time
	// Hot names the scope type whose id carries the card number on a
	// line that would raise an alert if it were accepted ("terminal",
	// "region"...); empty otherwise.
	Hot string
	// Canary is, in a canary corpus, the harmless token planted where the
	// card number would be.
	Canary string
}

// member is one raw JSON object member: k and v are already encoded.
type member struct{ k, v string }

// object is a JSON object under construction, in member order.
type object []member

func (o object) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.k)
		b.WriteByte(':')
		b.WriteString(m.v)
	}
	b.WriteByte('}')
	return b.String()
}

// set replaces the value of the member named name (a plain key), or
// appends it.
func (o object) set(name, raw string) object {
	k := quote(name)
	for i := range o {
		if o[i].k == k {
			o[i].v = raw
			return o
		}
	}
	return append(o, member{k, raw})
}

// del removes the member named name.
func (o object) del(name string) object {
	k := quote(name)
	out := o[:0:0]
	for _, m := range o {
		if m.k != k {
			out = append(out, m)
		}
	}
	return out
}

func (o object) with(rawKey, raw string) object {
	return append(append(object{}, o...), member{rawKey, raw})
}

// quote encodes s as a JSON string (no HTML escaping).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// escapeDigits writes s as JSON string content with every digit (every
// other one when half is set) as a \u escape, in mixed hex case.
func escapeDigits(s string, half bool) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r >= '0' && r <= '9' && (!half || n%2 == 0) {
			fmt.Fprintf(&b, `\u%04X`, r)
		} else {
			b.WriteRune(r)
		}
		if r >= '0' && r <= '9' {
			n++
		}
	}
	return b.String()
}

// escapeSeparators writes s as JSON string content with its spaces and
// dashes as \u escapes.
func escapeSeparators(s string) string {
	s = strings.ReplaceAll(s, " ", `\u0020`)
	return strings.ReplaceAll(s, "-", `\u002d`)
}

// sensitiveKeys are the event-v1 card-data field names.
var sensitiveKeys = []string{"pan", "card_number", "track1", "track2", "cvv", "cvv2", "pin", "pin_block"}

// cases returns the spellings of a key the policy treats as the same key.
func cases(k string) []string {
	title := strings.ToUpper(k[:1]) + k[1:]
	var alt strings.Builder
	for i, r := range k {
		if i%2 == 1 {
			alt.WriteString(strings.ToUpper(string(r)))
		} else {
			alt.WriteRune(r)
		}
	}
	return []string{k, strings.ToUpper(k), title, alt.String()}
}

// escapedKeys are sensitive key names written with JSON escapes: the
// decoder must compare keys after unescaping.
var escapedKeys = []string{
	`"p\u0061n"`, `"\u0070\u0061\u006E"`, `"P\u0041N"`, `"card\u005fnumber"`, `"CARD\u005FNUMBER"`,
	`"Tr\u0061ck1"`, `"track\u0032"`, `"pin\u005fblock"`, `"c\u0076v"`, `"\u0050in"`,
}

// planter builds the one-off planted lines around base events from a
// fleet; each call of a method consumes fresh card numbers.
type planter struct {
	g     *Gen
	base  func() (object, fleetTerminal, time.Time)
	seq   int
	out   []Line
	fmtNo int
}

func (p *planter) format() Format {
	f := Format(p.fmtNo % int(NumFormats))
	p.fmtNo++
	return f
}

// add records a line. t is the terminal the event claims; key overrides
// the Kafka key when the terminal id itself was planted.
func (p *planter) add(kind string, data string, want Want, t fleetTerminal, ts time.Time, key string, cards []Card, literals ...string) {
	if key == "" {
		key = t.id
	}
	p.out = append(p.out, Line{Data: []byte(data), Kind: kind, Cards: cards, Literals: literals, Want: want, Key: key, Time: ts})
}

func cardLabel(c Card, f Format) string { return fmt.Sprintf("%s %s-%d", f, c.Scheme, len(c.PAN)) }

// documentedFields are the event-v1 string fields an accepted event would
// carry into storage, alerts, summaries and logs.
var documentedFields = []string{"event_id", "terminal_id", "merchant_id", "terminal_error", "issuer_id", "acquirer_id",
	"host_id", "region", "carrier", "model", "firmware", "card_bin"}

// checkedFields are string fields whose own validation would reject a card
// number anyway; the policy still wants sensitive_data and a masked copy.
var checkedFields = []string{"ts", "response_code", "scheme", "txn_type", "currency", "entry_mode", "network"}

func embed(field, r string) string {
	switch field {
	case "terminal_error":
		return "CHIP_READ_FAIL card " + r
	case "event_id":
		return "evt/" + r + "/1"
	case "card_bin":
		return "BIN " + r
	}
	return "X-" + r + "-A"
}

func (p *planter) fields() {
	for _, field := range documentedFields {
		for _, how := range []string{"exact", "embedded"} {
			ev, t, ts := p.base()
			c, f := p.g.NextCard(), p.format()
			if field == "card_bin" && how == "exact" {
				f = Plain // a card_bin longer than 8 digits
			}
			r := p.g.Render(c, f)
			if how == "embedded" {
				r = embed(field, r)
			}
			if field == "terminal_error" {
				ev = ev.del("response_code")
			}
			key := ""
			if field == "terminal_id" {
				key = r
			}
			p.add("field/"+field+"/"+how+" "+cardLabel(c, f), ev.set(field, quote(r)).String(), Sensitive, t, ts, key, []Card{c})
		}
	}
	for _, field := range checkedFields {
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		p.add("checked-field/"+field+" "+cardLabel(c, f), ev.set(field, quote(p.g.Render(c, f))).String(), Sensitive, t, ts, "", []Card{c})
	}
}

func (p *planter) notes() {
	wraps := []struct {
		name string
		wrap func(v string) (string, string)
	}{
		{"top", func(v string) (string, string) { return `"note"`, v }},
		{"nested", func(v string) (string, string) { return `"meta"`, `{"shift":2,"note":` + v + `}` }},
		{"array-of-strings", func(v string) (string, string) { return `"tags"`, `["manual",` + v + `]` }},
		{"array-of-objects", func(v string) (string, string) { return `"items"`, `[{"sku":"A1","desc":` + v + `}]` }},
	}
	for _, w := range wraps {
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		k, v := w.wrap(quote("card " + p.g.Render(c, f) + " declined, retry"))
		p.add("note/"+w.name+" "+cardLabel(c, f), ev.with(k, v).String(), Sensitive, t, ts, "", []Card{c})
	}
}

func (p *planter) keys() {
	shapes := []struct {
		name string
		make func(k string) (string, string)
	}{
		{"top", func(k string) (string, string) { return k, `"seen"` }},
		{"nested", func(k string) (string, string) { return `"cards"`, `{` + k + `:{"ok":true}}` }},
		{"in-array", func(k string) (string, string) { return `"log"`, `[{` + k + `:null}]` }},
		{"embedded", func(k string) (string, string) { return k, `1` }},
	}
	for _, s := range shapes {
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		r := p.g.Render(c, f)
		if s.name == "embedded" {
			r = "card " + r
		}
		k, v := s.make(quote(r))
		p.add("key/"+s.name+" "+cardLabel(c, f), ev.with(k, v).String(), Sensitive, t, ts, "", []Card{c})
	}
}

// sensitiveValue is what a sender would put under key k, and the card it
// carries (none for CVV and PIN values).
func (p *planter) sensitiveValue(k string, n int) (raw string, cards []Card, literals []string, label string) {
	switch k {
	case "pan", "card_number":
		c, f := p.g.NextCard(), p.format()
		if n%5 == 4 {
			return c.PAN, []Card{c}, nil, fmt.Sprintf("number %s-%d", c.Scheme, len(c.PAN))
		}
		return quote(p.g.Render(c, f)), []Card{c}, nil, cardLabel(c, f)
	case "track1":
		c := p.g.NextCard()
		return quote(p.g.Track1(c)), []Card{c}, nil, fmt.Sprintf("track1 %s-%d", c.Scheme, len(c.PAN))
	case "track2":
		c := p.g.NextCard()
		return quote(p.g.Track2(c, n)), []Card{c}, nil, fmt.Sprintf("track2 %s-%d", c.Scheme, len(c.PAN))
	case "cvv", "cvv2":
		if n%2 == 0 {
			return strconv.Itoa(100 + p.g.rng.IntN(900)), nil, nil, "number"
		}
		return quote(fmt.Sprintf("%04d", p.g.rng.IntN(10000))), nil, nil, "string"
	case "pin":
		return quote(fmt.Sprintf("%06d", p.g.rng.IntN(1e6))), nil, nil, "string"
	}
	pb := p.g.pinBlock()
	return quote(pb), nil, []string{pb}, "hex"
}

// pinBlock is an ISO 9564 format-0-looking block: 16 hex digits, at least
// four of them letters so it is distinctive in any output.
func (g *Gen) pinBlock() string {
	const hexd = "0123456789ABCDEF"
	for {
		var b [16]byte
		letters := 0
		for i := range b {
			b[i] = hexd[g.rng.IntN(16)]
			if b[i] >= 'A' {
				letters++
			}
		}
		if letters >= 4 {
			return string(b[:])
		}
	}
}

func (p *planter) sensitiveKeyLines() {
	depths := []struct {
		name string
		wrap func(k, v string) (string, string)
	}{
		{"top", func(k, v string) (string, string) { return k, v }},
		{"nested", func(k, v string) (string, string) { return `"card"`, `{` + k + `:` + v + `}` }},
		{"array", func(k, v string) (string, string) { return `"cards"`, `[{"seq":1},{` + k + `:` + v + `}]` }},
		{"deep", func(k, v string) (string, string) {
			return `"a"`, `{"b":[0,{"c":{"d":[{` + k + `:` + v + `}]}}]}`
		}},
	}
	n := 0
	for _, name := range sensitiveKeys {
		spellings := cases(name)
		for _, sp := range spellings { // every spelling at the top level
			ev, t, ts := p.base()
			v, cards, lits, label := p.sensitiveValue(name, n)
			n++
			p.add(fmt.Sprintf("sensitive-key/%s/top %s", sp, label), ev.with(quote(sp), v).String(), Sensitive, t, ts, "", cards, lits...)
		}
		for i, d := range depths[1:] { // every depth, in turn with each spelling
			ev, t, ts := p.base()
			v, cards, lits, label := p.sensitiveValue(name, n)
			n++
			sp := spellings[(i+1)%len(spellings)]
			k, raw := d.wrap(quote(sp), v)
			p.add(fmt.Sprintf("sensitive-key/%s/%s %s", sp, d.name, label), ev.with(k, raw).String(), Sensitive, t, ts, "", cards, lits...)
		}
	}
	// A card_bin longer than 8 digits that is not a whole card number.
	ev, t, ts := p.base()
	p.add("sensitive-key/card_bin/9-digits", ev.set("card_bin", quote(fmt.Sprintf("62284804%d", p.g.rng.IntN(10)))).String(), Sensitive, t, ts, "", nil)
}

func (p *planter) escapes() {
	// Digits written as \u escapes in documented fields and values.
	for i, field := range []string{"terminal_id", "merchant_id", "region", "note"} {
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		r := p.g.Render(c, f)
		enc := escapeDigits(r, i%2 == 1)
		how := "all-digits"
		if i%2 == 1 {
			how = "half-digits"
		}
		key := ""
		if field == "terminal_id" {
			key = r
		}
		p.add(fmt.Sprintf("escaped-value/%s/%s %s", field, how, cardLabel(c, f)), ev.set(field, `"`+enc+`"`).String(), Sensitive, t, ts, key, []Card{c})
	}
	// Separators written as escapes.
	{
		ev, t, ts := p.base()
		c := p.g.NextCard()
		r := p.g.Render(c, Spaces)
		p.add("escaped-value/issuer_id/separators "+cardLabel(c, Spaces), ev.set("issuer_id", `"`+escapeSeparators(r)+`"`).String(), Sensitive, t, ts, "", []Card{c})
	}
	// A card number as a key, its digits escaped.
	{
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		p.add("escaped-key/card-number-as-key "+cardLabel(c, f), ev.with(`"`+escapeDigits(p.g.Render(c, f), true)+`"`, `"x"`).String(), Sensitive, t, ts, "", []Card{c})
	}
	// Sensitive key names written with escapes, at the top level, nested
	// and in arrays; separated numbers so masking by digit runs alone
	// cannot hide them.
	for i, k := range escapedKeys {
		ev, t, ts := p.base()
		plainName := strings.ToLower(unescapeKey(k))
		v, cards, lits, label := p.sensitiveValue(plainName, i)
		if plainName == "pan" || plainName == "card_number" {
			c, f := p.g.NextCard(), Format(1+i%3) // spaces, dashes, irregular
			v, cards, label = quote(p.g.Render(c, f)), []Card{c}, cardLabel(c, f)
		}
		where := []string{"top", "nested", "array"}[i%3]
		var line object
		switch where {
		case "top":
			line = ev.with(k, v)
		case "nested":
			line = ev.with(`"card"`, `{`+k+`:`+v+`}`)
		default:
			line = ev.with(`"cards"`, `[{`+k+`:`+v+`}]`)
		}
		p.add(fmt.Sprintf("escaped-key/%s/%s %s", k, where, label), line.String(), Sensitive, t, ts, "", cards, lits...)
	}
}

// unescapeKey decodes the \u escapes of a quoted key literal (test data
// only: ASCII).
func unescapeKey(k string) string {
	k = strings.Trim(k, `"`)
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '\\' && i+5 < len(k) && k[i+1] == 'u' {
			v, _ := strconv.ParseUint(k[i+2:i+6], 16, 32)
			b.WriteRune(rune(v))
			i += 5
			continue
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

func (p *planter) numbers() {
	type shape struct {
		name string
		make func(n string) (string, string)
	}
	shapes := []shape{
		{"top", func(n string) (string, string) { return `"ref"`, n }},
		{"nested", func(n string) (string, string) { return `"meta"`, `{"ref":` + n + `,"ok":true}` }},
		{"array", func(n string) (string, string) { return `"refs"`, `[1,` + n + `,3]` }},
		{"negative", func(n string) (string, string) { return `"ref"`, `-` + n }},
	}
	for _, s := range shapes {
		ev, t, ts := p.base()
		c := p.g.NextCard()
		k, v := s.make(c.PAN)
		p.add(fmt.Sprintf("number/%s %s-%d", s.name, c.Scheme, len(c.PAN)), ev.with(k, v).String(), Sensitive, t, ts, "", []Card{c})
	}
	// A 19-digit UnionPay number beyond int64.
	up, _ := SchemeNamed("unionpay")
	ev, t, ts := p.base()
	c := p.g.Card(up, 19)
	p.add("number/beyond-int64 unionpay-19", ev.with(`"ref"`, c.PAN).String(), Sensitive, t, ts, "", []Card{c})
}

func (p *planter) tracks() {
	type spot struct {
		name string
		put  func(ev object, v string) object
	}
	spots := []spot{
		{"track1/note", func(ev object, v string) object { return ev.with(`"note"`, quote(v)) }},
		{"track1/escaped-slash", func(ev object, v string) object {
			return ev.with(`"raw"`, strings.ReplaceAll(quote(v), "/", `\/`))
		}},
		{"track2-sentinels/nested", func(ev object, v string) object { return ev.with(`"meta"`, `{"raw":`+quote(v)+`}`) }},
		{"track2-bare/terminal_error", func(ev object, v string) object {
			return ev.del("response_code").set("terminal_error", quote(v))
		}},
		{"track2-emv/unknown-field", func(ev object, v string) object { return ev.with(`"emv_57"`, quote(v)) }},
	}
	for _, s := range spots {
		ev, t, ts := p.base()
		c := p.g.NextCard()
		var v string
		switch {
		case strings.HasPrefix(s.name, "track1"):
			v = p.g.Track1(c)
		case strings.HasPrefix(s.name, "track2-sentinels"):
			v = p.g.Track2(c, 0)
		case strings.HasPrefix(s.name, "track2-bare"):
			v = p.g.Track2(c, 1)
		default:
			v = p.g.Track2(c, 2)
		}
		p.add(fmt.Sprintf("track/%s %s-%d", s.name, c.Scheme, len(c.PAN)), s.put(ev, v).String(), Sensitive, t, ts, "", []Card{c})
	}
}

func (p *planter) malformed() {
	makers := []struct {
		name string
		make func(ev object, r string) string
	}{
		{"truncated", func(ev object, r string) string {
			s := ev.set("terminal_id", quote(r)).String()
			return s[:len(s)-1]
		}},
		{"not-json", func(_ object, r string) string { return "card " + r + " declined at the till" }},
		{"trailing-comma", func(ev object, r string) string {
			s := ev.with(`"note"`, quote(r)).String()
			return s[:len(s)-1] + ",}"
		}},
		{"missing-comma", func(ev object, r string) string {
			s := ev.set("merchant_id", quote(r)).String()
			return strings.Replace(s, `,"terminal_id"`, ` "terminal_id"`, 1)
		}},
		{"single-quotes", func(_ object, r string) string { return `{'pan':'` + r + `','event_id':'x'}` }},
		{"escaped-key-bad-value", func(ev object, r string) string {
			return ev.with(`"p\u0061n"`, quote(r)).with(`"x"`, `\q`).String()
		}},
	}
	for _, m := range makers {
		ev, t, ts := p.base()
		c, f := p.g.NextCard(), p.format()
		if f == Plain {
			f = Spaces
		}
		r := p.g.Render(c, f)
		key := ""
		if m.name == "truncated" {
			key = r
		}
		p.add("malformed/"+m.name+" "+cardLabel(c, f), m.make(ev, r), Sensitive, t, ts, key, []Card{c})
	}
}

// oversized plants card numbers in lines over the size limit: the copy
// kept for diagnosis of a message too large to decode must still be masked.
func (p *planter) oversized(limit int) {
	for i := range 2 {
		ev, t, ts := p.base()
		c1, c2 := p.g.NextCard(), p.g.NextCard()
		pad := strings.Repeat("abcdefghij ", (limit+4096)/11)
		var line object
		if i == 0 {
			line = ev.with(`"note"`, quote("card "+p.g.Render(c1, Spaces)+" "+pad+" card "+p.g.Render(c2, Dashes)))
		} else {
			line = ev.with(`"pan"`, quote(p.g.Render(c1, Irregular))).with(`"note"`, quote(pad)).with(`"meta"`, `{"Card_Number":`+quote(p.g.Render(c2, Spaces))+`}`)
		}
		p.add(fmt.Sprintf("oversized/%d %s-%d %s-%d", i, c1.Scheme, len(c1.PAN), c2.Scheme, len(c2.PAN)), line.String(), TooLarge, t, ts, "", []Card{c1, c2})
	}
}
