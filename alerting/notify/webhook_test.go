package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	if time.Since(start) > 20*time.Millisecond {
		t.Error("Send blocked on a slow receiver")
	}
	waitUntil(t, func() bool { return wh.Stats().Failed.Load() == 1 })
	wh.Close(context.Background())
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	wh, _ := NewWebhook(WebhookConfig{URL: srv.URL, QueueSize: 2, Timeout: 5 * time.Second, Attempts: 1}, nil)
	for i := 0; i < 10; i++ {
		wh.Send(context.Background(), []alerting.Alert{sample(strconv.Itoa(i))})
	}
	if d := wh.Stats().Dropped.Load(); d < 7 {
		t.Errorf("dropped %d of 10 with a queue of 2 and one in flight", d)
	}
	close(block)
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
