-- Raw classified attempts. Never card data beyond card_bin (6..8 digits).
-- ReplacingMergeTree on (merchant, terminal, ts, event_id): a redelivered
-- event collapses into one row at merge time; exact counts over raw rows
-- use FINAL (or the events_dedup view). Whole redelivered batches are also
-- dropped at insert by insert_deduplication_token.
CREATE TABLE IF NOT EXISTS ${db}.events
(
    event_id         String CODEC(ZSTD(1)),
    ts               DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    terminal_id      String CODEC(ZSTD(1)),
    merchant_id      String CODEC(ZSTD(1)),
    outcome          Enum8('approved' = 1, 'declined' = 2),
    cause            LowCardinality(String),
    code             LowCardinality(String),
    known_code       Bool,
    response_code    LowCardinality(String),
    terminal_error   LowCardinality(String),
    scheme           LowCardinality(String),
    txn_type         LowCardinality(String),
    amount_minor     Int64 CODEC(T64, ZSTD(1)),
    currency         LowCardinality(String),
    entry_mode       LowCardinality(String),
    card_bin         LowCardinality(String),
    issuer_id        LowCardinality(String),
    acquirer_id      LowCardinality(String),
    host_id          LowCardinality(String),
    region           LowCardinality(String),
    network          LowCardinality(String),
    carrier          LowCardinality(String),
    model            LowCardinality(String),
    firmware         LowCardinality(String),
    signal_dbm       Int16,
    latency_ms       Int32 CODEC(T64, ZSTD(1)),
    battery_pct      Int8,
    source_topic     LowCardinality(String),
    source_partition UInt16,
    source_offset    Int64 CODEC(Delta, ZSTD(1)),
    inserted_at      DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(ts)
ORDER BY (merchant_id, terminal_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL ${events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE VIEW IF NOT EXISTS ${db}.events_dedup AS SELECT * FROM ${db}.events FINAL;
