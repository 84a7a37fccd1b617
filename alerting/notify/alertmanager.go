package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// AlertmanagerConfig configures delivery to Alertmanager's v2 API.
type AlertmanagerConfig struct {
	// URLs of every Alertmanager of an HA cluster; each gets every alert,
	// as Alertmanager expects (it deduplicates among peers).
	URLs []string `yaml:"urls"`
	// ResendInterval re-posts active alerts so Alertmanager keeps them
	// (they expire after their endsAt otherwise). Default 1m.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// Timeout per request (default 10s); Attempts per batch (default 5).
	Timeout  time.Duration `yaml:"timeout"`
	Attempts int           `yaml:"attempts"`
	// QueueSize bounds batches waiting for delivery (default 1000).
	QueueSize int `yaml:"queue_size"`
	// RunbookURL is the base of each alert's runbook_url annotation
	// ("#<kind>" is appended).
	RunbookURL string `yaml:"runbook_url"`
	// GeneratorURL is the base of each alert's generatorURL
	// ("?alert_id=<id>" is appended), e.g. the service's /alerts.
	GeneratorURL string `yaml:"generator_url"`
}

// Alertmanager posts alerts-v1 records as Alertmanager alerts.
type Alertmanager struct {
	cfg    AlertmanagerConfig
	client *http.Client
	q      *queue
	stats  Stats

	mu     sync.Mutex
	active map[string]postable // firing alerts, re-sent every ResendInterval
	stopRe chan struct{}
	doneRe chan struct{}
	now    func() time.Time
}

// postable is Alertmanager's v2 postableAlert.
type postable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Validate checks the configuration.
func (c AlertmanagerConfig) Validate() error {
	var errs []error
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("alertmanager.urls: %q is not an http(s) URL", u))
		}
	}
	if c.ResendInterval < 0 || c.Timeout < 0 || c.Attempts < 0 || c.QueueSize < 0 {
		errs = append(errs, errors.New("alertmanager: intervals, attempts and queue_size must not be negative"))
	}
	return errors.Join(errs...)
}

// NewAlertmanager starts the delivery goroutines; Close stops them.
func NewAlertmanager(cfg AlertmanagerConfig, log *zap.Logger) (*Alertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResendInterval == 0 {
		cfg.ResendInterval = time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 5
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1000
	}
	am := &Alertmanager{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, active: map[string]postable{},
		stopRe: make(chan struct{}), doneRe: make(chan struct{}), now: time.Now}
	am.q = newQueue(cfg.QueueSize, cfg.Attempts, 500*time.Millisecond, log, &am.stats, am.post)
	go am.resendLoop()
	return am, nil
}

// Stats returns delivery counters.
func (am *Alertmanager) Stats() *Stats { return &am.stats }

// Send enqueues alerts; it never blocks.
func (am *Alertmanager) Send(_ context.Context, alerts []alerting.Alert) error {
	am.q.enqueue(alerts)
	return nil
}

// toPostable maps an alerts-v1 record. Identity in Alertmanager is the
// label set, so alert_id is a label: a new incident on the same scope is a
// new alert. endsAt of a firing alert is a lease renewed by re-sending.
func (am *Alertmanager) toPostable(a *alerting.Alert) postable {
	l := map[string]string{
		"alertname":  "Declinemon" + camel(a.Kind.String()),
		"alert_id":   a.ID,
		"kind":       a.Kind.String(),
		"cause":      a.Cause,
		"scope_type": a.ScopeType,
		"scope_id":   a.ScopeID,
	}
	for k, v := range a.Labels {
		l[k] = v
	}
	ann := map[string]string{"summary": a.Summary, "remedy": a.Remedy}
	if am.cfg.RunbookURL != "" {
		ann["runbook_url"] = am.cfg.RunbookURL + "#" + a.Kind.String()
	}
	p := postable{Labels: l, Annotations: ann, StartsAt: a.StartsAt}
	if am.cfg.GeneratorURL != "" {
		p.GeneratorURL = am.cfg.GeneratorURL + "?alert_id=" + url.QueryEscape(a.ID)
	}
	if a.State == alerting.StateResolved {
		p.EndsAt = am.now()
		if a.EndsAt != nil && a.EndsAt.Before(p.EndsAt) {
			p.EndsAt = *a.EndsAt
		}
		if !p.EndsAt.After(p.StartsAt) {
			p.EndsAt = p.StartsAt.Add(time.Second)
		}
	} else {
		p.EndsAt = am.now().Add(4 * am.cfg.ResendInterval)
	}
	return p
}

func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func (am *Alertmanager) post(ctx context.Context, batch []alerting.Alert) error {
	ps := make([]postable, 0, len(batch))
	am.mu.Lock()
	for i := range batch {
		p := am.toPostable(&batch[i])
		if batch[i].State == alerting.StateResolved {
			delete(am.active, batch[i].ID)
		} else {
			am.active[batch[i].ID] = p
		}
		ps = append(ps, p)
	}
	am.mu.Unlock()
	return am.postAll(ctx, ps)
}

// postAll sends to every Alertmanager; it fails only if none accepted.
func (am *Alertmanager) postAll(ctx context.Context, ps []postable) error {
	if len(ps) == 0 || len(am.cfg.URLs) == 0 {
		return nil
	}
	body, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encoding alerts: %w", err)
	}
	var errs []error
	for _, base := range am.cfg.URLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v2/alerts", bytes.NewReader(body))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := am.client.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("posting to %s: %w", base, err))
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			errs = append(errs, fmt.Errorf("posting to %s: %s: %s", base, resp.Status, bytes.TrimSpace(msg)))
		}
	}
	if len(errs) == len(am.cfg.URLs) {
		return errors.Join(errs...)
	}
	return nil
}

// resendLoop renews the lease of active alerts.
func (am *Alertmanager) resendLoop() {
	defer close(am.doneRe)
	t := time.NewTicker(am.cfg.ResendInterval)
	defer t.Stop()
	for {
		select {
		case <-am.stopRe:
			return
		case <-t.C:
			am.mu.Lock()
			ps := make([]postable, 0, len(am.active))
			for id, p := range am.active {
				p.EndsAt = am.now().Add(4 * am.cfg.ResendInterval)
				am.active[id] = p
				ps = append(ps, p)
			}
			am.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), am.cfg.Timeout)
			if err := am.postAll(ctx, ps); err != nil {
				am.stats.Failed.Add(uint64(len(ps)))
			}
			cancel()
		}
	}
}

// Close delivers what is queued (bounded by ctx) and stops.
func (am *Alertmanager) Close(ctx context.Context) {
	close(am.stopRe)
	<-am.doneRe
	am.q.close(ctx)
}
