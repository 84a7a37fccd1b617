package ops

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/prometheus/client_golang/prometheus"
)

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
