package notify

import (
	"github.com/declinemon/declinemon/internal/secret"

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
	// URL receives one POST per record. It is never logged in full (only
	// its scheme and host): such URLs often carry a token.
	URL string `yaml:"url"`
	// Secret, when set, signs each body: header X-Declinemon-Signature is
	// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)) and
	// X-Declinemon-Timestamp the Unix seconds, so receivers can reject
	// replays. It never prints (internal/secret).
	Secret  secret.String `yaml:"secret"`
	Timeout time.Duration `yaml:"timeout"` // per request, default 5s
	// Attempts per record (default 5); a record that fails them all is
	// counted as failed and logged, and delivery moves on to the next.
	Attempts int `yaml:"attempts"`
	// QueueSize bounds the records waiting for delivery (default 1000).
	// When it is full, Send waits for room.
	QueueSize int `yaml:"queue_size"`
}

// Webhook posts each alerts-v1 record as its own JSON body, in the order
// Send received them.
type Webhook struct {
	// ep is behind a pointer so that even reflection (a struct printed
	// with %v that holds a Webhook) shows an address, not the URL or key;
	// Format covers printing a Webhook itself.
	ep     *endpoint
	client *http.Client
	q      *queue
	stats  Stats
	now    func() time.Time
}

type endpoint struct {
	url   string
	shown string // scheme and host, for logs and errors
	key   []byte // HMAC key; empty: unsigned
}

// Validate checks the configuration.
func (c WebhookConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhooks: url %s is not an http(s) URL", redactURL(c.URL))
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
	if log == nil {
		log = zap.NewNop()
	}
	ep := &endpoint{url: cfg.URL, shown: redactURL(cfg.URL), key: []byte(cfg.Secret.Reveal())}
	w := &Webhook{ep: ep, client: &http.Client{Timeout: cfg.Timeout}, now: time.Now}
	w.q = newQueue(cfg.QueueSize, cfg.Attempts, 200*time.Millisecond,
		log.With(zap.String("sink", "webhook"), zap.String("endpoint", ep.shown)), &w.stats, w.post)
	return w, nil
}

// Stats returns delivery counters.
func (w *Webhook) Stats() *Stats { return &w.stats }

// Format prints only the endpoint's scheme and host, whatever the verb:
// the URL's path and the key are secrets.
func (w *Webhook) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "notify.Webhook(%s)", w.ep.shown) }

// Send queues alerts for delivery, one POST per record. It returns at
// once while the queue has room; otherwise it waits for room until ctx
// ends, and then returns an error having queued none of alerts. After
// Close it returns ErrClosed.
func (w *Webhook) Send(ctx context.Context, alerts []alerting.Alert) error {
	return w.q.enqueue(ctx, alerts)
}

// Flush waits, until ctx ends, for every record sent before the call to
// be delivered or given up, and returns an *UndeliveredError if any record
// failed or was dropped since the previous Flush (or is still pending when
// ctx ends).
func (w *Webhook) Flush(ctx context.Context) error { return w.q.flush(ctx) }

// Sign returns the signature header value for body at ts.
func Sign(secret string, ts int64, body []byte) string { return sign([]byte(secret), ts, body) }

func sign(key []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) post(ctx context.Context, a *alerting.Alert) error {
	body, err := a.MarshalJSONLine()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.ep.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building webhook request: %w", redactErr(err, w.ep.shown))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Declinemon-Alert-Id", a.ID)
	if len(w.ep.key) > 0 {
		ts := w.now().Unix()
		req.Header.Set("X-Declinemon-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("X-Declinemon-Signature", sign(w.ep.key, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting webhook: %w", redactErr(err, w.ep.shown))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting webhook to %s: %s", w.ep.shown, resp.Status)
	}
	return nil
}

// Close stops accepting records and delivers the queued ones, waiting at
// most until ctx ends; records still undelivered then are counted as
// dropped (see Flush and Stats).
func (w *Webhook) Close(ctx context.Context) { w.q.close(ctx) }
