package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
)

func sample(id string) alerting.Alert {
	t := time.Date(2026, 11, 27, 10, 6, 0, 0, time.UTC)
	return alerting.Alert{ID: id, State: alerting.StateFiring, Kind: alerting.KindNetworkOutage, Cause: "network",
		ScopeType: "region", ScopeID: "330100", StartsAt: t, DetectedAt: t.Add(20 * time.Second),
		Summary: "Region 330100: 83% failing", Remedy: "check the region", Labels: map[string]string{"severity": "critical"}}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookRetriesAndSigns(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []alerting.Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get("X-Declinemon-Timestamp"), 10, 64)
		if r.Header.Get("X-Declinemon-Signature") != Sign("s3cret", ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a alerting.Alert
		json.Unmarshal(body, &a)
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}))
	defer srv.Close()
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: "s3cret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wh.Send(context.Background(), []alerting.Alert{sample("a1"), sample("a2")})
	waitUntil(t, func() bool { return wh.Stats().Sent.Load() == 2 })
	wh.Close(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].ID != "a1" || got[1].ID != "a2" || got[0].Summary == "" {
		t.Fatalf("received %+v", got)
	}
	if wh.Stats().Retries.Load() != 2 {
		t.Errorf("retries %d, want 2", wh.Stats().Retries.Load())
	}
}

func TestWebhookWrongSecretIsRejectedByReceiver(t *testing.T) {
	body := []byte(`{"alert_id":"x"}`)
	if Sign("a", 1, body) == Sign("b", 1, body) || Sign("a", 1, body) == Sign("a", 2, body) {
		t.Fatal("signature ignores secret or timestamp")
	}
}

func TestWebhookTimeoutGivesUpAndCounts(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	wh, _ := NewWebhook(WebhookConfig{URL: srv.URL, Timeout: 50 * time.Millisecond, Attempts: 2}, nil)
	start := time.Now()
	wh.Send(context.Background(), []alerting.Alert{sample("slow")})
	if time.Since(start) > 250*time.Millisecond { // blocking would take two timeouts and a backoff
		t.Error("Send blocked on a slow receiver")
	}
	waitUntil(t, func() bool { return wh.Stats().Failed.Load() == 1 })
	wh.Close(context.Background())
}

func TestConfigValidation(t *testing.T) {
	if _, err := NewWebhook(WebhookConfig{URL: "ftp://x"}, nil); err == nil {
		t.Error("ftp webhook accepted")
	}
	if _, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{"localhost:9093"}}, nil); err == nil {
		t.Error("scheme-less alertmanager URL accepted")
	}
}

// gate holds requests while shut.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// pass waits for the gate to open; false if the client gave up first, so
// a request its sender counted as failed is not recorded as received.
func (g *gate) pass(r *http.Request) bool {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return r.Context().Err() == nil
	case <-r.Context().Done():
		return false
	}
}

// hookReceiver is a webhook endpoint recording the alert ids it accepted.
type hookReceiver struct {
	*httptest.Server
	gate     *gate
	inFlight atomic.Int32
	mu       sync.Mutex
	ids      []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rx := &hookReceiver{gate: newGate()}
	rx.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alerting.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rx.inFlight.Add(1)
		defer rx.inFlight.Add(-1)
		if !rx.gate.pass(r) {
			return
		}
		rx.mu.Lock()
		rx.ids = append(rx.ids, a.ID)
		rx.mu.Unlock()
	}))
	t.Cleanup(rx.Close)
	t.Cleanup(rx.gate.release) // before Close, which waits for handlers
	return rx
}

func (rx *hookReceiver) received() []string {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return append([]string(nil), rx.ids...)
}

func (w *Webhook) queued() int {
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	return len(w.q.items)
}

// TestWebhookBackpressureDeliversEverything sends more records than the
// queue holds to a stuck endpoint: Send waits instead of dropping, and
// every record arrives once, in order, when the endpoint recovers.
func TestWebhookBackpressureDeliversEverything(t *testing.T) {
	cases := []struct {
		name         string
		queue        int
		batches      []int // records per Send
		wantAccepted int   // Sends that return while the endpoint is stuck
	}{
		{"one record per send", 3, []int{1, 1, 1, 1, 1, 1, 1, 1}, 4}, // 1 in flight + 3 queued
		{"batches of three", 4, []int{3, 3, 3, 3}, 1},                // 1 in flight + 2 queued: no room for 3 more
		{"batch larger than the queue", 2, []int{5, 1, 1}, 1},        // let in whole once the queue is empty
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rx := newHookReceiver(t)
			rx.gate.shut()
			wh, err := NewWebhook(WebhookConfig{URL: rx.URL, QueueSize: tc.queue, Timeout: 10 * time.Second, Attempts: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer wh.Close(context.Background())
			var want []string
			var batches [][]alerting.Alert
			for _, n := range tc.batches {
				var b []alerting.Alert
				for range n {
					id := "r" + strconv.Itoa(len(want))
					want = append(want, id)
					b = append(b, sample(id))
				}
				batches = append(batches, b)
			}
			var returned atomic.Int32
			sendErr := make(chan error, 1)
			go func() {
				defer close(sendErr)
				for _, b := range batches {
					if err := wh.Send(context.Background(), b); err != nil {
						sendErr <- err
						return
					}
					returned.Add(1)
				}
			}()
			waitUntil(t, func() bool { return rx.inFlight.Load() == 1 && int(returned.Load()) == tc.wantAccepted })
			time.Sleep(100 * time.Millisecond)
			if n := returned.Load(); int(n) != tc.wantAccepted {
				t.Fatalf("%d sends returned while the endpoint was stuck, want %d", n, tc.wantAccepted)
			}
			if q := wh.queued(); q > max(tc.queue, tc.batches[0]) {
				t.Errorf("%d records queued, more than the queue's %d", q, tc.queue)
			}
			rx.gate.release()
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := wh.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if got := rx.received(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("received %v, want %v", got, want)
			}
			if sent, failed, dropped, _ := wh.Stats().DeliveryCounts(); sent != uint64(len(want)) || failed != 0 || dropped != 0 {
				t.Errorf("sent %d failed %d dropped %d, want %d 0 0", sent, failed, dropped, len(want))
			}
		})
	}
}

// TestWebhookSendHonoursContext: a Send waiting for room gives up when
// its context ends and queues none of its records.
func TestWebhookSendHonoursContext(t *testing.T) {
	rx := newHookReceiver(t)
	rx.gate.shut()
	wh, err := NewWebhook(WebhookConfig{URL: rx.URL, QueueSize: 1, Timeout: 10 * time.Second, Attempts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close(context.Background())
	for _, id := range []string{"r0", "r1"} {
		if err := wh.Send(context.Background(), []alerting.Alert{sample(id)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return rx.inFlight.Load() == 1 && wh.queued() == 1 })

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	deadline, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	cases := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"deadline", deadline, context.DeadlineExceeded},
	}
	for _, tc := range cases {
		err := wh.Send(tc.ctx, []alerting.Alert{sample("late-" + tc.name)})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Send on a full queue: %v, want %v", tc.name, err, tc.want)
		}
	}
	rx.gate.release()
	if err := wh.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rx.received(); strings.Join(got, ",") != "r0,r1" {
		t.Errorf("received %v, want [r0 r1]: a Send that gave up must queue nothing", got)
	}
	wh.Close(context.Background())
	if err := wh.Send(context.Background(), []alerting.Alert{sample("after")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}

// TestDeadWebhookDoesNotHoldUpThePipeline: once a record has failed all
// its attempts, a full queue drops new records (counted) instead of making
// Send wait behind a dead endpoint.
func TestDeadWebhookDoesNotHoldUpThePipeline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Attempts: 1, QueueSize: 2, Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 50 {
		if err := wh.Send(ctx, []alerting.Alert{{ID: fmt.Sprintf("a%d", i), State: alerting.StateFiring}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	wh.Flush(ctx)
	sent, failed, dropped, _ := wh.Stats().DeliveryCounts()
	if sent != 0 || failed == 0 || dropped == 0 || failed+dropped != 50 {
		t.Errorf("sent %d, failed %d, dropped %d of 50", sent, failed, dropped)
	}
}
