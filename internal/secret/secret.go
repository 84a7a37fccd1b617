// Package secret holds configuration values that must never print:
// passwords, tokens, signing keys. Every way Go, zap, JSON or YAML renders a
// value shows "[redacted]"; code that needs the value asks for it with
// Reveal, which is easy to find in review.
package secret

import (
	"fmt"
	"log/slog"
)

// String is a secret configuration value. Its zero value is "not set".
type String string

const redacted = "[redacted]"

// Reveal returns the secret for the one place that uses it.
func (s String) Reveal() string { return string(s) }

// IsSet reports whether a value was configured.
func (s String) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (String) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (String) GoString() string { return redacted }

// MarshalText keeps secrets out of encoded configs (JSON, YAML, zap).
func (String) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON implements json.Marshaler.
func (String) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalYAML implements yaml.Marshaler.
func (String) MarshalYAML() (any, error) { return redacted, nil }

// Format implements fmt.Formatter, so no verb (%d, %x, %t...) prints the
// value.
func (String) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", redacted)
		return
	}
	f.Write([]byte(redacted))
}

// LogValue keeps the secret out of slog records.
func (String) LogValue() slog.Value { return slog.StringValue(redacted) }
