package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/internal/console"
	"github.com/declinemon/declinemon/internal/ops"
	"github.com/declinemon/declinemon/internal/secret"
	"github.com/declinemon/declinemon/pipeline"
)

// engineLive serves a real engine's overview, taken after the whole input
// was fed (the pipeline takes them between batches).
type engineLive struct {
	e    *alerting.Engine
	want []alerting.ScopeKey
}

func (l *engineLive) Overview(want ...alerting.ScopeKey) (alerting.Overview, bool) {
	l.want = append(l.want, want...)
	return l.e.Overview(12, l.want), true
}

// morning plays a short scenario (a regional outage that resolves, a
// failing terminal still failing at the end) into a real detector and a
// board, as the pipeline would.
func morning(t *testing.T) (*engineLive, *console.Board, scenario.Truth, []alerting.Alert) {
	t.Helper()
	s := scenario.Scenario{Name: "console", Fleet: scenario.Fleet{Seed: 7, Terminals: 600, Regions: 4, IDPrefix: "CT", RegionBase: 440000, AttemptsPerTerminalHour: 40},
		Start: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC), Duration: scenario.Duration(90 * time.Minute),
		Incidents: []scenario.Incident{
			{Type: "region_outage", At: scenario.Duration(20 * time.Minute), For: scenario.Duration(15 * time.Minute)},
			{Type: "failing_terminal", At: scenario.Duration(40 * time.Minute), For: scenario.Duration(50 * time.Minute)},
		}}
	board := &console.Board{}
	var alerts []alerting.Alert
	e, err := alerting.NewEngine(alerting.Config{}, func(a alerting.Alert) {
		alerts = append(alerts, a)
		board.Add(a)
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := classify.Default()
	truth, err := s.Generate(func(ev *event.Event) {
		e.Observe(ev, rules.Classify(ev).Cause)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &engineLive{e: e}, board, truth, alerts
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

func newConsole(t *testing.T, live *engineLive, board *console.Board) *httptest.Server {
	t.Helper()
	return serveConsole(t, console.Options{Live: live, Board: board, Active: live.e.Active, Location: shanghai,
		Now: func() time.Time { return time.Date(2026, 11, 27, 2, 31, 0, 0, time.UTC) }})
}

// serveConsole serves a console built from o (closed at the end of the test).
func serveConsole(t *testing.T, o console.Options) *httptest.Server {
	t.Helper()
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func fetch(t *testing.T, url string, wantStatus int) *html.Node {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, wantStatus, body)
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET %s: not HTML: %v", url, err)
	}
	return doc
}

// find returns the elements for which match holds, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// TestOverviewListsEveryIncidentWithItsRemedy: every alert the detector
// raised is on the page once, in the state of its latest record, with its
// summary and remedy as the record has them, its scope linked to a
// drill-down, and its onset in the business time zone.
func TestOverviewListsEveryIncidentWithItsRemedy(t *testing.T) {
	live, board, truth, alerts := morning(t)
	if len(alerts) == 0 {
		t.Fatal("the detector raised nothing: the scenario is broken")
	}
	srv := newConsole(t, live, board)
	doc := fetch(t, srv.URL+"/", http.StatusOK)

	latest := map[string]alerting.Alert{}
	for _, a := range alerts {
		latest[a.ID] = a
	}
	articles := find(doc, func(n *html.Node) bool { return n.Data == "article" && hasClass(n, "incident") })
	if len(articles) != len(latest) {
		t.Errorf("%d incidents on the page, the detector raised %d", len(articles), len(latest))
	}
	firing := 0
	for _, art := range articles {
		a, ok := latest[attr(art, "data-alert-id")]
		if !ok {
			t.Errorf("incident %s on the page was never raised", attr(art, "data-alert-id"))
			continue
		}
		body := text(art)
		for _, want := range []string{a.Summary, a.Remedy, "since " + a.StartsAt.In(shanghai).Format("15:04:05")} {
			if !strings.Contains(body, want) {
				t.Errorf("incident %s (%s %s=%s): %q not on the page:\n%s", a.ID, a.Kind, a.ScopeType, a.ScopeID, want, body)
			}
		}
		if hasClass(art, "firing") != (a.State == alerting.StateFiring) {
			t.Errorf("incident %s shown %s, its latest record is %s", a.ID, attr(art, "class"), a.State)
		}
		if a.State == alerting.StateFiring {
			firing++
		}
		links := find(art, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "scope") })
		if len(links) != 1 || attr(links[0], "href") != "/scope/"+a.ScopeType+"/"+a.ScopeID {
			t.Errorf("incident %s: scope link %v", a.ID, links)
		}
	}
	if firing == 0 {
		t.Error("no firing incident at the end of the morning: the failing terminal should still be failing")
	}
	// Every injected incident's scope is listed.
	for _, inc := range truth.Incidents {
		if len(find(doc, func(n *html.Node) bool {
			return n.Data == "a" && attr(n, "href") == "/scope/"+inc.ScopeType+"/"+inc.ScopeID
		})) == 0 {
			t.Errorf("injected %s on %s=%s: no link on the page", inc.Type, inc.ScopeType, inc.ScopeID)
		}
	}
	// One time zone, shown.
	if top := text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "top" })[0]); !strings.Contains(top, "Asia/Shanghai, UTC+08:00") ||
		!strings.Contains(top, "wall clock 10:31:00") {
		t.Errorf("header: %s", top)
	}
	// The live part: tiles, a chart with bars, the lists.
	if n := len(find(doc, func(n *html.Node) bool { return n.Data == "rect" })); n == 0 {
		t.Error("no bars in the decline-rate chart")
	}
	// Nothing on the page points off the console.
	for _, n := range find(doc, func(n *html.Node) bool { return attr(n, "href") != "" || attr(n, "src") != "" }) {
		for _, u := range []string{attr(n, "href"), attr(n, "src")} {
			if u != "" && !strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "#") {
				t.Errorf("<%s> points off the console: %s", n.Data, u)
			}
		}
	}
}

// TestDrillDown: an incident's link leads to its scope's page, which shows
// the detector's view of the scope and lists the incident; a terminal's
// page links to the scopes it belongs to.
func TestDrillDown(t *testing.T) {
	live, board, truth, alerts := morning(t)
	srv := newConsole(t, live, board)
	last := alerts[len(alerts)-1]

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/incident/" + last.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/scope/"+last.ScopeType+"/"+last.ScopeID+"#incident-"+last.ID {
		t.Errorf("/incident/%s: %d to %q", last.ID, resp.StatusCode, loc)
	}

	var term scenario.Expected
	for _, inc := range truth.Incidents {
		if inc.ScopeType == "terminal" {
			term = inc
		}
	}
	doc := fetch(t, srv.URL+"/scope/terminal/"+term.ScopeID, http.StatusOK)
	if h1 := text(find(doc, func(n *html.Node) bool { return n.Data == "h1" })[0]); h1 != "Terminal "+term.ScopeID {
		t.Errorf("heading %q", h1)
	}
	listed := find(doc, func(n *html.Node) bool { return n.Data == "article" })
	if len(listed) == 0 || attr(listed[0], "data-kind") != "terminal_hardware" {
		t.Errorf("the failing terminal's page lists %d incidents", len(listed))
	}
	belongs := find(doc, func(n *html.Node) bool {
		return n.Data == "a" && strings.HasPrefix(attr(n, "href"), "/scope/merchant/")
	})
	if len(belongs) == 0 {
		t.Error("the terminal's page does not link to its merchant")
	}
	if n := len(find(doc, func(n *html.Node) bool { return n.Data == "rect" })); n == 0 {
		t.Error("no bars in the terminal's chart")
	}

	fetch(t, srv.URL+"/scope/galaxy/1", http.StatusNotFound)
	fetch(t, srv.URL+"/incident/0000000000000000", http.StatusNotFound)
}

// TestConsoleIsBehindTheEndpointsAuth: with a bearer token set, the
// console answers only to it, like /metrics and /alerts.
func TestConsoleIsBehindTheEndpointsAuth(t *testing.T) {
	live, board, _, _ := morning(t)
	c, err := console.New(console.Options{Live: live, Board: board})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ops.HTTPConfig{BearerToken: secret.String("s3cret")}
	srv := httptest.NewServer(ops.NewHandler(cfg, ops.Endpoints{Active: live.e.Active, Console: c}))
	defer srv.Close()
	for _, path := range []string{"/", "/scope/region/440000", "/static/console.css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d", path, resp.StatusCode)
		}
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token: %d", path, resp.StatusCode)
		}
		// A browser: the token as the basic-auth password.
		req, _ = http.NewRequest("GET", srv.URL+path, nil)
		req.SetBasicAuth("ops", "s3cret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token as basic-auth password: %d", path, resp.StatusCode)
		}
	}
}

// TestBoardKeepsResolvedForAWhile: a resolved incident stays listed for
// Keep after its end (event time), then goes; at Max, the oldest resolved
// go first and firing ones are never dropped.
func TestBoardKeepsResolvedForAWhile(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 27, 8, m, 0, 0, time.UTC) }
	rec := func(id, state string, detected, end int) alerting.Alert {
		a := alerting.Alert{ID: id, State: state, DetectedAt: at(detected), StartsAt: at(detected)}
		if end >= 0 {
			e := at(end)
			a.EndsAt = &e
		}
		return a
	}
	b := &console.Board{Keep: 30 * time.Minute, Max: 3}
	b.Add(rec("a", "firing", 0, -1), rec("b", "firing", 1, -1))
	b.Add(rec("a", "resolved", 0, 5))
	firing, resolved := b.Incidents()
	if len(firing) != 1 || firing[0].ID != "b" || len(resolved) != 1 || resolved[0].ID != "a" || resolved[0].Updates != 2 {
		t.Fatalf("firing %v resolved %v", firing, resolved)
	}
	b.Add(rec("c", "firing", 36, -1)) // 31 minutes after a ended
	if _, ok := b.Get("a"); ok {
		t.Error("a resolved 31 minutes ago is still listed")
	}
	b.Add(rec("d", "resolved", 37, 38), rec("e", "resolved", 39, 40), rec("f", "firing", 41, -1))
	firing, resolved = b.Incidents()
	if len(firing) != 3 || len(resolved) != 0 {
		t.Errorf("at Max 3 with 3 firing: firing %d resolved %d", len(firing), len(resolved))
	}
}

// TestWrongClocksAreListed: terminals whose events carried a wrong time
// are a finding for field service, listed with how far off they are.
func TestWrongClocksAreListed(t *testing.T) {
	live, board, _, _ := morning(t)
	last := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	srv := serveConsole(t, console.Options{Live: live, Board: board, Location: shanghai,
		Skewed: func() []pipeline.ClockSkew {
			return []pipeline.ClockSkew{{Terminal: "CT-000042", Merchant: "M-CT-00010", Events: 17, Offset: 48 * time.Hour, Last: last},
				{Terminal: "CT-000007", Merchant: "M-CT-00002", Events: 3, Offset: -26 * 365 * 24 * time.Hour, Last: last}}
		}})
	doc := fetch(t, srv.URL+"/", http.StatusOK)
	var rows []string
	for _, tr := range find(doc, func(n *html.Node) bool { return n.Data == "tr" }) {
		var cells []string
		for _, td := range find(tr, func(n *html.Node) bool { return n.Data == "td" }) {
			cells = append(cells, text(td))
		}
		if len(cells) == 5 && (strings.HasSuffix(cells[3], "ahead") || strings.HasSuffix(cells[3], "behind")) {
			rows = append(rows, strings.Join(cells, " / "))
		}
	}
	want := []string{"CT-000042 / M-CT-00010 / 17 / 2 days ahead / 2026-11-29 18:00:00", "CT-000007 / M-CT-00002 / 3 / 9490 days behind / 2026-11-29 18:00:00"}
	if strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("wrong-clock rows %q, want %q", rows, want)
	}
}

// fakeLive serves copies in turn: the first call gets old, later ones new.
type fakeLive struct {
	calls    int
	old, new alerting.Overview
}

func (f *fakeLive) Overview(...alerting.ScopeKey) (alerting.Overview, bool) {
	f.calls++
	if f.calls == 1 {
		return f.old, true
	}
	return f.new, true
}

// TestConsoleNeverShowsStaleOrEmptyAsAllClear: with no event ever seen the
// status is "waiting", not "all clear"; a copy left from before a long
// time nobody looked is replaced by the next one before the page is
// rendered; not-found pages keep the security headers.
func TestConsoleNeverShowsStaleOrEmptyAsAllClear(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	serve := func(live console.Live) *httptest.Server {
		return serveConsole(t, console.Options{Live: live, Board: &console.Board{}, Now: func() time.Time { return now }})
	}
	status := func(doc *html.Node) string {
		return text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "status" })[0])
	}
	empty := &fakeLive{old: alerting.Overview{Taken: now}, new: alerting.Overview{Taken: now}}
	if s := status(fetch(t, serve(empty).URL+"/", http.StatusOK)); s != "waiting for the first events" {
		t.Errorf("no event ever seen: status %q", s)
	}
	stale := &fakeLive{
		old: alerting.Overview{Taken: now.Add(-2 * time.Minute), Newest: now.Add(-3 * time.Minute)},
		new: alerting.Overview{Taken: now, Newest: now.Add(-time.Second)},
	}
	doc := fetch(t, serve(stale).URL+"/", http.StatusOK)
	if top := text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "top" })[0]); !strings.Contains(top, "event time 09:59:59") {
		t.Errorf("the page shows the stale copy: %s", top)
	}
	srv := serve(stale)
	for _, path := range []string{"/scope/galaxy/1", "/incident/nope", "/scope/terminal/"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, CSP %q, nosniff %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
}
