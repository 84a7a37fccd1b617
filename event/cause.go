package event

// Cause is the single reason assigned to a declined or failed attempt.
// The set comes from the decline-cause taxonomy; CauseNone marks approvals.
type Cause uint8

const (
	CauseNone Cause = iota // approved: no cause
	CauseHardware
	CauseNetwork
	CauseDataTransmission
	CauseIssuerCredit
	CauseMaintenance
	CauseFraudRisk
	CauseOperatorError
	CauseMerchantAccount
	CausePolicy
	CauseUnknown

	// NumCauses sizes arrays indexed by Cause.
	NumCauses
)

var causeNames = [NumCauses]string{
	"approved", "hardware", "network", "data_transmission", "issuer_credit",
	"maintenance", "fraud_risk", "operator_error", "merchant_account", "policy", "unknown",
}

// String returns the taxonomy name ("network", "issuer_credit", ...), or
// "approved" for CauseNone.
func (c Cause) String() string {
	if c < NumCauses {
		return causeNames[c]
	}
	return "invalid"
}

// ParseCause maps a taxonomy name (or "approved") to a Cause.
func ParseCause(s string) (Cause, bool) {
	for i, n := range causeNames {
		if n == s {
			return Cause(i), true
		}
	}
	return CauseNone, false
}

// Causes lists the decline causes (every Cause except CauseNone) in order.
func Causes() []Cause {
	out := make([]Cause, 0, NumCauses-1)
	for c := CauseHardware; c < NumCauses; c++ {
		out = append(out, c)
	}
	return out
}
