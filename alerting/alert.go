// Package alerting detects decline incidents in a stream of classified
// transaction attempts, driven by event time only: baselines per scope and
// cause, volume-aware statistical tests, attribution of an incident to the
// one scope that explains it best, and an alert lifecycle (firing →
// resolved) with hysteresis, inhibition and maintenance windows.
//
// The package is pure: no clock, no I/O. Callers feed events in arrival
// order with Engine.Observe and receive alerts-v1 records through a
// callback; the same input in the same order yields the same alerts, which
// is what makes `declinemon replay` reproduce the live service.
package alerting

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"
)

// Kind is what the detector believes is happening (alerts-v1 kind).
type Kind uint8

const (
	KindNetworkOutage Kind = iota
	KindTerminalHardware
	KindIssuerOutage
	KindFraudAttack
	KindDataTransmission
	KindDeclineSpike

	NumKinds
)

var kindNames = [NumKinds]string{
	"network_outage", "terminal_hardware", "issuer_outage", "fraud_attack", "data_transmission", "decline_spike",
}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "invalid"
}

// ParseKind maps an alerts-v1 kind name to a Kind.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, ok := ParseKind(string(b))
	if !ok {
		return fmt.Errorf("unknown alert kind %q", b)
	}
	*k = v
	return nil
}

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one alerts-v1 record. Times are event time.
type Alert struct {
	ID           string            `json:"alert_id"`
	State        string            `json:"state"`
	Kind         Kind              `json:"kind"`
	Cause        string            `json:"cause"`
	ScopeType    string            `json:"scope_type"`
	ScopeID      string            `json:"scope_id"`
	StartsAt     time.Time         `json:"starts_at"`
	DetectedAt   time.Time         `json:"detected_at"`
	EndsAt       *time.Time        `json:"ends_at,omitempty"`
	Attempts     int               `json:"attempts"`
	Failures     int               `json:"failures"`
	Rate         float64           `json:"rate"`
	BaselineRate float64           `json:"baseline_rate"`
	Affected     int               `json:"affected"`
	Summary      string            `json:"summary"`
	Remedy       string            `json:"remedy"`
	Labels       map[string]string `json:"labels"`
}

// MarshalJSONLine returns the record as one JSON line (with trailing newline).
func (a *Alert) MarshalJSONLine() ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding alert %s: %w", a.ID, err)
	}
	return append(b, '\n'), nil
}

// alertID is stable for an incident: the same kind, scope and onset give
// the same id on every replay of the same input.
func alertID(k Kind, scopeType, scopeID, cause string, start time.Time) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%s|%s|%d", k, scopeType, scopeID, cause, start.Unix())
	return fmt.Sprintf("%016x", h.Sum64())
}
