package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// WebhookConfig configures one generic JSON webhook.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Secret, when set, signs each body: header X-Declinemon-Signature is
	// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)) and
	// X-Declinemon-Timestamp the Unix seconds, so receivers can reject
	// replays.
	Secret    string        `yaml:"secret"`
	Timeout   time.Duration `yaml:"timeout"`  // per request, default 5s
	Attempts  int           `yaml:"attempts"` // per alert, default 5
	QueueSize int           `yaml:"queue_size"`
}

// Webhook posts each alerts-v1 record as its own JSON body.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	q      *queue
	stats  Stats
	now    func() time.Time
}

// Validate checks the configuration.
func (c WebhookConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhooks: url %q is not an http(s) URL", c.URL)
	}
	if c.Timeout < 0 || c.Attempts < 0 || c.QueueSize < 0 {
		return errors.New("webhooks: timeout, attempts and queue_size must not be negative")
	}
	return nil
}

// NewWebhook starts the delivery goroutine; Close stops it.
func NewWebhook(cfg WebhookConfig, log *zap.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 5
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1000
	}
	w := &Webhook{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, now: time.Now}
	w.q = newQueue(cfg.QueueSize, cfg.Attempts, 200*time.Millisecond, log, &w.stats, w.post)
	return w, nil
}

// Stats returns delivery counters.
func (w *Webhook) Stats() *Stats { return &w.stats }

// Send enqueues alerts, one delivery per record; it never blocks.
func (w *Webhook) Send(_ context.Context, alerts []alerting.Alert) error {
	for i := range alerts {
		w.q.enqueue(alerts[i : i+1])
	}
	return nil
}

// Sign returns the signature header value for body at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) post(ctx context.Context, batch []alerting.Alert) error {
	for i := range batch {
		body, err := batch[i].MarshalJSONLine()
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("building webhook request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Declinemon-Alert-Id", batch[i].ID)
		if w.cfg.Secret != "" {
			ts := w.now().Unix()
			req.Header.Set("X-Declinemon-Timestamp", strconv.FormatInt(ts, 10))
			req.Header.Set("X-Declinemon-Signature", Sign(w.cfg.Secret, ts, body))
		}
		resp, err := w.client.Do(req)
		if err != nil {
			return fmt.Errorf("posting webhook: %w", err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("posting webhook: %s", resp.Status)
		}
	}
	return nil
}

// Close delivers what is queued (bounded by ctx) and stops.
func (w *Webhook) Close(ctx context.Context) { w.q.close(ctx) }
