package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/storage"
)

// scopeRow is one scope in a list.
type scopeRow struct {
	Type, ID, URL, Label string
	Attempts, Failures   int
	Rate, Expected       string
	Hot                  bool // far above what it is tested against
	TopCause             string
	Firing               []string
	Suspect              bool
	Window               string
	LastSeen             string
}

func (c *Console) scopeRow(v alerting.ScopeView, now time.Time) scopeRow {
	r := scopeRow{Type: v.Type.String(), ID: v.ID, URL: scopeURL(v.Type, v.ID), Label: v.Type.Label(),
		Attempts: v.Attempts, Failures: v.Failures[event.CauseNone], Rate: pct(v.Rate()), Expected: pct(v.Expected),
		Hot:     v.Attempts > 0 && v.Rate() > 2*v.Expected && v.Failures[event.CauseNone] >= 3,
		Suspect: v.Suspect, Window: duration(v.Window), LastSeen: c.clock(v.Last, now)}
	top := 0
	for _, cs := range event.Causes() {
		if v.Failures[cs] > top {
			r.TopCause, top = causeLabel(cs.String()), v.Failures[cs]
		}
	}
	for _, k := range v.Firing {
		r.Firing = append(r.Firing, kindLabel[k])
	}
	return r
}

type scopePage struct {
	Frame
	Type, ID, Label string
	View            *scopeRow
	Causes          []causeRow
	Chart           template.HTML
	Legend          []legendItem
	Dims            []link
	Incidents       []incidentView
	History         template.HTML
	HistoryLegend   []legendItem
	HistoryNote     string
	HistoryErr      string
	Terminals       []todayRow
	TerminalsLabel  string
	Pending         bool // asked the detector; shown at its next copy
}

type causeRow struct {
	Cause, Class string
	Failures     int
	Share        string // of attempts
}

func (c *Console) scope(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	st, ok := event.ParseScopeType(typ)
	if !ok || id == "" {
		ov, have := c.live(r)
		firing, _ := c.incidents()
		c.render(w, http.StatusNotFound, "missing.html", missingPage{c.frameFor("scope", ov, have, firing), fmt.Sprintf("There is no scope type %q: try terminal, merchant, region, carrier, network, host, acquirer, issuer or model.", typ)})
		return
	}
	key := alerting.ScopeKey{Type: st, ID: id}
	ov, have := c.live(r, key)
	firing, resolved := c.incidents()
	now := c.o.Now()
	ref := ov.Newest
	if ref.IsZero() {
		ref = now
	}
	p := scopePage{Frame: c.frameFor("scope", ov, have, firing), Type: typ, ID: id, Label: st.Label()}
	var view *alerting.ScopeView
	find := func(list []alerting.ScopeView) {
		for i := range list {
			if view == nil && list[i].ScopeKey == key {
				view = &list[i]
			}
		}
	}
	find(ov.Wanted)
	find(ov.Suspects)
	find(ov.Top[st])
	if view != nil {
		row := c.scopeRow(*view, ref)
		p.View = &row
		p.Chart, p.Legend = c.rateChart(view.Buckets, now, typ+" "+id)
		for _, cs := range event.Causes() {
			if n := view.Failures[cs]; n > 0 {
				p.Causes = append(p.Causes, causeRow{Cause: causeLabel(cs.String()), Class: "c-" + cs.String(), Failures: n,
					Share: pct(float64(n) / float64(max(view.Attempts, 1)))})
			}
		}
		for _, d := range view.Dims {
			p.Dims = append(p.Dims, link{Label: d.Type.Label() + " " + d.ID, URL: scopeURL(d.Type, d.ID)})
		}
	} else {
		p.Pending = have
	}
	affected := map[string]alerting.Affected{}
	for _, a := range ov.Affected {
		affected[a.AlertID] = a
	}
	for _, list := range [][]Incident{firing, resolved} {
		for _, inc := range list {
			if inc.ScopeType == typ && inc.ScopeID == id || st == event.ScopeTerminal && inc.Labels["terminal"] == id {
				p.Incidents = append(p.Incidents, c.incidentView(inc, affected[inc.ID], ref, now))
			}
		}
	}
	if c.o.History != nil {
		c.history(r.Context(), &p, typ, id, ref)
	}
	c.render(w, http.StatusOK, "scope.html", p)
}

// history adds the rollups' last 24 hours of the scope.
func (c *Console) history(ctx context.Context, p *scopePage, typ, id string, ref time.Time) {
	to := ref.Truncate(time.Hour).Add(time.Hour)
	from := to.Add(-24 * time.Hour)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	hours, err := c.o.History.ScopeHours(ctx, typ, id, from, to)
	if errors.Is(err, storage.ErrNoRollup) {
		p.HistoryNote = "the ClickHouse rollups do not keep " + typ + " scopes: query the events table"
		return
	}
	if err != nil {
		p.HistoryErr = storageErr(err)
		return
	}
	mins := make([]alerting.Minute, 0, 24)
	idx := map[int64]int{}
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		idx[t.Unix()] = len(mins)
		mins = append(mins, alerting.Minute{Start: t})
	}
	for _, h := range hours {
		i, ok := idx[h.Start.Unix()]
		if !ok {
			// Zones with half-hour offsets start their hours elsewhere.
			i, ok = idx[h.Start.Truncate(time.Hour).Unix()]
		}
		if !ok {
			continue
		}
		m := &mins[i]
		m.Attempts += int(h.Total())
		for cause, n := range h.Attempts {
			if cs, ok := event.ParseCause(cause); ok && cs != event.CauseNone {
				m.Failures[cs] += int(n)
				m.Failures[event.CauseNone] += int(n)
			}
		}
	}
	p.History, p.HistoryLegend = c.rateChart(mins, ref, typ+" "+id+" by hour")
	p.HistoryNote = fmt.Sprintf("%s to %s, from ClickHouse (terminal_minutes)", from.In(c.o.Location).Format("Mon 2 Jan 15:04"), to.In(c.o.Location).Format("Mon 2 Jan 15:04"))
	if typ != "terminal" {
		day, _ := c.today(ref)
		tops, err := c.o.History.TopTerminals(ctx, typ, id, day, ref.Add(time.Minute), 10)
		if err != nil {
			p.HistoryErr = storageErr(err)
			return
		}
		p.TerminalsLabel = "since " + day.In(c.o.Location).Format("Mon 2 Jan 15:04")
		for _, t := range tops {
			p.Terminals = append(p.Terminals, todayRow{Terminal: t.Terminal, TerminalURL: scopeURL(event.ScopeTerminal, t.Terminal),
				Merchant: t.Merchant, MerchantURL: scopeURL(event.ScopeMerchant, t.Merchant),
				Attempts: t.Attempts, Failures: t.Failures, Rate: pct(float64(t.Failures) / float64(max(t.Attempts, 1))),
				TopCause: causeLabel(t.TopCause)})
		}
	}
}

func scopeURL(t event.ScopeType, id string) string {
	return "/scope/" + t.String() + "/" + url.PathEscape(id)
}
