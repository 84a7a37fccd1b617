package ingest

import "fmt"

// Reason is why a message was rejected. The set is small and fixed so it can
// label metrics and dead-letter headers.
type Reason uint8

const (
	ReasonInvalidJSON Reason = iota
	ReasonMissingField
	ReasonBadType
	ReasonBadTimestamp
	ReasonOutOfRange
	ReasonInvalidValue
	ReasonSensitiveData
	ReasonTooLarge

	NumReasons
)

var reasonNames = [NumReasons]string{
	"invalid_json", "missing_field", "bad_type", "bad_timestamp",
	"out_of_range", "invalid_value", "sensitive_data", "too_large",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "invalid"
}

// DecodeError is a rejection: a reason from the fixed set, the field it is
// about (empty for whole-message problems) and a human message. The message
// never quotes a value of a sensitive field.
type DecodeError struct {
	Reason Reason
	Field  string
	Msg    string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
	}
	return fmt.Sprintf("%s: field %q: %s", e.Reason, e.Field, e.Msg)
}

func reject(r Reason, field, msg string) *DecodeError {
	return &DecodeError{Reason: r, Field: field, Msg: msg}
}
