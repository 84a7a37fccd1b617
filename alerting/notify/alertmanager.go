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
	// as Alertmanager expects (peers share notifications, not alerts). A
	// post counts as delivered when at least one accepted it; the resend
	// loop brings the others up to date.
	URLs []string `yaml:"urls"`
	// ResendInterval re-posts the state of every alert so Alertmanager
	// keeps firing ones (they expire after their endsAt lease, 4x this)
	// and an Alertmanager that restarted or missed a post learns it.
	// Default 1m.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// ResolvedRetention is how long a delivered resolve keeps being
	// re-sent before the alert is forgotten (default 15m, as Prometheus
	// does). An undelivered resolve is re-sent until it is delivered.
	ResolvedRetention time.Duration `yaml:"resolved_retention"`
	// Timeout per request (default 10s); Attempts per post (default 5).
	Timeout  time.Duration `yaml:"timeout"`
	Attempts int           `yaml:"attempts"`
	// QueueSize is accepted for compatibility and ignored: the latest
	// state of each alert is the queue, so nothing waits or is dropped
	// for lack of room.
	QueueSize int `yaml:"queue_size"`
	// RunbookURL is the base of each alert's runbook_url annotation
	// ("#<kind>" is appended).
	RunbookURL string `yaml:"runbook_url"`
	// GeneratorURL is the base of each alert's generatorURL
	// ("?alert_id=<id>" is appended), e.g. the service's /alerts.
	GeneratorURL string `yaml:"generator_url"`
}

// Alertmanager posts alerts-v1 records as Alertmanager alerts. It keeps
// the latest record of every alert in flight (firing, or resolved and not
// yet forgotten) and one goroutine posts it: new records as they come,
// and all of them again every ResendInterval.
type Alertmanager struct {
	cfg     AlertmanagerConfig
	client  *http.Client
	targets []amTarget
	log     *zap.Logger
	stats   Stats
	now     func() time.Time

	mu       sync.Mutex
	alerts   map[string]*amAlert // by alert_id
	seq      uint64              // sequence number of the last record accepted
	inflight []uint64            // records being posted
	closed   bool
	changed  signal // records settled
	report   flushReport

	wake chan struct{}   // a record arrived, or Close was called
	ctx  context.Context // ends when Close gives up: posts abort
	stop context.CancelFunc
	done chan struct{}
}

type amTarget struct{ url, shown string }

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
			errs = append(errs, fmt.Errorf("alertmanager.urls: %s is not an http(s) URL", redactURL(u)))
		}
	}
	if c.ResendInterval < 0 || c.ResolvedRetention < 0 || c.Timeout < 0 || c.Attempts < 0 || c.QueueSize < 0 {
		errs = append(errs, errors.New("alertmanager: intervals, attempts and queue_size must not be negative"))
	}
	return errors.Join(errs...)
}

// NewAlertmanager starts the delivery goroutine; Close stops it.
func NewAlertmanager(cfg AlertmanagerConfig, log *zap.Logger) (*Alertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResendInterval == 0 {
		cfg.ResendInterval = time.Minute
	}
	if cfg.ResolvedRetention == 0 {
		cfg.ResolvedRetention = 15 * time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 5
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	am := &Alertmanager{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, log: log.With(zap.String("sink", "alertmanager")),
		now: time.Now, alerts: map[string]*amAlert{}, wake: make(chan struct{}, 1), ctx: ctx, stop: cancel, done: make(chan struct{})}
	for _, u := range cfg.URLs {
		am.targets = append(am.targets, amTarget{url: strings.TrimSuffix(u, "/") + "/api/v2/alerts", shown: redactURL(u)})
	}
	go am.run()
	return am, nil
}

// Stats returns delivery counters.
func (am *Alertmanager) Stats() *Stats { return &am.stats }

// Format prints only the Alertmanagers' schemes and hosts, whatever the
// verb: URLs may carry credentials.
func (am *Alertmanager) Format(f fmt.State, _ rune) {
	shown := make([]string, len(am.targets))
	for i, t := range am.targets {
		shown[i] = t.shown
	}
	fmt.Fprintf(f, "notify.Alertmanager(%s)", strings.Join(shown, ","))
}

// toPostable maps an alerts-v1 record. Identity in Alertmanager is the
// label set, so alert_id is a label: a new incident on the same scope is a
// new alert. endsAt of a firing alert is a lease renewed by re-sending.
func (am *Alertmanager) toPostable(a *alerting.Alert, now time.Time) postable {
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
		p.EndsAt = now
		if a.EndsAt != nil && a.EndsAt.Before(p.EndsAt) {
			p.EndsAt = *a.EndsAt
		}
		if !p.EndsAt.After(p.StartsAt) {
			p.EndsAt = p.StartsAt.Add(time.Second)
		}
	} else {
		p.EndsAt = now.Add(am.lease())
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

// lease is how long Alertmanager keeps a firing alert without news.
func (am *Alertmanager) lease() time.Duration { return 4 * am.cfg.ResendInterval }

// postAll sends to every Alertmanager at once; it fails only if none
// accepted.
func (am *Alertmanager) postAll(ctx context.Context, ps []postable) error {
	if len(ps) == 0 || len(am.targets) == 0 {
		return nil
	}
	body, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encoding alerts: %w", err)
	}
	errs := make([]error, len(am.targets))
	var wg sync.WaitGroup
	for i, t := range am.targets {
		wg.Go(func() { errs[i] = am.postOne(ctx, t, body) })
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == len(am.targets) {
		return errors.Join(failed...)
	}
	if len(failed) > 0 {
		am.log.Warn("an alertmanager did not accept alerts; the resend loop will retry", zap.Error(errors.Join(failed...)))
	}
	return nil
}

func (am *Alertmanager) postOne(ctx context.Context, t amTarget, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("posting to %s: %w", t.shown, redactErr(err, t.shown))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := am.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", t.shown, redactErr(err, t.shown))
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting to %s: %s: %s", t.shown, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
