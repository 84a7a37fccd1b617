package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
)

// startAlertmanager runs the real binary (Debian prometheus-alertmanager)
// with the deployed configuration on a free loopback port.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		bin, err = exec.LookPath("alertmanager")
	}
	if err != nil {
		if os.Getenv("DECLINEMON_ALERTMANAGER_REQUIRED") == "1" {
			t.Fatal("alertmanager binary not found (apt-get install prometheus-alertmanager)")
		}
		t.Skip("alertmanager binary not found")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--config.file=../../deploy/alertmanager/alertmanager.yml", "--storage.path="+dir,
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	logf, _ := os.Create(filepath.Join(dir, "am.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "am.log"))
			t.Fatalf("alertmanager not ready: %v\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type gettable struct {
	Labels map[string]string `json:"labels"`
	EndsAt time.Time         `json:"endsAt"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
}

func amAlerts(t *testing.T, base string) []gettable {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []gettable
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAlertmanagerReplayedOutage replays a day where a terminal starts
// failing (a terminal_hardware alert) and later its whole region goes down
// (a network_outage), posts the alert stream to a real Alertmanager, and
// checks Alertmanager holds exactly those alerts, mutes the terminal alert
// under the outage (the deployed inhibition rule), and ends the outage
// when it resolves.
func TestAlertmanagerReplayedOutage(t *testing.T) {
	base := startAlertmanager(t)

	s := scenario.Scenario{Name: "am", Fleet: scenario.Fleet{Seed: 42, Terminals: 1500, IDPrefix: "AM"},
		Start: time.Date(2026, 11, 27, 9, 0, 0, 0, time.FixedZone("+08:00", 8*3600)), Duration: scenario.Duration(3 * time.Hour),
		Incidents: []scenario.Incident{{Type: "failing_terminal", At: scenario.Duration(30 * time.Minute), For: scenario.Duration(150 * time.Minute)}}}
	truth, err := s.Generate(func(*event.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	termID := truth.Incidents[0].ScopeID
	var region string
	for _, tm := range s.Terminals() {
		if tm.ID == termID {
			region = tm.Region
		}
	}
	s.Incidents = append(s.Incidents, scenario.Incident{Type: "region_outage", ScopeID: region,
		At: scenario.Duration(2 * time.Hour), For: scenario.Duration(20 * time.Minute)})
	_, alerts, err := scenario.Run(s, classify.Default(), alerting.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var stream []string
	for _, a := range alerts {
		stream = append(stream, fmt.Sprintf("%s %s %s=%s", a.State, a.Kind, a.ScopeType, a.ScopeID))
	}
	want := []string{"firing terminal_hardware terminal=" + termID, "firing network_outage region=" + region, "resolved network_outage region=" + region}
	if strings.Join(stream, "|") != strings.Join(want, "|") {
		t.Fatalf("replayed stream %v, want %v", stream, want)
	}

	am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{base}, ResendInterval: time.Minute,
		RunbookURL: "https://runbooks.example/declinemon", GeneratorURL: "http://declinemon:9464/alerts"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer am.Close(context.Background())

	// Up to the outage: both firing alerts.
	am.Send(context.Background(), alerts[:2])
	waitUntil(t, func() bool { return len(amAlerts(t, base)) == 2 })
	got := amAlerts(t, base)
	sort.Slice(got, func(i, j int) bool { return got[i].Labels["kind"] < got[j].Labels["kind"] })
	outage, term := got[0], got[1]
	if outage.Labels["kind"] != "network_outage" || outage.Labels["region"] != region || outage.Status.State != "active" ||
		outage.Labels["alertname"] != "DeclinemonNetworkOutage" || outage.Annotations["summary"] == "" ||
		outage.Annotations["remedy"] == "" || !strings.HasSuffix(outage.Annotations["runbook_url"], "#network_outage") ||
		!strings.Contains(outage.GeneratorURL, "alert_id=") {
		t.Errorf("outage in alertmanager: %+v", outage)
	}
	if term.Labels["scope_id"] != termID || term.Status.State != "suppressed" || len(term.Status.InhibitedBy) == 0 {
		t.Errorf("terminal alert not inhibited by the outage: %+v", term)
	}

	// The outage resolves: it ends, and the terminal alert is active again.
	am.Send(context.Background(), alerts[2:])
	waitUntil(t, func() bool { return len(amAlerts(t, base)) == 1 })
	left := amAlerts(t, base)[0]
	if left.Labels["scope_id"] != termID || left.Status.State != "active" {
		t.Errorf("after the outage resolved: %+v", left)
	}
	// The receiver can show the resolve before the sender has counted it.
	if err := am.Flush(context.Background()); err != nil {
		t.Errorf("Flush: %v", err)
	}
	if am.Stats().Sent.Load() != 3 || am.Stats().Dropped.Load() != 0 {
		t.Errorf("sent %d dropped %d", am.Stats().Sent.Load(), am.Stats().Dropped.Load())
	}
}

// TestAlertmanagerRealResolveAfterStall puts a stuck proxy in front of a
// real Alertmanager, resolves an alert while its firing post is stuck and
// others wait, and checks that once the proxy recovers the alert ends
// resolved there and the resend loop never revives it.
func TestAlertmanagerRealResolveAfterStall(t *testing.T) {
	base := startAlertmanager(t)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	g.shut()
	defer g.release()
	var inFlight atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		if g.pass(r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	const resend = 500 * time.Millisecond
	am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{srv.URL}, ResendInterval: resend, QueueSize: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer am.Close(context.Background())

	am.send(t, sample("a1"))
	waitUntil(t, func() bool { return inFlight.Load() == 1 })
	am.send(t, sample("a2"))
	am.send(t, sample("a3"))
	am.send(t, resolvedSample("a1"))
	g.release()

	active := func() string {
		var ids []string
		for _, a := range amAlerts(t, base) {
			ids = append(ids, a.Labels["alert_id"])
		}
		sort.Strings(ids)
		return strings.Join(ids, ",")
	}
	waitUntil(t, func() bool { return active() == "a2,a3" })
	for range 5 {
		time.Sleep(resend)
		if got := active(); strings.Contains(got, "a1") {
			t.Fatalf("alertmanager holds %s after resends: a1 revived", got)
		}
	}
	waitUntil(t, func() bool { return active() == "a2,a3" })
	if err := am.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
