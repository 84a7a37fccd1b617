package console

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/declinemon/declinemon/alerting"
)

// Board keeps the incidents the console lists: every alert record's
// latest state, firing ones until they resolve and resolved ones for
// Keep (event time) after their end. It is an alert sink of the pipeline
// (it never fails a flush) and is safe for concurrent use.
type Board struct {
	// Keep is how long a resolved incident stays listed (default 6 h),
	// Max how many incidents are kept at most (default 500, oldest
	// resolved go first).
	Keep time.Duration
	Max  int

	mu     sync.Mutex
	byID   map[string]*Incident
	newest time.Time // the newest record time seen
}

// Incident is one alert's latest record and when it was first seen firing.
type Incident struct {
	alerting.Alert
	FirstSeen time.Time // detected_at of its first record
	Updates   int       // records received
}

// Send implements the pipeline's alert sink.
func (b *Board) Send(_ context.Context, alerts []alerting.Alert) error {
	b.Add(alerts...)
	return nil
}

// Add records alerts.
func (b *Board) Add(alerts ...alerting.Alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string]*Incident{}
	}
	for _, a := range alerts {
		inc := b.byID[a.ID]
		if inc == nil {
			inc = &Incident{FirstSeen: a.DetectedAt}
			b.byID[a.ID] = inc
		}
		inc.Alert = a
		inc.Updates++
		at := a.DetectedAt
		if a.EndsAt != nil && a.EndsAt.After(at) {
			at = *a.EndsAt
		}
		if at.After(b.newest) {
			b.newest = at
		}
	}
	b.prune()
}

func (b *Board) prune() {
	keep, limit := b.Keep, b.Max
	if keep <= 0 {
		keep = 6 * time.Hour
	}
	if limit <= 0 {
		limit = 500
	}
	var resolved []*Incident
	for id, inc := range b.byID {
		if inc.State != alerting.StateResolved {
			continue
		}
		if inc.EndsAt != nil && b.newest.Sub(*inc.EndsAt) > keep {
			delete(b.byID, id)
			continue
		}
		resolved = append(resolved, inc)
	}
	if over := len(b.byID) - limit; over > 0 {
		slices.SortFunc(resolved, func(x, y *Incident) int { return endOf(x).Compare(endOf(y)) })
		for _, inc := range resolved[:min(over, len(resolved))] {
			delete(b.byID, inc.ID)
		}
	}
}

func endOf(i *Incident) time.Time {
	if i.EndsAt != nil {
		return *i.EndsAt
	}
	return i.DetectedAt
}

// Incidents returns the firing incidents (most recent onset first), then
// the resolved ones (most recently ended first).
func (b *Board) Incidents() (firing, resolved []Incident) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, inc := range b.byID {
		if inc.State == alerting.StateResolved {
			resolved = append(resolved, *inc)
		} else {
			firing = append(firing, *inc)
		}
	}
	slices.SortFunc(firing, func(x, y Incident) int {
		if c := y.StartsAt.Compare(x.StartsAt); c != 0 {
			return c
		}
		return compareStr(x.ID, y.ID)
	})
	slices.SortFunc(resolved, func(x, y Incident) int {
		if c := endOf(&y).Compare(endOf(&x)); c != 0 {
			return c
		}
		return compareStr(x.ID, y.ID)
	})
	return firing, resolved
}

// Get returns one incident.
func (b *Board) Get(id string) (Incident, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if inc := b.byID[id]; inc != nil {
		return *inc, true
	}
	return Incident{}, false
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
