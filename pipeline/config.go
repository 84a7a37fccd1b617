package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/notify"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/ops"
	"github.com/declinemon/declinemon/internal/secret"
	"github.com/declinemon/declinemon/storage"
)

// Config is the configuration file. Every field has a safe zero value.
type Config struct {
	// DefaultScheme is the response-code table for events without a
	// "scheme" field: cup or iso8583 (default iso8583).
	DefaultScheme string `yaml:"default_scheme"`
	// MaxMessageBytes rejects larger messages (default 65536).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// RulesFile replaces the embedded classification rules.
	RulesFile string `yaml:"rules_file"`
	// BusinessTimezone is the fleet's IANA time zone: what people see
	// (alert texts, the replay summary, the demo) and where the ClickHouse
	// cookbook's and dashboards' "today" and hours are. Default
	// Asia/Shanghai; storage stays UTC. clickhouse.business_timezone, when
	// set, must agree with it.
	BusinessTimezone string `yaml:"business_timezone"`
	// Detection tunes the detectors; see alerting.Config.
	Detection alerting.Config `yaml:"detection"`
	// Clock screens event times before detection (wrong terminal clocks).
	Clock ClockConfig `yaml:"clock"`
	// DisableDetection turns the detectors off: for ingest instances that
	// forward to a separate detection stage (kafka.forward_topic).
	DisableDetection bool `yaml:"disable_detection"`
	// Kafka is where `run` consumes from.
	Kafka ingest.KafkaConfig `yaml:"kafka"`
	// Alertmanager and Webhooks receive every alert record (run and replay).
	Alertmanager notify.AlertmanagerConfig `yaml:"alertmanager"`
	Webhooks     []notify.WebhookConfig    `yaml:"webhooks"`
	// HTTP serves /metrics, /healthz, /readyz and /alerts (run).
	HTTP ops.HTTPConfig `yaml:"http"`
	// ClickHouse stores events, rollups and alerts (run); off when addr is empty.
	ClickHouse storage.Config `yaml:"clickhouse"`
}

// LoadConfig reads a YAML configuration file ("" means defaults), applies
// the environment overrides (EnvOverrides) and validates. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func LoadConfig(path string) (Config, error) {
	var c Config
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return c, fmt.Errorf("opening config: %w", err)
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		var more any
		if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: one YAML document expected, found more", path)
		}
	}
	for _, o := range EnvOverrides {
		if v, ok := os.LookupEnv(o.Name); ok {
			if err := o.set(&c, v); err != nil {
				return c, fmt.Errorf("%s: %w", o.Name, err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	// One zone for people and for storage's calendar (Validate checked
	// that the two keys agree).
	c.ClickHouse.BusinessTimezone = c.businessZone()
	c.Detection.Location = c.Location()
	return c, nil
}

// businessZone is the configured business time zone's name, or the default.
func (c Config) businessZone() string {
	return cmp.Or(strings.TrimSpace(c.BusinessTimezone), c.ClickHouse.BusinessTimezone, storage.DefaultBusinessTimezone)
}

// Location is the business time zone (see BusinessTimezone) that times
// shown to people are given in; UTC if the configured name does not load,
// which Validate reports.
func (c Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.businessZone())
	if err != nil {
		return time.UTC
	}
	return loc
}

// EnvOverride is one environment variable that overrides a config key.
type EnvOverride struct {
	Name string // DECLINEMON_...
	Key  string // the yaml key it replaces
	set  func(c *Config, v string) error
}

// EnvOverrides is the complete list, in the order applied (the README and
// docs/operations.md list the same; a test keeps them in step).
var EnvOverrides = []EnvOverride{
	{"DECLINEMON_DEFAULT_SCHEME", "default_scheme", func(c *Config, v string) error { c.DefaultScheme = v; return nil }},
	{"DECLINEMON_MAX_MESSAGE_BYTES", "max_message_bytes", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.MaxMessageBytes = n
		return err
	}},
	{"DECLINEMON_RULES_FILE", "rules_file", func(c *Config, v string) error { c.RulesFile = v; return nil }},
	{"DECLINEMON_BUSINESS_TIMEZONE", "business_timezone", func(c *Config, v string) error { c.BusinessTimezone = v; return nil }},
	{"DECLINEMON_KAFKA_BROKERS", "kafka.brokers (comma-separated)", func(c *Config, v string) error { c.Kafka.Brokers = list(v); return nil }},
	{"DECLINEMON_KAFKA_TOPICS", "kafka.topics (comma-separated)", func(c *Config, v string) error { c.Kafka.Topics = list(v); return nil }},
	{"DECLINEMON_KAFKA_GROUP_ID", "kafka.group_id", func(c *Config, v string) error { c.Kafka.GroupID = v; return nil }},
	{"DECLINEMON_KAFKA_DLQ_TOPIC", "kafka.dlq_topic", func(c *Config, v string) error { c.Kafka.DLQTopic = v; return nil }},
	{"DECLINEMON_KAFKA_FORWARD_TOPIC", "kafka.forward_topic", func(c *Config, v string) error { c.Kafka.ForwardTopic = v; return nil }},
	{"DECLINEMON_KAFKA_SASL_USERNAME", "kafka.sasl.username", func(c *Config, v string) error { c.Kafka.SASL.Username = v; return nil }},
	{"DECLINEMON_KAFKA_SASL_PASSWORD", "kafka.sasl.password", func(c *Config, v string) error { c.Kafka.SASL.Password = secret.String(v); return nil }},
	{"DECLINEMON_CLICKHOUSE_ADDR", "clickhouse.addr (comma-separated)", func(c *Config, v string) error { c.ClickHouse.Addr = list(v); return nil }},
	{"DECLINEMON_CLICKHOUSE_USERNAME", "clickhouse.username", func(c *Config, v string) error { c.ClickHouse.Username = v; return nil }},
	{"DECLINEMON_CLICKHOUSE_PASSWORD", "clickhouse.password", func(c *Config, v string) error { c.ClickHouse.Password = secret.String(v); return nil }},
	{"DECLINEMON_HTTP_LISTEN", "http.listen", func(c *Config, v string) error { c.HTTP.Listen = v; return nil }},
	{"DECLINEMON_HTTP_BEARER_TOKEN", "http.bearer_token", func(c *Config, v string) error { c.HTTP.BearerToken = secret.String(v); return nil }},
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Validate reports every problem with specific messages.
func (c Config) Validate() error {
	var errs []error
	if c.Clock.MaxAhead < 0 || c.Clock.MaxBehind < 0 || c.Clock.MaxAheadOfFleet < 0 {
		errs = append(errs, fmt.Errorf("clock: max_ahead %s, max_ahead_of_fleet %s and max_behind %s must not be negative",
			c.Clock.MaxAhead, c.Clock.MaxAheadOfFleet, c.Clock.MaxBehind))
	}
	if c.DefaultScheme != "" {
		if _, ok := event.ParseScheme(c.DefaultScheme); !ok {
			errs = append(errs, fmt.Errorf("default_scheme %q: want cup or iso8583", c.DefaultScheme))
		}
	}
	if c.MaxMessageBytes < 0 || (c.MaxMessageBytes > 0 && c.MaxMessageBytes < 256) {
		errs = append(errs, fmt.Errorf("max_message_bytes %d: want 0 (default) or at least 256", c.MaxMessageBytes))
	}
	if z := strings.TrimSpace(c.BusinessTimezone); z != "" {
		if _, err := time.LoadLocation(z); err != nil || z == "Local" || strings.ContainsAny(z, "'\\") {
			errs = append(errs, fmt.Errorf("business_timezone: %q is not an IANA time zone (e.g. Asia/Shanghai)", c.BusinessTimezone))
		} else if ch := c.ClickHouse.BusinessTimezone; ch != "" && ch != z {
			errs = append(errs, fmt.Errorf("business_timezone %q and clickhouse.business_timezone %q differ: set business_timezone only", z, ch))
		}
	}
	if err := c.Detection.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ClickHouse.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Alertmanager.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, w := range c.Webhooks {
		if err := w.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DecoderConfig derives the decoder settings (zero fields mean defaults).
func (c Config) DecoderConfig() ingest.DecoderConfig {
	s, _ := event.ParseScheme(strings.TrimSpace(c.DefaultScheme))
	return ingest.DecoderConfig{DefaultScheme: s, MaxMessageBytes: c.MaxMessageBytes}
}

// LoadRules returns the rules file named by path (or by the config), or the
// embedded defaults.
func (c Config) LoadRules(path string) (*classify.Rules, error) {
	if path == "" {
		path = c.RulesFile
	}
	if path == "" {
		return classify.Default(), nil
	}
	return classify.LoadFile(path)
}

// Notifiers are the configured asynchronous alert deliveries.
type Notifiers struct {
	Sinks []AlertSink
	Stats map[string]DeliveryStats
	names []string
	flush []func(context.Context) error
	close []func(context.Context)
}

// Flush waits until everything sent so far is delivered or given up,
// bounded by ctx, and reports per sink what was not delivered.
func (n *Notifiers) Flush(ctx context.Context) error {
	var errs []error
	for i, f := range n.flush {
		if err := f(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.names[i], err))
		}
	}
	return errors.Join(errs...)
}

// Close delivers what is queued, bounded by ctx.
func (n *Notifiers) Close(ctx context.Context) {
	for _, c := range n.close {
		c(ctx)
	}
}

// Notifiers starts the Alertmanager and webhook deliveries configured.
func (c Config) Notifiers(log *zap.Logger) (*Notifiers, error) {
	n := &Notifiers{Stats: map[string]DeliveryStats{}}
	if len(c.Alertmanager.URLs) > 0 {
		am, err := notify.NewAlertmanager(c.Alertmanager, log)
		if err != nil {
			return nil, err
		}
		n.Sinks = append(n.Sinks, am)
		n.Stats["alertmanager"] = am.Stats()
		n.names = append(n.names, "alertmanager")
		n.flush = append(n.flush, am.Flush)
		n.close = append(n.close, am.Close)
	}
	for i, w := range c.Webhooks {
		wh, err := notify.NewWebhook(w, log)
		if err != nil {
			n.Close(context.Background())
			return nil, err
		}
		name := "webhook_" + strconv.Itoa(i)
		n.Sinks = append(n.Sinks, wh)
		n.Stats[name] = wh.Stats()
		n.names = append(n.names, name)
		n.flush = append(n.flush, wh.Flush)
		n.close = append(n.close, wh.Close)
	}
	return n, nil
}
