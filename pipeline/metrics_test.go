package pipeline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/notify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

func scrape(t *testing.T, h http.Handler, auth string) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func TestMetricsNamesTypesAndNoIDLabels(t *testing.T) {
	stats := &RunStats{}
	stats.Messages.Add(10)
	stats.Rejected[ingest.ReasonSensitiveData].Add(2)
	stats.ByCause[event.CauseNetwork].Add(3)
	stats.AlertsByKind[alerting.KindNetworkOutage][0].Add(1)
	stats.setLag("pos.events", 3, 42)
	reg := prometheus.NewRegistry()
	wh := &notify.Stats{}
	wh.Sent.Add(1)
	m, err := NewMetrics(reg, stats, map[string]DeliveryStats{"webhook_0": wh})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveStage("store", 3*time.Millisecond)
	m.ObserveBatch(500)
	h := NewHandler(HTTPConfig{BearerToken: "tok"}, Endpoints{Gatherer: reg, Ready: func(context.Context) error { return nil }, Active: func() []alerting.Alert { return nil }})
	fams := scrape(t, h, "Bearer tok")
	want := map[string]dto.MetricType{
		"declinemon_messages_total":               dto.MetricType_COUNTER,
		"declinemon_events_rejected_total":        dto.MetricType_COUNTER,
		"declinemon_declines_total":               dto.MetricType_COUNTER,
		"declinemon_events_late_total":            dto.MetricType_COUNTER,
		"declinemon_consumer_lag_messages":        dto.MetricType_GAUGE,
		"declinemon_commit_latency_seconds":       dto.MetricType_GAUGE,
		"declinemon_alerts_total":                 dto.MetricType_COUNTER,
		"declinemon_alerts_active":                dto.MetricType_GAUGE,
		"declinemon_detector_scopes":              dto.MetricType_GAUGE,
		"declinemon_flush_stage_duration_seconds": dto.MetricType_HISTOGRAM,
		"declinemon_store_batch_events":           dto.MetricType_HISTOGRAM,
		"declinemon_alert_deliveries_total":       dto.MetricType_COUNTER,
		"declinemon_flush_retries_total":          dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("missing %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is %s, want %s", name, f.GetType(), typ)
		}
	}
	allowed := map[string]bool{"reason": true, "cause": true, "kind": true, "state": true, "stage": true, "sink": true, "result": true, "topic": true, "partition": true}
	for name, f := range fams {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %s: labels must come from small fixed sets", name, l.GetName())
				}
			}
		}
	}
	if v := fams["declinemon_events_rejected_total"]; v != nil {
		found := false
		for _, metric := range v.GetMetric() {
			if metric.GetLabel()[0].GetValue() == "sensitive_data" && metric.GetCounter().GetValue() == 2 {
				found = true
			}
		}
		if !found {
			t.Error("rejects by reason not exported")
		}
	}
}

func TestHTTPEndpointsAndAuth(t *testing.T) {
	reg := prometheus.NewRegistry()
	ready := errors.New("kafka down")
	active := []alerting.Alert{{ID: "a1", Kind: alerting.KindFraudAttack, State: alerting.StateFiring}, {ID: "a2"}}
	h := NewHandler(HTTPConfig{BasicAuth: BasicAuth{"ops", "pw"}}, Endpoints{Gatherer: reg, Ready: func(context.Context) error { return ready }, Active: func() []alerting.Alert { return active }})
	get := func(path string, auth bool) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		if auth {
			req.SetBasicAuth("ops", "pw")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if c, _ := get("/healthz", false); c != 200 {
		t.Errorf("/healthz without auth: %d", c)
	}
	for _, p := range []string{"/metrics", "/readyz", "/alerts"} {
		if c, _ := get(p, false); c != 401 {
			t.Errorf("%s without auth: %d", p, c)
		}
	}
	if c, body := get("/readyz", true); c != 503 || !strings.Contains(body, "kafka down") {
		t.Errorf("/readyz: %d %s", c, body)
	}
	ready = nil
	if c, _ := get("/readyz", true); c != 200 {
		t.Errorf("/readyz when ready: %d", c)
	}
	if c, body := get("/alerts?alert_id=a1", true); c != 200 || !strings.Contains(body, `"alert_id":"a1"`) || strings.Contains(body, "a2") {
		t.Errorf("/alerts: %d %s", c, body)
	}
	if c, body := get("/alerts?alert_id=nope", true); c != 404 || !strings.Contains(body, "no firing alert") {
		t.Errorf("/alerts for an unknown id: %d %s", c, body)
	}
}
