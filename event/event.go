// Package event holds the domain types shared by every stage of declinemon:
// the decoded transaction attempt (event-v1), its outcome and decline cause,
// and the scope dimensions detection groups attempts by.
//
// It has no dependencies on the rest of the module so imports stay one-way:
// ingest, classify and alerting all import event, never each other's internals.
package event

import "time"

// Scheme names the response-code table a response_code belongs to.
type Scheme uint8

const (
	SchemeUnset Scheme = iota
	SchemeISO8583
	SchemeCUP
)

var schemeNames = [...]string{"", "iso8583", "cup"}

func (s Scheme) String() string {
	if int(s) < len(schemeNames) {
		return schemeNames[s]
	}
	return "invalid"
}

// ParseScheme maps "cup" and "iso8583" to a Scheme.
func ParseScheme(s string) (Scheme, bool) {
	switch s {
	case "iso8583":
		return SchemeISO8583, true
	case "cup":
		return SchemeCUP, true
	}
	return SchemeUnset, false
}

// Event is one validated transaction attempt (event-v1). It never holds card
// data beyond the 6..8 digit BIN. String fields other than ID are interned by
// the decoder and may be shared between events.
type Event struct {
	ID       string
	Time     time.Time
	Terminal string
	Merchant string

	ResponseCode  string // "" when no host answer arrived
	TerminalError string // "" when the terminal reported no local error
	Scheme        Scheme
	TxnType       string
	EntryMode     string
	Network       string
	Currency      string
	CardBIN       string
	Issuer        string
	Acquirer      string
	Host          string
	Region        string
	Carrier       string
	Model         string
	Firmware      string

	AmountMinor int64 // -1 when absent
	SignalDBM   int32 // meaningful only when HasSignal
	LatencyMS   int32 // -1 when absent
	BatteryPct  int8  // -1 when absent
	HasSignal   bool
}

// Reset clears e for reuse without giving up its identity.
func (e *Event) Reset() {
	*e = Event{AmountMinor: -1, LatencyMS: -1, BatteryPct: -1}
}

// Code returns the code that decided the event's outcome: the terminal error
// when present (it takes precedence), otherwise the response code.
func (e *Event) Code() string {
	if e.TerminalError != "" {
		return e.TerminalError
	}
	return e.ResponseCode
}

// Classified is an accepted event with its classification and where it
// was read from: what storage keeps.
type Classified struct {
	Event     Event
	Cause     Cause // CauseNone for approvals
	Known     bool  // the deciding code is in the rules
	Topic     string
	Partition int
	Offset    int64
}
