package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
)

type legendItem struct{ Label, Class string }

// rateChart draws failure rate by cause per bucket as stacked bars, an
// inline SVG (no script, no external asset). Colours come from the
// stylesheet's c-<cause> classes.
func (c *Console) rateChart(buckets []alerting.Minute, ref time.Time, what string) (template.HTML, []legendItem) {
	if len(buckets) == 0 {
		return "", nil
	}
	const w, h, left, bottom, top = 960.0, 220.0, 44.0, 22.0, 8.0
	peak := 0.0
	var used [event.NumCauses]bool
	for _, b := range buckets {
		if b.Attempts > 0 {
			peak = math.Max(peak, float64(b.Failures[event.CauseNone])/float64(b.Attempts))
		}
		for _, cs := range event.Causes() {
			if b.Failures[cs] > 0 {
				used[cs] = true
			}
		}
	}
	// The axis tops at a round rate above the peak, at least 5%.
	axis := 0.04
	for _, step := range []float64{0.04, 0.08, 0.2, 0.4, 0.6, 0.8, 1} {
		axis = step
		if peak <= step {
			break
		}
	}
	plotW, plotH := w-left-4, h-bottom-top
	bw := plotW / float64(len(buckets))
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s: decline rate by cause">`, w, h, template.HTMLEscapeString(what))
	for i := 0; i <= 4; i++ {
		v := axis * float64(i) / 4
		y := top + plotH - v/axis*plotH
		fmt.Fprintf(&s, `<line class="grid" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f"/><text class="axis" x="%.0f" y="%.1f" text-anchor="end">%s</text>`,
			left, w-4, y, y, left-6, y+4, pct(v))
	}
	step := max(1, len(buckets)/6)
	layout := "15:04"
	if len(buckets) > 1 && buckets[1].Start.Sub(buckets[0].Start) < time.Minute {
		layout = "15:04:05"
	}
	for i, b := range buckets {
		x := left + float64(i)*bw
		if i%step == 0 {
			fmt.Fprintf(&s, `<text class="axis" x="%.1f" y="%.0f">%s</text>`, x, h-6, b.Start.In(c.o.Location).Format(layout))
		}
		if b.Attempts == 0 {
			continue
		}
		y := top + plotH
		for _, cs := range event.Causes() {
			n := b.Failures[cs]
			if n == 0 {
				continue
			}
			bh := float64(n) / float64(b.Attempts) / axis * plotH
			y -= bh
			fmt.Fprintf(&s, `<rect class="c-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %d of %d attempts (%s)</title></rect>`,
				cs, x+0.5, y, math.Max(bw-1, 0.5), bh, c.clock(b.Start, ref), causeLabel(cs.String()), n, b.Attempts, pct(float64(n)/float64(b.Attempts)))
		}
	}
	s.WriteString(`</svg>`)
	var legend []legendItem
	for _, cs := range event.Causes() {
		if used[cs] {
			legend = append(legend, legendItem{Label: causeLabel(cs.String()), Class: "c-" + cs.String()})
		}
	}
	return template.HTML(s.String()), legend
}
