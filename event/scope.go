package event

import "strings"

// ScopeType is a dimension incidents live in (alerts-v1 scope_type).
type ScopeType uint8

const (
	ScopeTerminal ScopeType = iota
	ScopeMerchant
	ScopeRegion
	ScopeCarrier
	ScopeNetwork
	ScopeHost
	ScopeAcquirer
	ScopeIssuer
	ScopeModel
	// ScopeRegionCarrier is one carrier within one region (alerts-v1
	// composite scope "region+carrier", id "REGION/CARRIER"): where
	// partial network outages live, diluted in the region and in the
	// carrier alike.
	ScopeRegionCarrier

	NumScopeTypes
)

var scopeNames = [NumScopeTypes]string{
	"terminal", "merchant", "region", "carrier", "network", "host", "acquirer", "issuer", "model", "region+carrier",
}

var scopeLabels = [NumScopeTypes]string{
	"Terminal", "Merchant", "Region", "Carrier", "Network type", "Host", "Acquirer", "Issuer", "Model/firmware", "Carrier in region",
}

// Label is the scope type's name for people ("Network type").
func (s ScopeType) Label() string {
	if s < NumScopeTypes {
		return scopeLabels[s]
	}
	return "invalid"
}

func (s ScopeType) String() string {
	if s < NumScopeTypes {
		return scopeNames[s]
	}
	return "invalid"
}

// ParseScopeType maps an alerts-v1 scope_type name to a ScopeType.
func ParseScopeType(s string) (ScopeType, bool) {
	for i, n := range scopeNames {
		if n == s {
			return ScopeType(i), true
		}
	}
	return 0, false
}

// ScopeID returns the event's value for dimension t, "" when the event does
// not carry it. The detector refines the model scope to model/firmware.
func (e *Event) ScopeID(t ScopeType) string {
	switch t {
	case ScopeTerminal:
		return e.Terminal
	case ScopeMerchant:
		return e.Merchant
	case ScopeRegion:
		return e.Region
	case ScopeCarrier:
		return e.Carrier
	case ScopeNetwork:
		return e.Network
	case ScopeHost:
		return e.Host
	case ScopeAcquirer:
		return e.Acquirer
	case ScopeIssuer:
		return e.Issuer
	case ScopeModel:
		return e.Model
	case ScopeRegionCarrier:
		// A region with a "/" would make the id ambiguous: no cell.
		if e.Region == "" || e.Carrier == "" || strings.IndexByte(e.Region, '/') >= 0 {
			return ""
		}
		return e.Region + "/" + e.Carrier
	}
	return ""
}

// IsRegionCarrier reports whether id is the region+carrier scope id of
// region and carrier, without building it.
func IsRegionCarrier(id, region, carrier string) bool {
	return len(id) == len(region)+1+len(carrier) && id[:len(region)] == region &&
		id[len(region)] == '/' && id[len(region)+1:] == carrier && strings.IndexByte(region, '/') < 0
}

// Parts splits a composite scope id ("330100/CUCC") into its dimensions'
// values, in the order of the scope type's name; a plain id is one part.
func (s ScopeType) Parts(id string) []string {
	if s == ScopeRegionCarrier {
		if i := strings.IndexByte(id, '/'); i >= 0 {
			return []string{id[:i], id[i+1:]}
		}
	}
	return []string{id}
}
