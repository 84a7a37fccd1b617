package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
)

var cst = time.FixedZone("+08:00", 8*3600)

// incidentMenu is what a chaos day draws its incidents from: every kind
// the detector knows, spread over the busy hours.
var incidentMenu = []scenario.Incident{
	{Type: "region_outage", For: scenario.Duration(20 * time.Minute)},
	{Type: "issuer_outage", For: scenario.Duration(20 * time.Minute)},
	{Type: "failing_terminal", For: scenario.Duration(2 * time.Hour)},
	{Type: "carrier_outage", For: scenario.Duration(15 * time.Minute)},
	{Type: "fraud_attack", For: scenario.Duration(30 * time.Minute)},
	{Type: "host_outage", For: scenario.Duration(10 * time.Minute)},
	{Type: "mac_errors", For: scenario.Duration(45 * time.Minute)},
	{Type: "decline_spike", For: scenario.Duration(30 * time.Minute)},
}

// chaosDay is a realistic day (quiet night, lunch and evening peaks) of a
// small fleet with seven incidents, their types rotated by the seed: two
// in the morning, a cluster of four starting 13:00–13:12 and lasting 40
// minutes (a kill at 13:15 lands while all four are going on, some
// already alerted, some not yet), and one at 17:30. About 150k events: a
// case streams it in seconds.
func chaosDay(seed uint64) scenario.Scenario {
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, cst)
	var incs []scenario.Incident
	slots := []time.Duration{9*time.Hour + 30*time.Minute, 11*time.Hour + 10*time.Minute,
		13 * time.Hour, 13*time.Hour + 4*time.Minute, 13*time.Hour + 8*time.Minute, 13*time.Hour + 12*time.Minute,
		17*time.Hour + 30*time.Minute}
	for i, at := range slots {
		inc := incidentMenu[(int(seed)+i*3)%len(incidentMenu)]
		inc.At = scenario.Duration(at)
		if at >= 13*time.Hour && at < 14*time.Hour {
			inc.For = scenario.Duration(40 * time.Minute)
		}
		incs = append(incs, inc)
	}
	return scenario.Scenario{
		Name: fmt.Sprintf("chaos-day-%d", seed),
		Fleet: scenario.Fleet{Seed: seed, Terminals: 320, Regions: 6, Carriers: 3, Hosts: 4, Issuers: 8, Models: 4,
			IDPrefix: "CX", RegionBase: 310000, AttemptsPerTerminalHour: 20},
		Start: day, Duration: scenario.Duration(24 * time.Hour), Incidents: incs,
	}
}

// message is one event-v1 message and its key (the terminal).
type message struct {
	key, value []byte
	ts         time.Time
}

// dataset is a generated day: its messages in event-time order, the JSONL
// file replay reads, and the reference replay computed.
type dataset struct {
	seed     uint64
	scenario scenario.Scenario
	truth    scenario.Truth
	msgs     []message
	jsonl    string
	ref      reference
}

// reference is what `declinemon replay` raises for the day.
type reference struct {
	firing []alertRecord // firing records, in order
	late   uint64        // late events in the replay summary
	all    int           // records of any state
}

func generate(t testing.TB, dir string, seed uint64) *dataset {
	t.Helper()
	s := chaosDay(seed)
	d := &dataset{seed: seed, scenario: s, jsonl: filepath.Join(dir, fmt.Sprintf("day-%d.jsonl", seed))}
	f, err := os.Create(d.jsonl)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	d.truth, err = s.Generate(func(ev *event.Event) {
		buf = event.AppendJSON(buf[:0], ev)
		bw.Write(buf)
		bw.WriteByte('\n')
		d.msgs = append(d.msgs, message{key: []byte(ev.Terminal), value: bytes.Clone(buf), ts: ev.Time})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

var lateLine = regexp.MustCompile(`late \(beyond lateness[^)]*\)\s+(\d+)`)

// replayReference runs the real binary's replay over the day.
func replayReference(t testing.TB, bin string, d *dataset) {
	t.Helper()
	out := d.jsonl + ".alerts.jsonl"
	cmd := exec.Command(bin, "replay", "--input", d.jsonl, "--alerts-out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay seed %d: %v\n%s", d.seed, err, stderr.String())
	}
	m := lateLine.FindSubmatch(stderr.Bytes())
	if m == nil {
		t.Fatalf("replay seed %d: no late count in its summary:\n%s", d.seed, stderr.String())
	}
	d.ref.late, _ = strconv.ParseUint(string(m[1]), 10, 64)
	recs, _, err := readAlerts(out)
	if err != nil {
		t.Fatal(err)
	}
	d.ref.all = len(recs)
	for _, r := range recs {
		if r.State == "firing" {
			d.ref.firing = append(d.ref.firing, r)
		}
	}
	if len(d.ref.firing) == 0 {
		t.Fatalf("replay of seed %d raised no alert: the reference is useless", d.seed)
	}
}

// alertRecord is the part of an alerts-v1 record the suite compares.
type alertRecord struct {
	ID         string    `json:"alert_id"`
	State      string    `json:"state"`
	Kind       string    `json:"kind"`
	ScopeType  string    `json:"scope_type"`
	ScopeID    string    `json:"scope_id"`
	StartsAt   time.Time `json:"starts_at"`
	DetectedAt time.Time `json:"detected_at"`
}

func (a alertRecord) String() string {
	return fmt.Sprintf("%s %s/%s %s (onset %s, detected %s)", a.Kind, a.ScopeType, a.ScopeID, a.ID,
		a.StartsAt.In(cst).Format("15:04:05"), a.DetectedAt.In(cst).Format("15:04:05"))
}

// readAlerts reads an alerts-v1 JSONL file. A missing file has no records.
func readAlerts(path string) (recs []alertRecord, torn int, err error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	recs, torn = parseAlerts(data)
	return recs, torn, nil
}

// parseAlerts parses alerts-v1 lines. A line a kill cut short is counted
// as torn; when the next lifetime appended a record to it, that record is
// still read.
func parseAlerts(data []byte) (recs []alertRecord, torn int) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r alertRecord
		if err := json.Unmarshal(line, &r); err == nil {
			recs = append(recs, r)
			continue
		}
		torn++
		if i := bytes.LastIndex(line, []byte(`{"alert_id"`)); i > 0 && json.Unmarshal(line[i:], &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs, torn
}

// onsetSlack is how far apart two onsets of one incident may be when the
// live service and replay give it different ids (a restarted detector
// re-learning its windows dates the onset differently).
const onsetSlack = 30 * time.Minute

// comparison matches the firing records a case wrote against the reference.
type comparison struct {
	expected int
	// By alert_id: each reference id seen once, more than once, never.
	idOnce, idDup, idMissed int
	// By incident (kind, scope, onset within onsetSlack), whatever the id:
	// fired once, more than once, never.
	incOnce, incDup, incMissed int
	// extra are firing records matching no reference incident.
	extra  []alertRecord
	detail []string
}

func compare(ref, got []alertRecord) comparison {
	c := comparison{expected: len(ref)}
	ids := map[string]int{}
	for _, g := range got {
		ids[g.ID]++
	}
	used := make([]bool, len(got))
	for _, r := range ref {
		switch n := ids[r.ID]; {
		case n == 1:
			c.idOnce++
		case n > 1:
			c.idDup++
			c.detail = append(c.detail, fmt.Sprintf("alert_id %s fired %d times: %s", r.ID, n, r))
		default:
			c.idMissed++
		}
		var match []alertRecord
		for i, g := range got {
			if g.Kind == r.Kind && g.ScopeType == r.ScopeType && g.ScopeID == r.ScopeID && absDur(g.StartsAt.Sub(r.StartsAt)) <= onsetSlack {
				match = append(match, g)
				used[i] = true
			}
		}
		switch {
		case len(match) == 1:
			c.incOnce++
			if match[0].ID != r.ID {
				c.detail = append(c.detail, fmt.Sprintf("incident fired with another id: want %s, got %s", r, match[0]))
			}
		case len(match) > 1:
			c.incDup++
			sameID := true
			for _, m := range match {
				sameID = sameID && m.ID == r.ID
			}
			if !sameID { // else said above
				c.detail = append(c.detail, fmt.Sprintf("incident fired %d times: %s; got %v", len(match), r, match))
			}
		default:
			c.incMissed++
			c.detail = append(c.detail, fmt.Sprintf("missed: %s", r))
		}
	}
	for i, g := range got {
		if !used[i] {
			c.extra = append(c.extra, g)
			c.detail = append(c.detail, fmt.Sprintf("not in the reference: %s", g))
		}
	}
	slices.Sort(c.detail)
	c.detail = slices.Compact(c.detail)
	return c
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
