// Package console is declinemon's ops console: the page a payments-ops
// team puts on its wall screen and an on-call engineer opens from a page.
// It shows the firing and recently resolved incidents with their
// evidence, affected terminals and remedies, the fleet's decline rate by
// cause per minute over the last hour, the scopes under suspicion, the
// most failing merchants and terminals, and a drill-down page per scope.
//
// It reads the detector's live state (an alerting.Overview the pipeline
// copies out between batches), the alert records of this process (Board)
// and, when storage is configured, the ClickHouse rollups. Pages are
// rendered on the server, so the incident list works without JavaScript;
// a small embedded script refreshes the live part every few seconds. No
// asset is fetched from anywhere at run time. Authentication is the ops
// endpoints' (the caller mounts the handler behind it).
package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/pipeline"
	"github.com/declinemon/declinemon/storage"
)

//go:embed static templates
var assets embed.FS

// Live is the detector's state, as the pipeline publishes it.
type Live interface {
	// Overview returns the latest copy (false before the first) and asks
	// that the next ones include the scopes in want.
	Overview(want ...alerting.ScopeKey) (alerting.Overview, bool)
}

// History is what the ClickHouse rollups answer (storage.Client).
type History interface {
	ScopeHours(ctx context.Context, scopeType, id string, from, to time.Time) ([]storage.HourCount, error)
	TopTerminals(ctx context.Context, scopeType, id string, from, to time.Time, limit int) ([]storage.TerminalTotal, error)
}

// Options wire the console.
type Options struct {
	Live   Live                    // nil: detection is off
	Board  *Board                  // alert records of this process
	Active func() []alerting.Alert // firing alerts (restored ones included)
	// History, when set, adds today's and the last 24 hours' figures from
	// ClickHouse.
	History History
	// Location is the business time zone every time is shown in (nil: UTC).
	Location *time.Location
	// Skewed lists the terminals whose events carried a wrong time
	// (pipeline.ClockSkews); nil: none shown.
	Skewed func() []pipeline.ClockSkew
	// Title names the deployment on the page (default "declinemon").
	Title string
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	Log *zap.Logger
}

// Console serves the pages.
type Console struct {
	o    Options
	tmpl *template.Template
}

// New builds the console.
func New(o Options) (*Console, error) {
	if o.Board == nil {
		o.Board = &Board{}
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Title == "" {
		o.Title = "declinemon"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	t, err := template.New("console").Funcs(funcs).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing console templates: %w", err)
	}
	return &Console{o: o, tmpl: t}, nil
}

// Register adds the console's routes to mux: / (overview),
// /scope/{type}/{id} (drill-down), /incident/{id} and /static/.
func (c *Console) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /scope/{type}/{id...}", c.scope)
	mux.HandleFunc("GET /incident/{id}", c.incident)
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := c.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		c.o.Log.Error("rendering the console", zap.String("page", name), zap.Error(err))
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// Frame is what every page's header and footer show.
type Frame struct {
	Title, Page string
	Zone        string // "Asia/Shanghai, UTC+08:00"
	Clock       string // the wall clock
	EventTime   string // the newest event time seen
	Watermark   string // detection has evaluated up to
	Behind      string // how far event time is behind the wall clock
	Live        bool   // the detector has published an overview
	Detection   bool
	Storage     bool
	Status      string // ok, paging, quiet
	StatusText  string
	Firing      int
	Paging      int
	Wall        bool   // the wall-screen view: incidents, figures, chart and suspects only, larger
	Stale       string // set when the detector's copy is old (no events flowing)
}

func (c *Console) frameFor(page string, ov alerting.Overview, have bool, firing []Incident) Frame {
	now := c.o.Now()
	f := Frame{Title: c.o.Title, Page: page, Zone: zoneName(c.o.Location, now), Clock: c.clock(now, now),
		Live: have && !ov.Newest.IsZero(), Detection: c.o.Live != nil, Storage: c.o.History != nil, Firing: len(firing)}
	if have && !ov.Taken.IsZero() && now.Sub(ov.Taken) > 15*time.Second {
		f.Stale = "detector state as of " + c.clock(ov.Taken, now) + " (no batch since)"
	}
	for _, inc := range firing {
		if inc.Labels["paging"] != "false" {
			f.Paging++
		}
	}
	if have && !ov.Newest.IsZero() {
		f.EventTime = c.clock(ov.Newest, now)
		f.Watermark = c.clock(ov.Watermark, now)
		if d := now.Sub(ov.Newest); d > 90*time.Second {
			f.Behind = duration(d)
		}
	}
	switch {
	case f.Paging > 0:
		f.Status, f.StatusText = "paging", fmt.Sprintf("%d incident%s paging", f.Paging, plural(f.Paging))
	case f.Firing > 0:
		f.Status, f.StatusText = "notice", fmt.Sprintf("%d incident%s open, none paging", f.Firing, plural(f.Firing))
	case !f.Detection:
		f.Status, f.StatusText = "quiet", "detection is off in this process"
	case !have || ov.Newest.IsZero():
		f.Status, f.StatusText = "quiet", "waiting for the first events"
	default:
		f.Status, f.StatusText = "ok", "all clear"
	}
	return f
}

// incidents merges the board with the detector's firing alerts (after a
// restart the detector's restored incidents are firing before any record
// reaches the board).
func (c *Console) incidents() (firing, resolved []Incident) {
	firing, resolved = c.o.Board.Incidents()
	if c.o.Active == nil {
		return firing, resolved
	}
	seen := map[string]bool{}
	for _, inc := range firing {
		seen[inc.ID] = true
	}
	for _, inc := range resolved {
		seen[inc.ID] = true
	}
	added := false
	for _, a := range c.o.Active() {
		if !seen[a.ID] {
			firing = append(firing, Incident{Alert: a, FirstSeen: a.DetectedAt, Updates: 1})
			added = true
		}
	}
	if added {
		slices.SortFunc(firing, func(x, y Incident) int {
			return cmp.Or(y.StartsAt.Compare(x.StartsAt), cmp.Compare(x.ID, y.ID))
		})
	}
	return firing, resolved
}

// maxListed bounds the incidents a page renders (a storm of thousands
// would make a page of megabytes every 3 s); the rest are counted.
const maxListed = 200

// live returns the detector's overview. The pipeline copies one out only
// while the console asks, and a drill-down's scope only once asked for,
// so a page loaded afresh waits a moment (at most 2.5 s; copies come
// every 2 s) for a copy that is recent and has what it shows: a page
// loaded without JavaScript is complete at once. The script's refreshes
// (X-Console) never wait: the next one shows what this one asked for.
func (c *Console) live(r *http.Request, want ...alerting.ScopeKey) (alerting.Overview, bool) {
	if c.o.Live == nil {
		return alerting.Overview{}, false
	}
	ov, have := c.o.Live.Overview(want...)
	if r.Header.Get("X-Console") != "" {
		return ov, have
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2500*time.Millisecond)
	defer cancel()
	asked := c.o.Now()
	for {
		fresh := have && (ov.Taken.IsZero() || asked.Sub(ov.Taken) < time.Minute)
		if fresh && (len(want) == 0 || holds(ov, want[0])) {
			return ov, have
		}
		select {
		case <-ctx.Done():
			return ov, have
		case <-time.After(100 * time.Millisecond):
		}
		ov, have = c.o.Live.Overview(want...)
	}
}

// holds reports whether ov has a view of k.
func holds(ov alerting.Overview, k alerting.ScopeKey) bool {
	for _, list := range [][]alerting.ScopeView{ov.Wanted, ov.Suspects, ov.Top[k.Type]} {
		for _, v := range list {
			if v.ScopeKey == k {
				return true
			}
		}
	}
	return false
}

type overviewPage struct {
	Frame
	Firing, Resolved []incidentView
	MoreFiring       int // beyond maxListed, not rendered
	MoreResolved     int
	Tiles            []tile
	Chart            template.HTML
	Legend           []legendItem
	Suspects         []scopeRow
	TopMerchants     scopeGroup
	TopTerminals     scopeGroup
	TopGroups        []scopeGroup
	Today            []todayRow
	TodayErr         string
	TodayLabel       string
	Skewed           []skewRow
	SkewedMore       int
}

type skewRow struct {
	Terminal, URL, Merchant, MerchantURL string
	Events                               uint64
	Offset, Last                         string
}

type tile struct{ Label, Value, Note, Class string }

type scopeGroup struct {
	Label, Plural string
	Rows          []scopeRow
}

type todayRow struct {
	Terminal, TerminalURL, Merchant, MerchantURL string
	Attempts, Failures                           uint64
	Rate, TopCause                               string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ov, have := c.live(r)
	firing, resolved := c.incidents()
	now := c.o.Now()
	p := overviewPage{Frame: c.frameFor("overview", ov, have, firing)}
	p.Wall = r.URL.Query().Has("wall")
	affected := map[string]alerting.Affected{}
	for _, a := range ov.Affected {
		affected[a.AlertID] = a
	}
	ref := ov.Newest
	if ref.IsZero() {
		ref = now
	}
	for i, inc := range firing {
		if i == maxListed {
			p.MoreFiring = len(firing) - maxListed
			break
		}
		p.Firing = append(p.Firing, c.incidentView(inc, affected[inc.ID], ref, now))
	}
	for i, inc := range resolved {
		if i == maxListed/4 {
			p.MoreResolved = len(resolved) - maxListed/4
			break
		}
		p.Resolved = append(p.Resolved, c.incidentView(inc, alerting.Affected{}, ref, now))
	}
	if have {
		p.Tiles = c.tiles(ov)
		p.Chart, p.Legend = c.rateChart(ov.Minutes, now, "fleet")
		for _, v := range ov.Suspects {
			p.Suspects = append(p.Suspects, c.scopeRow(v, now))
		}
		p.TopMerchants.Label, p.TopTerminals.Label = "Merchant", "Terminal"
		for _, v := range ov.Top[event.ScopeMerchant] {
			p.TopMerchants.Rows = append(p.TopMerchants.Rows, c.scopeRow(v, now))
		}
		for _, v := range ov.Top[event.ScopeTerminal] {
			p.TopTerminals.Rows = append(p.TopTerminals.Rows, c.scopeRow(v, now))
		}
		for _, t := range []event.ScopeType{event.ScopeRegion, event.ScopeCarrier, event.ScopeRegionCarrier, event.ScopeHost, event.ScopeIssuer, event.ScopeModel} {
			g := scopeGroup{Label: t.Label(), Plural: scopePlural[t]}
			for i, v := range ov.Top[t] {
				if i == 5 {
					break
				}
				g.Rows = append(g.Rows, c.scopeRow(v, now))
			}
			p.TopGroups = append(p.TopGroups, g)
		}
	}
	if c.o.Skewed != nil {
		skewed := c.o.Skewed()
		for i, k := range skewed {
			if i == 10 {
				p.SkewedMore = len(skewed) - 10
				break
			}
			off, dir := k.Offset, "ahead"
			if off < 0 {
				off, dir = -off, "behind"
			}
			p.Skewed = append(p.Skewed, skewRow{Terminal: k.Terminal, URL: scopeURL(event.ScopeTerminal, k.Terminal),
				Merchant: k.Merchant, MerchantURL: scopeURL(event.ScopeMerchant, k.Merchant), Events: k.Events,
				Offset: duration(off) + " " + dir, Last: k.Last.In(c.o.Location).Format("2006-01-02 15:04:05")})
		}
	}
	if c.o.History != nil {
		from, to := c.today(ref)
		p.TodayLabel = fmt.Sprintf("since %s", from.In(c.o.Location).Format("Mon 2 Jan 15:04"))
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		tops, err := c.o.History.TopTerminals(ctx, "fleet", "", from, to, 10)
		cancel()
		if err != nil {
			p.TodayErr = storageErr(err)
		}
		for _, t := range tops {
			p.Today = append(p.Today, todayRow{Terminal: t.Terminal, TerminalURL: scopeURL(event.ScopeTerminal, t.Terminal),
				Merchant: t.Merchant, MerchantURL: scopeURL(event.ScopeMerchant, t.Merchant),
				Attempts: t.Attempts, Failures: t.Failures, Rate: pct(float64(t.Failures) / float64(max(t.Attempts, 1))),
				TopCause: causeLabel(t.TopCause)})
		}
	}
	c.render(w, http.StatusOK, "overview.html", p)
}

// today is the business day of ref: [midnight, ref + a minute).
func (c *Console) today(ref time.Time) (from, to time.Time) {
	l := ref.In(c.o.Location)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, c.o.Location), ref.Add(time.Minute)
}

func storageErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "ClickHouse did not answer within 3 s"
	}
	return "ClickHouse: " + err.Error()
}

func (c *Console) tiles(ov alerting.Overview) []tile {
	// The last 15 complete-or-current minutes of the fleet.
	var n, f int
	var byCause [event.NumCauses]int
	mins := ov.Minutes
	if len(mins) > 15 {
		mins = mins[len(mins)-15:]
	}
	for _, m := range mins {
		n += m.Attempts
		for i, v := range m.Failures {
			byCause[i] += v
		}
	}
	f = byCause[event.CauseNone]
	tech := 0
	for _, cs := range technicalCauses {
		tech += byCause[cs]
	}
	top, topN := "", 0
	for _, cs := range event.Causes() {
		if byCause[cs] > topN {
			top, topN = causeLabel(cs.String()), byCause[cs]
		}
	}
	rate := func(x int) string {
		if n == 0 {
			return "–"
		}
		return pct(float64(x) / float64(n))
	}
	ts := []tile{
		{Label: "Attempts, last 15 min", Value: thousands(n), Note: fmt.Sprintf("%s per minute", thousands(n/max(len(mins), 1)))},
		{Label: "Declined or failed", Value: rate(f), Note: fmt.Sprintf("%s attempts", thousands(f))},
		{Label: "Technical failures", Value: rate(tech), Note: "hardware, network, transmission, maintenance, merchant setup"},
	}
	if top != "" {
		ts = append(ts, tile{Label: "Top cause", Value: top, Note: fmt.Sprintf("%s attempts (%s of failures)", thousands(topN), pct(float64(topN)/float64(max(f, 1))))})
	}
	st := ov.Stats
	ts = append(ts, tile{Label: "Scopes watched", Value: thousands(st.Scopes), Note: fmt.Sprintf("%s late events not detected on", thousands(int(st.Late)))})
	return ts
}

// technicalCauses are the causes on the acquirer's side, which ops can fix.
var technicalCauses = []event.Cause{event.CauseHardware, event.CauseNetwork, event.CauseDataTransmission,
	event.CauseMaintenance, event.CauseMerchantAccount}

type incidentView struct {
	ID, URL                         string
	Kind, KindLabel, Cause          string
	ScopeLabel, ScopeID, ScopeURL   string
	Severity                        string
	Paging, Firing, Maintenance     bool
	Since, Detected, Ended, Lasting string
	Rate, Baseline                  string
	Failures, Attempts, Affected    int
	Summary, Remedy                 string
	Terminals                       []affectedRow
	More                            int
	Related                         []link
}

type affectedRow struct {
	Terminal, URL string
	Failures      int
	Codes         string
}

type link struct{ Label, URL string }

func (c *Console) incidentView(inc Incident, aff alerting.Affected, ref, now time.Time) incidentView {
	a := inc.Alert
	st, _ := event.ParseScopeType(a.ScopeType)
	v := incidentView{ID: a.ID, URL: "/incident/" + a.ID, Kind: a.Kind.String(), KindLabel: kindLabel[a.Kind], Cause: causeLabel(a.Cause),
		ScopeLabel: st.Label(), ScopeID: a.ScopeID, ScopeURL: scopeURL(st, a.ScopeID),
		Severity: a.Labels["severity"], Paging: a.Labels["paging"] != "false", Firing: a.State != alerting.StateResolved,
		Maintenance: a.Labels["maintenance"] == "true",
		Since:       c.clock(a.StartsAt, ref), Detected: c.clock(a.DetectedAt, ref),
		Rate: pct(a.Rate), Baseline: pct(a.BaselineRate), Failures: a.Failures, Attempts: a.Attempts, Affected: a.Affected,
		Summary: a.Summary, Remedy: a.Remedy, More: aff.More}
	end := ref
	if a.EndsAt != nil {
		v.Ended, end = c.clock(*a.EndsAt, ref), *a.EndsAt
	}
	v.Lasting = duration(end.Sub(a.StartsAt))
	for _, t := range aff.Terminals {
		v.Terminals = append(v.Terminals, affectedRow{Terminal: t.Terminal, URL: scopeURL(event.ScopeTerminal, t.Terminal),
			Failures: t.Failures, Codes: strings.Join(t.Codes, ", ")})
	}
	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		if id := a.Labels[labelOf(t)]; id != "" && t != st {
			v.Related = append(v.Related, link{Label: t.Label() + " " + id, URL: scopeURL(t, id)})
		}
	}
	return v
}

func labelOf(t event.ScopeType) string {
	if t == event.ScopeMerchant {
		return "merchant_id"
	}
	return t.String()
}

// incident sends an incident's link (the one in a page or a chat) to its
// scope's drill-down, where the incident is listed with its evidence.
func (c *Console) incident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	firing, resolved := c.incidents()
	for _, list := range [][]Incident{firing, resolved} {
		for _, inc := range list {
			if inc.ID == id {
				st, _ := event.ParseScopeType(inc.ScopeType)
				http.Redirect(w, r, scopeURL(st, inc.ScopeID)+"#incident-"+id, http.StatusSeeOther)
				return
			}
		}
	}
	ov, have := c.live(r)
	c.render(w, http.StatusNotFound, "missing.html", missingPage{c.frameFor("incident", ov, have, firing),
		"No incident " + id + " is known to this process: resolved incidents are listed for 6 hours, older ones are in ClickHouse's alerts table."})
}

type missingPage struct {
	Frame
	What string
}
