package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
)

// amPost is one alert as an Alertmanager received it.
type amPost struct{ id, state string }

// amReceiver is an Alertmanager v2 endpoint that records what it accepts,
// and can be stuck (gate) or failing (status).
type amReceiver struct {
	*httptest.Server
	gate     *gate
	status   atomic.Int32 // non-zero: answer with it
	inFlight atomic.Int32
	mu       sync.Mutex
	posts    []amPost
}

func newAMReceiver(t *testing.T) *amReceiver {
	rx := &amReceiver{gate: newGate()}
	rx.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ps []postable
		if r.URL.Path != "/api/v2/alerts" || json.NewDecoder(r.Body).Decode(&ps) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		rx.inFlight.Add(1)
		defer rx.inFlight.Add(-1)
		if !rx.gate.pass(r) {
			return
		}
		if s := rx.status.Load(); s != 0 {
			http.Error(w, "unavailable", int(s))
			return
		}
		// Resolves end an hour ago (resolvedSample); a firing alert's
		// lease ends in the future, or a little in the past when a
		// loaded machine delayed its post.
		resolvedBefore := time.Now().Add(-30 * time.Minute)
		rx.mu.Lock()
		for _, p := range ps {
			st := alerting.StateFiring
			if p.EndsAt.Before(resolvedBefore) {
				st = alerting.StateResolved
			}
			rx.posts = append(rx.posts, amPost{p.Labels["alert_id"], st})
		}
		rx.mu.Unlock()
	}))
	t.Cleanup(rx.Close)
	t.Cleanup(rx.gate.release)
	return rx
}

// last is the state the receiver holds for id ("" if never received).
func (rx *amReceiver) last(id string) string {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	for i := len(rx.posts) - 1; i >= 0; i-- {
		if rx.posts[i].id == id {
			return rx.posts[i].state
		}
	}
	return ""
}

func (rx *amReceiver) count(id, state string) int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	n := 0
	for _, p := range rx.posts {
		if p.id == id && p.state == state {
			n++
		}
	}
	return n
}

// firingAfterResolved reports whether id was ever posted as firing after
// it had been posted as resolved.
func (rx *amReceiver) firingAfterResolved(id string) bool {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	resolved := false
	for _, p := range rx.posts {
		if p.id != id {
			continue
		}
		if p.state == alerting.StateResolved {
			resolved = true
		} else if resolved {
			return true
		}
	}
	return false
}

func (rx *amReceiver) forget() {
	rx.mu.Lock()
	rx.posts = nil
	rx.mu.Unlock()
}

// resolvedSample ended an hour ago, by the wall clock Alertmanager uses.
func resolvedSample(id string) alerting.Alert {
	a := sample(id)
	a.State = alerting.StateResolved
	a.StartsAt = time.Now().Add(-2 * time.Hour)
	end := a.StartsAt.Add(time.Hour)
	a.EndsAt = &end
	return a
}

func (am *Alertmanager) tracked() map[string]bool {
	am.mu.Lock()
	defer am.mu.Unlock()
	m := map[string]bool{}
	for id, e := range am.alerts {
		m[id] = e.resolved
	}
	return m
}

func (am *Alertmanager) send(t *testing.T, alerts ...alerting.Alert) {
	t.Helper()
	if err := am.Send(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
}

// TestAlertmanagerResolveIsNeverLost: whatever happens to the posts, an
// alert that was resolved ends resolved at the receiver, is never posted
// as firing after that, and is forgotten after its retention.
func TestAlertmanagerResolveIsNeverLost(t *testing.T) {
	const resend, retention = 50 * time.Millisecond, 500 * time.Millisecond
	cases := []struct {
		name     string
		attempts int
		run      func(t *testing.T, am *Alertmanager, rx *amReceiver)
		want     map[string]string // final state at the receiver
		// sent, failed, superseded; Dropped must be 0
		sent, failed, superseded uint64
	}{
		{
			name: "resolve sent while a post is stuck and more alerts than the old queue held",
			run: func(t *testing.T, am *Alertmanager, rx *amReceiver) {
				rx.gate.shut()
				am.send(t, sample("a1"))
				waitUntil(t, func() bool { return rx.inFlight.Load() == 1 })
				for i := 2; i <= 6; i++ {
					am.send(t, sample("a"+strconv.Itoa(i)))
				}
				am.send(t, resolvedSample("a1"))
				am.send(t, resolvedSample("a3"))
				rx.gate.release()
			},
			want: map[string]string{"a1": "resolved", "a2": "firing", "a3": "resolved", "a4": "firing", "a5": "firing", "a6": "firing"},
			// a3's firing record was replaced before it was posted.
			sent: 7, superseded: 1,
		},
		{
			name: "firing and resolve in one batch",
			run: func(t *testing.T, am *Alertmanager, rx *amReceiver) {
				am.send(t, sample("a1"), sample("a2"), resolvedSample("a1"))
			},
			want: map[string]string{"a1": "resolved", "a2": "firing"},
			sent: 2, superseded: 1,
		},
		{
			name:     "resolve while the alertmanager fails, re-sent until it is delivered",
			attempts: 1,
			run: func(t *testing.T, am *Alertmanager, rx *amReceiver) {
				rx.status.Store(http.StatusServiceUnavailable)
				am.send(t, sample("a1"))
				waitUntil(t, func() bool { return am.Stats().Failed.Load() == 1 })
				am.send(t, resolvedSample("a1"))
				waitUntil(t, func() bool { return am.Stats().Failed.Load() == 2 })
				time.Sleep(3 * resend) // resends fail too
				rx.status.Store(0)
			},
			want:   map[string]string{"a1": "resolved"},
			failed: 2,
		},
		{
			name: "a restarted alertmanager learns the resolve from resends",
			run: func(t *testing.T, am *Alertmanager, rx *amReceiver) {
				am.send(t, sample("a1"))
				waitUntil(t, func() bool { return rx.last("a1") == "firing" })
				am.send(t, resolvedSample("a1"))
				waitUntil(t, func() bool { return rx.last("a1") == "resolved" })
				rx.forget()
				waitUntil(t, func() bool { return rx.last("a1") == "resolved" })
			},
			want: map[string]string{"a1": "resolved"},
			sent: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rx := newAMReceiver(t)
			attempts := tc.attempts
			if attempts == 0 {
				attempts = 2
			}
			am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{rx.URL}, ResendInterval: resend,
				ResolvedRetention: retention, Timeout: 10 * time.Second, Attempts: attempts, QueueSize: 2}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer am.Close(context.Background())
			tc.run(t, am, rx)
			waitUntil(t, func() bool {
				for id, st := range tc.want {
					if rx.last(id) != st {
						return false
					}
				}
				return true
			})
			// Memory stays bounded: resolved alerts are forgotten after
			// their retention, firing ones are kept.
			waitUntil(t, func() bool {
				tracked := am.tracked()
				for id, st := range tc.want {
					if _, ok := tracked[id]; ok != (st == alerting.StateFiring) {
						return false
					}
				}
				return len(tracked) <= len(tc.want)
			})
			time.Sleep(4 * resend) // more resends, to catch a revived alert
			for id, st := range tc.want {
				if got := rx.last(id); got != st {
					t.Errorf("%s: %s at the receiver after resends, want %s", id, got, st)
				}
				if rx.firingAfterResolved(id) {
					t.Errorf("%s was posted as firing after it was resolved", id)
				}
				if st == alerting.StateResolved && rx.count(id, alerting.StateResolved) == 0 {
					t.Errorf("%s never posted as resolved", id)
				}
			}
			if err := am.Flush(context.Background()); (err != nil) != (tc.failed > 0) {
				t.Errorf("Flush: %v", err)
			}
			s := am.Stats()
			if s.Sent.Load() != tc.sent || s.Failed.Load() != tc.failed || s.Superseded.Load() != tc.superseded || s.Dropped.Load() != 0 {
				t.Errorf("sent %d failed %d superseded %d dropped %d, want %d %d %d 0", s.Sent.Load(), s.Failed.Load(),
					s.Superseded.Load(), s.Dropped.Load(), tc.sent, tc.failed, tc.superseded)
			}
		})
	}
}

// TestAlertmanagerSendNeverBlocks: the state map is the queue, so a stuck
// Alertmanager neither blocks Send nor loses alerts, however many.
func TestAlertmanagerSendNeverBlocks(t *testing.T) {
	rx := newAMReceiver(t)
	rx.gate.shut()
	am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{rx.URL}, ResendInterval: time.Hour, Timeout: 10 * time.Second, QueueSize: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer am.Close(context.Background())
	const n = 2000 // more than one POST holds (amMaxBatch)
	var returned atomic.Int32
	go func() {
		for i := range n {
			if am.Send(context.Background(), []alerting.Alert{sample("a" + strconv.Itoa(i))}) == nil {
				returned.Add(1)
			}
		}
	}()
	waitUntil(t, func() bool { return returned.Load() == n })
	rx.gate.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := am.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if id := "a" + strconv.Itoa(i); rx.last(id) != alerting.StateFiring {
			t.Fatalf("%s not delivered", id)
		}
	}
	if sent, failed, dropped, _ := am.Stats().DeliveryCounts(); sent+am.Stats().Superseded.Load() != n || failed != 0 || dropped != 0 {
		t.Errorf("sent %d superseded %d failed %d dropped %d", sent, am.Stats().Superseded.Load(), failed, dropped)
	}
}
