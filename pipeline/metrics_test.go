package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	"github.com/declinemon/declinemon/internal/ops"
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
	stats := &Counters{}
	stats.Messages.Add(10)
	stats.Rejected[ingest.ReasonSensitiveData].Add(2)
	stats.ByCause[event.CauseNetwork].Add(3)
	stats.AlertsByKind[alerting.KindNetworkOutage][0].Add(1)
	stats.setLag([]ingest.Position{{Topic: "pos.events", Partition: 3, Offset: 57, HighWaterMark: 100}})
	reg := prometheus.NewRegistry()
	wh := &notify.Stats{}
	wh.Sent.Add(1)
	m := newMetrics(stats, func() string { return "" }, map[string]DeliveryStats{"webhook_0": wh})
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	m.ObserveStage("store", 3*time.Millisecond)
	m.ObserveBatch(500)
	h := ops.NewHandler(ops.HTTPConfig{BearerToken: "tok"}, ops.Endpoints{Gatherer: reg, Ready: func(context.Context) error { return nil }, Active: func() []alerting.Alert { return nil }})
	fams := scrape(t, h, "Bearer tok")
	want := map[string]dto.MetricType{
		"declinemon_messages_total":                dto.MetricType_COUNTER,
		"declinemon_events_rejected_total":         dto.MetricType_COUNTER,
		"declinemon_declines_total":                dto.MetricType_COUNTER,
		"declinemon_events_late_total":             dto.MetricType_COUNTER,
		"declinemon_consumer_lag_messages":         dto.MetricType_GAUGE,
		"declinemon_commit_latency_seconds":        dto.MetricType_GAUGE,
		"declinemon_alerts_total":                  dto.MetricType_COUNTER,
		"declinemon_alerts_active":                 dto.MetricType_GAUGE,
		"declinemon_detector_scopes":               dto.MetricType_GAUGE,
		"declinemon_flush_stage_duration_seconds":  dto.MetricType_HISTOGRAM,
		"declinemon_store_batch_events":            dto.MetricType_HISTOGRAM,
		"declinemon_alert_deliveries_total":        dto.MetricType_COUNTER,
		"declinemon_flush_retries_total":           dto.MetricType_COUNTER,
		"declinemon_flush_halted":                  dto.MetricType_GAUGE,
		"declinemon_detector_scopes_evicted_total": dto.MetricType_COUNTER,
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
