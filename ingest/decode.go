// Package ingest turns raw event-v1 messages into validated events: a pure,
// allocation-light decoder (bytes → event.Event or a DecodeError with a
// reason from a fixed set) and masking of card data for any copy of a
// rejected message kept for diagnosis. Transport (files, Kafka) lives with
// the callers.
package ingest

import (
	"github.com/declinemon/declinemon/event"
)

// DecoderConfig controls decoding. The zero value is usable.
type DecoderConfig struct {
	// DefaultScheme applies to events without a "scheme" field.
	// Zero means iso8583.
	DefaultScheme event.Scheme
	// MaxMessageBytes rejects larger messages as too_large. Zero means 64 KiB.
	MaxMessageBytes int
	// MaxInterned bounds the string interner. Zero means 1<<20 strings.
	MaxInterned int
}

// Decoder decodes event-v1 messages. It keeps scratch buffers and an
// interner, so use one per goroutine.
type Decoder struct {
	scheme   event.Scheme
	maxBytes int
	intern   *Interner
	labels   [numLabels]labelCache
	sc       scanner
	cards    cardScanner
}

// The low-cardinality fields, each with a labelCache.
const (
	labelResponseCode = iota
	labelTerminalError
	labelCurrency
	labelCardBIN
	labelIssuer
	labelAcquirer
	labelHost
	labelRegion
	labelCarrier
	labelModel
	labelFirmware
	numLabels
)

// labelCache remembers recent values of one low-cardinality field (region,
// carrier, model, codes…), direct-mapped by a hash of their bytes. A hit
// is a value this decoder already checked and interned: it skips the
// interner's map (the largest cost of decoding at fleet scale, where that
// map holds every terminal and merchant id) and the card-data scan, which
// the same bytes passed before. A hostile stream of distinct values only
// misses.
type labelCache [256]string

func (c *labelCache) slot(b []byte) *string {
	h := uint32(2166136261) // FNV-1a
	for _, x := range b {
		h = (h ^ uint32(x)) * 16777619
	}
	return &c[h>>24]
}

// label returns v interned through c. With check, a value not in c is
// first checked for card data.
func (d *Decoder) label(c *labelCache, field string, v []byte, check bool) (string, *DecodeError) {
	e := c.slot(v)
	if *e == string(v) { // no allocation: compared in place
		return *e, nil
	}
	if check {
		if err := d.noCardData(field, v); err != nil {
			return "", err
		}
	}
	s := d.intern.Bytes(v)
	*e = s
	return s, nil
}

// WithDefaults fills zero fields with their defaults.
func (c DecoderConfig) WithDefaults() DecoderConfig {
	if c.DefaultScheme == event.SchemeUnset {
		c.DefaultScheme = event.SchemeISO8583
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	return c
}

// NewDecoder returns a Decoder for cfg.
func NewDecoder(cfg DecoderConfig) *Decoder {
	cfg = cfg.WithDefaults()
	return &Decoder{scheme: cfg.DefaultScheme, maxBytes: cfg.MaxMessageBytes, intern: NewInterner(cfg.MaxInterned)}
}

const (
	seenEventID = 1 << iota
	seenTS
	seenTerminal
	seenMerchant
	seenCUPMerchant
	seenAllRequired = seenEventID | seenTS | seenTerminal | seenMerchant
)

// Decode validates data as one event-v1 object and fills ev. On rejection it
// returns a *DecodeError and ev holds partial data that must not be used.
// Steady-state cost is one allocation (the event id).
func (d *Decoder) Decode(data []byte, ev *event.Event) error {
	ev.Reset()
	if len(data) > d.maxBytes {
		return reject(ReasonTooLarge, "", "message exceeds the size limit")
	}
	err := d.decode(data, ev)
	if err != nil && err.Reason != ReasonSensitiveData && carriesCardData(data) {
		// A message that is both malformed and carries card data is
		// reported as sensitive: that is what its owner must act on.
		ev.Reset()
		return reject(ReasonSensitiveData, "", "message carries card data")
	}
	if err != nil {
		return err
	}
	return nil
}

func (d *Decoder) decode(data []byte, ev *event.Event) *DecodeError {
	s := &d.sc
	s.b, s.i = data, 0
	if !s.expect('{') {
		return reject(ReasonInvalidJSON, "", "message is not a JSON object")
	}
	seen := 0
	scheme := d.scheme
	if !s.expect('}') {
		for {
			if s.peek() != '"' {
				return reject(ReasonInvalidJSON, "", "expected a field name")
			}
			key, ok := s.str()
			if !ok {
				return reject(ReasonInvalidJSON, "", "malformed field name")
			}
			if !s.expect(':') {
				return reject(ReasonInvalidJSON, "", "expected ':' after a field name")
			}
			s.ws()
			if err := d.field(key, ev, &seen, &scheme); err != nil {
				return err
			}
			if s.expect(',') {
				continue
			}
			if s.expect('}') {
				break
			}
			return reject(ReasonInvalidJSON, "", "expected ',' or '}' after a value")
		}
	}
	if s.peek() != 0 {
		return reject(ReasonInvalidJSON, "", "trailing data after the JSON object")
	}
	if seen&seenAllRequired != seenAllRequired {
		switch {
		case seen&seenEventID == 0:
			return reject(ReasonMissingField, "event_id", "required field is missing")
		case seen&seenTS == 0:
			return reject(ReasonMissingField, "ts", "required field is missing")
		case seen&seenTerminal == 0:
			return reject(ReasonMissingField, "terminal_id", "required field is missing")
		default:
			return reject(ReasonMissingField, "merchant_id", "required field is missing")
		}
	}
	if seen&seenCUPMerchant != 0 && scheme != event.SchemeCUP {
		if err := d.noCardData("merchant_id", []byte(ev.Merchant)); err != nil {
			return err
		}
	}
	if ev.ResponseCode == "" && ev.TerminalError == "" {
		return reject(ReasonMissingField, "response_code", "an event needs response_code or terminal_error")
	}
	if ev.TxnType == "" {
		ev.TxnType = "sale"
	}
	ev.Scheme = scheme
	return nil
}

func (d *Decoder) field(key []byte, ev *event.Event, seen *int, scheme *event.Scheme) *DecodeError {
	switch string(key) {
	case "event_id":
		v, err := d.reqString("event_id", 128)
		if err != nil {
			return err
		}
		if err := d.noCardData("event_id", v); err != nil {
			return err
		}
		ev.ID = string(v)
		*seen |= seenEventID
	case "ts":
		v, err := d.reqString("ts", 64)
		if err != nil {
			return err
		}
		t, ok := parseTimestamp(v)
		if !ok {
			return reject(ReasonBadTimestamp, "ts", "not an RFC 3339 timestamp with offset")
		}
		if y := t.Year(); y < 1970 || y > 9999 {
			return reject(ReasonBadTimestamp, "ts", "outside the years 1970 to 9999")
		}
		ev.Time = t
		*seen |= seenTS
	case "terminal_id":
		v, err := d.reqString("terminal_id", 64)
		if err != nil {
			return err
		}
		if err := d.noCardData("terminal_id", v); err != nil {
			return err
		}
		ev.Terminal = d.intern.Bytes(v)
		*seen |= seenTerminal
	case "merchant_id":
		v, err := d.reqString("merchant_id", 64)
		if err != nil {
			return err
		}
		if isCUPMerchantID(v) {
			*seen |= seenCUPMerchant // exempt only if the event is CUP's: checked at the end
		} else if err := d.noCardData("merchant_id", v); err != nil {
			return err
		}
		ev.Merchant = d.intern.Bytes(v)
		*seen |= seenMerchant
	case "response_code":
		v, err := d.optString("response_code", 2)
		if err != nil {
			return err
		}
		if len(v) == 1 {
			return reject(ReasonOutOfRange, "response_code", "must be exactly 2 characters")
		}
		ev.ResponseCode, _ = d.label(&d.labels[labelResponseCode], "", v, false)
	case "terminal_error":
		v, err := d.optString("terminal_error", 64)
		if err != nil {
			return err
		}
		if ev.TerminalError, err = d.label(&d.labels[labelTerminalError], "terminal_error", v, true); err != nil {
			return err
		}
	case "scheme":
		v, err := d.optString("scheme", 16)
		if err != nil {
			return err
		}
		if len(v) > 0 {
			sc, ok := event.ParseScheme(string(v))
			if !ok {
				return reject(ReasonInvalidValue, "scheme", "must be cup or iso8583")
			}
			*scheme = sc
		}
	case "txn_type":
		return d.enum("txn_type", &ev.TxnType, "sale", "refund", "void", "preauth", "preauth_complete", "balance_inquiry", "reversal")
	case "entry_mode":
		return d.enum("entry_mode", &ev.EntryMode, "chip", "swipe", "contactless", "qr", "manual", "fallback")
	case "network":
		return d.enum("network", &ev.Network, "4g", "5g", "wifi", "ethernet", "gprs", "dialup")
	case "currency":
		v, err := d.optString("currency", 3)
		if err != nil {
			return err
		}
		if len(v) > 0 {
			if len(v) != 3 || !isUpperAlpha(v) {
				return reject(ReasonInvalidValue, "currency", "must be an ISO 4217 alpha-3 code")
			}
			ev.Currency, _ = d.label(&d.labels[labelCurrency], "", v, false)
		}
	case "card_bin":
		v, ok := d.stringValue()
		if !ok {
			return d.typeErr("card_bin", "string")
		}
		if len(v) == 0 {
			return nil
		}
		if !isDigits(v) {
			return reject(ReasonInvalidValue, "card_bin", "must be 6 to 8 digits")
		}
		if len(v) > 8 {
			return reject(ReasonSensitiveData, "card_bin", "longer than a BIN: card numbers must never be sent to the monitor")
		}
		if len(v) < 6 {
			return reject(ReasonOutOfRange, "card_bin", "must be 6 to 8 digits")
		}
		ev.CardBIN, _ = d.label(&d.labels[labelCardBIN], "", v, false)
	case "issuer_id":
		return d.optInterned("issuer_id", labelIssuer, &ev.Issuer)
	case "acquirer_id":
		return d.optInterned("acquirer_id", labelAcquirer, &ev.Acquirer)
	case "host_id":
		return d.optInterned("host_id", labelHost, &ev.Host)
	case "region":
		return d.optInterned("region", labelRegion, &ev.Region)
	case "carrier":
		return d.optInterned("carrier", labelCarrier, &ev.Carrier)
	case "model":
		return d.optInterned("model", labelModel, &ev.Model)
	case "firmware":
		return d.optInterned("firmware", labelFirmware, &ev.Firmware)
	case "amount_minor":
		v, present, err := d.intValue("amount_minor", 0, 1<<62)
		if err != nil {
			return err
		}
		if present {
			ev.AmountMinor = v
		}
	case "signal_dbm":
		v, present, err := d.intValue("signal_dbm", -200, 50)
		if err != nil {
			return err
		}
		if present {
			ev.SignalDBM, ev.HasSignal = int32(v), true
		}
	case "latency_ms":
		v, present, err := d.intValue("latency_ms", 0, 1<<31-1)
		if err != nil {
			return err
		}
		if present {
			ev.LatencyMS = int32(v)
		}
	case "battery_pct":
		v, present, err := d.intValue("battery_pct", 0, 100)
		if err != nil {
			return err
		}
		if present {
			ev.BatteryPct = int8(v)
		}
	default:
		// Unknown fields are ignored (forward compatibility), but every
		// byte of them is checked for card data.
		if name := sensitiveName(key); name != "" {
			return reject(ReasonSensitiveData, name, "card data must never be sent to the monitor")
		}
		if d.cards.holds(key) {
			return reject(ReasonSensitiveData, "", "a field name holds a card number")
		}
		return d.skipChecked(0)
	}
	return nil
}

// noCardData rejects a field value that holds a card number or track data.
func (d *Decoder) noCardData(field string, v []byte) *DecodeError {
	if d.cards.holds(v) {
		return reject(ReasonSensitiveData, field, "holds a card number or track data")
	}
	return nil
}

// skipChecked consumes any JSON value like scanner.skip, checking every
// field name, string and number in it for card data.
func (d *Decoder) skipChecked(depth int) *DecodeError {
	s := &d.sc
	if depth > maxDepth {
		return reject(ReasonInvalidJSON, "", "nested too deeply")
	}
	malformed := reject(ReasonInvalidJSON, "", "malformed value")
	switch s.peek() {
	case '"':
		v, ok := s.str()
		if !ok {
			return malformed
		}
		if d.cards.holds(v) {
			return reject(ReasonSensitiveData, "", "an unknown field holds a card number or track data")
		}
		return nil
	case '{':
		s.i++
		if s.expect('}') {
			return nil
		}
		for {
			if s.peek() != '"' {
				return malformed
			}
			k, ok := s.str()
			if !ok {
				return malformed
			}
			if name := sensitiveName(k); name != "" {
				return reject(ReasonSensitiveData, name, "card data must never be sent to the monitor")
			}
			if d.cards.holds(k) {
				return reject(ReasonSensitiveData, "", "a field name holds a card number")
			}
			if !s.expect(':') {
				return malformed
			}
			if err := d.skipChecked(depth + 1); err != nil {
				return err
			}
			if s.expect(',') {
				continue
			}
			if s.expect('}') {
				return nil
			}
			return malformed
		}
	case '[':
		s.i++
		if s.expect(']') {
			return nil
		}
		for {
			if err := d.skipChecked(depth + 1); err != nil {
				return err
			}
			if s.expect(',') {
				continue
			}
			if s.expect(']') {
				return nil
			}
			return malformed
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		start := s.i
		if _, _, _, ok := s.number(); !ok {
			return malformed
		}
		if num := s.b[start:s.i]; d.cards.holds(num) || floatHoldsCard(num) {
			return reject(ReasonSensitiveData, "", "an unknown field holds a card number")
		}
		return nil
	}
	if !s.skip(depth) {
		return malformed
	}
	return nil
}

// stringValue reads a string value; ok is false for any other JSON type
// (null reads as an empty string).
func (d *Decoder) stringValue() ([]byte, bool) {
	s := &d.sc
	if s.i < len(s.b) && s.b[s.i] == 'n' && s.literal("null") {
		return nil, true
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	return s.str()
}

// typeErr distinguishes a syntax error from a well-formed value of the
// wrong type.
func (d *Decoder) typeErr(field, want string) *DecodeError {
	s := &d.sc
	if !s.skip(0) {
		return reject(ReasonInvalidJSON, field, "malformed value")
	}
	return reject(ReasonBadType, field, "must be a "+want)
}

func (d *Decoder) reqString(field string, max int) ([]byte, *DecodeError) {
	s := &d.sc
	if s.i < len(s.b) && s.b[s.i] == 'n' && s.literal("null") {
		return nil, reject(ReasonMissingField, field, "required field is null")
	}
	v, ok := d.stringValue()
	if !ok {
		return nil, d.typeErr(field, "string")
	}
	if len(v) == 0 {
		return nil, reject(ReasonOutOfRange, field, "must not be empty")
	}
	if len(v) > max {
		return nil, reject(ReasonOutOfRange, field, "is too long")
	}
	return v, nil
}

func (d *Decoder) optString(field string, max int) ([]byte, *DecodeError) {
	v, ok := d.stringValue()
	if !ok {
		return nil, d.typeErr(field, "string")
	}
	if len(v) > max {
		return nil, reject(ReasonOutOfRange, field, "is too long")
	}
	return v, nil
}

func (d *Decoder) optInterned(field string, label int, dst *string) *DecodeError {
	v, err := d.optString(field, 64)
	if err != nil {
		return err
	}
	*dst, err = d.label(&d.labels[label], field, v, true)
	return err
}

func (d *Decoder) enum(field string, dst *string, allowed ...string) *DecodeError {
	v, err := d.optString(field, 32)
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return nil
	}
	for _, a := range allowed {
		if string(v) == a {
			*dst = a
			return nil
		}
	}
	return reject(ReasonInvalidValue, field, "is not one of the allowed values")
}

func (d *Decoder) intValue(field string, min, max int64) (int64, bool, *DecodeError) {
	s := &d.sc
	if s.i >= len(s.b) {
		return 0, false, reject(ReasonInvalidJSON, field, "missing value")
	}
	c := s.b[s.i]
	if c == 'n' && s.literal("null") {
		return 0, false, nil
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, false, d.typeErr(field, "integer")
	}
	start := s.i
	v, isInt, fits, ok := s.number()
	if ok && s.i-start >= 13 && d.cards.holds(s.b[start:s.i]) {
		return 0, false, reject(ReasonSensitiveData, field, "holds a card number")
	}
	switch {
	case !ok:
		return 0, false, reject(ReasonInvalidJSON, field, "malformed number")
	case !isInt:
		return 0, false, reject(ReasonBadType, field, "must be an integer")
	case !fits || v < min || v > max:
		return 0, false, reject(ReasonOutOfRange, field, "is out of range")
	}
	return v, true, nil
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isUpperAlpha(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
