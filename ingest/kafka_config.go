package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	saslplain "github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/declinemon/declinemon/internal/secret"
)

// KafkaConfig is the `kafka:` section: where `declinemon run` reads from
// and writes rejects and forwards to.
type KafkaConfig struct {
	Brokers []string `yaml:"brokers"` // host:port, at least one
	Topics  []string `yaml:"topics"`  // event-v1 topics to consume
	GroupID string   `yaml:"group_id"`
	// DLQTopic receives every rejected message, masked, with headers
	// saying why and where from.
	DLQTopic string `yaml:"dlq_topic"`
	// ForwardTopic, when set, receives every accepted event, re-encoded
	// from what the decoder accepted: the feed of a separate detection
	// stage (see README "Scaling out").
	ForwardTopic string `yaml:"forward_topic"`
	// StartOffset for a group without committed offsets: earliest or latest.
	StartOffset string `yaml:"start_offset"`
	// BatchSize messages, or FlushInterval, whichever first, make one
	// flush: storage write, DLQ and forward writes, then one commit.
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	MinBytes      int           `yaml:"min_bytes"`
	MaxBytes      int           `yaml:"max_bytes"`
	MaxWait       time.Duration `yaml:"max_wait"`
	// ShutdownTimeout bounds the final flush and commit on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	ClientID        string        `yaml:"client_id"`
	// Group membership: a member that sends no heartbeat for
	// SessionTimeout is dropped; RebalanceTimeout bounds a rebalance.
	// After a crash, and after a broker outage (the consumer rejoins under
	// a new member id), the group waits for the old member's session to
	// expire: the defaults (6s, the broker's minimum by default; 1s; 10s)
	// bring consumption back about six seconds later.
	SessionTimeout    time.Duration `yaml:"session_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout"`
	// PartitionWatchInterval is how often topics are checked for new
	// partitions, and for existence when they are missing (default 5s).
	PartitionWatchInterval time.Duration `yaml:"partition_watch_interval"`
	// DLQMaxMessageBytes caps a dead letter (payload and headers) below
	// what the dead-letter topic accepts (broker default 1 MB): a longer
	// masked payload is truncated and says so in a header.
	DLQMaxMessageBytes int `yaml:"dlq_max_message_bytes"`
	// CheckpointTopic keeps a detection-enabled instance's detector
	// checkpoints and alert journal (compacted, one partition, created
	// when missing; default "<group_id>.checkpoints"). Offsets are
	// committed only together with a checkpoint, at most every
	// CheckpointInterval (default 10s; longer when a checkpoint takes
	// long, see README "Detector checkpoints").
	CheckpointTopic             string        `yaml:"checkpoint_topic"`
	CheckpointInterval          time.Duration `yaml:"checkpoint_interval"`
	CheckpointReplicationFactor int           `yaml:"checkpoint_replication_factor"` // -1: the broker's default
	TLS                         TLSConfig     `yaml:"tls"`
	SASL                        SASLConfig    `yaml:"sasl"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // PEM bundle; empty = system roots
	CertFile           string `yaml:"cert_file"` // client certificate (mutual TLS)
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	Mechanism string        `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty = none
	Username  string        `yaml:"username"`
	Password  secret.String `yaml:"password"`
}

// WithDefaults fills every zero field with its default.
func (k KafkaConfig) WithDefaults() KafkaConfig {
	if k.GroupID == "" {
		k.GroupID = "declinemon"
	}
	if k.DLQTopic == "" {
		k.DLQTopic = "declinemon.dlq"
	}
	if k.StartOffset == "" {
		k.StartOffset = "earliest"
	}
	if k.BatchSize == 0 {
		k.BatchSize = 50000
	}
	if k.FlushInterval == 0 {
		k.FlushInterval = time.Second
	}
	if k.MinBytes == 0 {
		k.MinBytes = 1
	}
	if k.MaxBytes == 0 {
		k.MaxBytes = 1 << 20
	}
	if k.MaxWait == 0 {
		k.MaxWait = 250 * time.Millisecond
	}
	if k.ShutdownTimeout == 0 {
		k.ShutdownTimeout = 20 * time.Second
	}
	if k.ClientID == "" {
		k.ClientID = "declinemon"
	}
	if k.DLQMaxMessageBytes == 0 {
		k.DLQMaxMessageBytes = 1_000_000
	}
	if k.SessionTimeout == 0 {
		k.SessionTimeout = 6 * time.Second
	}
	if k.HeartbeatInterval == 0 {
		k.HeartbeatInterval = time.Second
	}
	if k.RebalanceTimeout == 0 {
		k.RebalanceTimeout = 10 * time.Second
	}
	if k.PartitionWatchInterval == 0 {
		k.PartitionWatchInterval = 5 * time.Second
	}
	if k.CheckpointTopic == "" {
		k.CheckpointTopic = k.GroupID + ".checkpoints"
	}
	if k.CheckpointInterval == 0 {
		k.CheckpointInterval = 10 * time.Second
	}
	if k.CheckpointReplicationFactor == 0 {
		k.CheckpointReplicationFactor = -1
	}
	return k
}

// Validate checks everything `run` needs before connecting, with the
// offending key named. It never quotes a secret.
func (k KafkaConfig) Validate() error {
	var errs []error
	if len(k.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers: at least one broker (host:port) is required"))
	}
	for _, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("kafka.brokers: %q is not host:port", b))
		} else if _, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("kafka.brokers: %q has a non-numeric port", b))
		}
	}
	if len(k.Topics) == 0 {
		errs = append(errs, errors.New("kafka.topics: at least one topic to consume is required"))
	}
	for _, t := range k.Topics {
		if t == k.DLQTopic || (k.ForwardTopic != "" && t == k.ForwardTopic) {
			errs = append(errs, fmt.Errorf("kafka.topics: %q is also the dlq or forward topic (a loop)", t))
		}
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		errs = append(errs, fmt.Errorf("kafka.start_offset %q: want earliest or latest", k.StartOffset))
	}
	if k.BatchSize < 1 || k.FlushInterval < 10*time.Millisecond || k.MaxWait <= 0 || k.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("kafka.batch_size must be >= 1, flush_interval >= 10ms, max_wait and shutdown_timeout > 0"))
	}
	if k.HeartbeatInterval <= 0 || k.SessionTimeout < 3*k.HeartbeatInterval || k.RebalanceTimeout <= 0 || k.PartitionWatchInterval <= 0 {
		errs = append(errs, errors.New("kafka.session_timeout must be at least 3 heartbeat_interval; heartbeat_interval, rebalance_timeout and partition_watch_interval > 0"))
	}
	if k.DLQMaxMessageBytes < 4096 {
		errs = append(errs, fmt.Errorf("kafka.dlq_max_message_bytes %d: want at least 4096", k.DLQMaxMessageBytes))
	}
	if k.CheckpointInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("kafka.checkpoint_interval %s: want at least 100ms", k.CheckpointInterval))
	}
	if k.CheckpointReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("kafka.checkpoint_replication_factor %d: want -1 (broker default) or at least 1", k.CheckpointReplicationFactor))
	}
	for _, t := range append(slices.Clone(k.Topics), k.DLQTopic, k.ForwardTopic) {
		if t != "" && t == k.CheckpointTopic {
			errs = append(errs, fmt.Errorf("kafka.checkpoint_topic %q is also a consumed, dlq or forward topic", t))
		}
	}
	if k.MinBytes < 1 || k.MaxBytes < k.MinBytes {
		errs = append(errs, errors.New("kafka.min_bytes must be >= 1 and <= max_bytes"))
	}
	if _, err := k.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	if _, err := k.saslMechanism(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (k KafkaConfig) tlsConfig() (*tls.Config, error) {
	t := k.TLS
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			return nil, errors.New("kafka.tls: files given but tls.enabled is false")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file %s: no PEM certificates", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("kafka.tls: cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (k KafkaConfig) saslMechanism() (sasl.Mechanism, error) {
	s := k.SASL
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka.sasl: username/password given but no mechanism")
		}
		return nil, nil
	}
	if s.Username == "" || s.Password == "" {
		return nil, fmt.Errorf("kafka.sasl: mechanism %s needs username and password", s.Mechanism)
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return saslplain.Mechanism{Username: s.Username, Password: s.Password.Reveal()}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		alg := scram.SHA256
		if strings.HasSuffix(strings.ToUpper(s.Mechanism), "512") {
			alg = scram.SHA512
		}
		m, err := scram.Mechanism(alg, s.Username, s.Password.Reveal())
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// dialer and transport carry TLS and SASL for the reader and writers.
func (k KafkaConfig) dialer() (*kafka.Dialer, *kafka.Transport, error) {
	tlsCfg, err := k.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	mech, err := k.saslMechanism()
	if err != nil {
		return nil, nil, err
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second, ClientID: k.ClientID, TLS: tlsCfg, SASLMechanism: mech, DialFunc: dialBuffered}
	t := &kafka.Transport{DialTimeout: 10 * time.Second, ClientID: k.ClientID, TLS: tlsCfg, SASL: mech}
	return d, t, nil
}

// fetchReadBuffer is how much of a broker's response one read system call
// may take. kafka-go reads responses through a 4 KiB bufio.Reader, which
// makes an 8 MiB fetch two thousand reads: 8% of the consumer's CPU at
// 150K events/s (README, Performance). It is allocated per connection,
// about one per assigned partition and group.
const fetchReadBuffer = 128 << 10

// dialBuffered connects to a broker through a connection that reads in
// fetchReadBuffer chunks (TLS, when configured, runs over it).
func dialBuffered(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, fetchReadBuffer)}, nil
}

// bufferedConn is a broker connection read through a large buffer.
// Deadlines still apply to every read that reaches the socket.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
