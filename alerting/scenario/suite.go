package scenario

import "time"

func at(h, m int) Duration {
	return Duration(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func mins(m int) Duration { return Duration(time.Duration(m) * time.Minute) }

// Suite is the standard scenario set: each injected incident type in a
// fleet of its own (different size, ids, region codes, traffic level and
// noise), a quiet day, and a mixed day.
func Suite() []Scenario {
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.FixedZone("+08:00", 8*3600))
	morning := day.Add(9 * time.Hour)
	return []Scenario{
		{Name: "quiet-day", Fleet: Fleet{Seed: 1, Terminals: 2000, IDPrefix: "QD", RegionBase: 110000}, Start: day, Duration: at(24, 0)},
		{Name: "regional-outage", Fleet: Fleet{Seed: 2, Terminals: 3000, Regions: 10, IDPrefix: "RO", RegionBase: 330100},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "region_outage", At: at(2, 6), For: mins(25)}}},
		{Name: "carrier-outage", Fleet: Fleet{Seed: 3, Terminals: 2500, Regions: 6, Carriers: 3, IDPrefix: "CO", RegionBase: 440300},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "carrier_outage", At: at(2, 0), For: mins(20)}}},
		{Name: "host-outage", Fleet: Fleet{Seed: 4, Terminals: 3000, Hosts: 5, IDPrefix: "HO", RegionBase: 510100},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "host_outage", At: at(2, 30), For: mins(15)}}},
		{Name: "failing-terminals", Fleet: Fleet{Seed: 5, Terminals: 2000, IDPrefix: "FT", AttemptsPerTerminalHour: 25},
			Start: morning, Duration: at(6, 0), Incidents: []Incident{
				{Type: "failing_terminal", At: at(1, 30), For: at(3, 0)},
				{Type: "failing_terminal", At: at(2, 15), For: at(3, 0)},
				{Type: "failing_terminal", At: at(3, 40), For: at(2, 0)},
			}},
		{Name: "model-defect", Fleet: Fleet{Seed: 6, Terminals: 3000, Models: 5, IDPrefix: "MD"},
			Start: morning, Duration: at(5, 0), Incidents: []Incident{{Type: "model_defect", At: at(2, 0), For: at(2, 0)}}},
		{Name: "issuer-outage", Fleet: Fleet{Seed: 7, Terminals: 3000, Issuers: 12, IDPrefix: "IO", RegionBase: 320500},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "issuer_outage", At: at(2, 10), For: mins(30)}}},
		{Name: "fraud-attack", Fleet: Fleet{Seed: 8, Terminals: 2000, IDPrefix: "FA", Scheme: "iso8583"},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "fraud_attack", At: at(2, 20), For: mins(40)}}},
		{Name: "mac-errors", Fleet: Fleet{Seed: 9, Terminals: 2000, IDPrefix: "MK", Scheme: "cup"},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "mac_errors", At: at(2, 0), For: mins(45)}}},
		{Name: "maintenance-window", Fleet: Fleet{Seed: 10, Terminals: 2500, IDPrefix: "MW"},
			Start: day, Duration: at(5, 0), Incidents: []Incident{{Type: "issuer_outage", At: at(2, 0), For: mins(40), Maintenance: true}}},
		{Name: "decline-spike", Fleet: Fleet{Seed: 11, Terminals: 2000, IDPrefix: "DS"},
			Start: morning, Duration: at(4, 0), Incidents: []Incident{{Type: "decline_spike", At: at(2, 0), For: mins(30)}}},
		{Name: "busy-mixed-day", Fleet: Fleet{Seed: 12, Terminals: 6000, Regions: 20, Carriers: 4, Hosts: 6, Issuers: 14, Models: 6,
			IDPrefix: "MX", RegionBase: 350200, AttemptsPerTerminalHour: 12, BackgroundDecline: 0.09, BackgroundFailure: 0.015},
			Start: day.Add(6 * time.Hour), Duration: at(14, 0), Incidents: []Incident{
				{Type: "carrier_outage", At: at(2, 0), For: mins(15)},
				{Type: "failing_terminal", At: at(3, 0), For: at(3, 0)},
				{Type: "region_outage", At: at(5, 30), For: mins(20)},
				{Type: "issuer_outage", At: at(7, 0), For: mins(20)},
				{Type: "fraud_attack", At: at(9, 0), For: mins(30)},
				{Type: "host_outage", At: at(11, 0), For: mins(10)},
			}},
	}
}

// Demo is the scenario `declinemon demo` plays: a 3-hour morning of a
// 3,000-terminal fleet with an incident every half hour or so.
func Demo() Scenario {
	return Scenario{Name: "demo", Fleet: Fleet{Seed: 2026, Terminals: 3000, Regions: 8, IDPrefix: "DEMO", RegionBase: 310000, AttemptsPerTerminalHour: 25},
		Start: time.Date(2026, 11, 27, 9, 30, 0, 0, time.FixedZone("+08:00", 8*3600)), Duration: at(3, 0),
		Incidents: []Incident{
			{Type: "region_outage", At: mins(20), For: mins(15)},
			{Type: "failing_terminal", At: mins(30), For: at(2, 0)},
			{Type: "issuer_outage", At: mins(70), For: mins(20)},
			{Type: "carrier_outage", At: mins(110), For: mins(15)},
			{Type: "fraud_attack", At: mins(140), For: mins(30)},
		}}
}
