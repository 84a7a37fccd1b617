package storage

import (
	"github.com/declinemon/declinemon/internal/secret"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/declinemon/declinemon/alerting"
)

// Config is the `clickhouse:` section. Storage is off when Addr is empty.
type Config struct {
	Addr        []string      `yaml:"addr"` // host:9000 (native protocol)
	Username    string        `yaml:"username"`
	Password    secret.String `yaml:"password"` // prefer DECLINEMON_CLICKHOUSE_PASSWORD
	TLS         bool          `yaml:"tls"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// WriteTimeout bounds each write to the server (default 1m): a server
	// that takes no bytes for that long fails the insert, which the
	// writer retries, instead of holding it.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	MaxOpenConns int           `yaml:"max_open_conns"`
	SchemaConfig `yaml:",inline"`
	// ConsumerGroup was storage's own Kafka group in earlier versions; it
	// is no longer used (storage shares kafka.group_id with detection) and
	// only accepted so that old configurations still load, with a warning.
	ConsumerGroup string `yaml:"consumer_group"`
	// Consumers is how many members of kafka.group_id an ingest instance
	// (detection off) runs in the process (default 2): while one waits for
	// ClickHouse to acknowledge its batch, another decodes the next (they
	// share the partitions).
	Consumers int `yaml:"consumers"`
	// BatchSize is how many events storage inserts at once (default:
	// kafka.batch_size when set, else 100000; kafka.flush_interval still
	// cuts smaller batches when the stream is slower). ClickHouse does
	// best with few, large inserts: 100K-event parts cost the server a
	// quarter less CPU per event than 50K ones, merges included (README,
	// Performance).
	BatchSize int          `yaml:"batch_size"`
	Writer    WriterConfig `yaml:"writer"`
}

// Validate checks the section.
func (c Config) Validate() error {
	var errs []error
	for _, a := range c.Addr {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("clickhouse.addr: %q is not host:port", a))
		}
	}
	if c.BusinessTimezone != "" {
		if _, err := time.LoadLocation(c.BusinessTimezone); err != nil || strings.ContainsAny(c.BusinessTimezone, "'\\") {
			errs = append(errs, fmt.Errorf("clickhouse.business_timezone: %q is not an IANA time zone", c.BusinessTimezone))
		}
	}
	if c.EventsTTLDays < 0 || c.RollupTTLDays < 0 || c.DialTimeout < 0 || c.WriteTimeout < 0 || c.MaxOpenConns < 0 || c.Consumers < 0 || c.BatchSize < 0 {
		errs = append(errs, errors.New("clickhouse: ttl days, dial_timeout, write_timeout, max_open_conns, consumers and batch_size must not be negative"))
	}
	return errors.Join(errs...)
}

// Enabled reports whether storage is configured.
func (c Config) Enabled() bool { return len(c.Addr) > 0 }

// Client is the thin clickhouse-go/v2 layer: migrations' Conn, the
// writer's Inserter, the alerts sink and the readiness ping.
type Client struct {
	conn driver.Conn
	cfg  Config
}

// Open connects (lazily: clickhouse-go dials on first use).
func Open(cfg Config) (*Client, error) {
	cfg.SchemaConfig = cfg.SchemaConfig.withDefaults()
	opts := &clickhouse.Options{
		Addr: cfg.Addr,
		// No database in the handshake: the server checks it before
		// migrate could create it (code 81 on a fresh server). Every
		// statement names its database.
		Auth:             clickhouse.Auth{Username: cfg.Username, Password: cfg.Password.Reveal()},
		DialTimeout:      cfg.DialTimeout,
		MaxOpenConns:     cfg.MaxOpenConns,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	}
	var tlsConfig *tls.Config
	if cfg.TLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	opts.DialContext = dialer(cfg.DialTimeout, cfg.WriteTimeout, tlsConfig)
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse: %w", err)
	}
	return &Client{conn: conn, cfg: cfg}, nil
}

// dialer is how the client connects: TCP (and TLS when configured, as
// clickhouse-go would), every connection bounding its writes.
func dialer(dialTimeout, writeTimeout time.Duration, tlsConfig *tls.Config) func(context.Context, string) (net.Conn, error) {
	if dialTimeout == 0 {
		dialTimeout = 30 * time.Second // clickhouse-go's default
	}
	if writeTimeout == 0 {
		writeTimeout = time.Minute
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if tlsConfig != nil {
			c := tlsConfig.Clone()
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(addr)
			}
			t := tls.Client(conn, c)
			hctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := t.HandshakeContext(hctx); err != nil {
				conn.Close()
				return nil, err
			}
			conn = t
		}
		return &writeBounded{Conn: conn, timeout: writeTimeout}, nil
	}
}

// writeBounded gives every write a deadline: timeout from its start, or
// the deadline clickhouse-go set from a context when that is sooner.
// clickhouse-go watches an insert's context only while it sends the last
// block (Insert checks it between blocks), and sets no write deadline of
// its own: a server that stops reading would otherwise hold the insert
// until the kernel gives up on the connection.
type writeBounded struct {
	net.Conn
	timeout time.Duration

	mu  sync.Mutex
	set time.Time // the write deadline clickhouse-go set (zero: none)
}

func (c *writeBounded) Write(b []byte) (int, error) {
	c.mu.Lock()
	d := time.Now().Add(c.timeout)
	if !c.set.IsZero() && c.set.Before(d) {
		d = c.set
	}
	err := c.Conn.SetWriteDeadline(d)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *writeBounded) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.set = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *writeBounded) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.set = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the connections.
func (c *Client) Close() error { return c.conn.Close() }

// Exec implements Conn.
func (c *Client) Exec(ctx context.Context, q string) error { return classify(c.conn.Exec(ctx, q)) }

// QueryStrings implements Conn; queries must select String columns.
func (c *Client) QueryStrings(ctx context.Context, q string) ([][]string, error) {
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out [][]string
	n := len(rows.Columns())
	for rows.Next() {
		vals := make([]string, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, classify(err)
		}
		out = append(out, vals)
	}
	return out, classify(rows.Err())
}

// InsertSettings are the settings every events insert carries, whatever
// the server's or the user's profile defaults are. Synchronous: the
// server answers once the parts (and the rollups' parts) are written, so
// an acknowledged batch is durable and offsets may follow it (ClickHouse
// 26.2 made async_insert=1 the default, where the answer can precede the
// write and deduplication works differently). Deduplicated by token in
// the table and in every materialized view, so a retried batch lands once.
func InsertSettings(token string) clickhouse.Settings {
	return clickhouse.Settings{
		"async_insert":               0,
		"insert_deduplicate":         1,
		"insert_deduplication_token": token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
		// Throughput, measured (README, Performance): LowCardinality
		// columns travel as plain strings and the server builds the
		// dictionaries (clickhouse-go's per-row dictionary encoding cost
		// 18 allocations an event), and no merge-on-insert sorting of
		// rows the tables collapse at merge anyway.
		"low_cardinality_allow_in_native_format": 0,
		"optimize_on_insert":                     0,
	}
}

// wireBlockRows is how many rows go into each block of an insert on the
// wire. The client fills one block of this size again and again instead
// of growing a whole batch's worth of wire columns: 100K-event inserts
// allocated 2.4 KB per event for them, most of declinemon's garbage
// (README, Performance). The server squashes the blocks of one INSERT
// again, so a batch under its squashing thresholds (min_insert_block_size_rows
// and _bytes: about a million rows, 256 MB) is still one part per
// partition, and its token drops a retry whole (verified on 26.7). A larger
// batch becomes several parts, each deduplicated by the token and its
// number, so a retry of the same columns is exact all the same.
const wireBlockRows = 8192

// Insert implements Inserter: one columnar batch with InsertSettings,
// sent in blocks of wireBlockRows. ctx is checked between blocks and
// watched while the last is sent; each write is bounded by the
// connection's write timeout (Config.WriteTimeout).
func (c *Client) Insert(ctx context.Context, cols *Columns, token string) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(InsertSettings(token)))
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.cfg.Database+".events ("+strings.Join(ColumnNames, ", ")+")")
	if err != nil {
		return classify(err)
	}
	for lo := 0; lo < cols.Len(); lo += wireBlockRows {
		if lo > 0 {
			if err := ctx.Err(); err != nil {
				b.Abort()
				return err
			}
			if err := b.Flush(); err != nil {
				b.Abort()
				return classify(err)
			}
		}
		for i, v := range cols.Rows(lo, min(lo+wireBlockRows, cols.Len())) {
			if err := b.Column(i).Append(v); err != nil {
				b.Abort()
				return &PermanentError{Err: fmt.Errorf("column %s: %w", ColumnNames[i], err)}
			}
		}
	}
	return classify(b.Send())
}

// StoredRanges implements RangeReader from the ingest_offsets table.
func (c *Client) StoredRanges(ctx context.Context, topic string, partitions []int, from int64) ([]OffsetRange, error) {
	parts := make([]uint16, len(partitions))
	for i, p := range partitions {
		parts[i] = uint16(p)
	}
	rows, err := c.conn.Query(ctx, "SELECT source_partition, lo, hi FROM "+c.cfg.Database+".ingest_offsets"+
		" WHERE source_topic = ? AND source_partition IN ? AND hi >= ? ORDER BY source_partition, lo", topic, parts, from)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []OffsetRange
	for rows.Next() {
		var p uint16
		r := OffsetRange{Topic: topic}
		if err := rows.Scan(&p, &r.Lo, &r.Hi); err != nil {
			return nil, classify(err)
		}
		r.Partition = int(p)
		out = append(out, r)
	}
	return out, classify(rows.Err())
}

// Send implements the pipeline's AlertSink: every alert record into the
// alerts table.
func (c *Client) Send(ctx context.Context, alerts []alerting.Alert) error {
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.cfg.Database+".alerts")
	if err != nil {
		return classify(err)
	}
	for _, a := range alerts {
		var ends *time.Time
		if a.EndsAt != nil {
			ends = a.EndsAt
		}
		if err := b.Append(a.ID, a.State, a.Kind.String(), a.Cause, a.ScopeType, a.ScopeID, a.StartsAt, a.DetectedAt, ends,
			uint64(a.Attempts), uint64(a.Failures), a.Rate, a.BaselineRate, uint32(a.Affected), a.Summary, a.Remedy, a.Labels); err != nil {
			b.Abort()
			return &PermanentError{Err: fmt.Errorf("alert row: %w", err)}
		}
	}
	return classify(b.Send())
}

// Ping checks the server answers and the schema is at this binary's
// version (readiness).
func (c *Client) Ping(ctx context.Context) error {
	if err := c.conn.Ping(ctx); err != nil {
		return classify(err)
	}
	v, err := Version(ctx, c, c.cfg.SchemaConfig)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == 81 || ex.Code == 60) { // no database, no schema_migrations
		return &PermanentError{Err: fmt.Errorf("no declinemon schema in database %s: run declinemon migrate (%w)", c.cfg.Database, err)}
	}
	if err != nil {
		return err
	}
	if v < Latest() {
		return fmt.Errorf("schema at version %d, this build needs %d: run declinemon migrate", v, Latest())
	}
	return nil
}

// permanentCodes are ClickHouse exception codes no retry can fix (164:
// the user's profile is read-only).
var permanentCodes = map[int32]bool{
	6: true, 16: true, 27: true, 36: true, 41: true, 44: true, 47: true, 53: true, 60: true, 62: true, 164: true,
	81: true, 117: true, 192: true, 193: true, 194: true, 497: true, 516: true,
}

func classify(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && permanentCodes[ex.Code] {
		return &PermanentError{Err: err}
	}
	return err
}
