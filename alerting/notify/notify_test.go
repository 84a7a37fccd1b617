package notify

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/alerting"
)

// notifier is what both sinks offer their callers.
type notifier interface {
	Send(context.Context, []alerting.Alert) error
	Flush(context.Context) error
	Close(context.Context)
	Stats() *Stats
}

var sinks = []struct {
	name string
	open func(t *testing.T, url string, log *zap.Logger) notifier
}{
	{"alertmanager", func(t *testing.T, url string, log *zap.Logger) notifier {
		am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{url}, ResendInterval: time.Hour, Timeout: 5 * time.Second, Attempts: 2}, log)
		if err != nil {
			t.Fatal(err)
		}
		return am
	}},
	{"webhook", func(t *testing.T, url string, log *zap.Logger) notifier {
		wh, err := NewWebhook(WebhookConfig{URL: url, Timeout: 5 * time.Second, Attempts: 2}, log)
		if err != nil {
			t.Fatal(err)
		}
		return wh
	}},
}

// testEndpoint starts a receiver answering every request with status; a
// stopped one refuses connections.
func testEndpoint(t *testing.T, status int, stopped bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	if stopped {
		srv.Close()
	} else {
		t.Cleanup(srv.Close)
	}
	return srv.URL
}

// TestFlushReportsOutcome: Flush tells the caller whether what it sent
// was delivered, per sink and endpoint behaviour, and each Flush reports
// only what happened since the previous one.
func TestFlushReportsOutcome(t *testing.T) {
	endpoints := []struct {
		name       string
		status     int
		stopped    bool
		wantFailed uint64
	}{
		{"healthy", http.StatusOK, false, 0},
		{"server error", http.StatusServiceUnavailable, false, 2},
		{"rejects", http.StatusBadRequest, false, 2},
		{"connection refused", 0, true, 2},
	}
	for _, s := range sinks {
		for _, ep := range endpoints {
			t.Run(s.name+"/"+ep.name, func(t *testing.T) {
				n := s.open(t, testEndpoint(t, ep.status, ep.stopped), nil)
				defer n.Close(context.Background())
				if err := n.Send(context.Background(), []alerting.Alert{sample("a1"), sample("a2")}); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := n.Flush(ctx)
				var ue *UndeliveredError
				if ep.wantFailed == 0 {
					if err != nil {
						t.Fatalf("Flush: %v", err)
					}
				} else if !errors.As(err, &ue) || ue.Failed != ep.wantFailed || ue.Dropped != 0 || ue.Pending != 0 {
					t.Fatalf("Flush: %v, want %d failed", err, ep.wantFailed)
				}
				sent, failed, dropped, _ := n.Stats().DeliveryCounts()
				if sent != 2-ep.wantFailed || failed != ep.wantFailed || dropped != 0 {
					t.Errorf("sent %d failed %d dropped %d", sent, failed, dropped)
				}
				if err := n.Flush(ctx); err != nil {
					t.Errorf("second Flush reports again: %v", err)
				}
			})
		}
	}
}

// TestFlushAndCloseOnAStuckEndpoint: a Flush that runs out of time says
// how much is pending; a Close that runs out of time drops what is left,
// counts it, and the next Flush reports it.
func TestFlushAndCloseOnAStuckEndpoint(t *testing.T) {
	for _, s := range sinks {
		t.Run(s.name, func(t *testing.T) {
			g := newGate()
			g.shut()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.pass(r) }))
			defer srv.Close()
			defer g.release()
			n := s.open(t, srv.URL, nil)
			if err := n.Send(context.Background(), []alerting.Alert{sample("a1"), sample("a2")}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := n.Flush(ctx)
			var ue *UndeliveredError
			if !errors.As(err, &ue) || ue.Pending != 2 || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Flush on a stuck endpoint: %v, want 2 pending and the deadline", err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			n.Close(ctx)
			err = n.Flush(context.Background())
			if !errors.As(err, &ue) || ue.Dropped != 2 || ue.Pending != 0 {
				t.Fatalf("Flush after Close: %v, want 2 dropped", err)
			}
			if _, _, dropped, _ := n.Stats().DeliveryCounts(); dropped != 2 {
				t.Errorf("dropped %d, want 2", dropped)
			}
			if err := n.Send(context.Background(), []alerting.Alert{sample("a3")}); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// TestEndpointNeverLogged: webhook URLs carry tokens in their path or
// query, Alertmanager URLs may carry credentials; logs and errors show
// only scheme and host.
func TestEndpointNeverLogged(t *testing.T) {
	for _, s := range sinks {
		t.Run(s.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			base := testEndpoint(t, 0, true)
			url := strings.Replace(base, "://", "://user:pa55word@", 1) + "/hooks/T0K3N?token=T0K3N"
			n := s.open(t, url, zap.New(core))
			n.Send(context.Background(), []alerting.Alert{sample("a1")})
			err := n.Flush(context.Background())
			n.Close(context.Background())
			if err == nil || logs.Len() == 0 {
				t.Fatalf("delivery to a stopped endpoint: err %v, %d log entries", err, logs.Len())
			}
			for _, e := range logs.All() {
				line := fmt.Sprint(e.Message, e.ContextMap())
				if strings.Contains(line, "T0K3N") || strings.Contains(line, "pa55word") {
					t.Errorf("log leaks the endpoint: %s", line)
				}
			}
		})
	}
}

// TestWebhookSecretNeverPrints: the secret reaches the signature but no
// printed, encoded or logged form of the configuration.
func TestWebhookSecretNeverPrints(t *testing.T) {
	const secret = "hunter2-s3cret"
	cfg := WebhookConfig{URL: "https://hooks.example/declinemon", Secret: secret, Attempts: 3}
	wh, err := NewWebhook(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close(context.Background())
	type parent struct { // as the service's configuration holds it
		Webhooks []WebhookConfig `yaml:"webhooks" json:"webhooks"`
	}
	var slogBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&slogBuf, nil)).Info("config", "webhook", cfg, "secret", cfg.Secret)
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("config", zap.Any("webhook", cfg), zap.Stringer("secret", cfg.Secret))
	zapLine := fmt.Sprint(logs.All()[0].ContextMap())

	f := func(name string, out string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if strings.Contains(out, secret) || strings.Contains(out, "hunter2") || strings.Contains(out, hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%t"} {
		f("fmt "+verb+" config", fmt.Sprintf(verb, cfg), nil)
		f("fmt "+verb+" *config", fmt.Sprintf(verb, &cfg), nil)
		f("fmt "+verb+" parent", fmt.Sprintf(verb, parent{[]WebhookConfig{cfg}}), nil)
		f("fmt "+verb+" secret", fmt.Sprintf(verb, cfg.Secret), nil)
		f("fmt "+verb+" webhook", fmt.Sprintf(verb, wh), nil)
	}
	j, err := json.Marshal(parent{[]WebhookConfig{cfg}})
	f("json", string(j), err)
	y, err := yaml.Marshal(parent{[]WebhookConfig{cfg}})
	f("yaml", string(y), err)
	f("slog", slogBuf.String(), nil)
	f("zap", zapLine, nil)
	if !strings.Contains(string(y), "secret: '[redacted]'") && !strings.Contains(string(y), `secret: "[redacted]"`) {
		t.Errorf("yaml: secret key missing or not redacted:\n%s", y)
	}

	// A plain YAML string still configures it, under the same key.
	var p parent
	dec := yaml.NewDecoder(strings.NewReader("webhooks:\n  - url: https://hooks.example/x\n    secret: " + secret + "\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if len(p.Webhooks) != 1 || string(p.Webhooks[0].Secret) != secret {
		t.Errorf("yaml secret decoded as %q", string(p.Webhooks[0].Secret))
	}
	body := []byte(`{"alert_id":"x"}`)
	if sign(wh.ep.key, 7, body) != Sign(secret, 7, body) {
		t.Error("the webhook does not sign with the configured secret")
	}
}

// Stats keeps the method pipeline.DeliveryStats needs.
var _ interface {
	DeliveryCounts() (sent, failed, dropped, retries uint64)
} = (*Stats)(nil)
