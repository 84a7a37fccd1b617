package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
)

func dur(d time.Duration) scenario.Duration { return scenario.Duration(d) }

// Day is the scenario the stack plays: a 3-hour morning of a
// 1,500-terminal fleet where one terminal starts failing (a
// terminal_hardware alert), an issuer goes down for 20 minutes, then the
// failing terminal's whole region loses its network until the end of the
// day (a network_outage: Alertmanager must inhibit the terminal's alert
// under it, as alertmanager.yml's inhibit rules say) while a merchant in
// it is card-tested. No suite scenario puts a terminal alert under an
// outage, so the day is a spec (loadgen --spec). round > 0 is the next
// three hours, another fleet (its own seed and terminal ids) with the same
// kinds of incidents elsewhere (make stack --loop).
func Day(round int) scenario.Scenario {
	// Letters only: a digit before the dash turns event ids such as
	// "ST1-000072-000000015" into 16 dash-grouped digits, which the
	// card-data detector takes for a card number one time in ten.
	prefix := "ST"
	if round > 0 {
		prefix += string(rune('A' + (round-1)%26))
	}
	s := scenario.Scenario{Name: fmt.Sprintf("stack-day-%d", round),
		Fleet:     scenario.Fleet{Seed: 42 + uint64(round), Terminals: 1500, Regions: 8, IDPrefix: prefix, RegionBase: 350100},
		Start:     time.Date(2026, 11, 27, 9, 0, 0, 0, time.FixedZone("+08:00", 8*3600)).Add(time.Duration(round) * 3 * time.Hour),
		Duration:  dur(3 * time.Hour),
		Incidents: []scenario.Incident{{Type: "failing_terminal", At: dur(30 * time.Minute), For: dur(150 * time.Minute)}}}
	// The failing terminal is the generator's pick (the first incident's);
	// the outage then takes its region.
	truth, err := s.Generate(func(*event.Event) {})
	if err != nil {
		panic(err) // a fixed, valid scenario
	}
	region := ""
	for _, t := range s.Terminals() {
		if t.ID == truth.Incidents[0].ScopeID {
			region = t.Region
		}
	}
	s.Incidents = append(s.Incidents,
		scenario.Incident{Type: "issuer_outage", ScopeID: "ICBC", At: dur(70 * time.Minute), For: dur(20 * time.Minute)},
		scenario.Incident{Type: "region_outage", ScopeID: region, At: dur(2 * time.Hour), For: dur(time.Hour)},
		scenario.Incident{Type: "fraud_attack", At: dur(140 * time.Minute), For: dur(30 * time.Minute)},
	)
	return s
}

// WriteSpec writes s as a loadgen --spec file.
func WriteSpec(path string, s scenario.Scenario) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Generate runs `loadgen generate --spec` into dir (events.jsonl and
// truth.json) and counts what it wrote: the oracle the stored data is
// compared with, computed apart from declinemon.
func (s *Stack) Generate(ctx context.Context, spec, dir string) (*Oracle, scenario.Truth, error) {
	events, truthPath := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "truth.json")
	cmd := exec.CommandContext(ctx, s.Loadgen, "generate", "--spec", spec, "--out", events, "--truth", truthPath)
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, scenario.Truth{}, fmt.Errorf("loadgen generate: %v\n%s", err, out)
	}
	var truth scenario.Truth
	data, err := os.ReadFile(truthPath)
	if err != nil {
		return nil, truth, err
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		return nil, truth, fmt.Errorf("truth: %w", err)
	}
	o, err := CountEvents(events)
	return o, truth, err
}

// Produce starts `loadgen produce --spec` into the topic, as compose's
// loadgen service does (it creates the topic by producing to it).
func (s *Stack) Produce(spec string, speed float64) (*Proc, error) {
	s.mu.Lock()
	n := len(s.extra)
	s.mu.Unlock()
	p, err := StartProc("loadgen", filepath.Join(s.opts.Dir, "loadgen", fmt.Sprintf("produce-%d.log", n+1)), childEnv(),
		s.Loadgen, "produce", "--brokers", s.Kafka.Addr, "--topic", Topic, "--spec", spec,
		"--speed", strconv.FormatFloat(speed, 'f', -1, 64))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.extra = append(s.extra, p)
	s.mu.Unlock()
	return p, nil
}

var producedLine = regexp.MustCompile(`produced (\d+) messages \((\d+) events\)`)

// Produced reads loadgen produce's closing line: messages acknowledged
// by the broker and events generated.
func Produced(p *Proc) (messages, events int, err error) {
	m := producedLine.FindSubmatch(p.Output())
	if m == nil {
		return 0, 0, fmt.Errorf("loadgen did not report what it produced:\n%s", p.Tail(2000))
	}
	messages, _ = strconv.Atoi(string(m[1]))
	events, _ = strconv.Atoi(string(m[2]))
	return messages, events, nil
}

// Oracle counts generated events by the dimensions declinemon stores
// unchanged (not by cause, which is declinemon's classification).
type Oracle struct {
	Events   int
	Approved int // response_code "00" and no terminal error
	First    time.Time
	Last     time.Time
	// Counts by dimension value.
	Merchant, Terminal, Region, Carrier, Host, Issuer, Network map[string]int64
	// Events by UTC minute, as "2006-01-02 15:04:00" (ClickHouse's
	// DateTime text).
	Minute map[string]int64
}

// CountEvents reads an event-v1 JSONL file.
func CountEvents(path string) (*Oracle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	o := &Oracle{Merchant: map[string]int64{}, Terminal: map[string]int64{}, Region: map[string]int64{}, Carrier: map[string]int64{},
		Host: map[string]int64{}, Issuer: map[string]int64{}, Network: map[string]int64{}, Minute: map[string]int64{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			TS            time.Time `json:"ts"`
			Terminal      string    `json:"terminal_id"`
			Merchant      string    `json:"merchant_id"`
			Region        string    `json:"region"`
			Carrier       string    `json:"carrier"`
			Host          string    `json:"host_id"`
			Issuer        string    `json:"issuer_id"`
			Network       string    `json:"network"`
			ResponseCode  string    `json:"response_code"`
			TerminalError string    `json:"terminal_error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, o.Events+1, err)
		}
		o.Events++
		if e.ResponseCode == "00" && e.TerminalError == "" {
			o.Approved++
		}
		if o.First.IsZero() || e.TS.Before(o.First) {
			o.First = e.TS
		}
		if e.TS.After(o.Last) {
			o.Last = e.TS
		}
		o.Merchant[e.Merchant]++
		o.Terminal[e.Terminal]++
		o.Region[e.Region]++
		o.Carrier[e.Carrier]++
		o.Host[e.Host]++
		o.Issuer[e.Issuer]++
		o.Network[e.Network]++
		o.Minute[e.TS.UTC().Truncate(time.Minute).Format("2006-01-02 15:04:05")]++
	}
	return o, sc.Err()
}
