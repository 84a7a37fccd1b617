-- Per-minute rollups fed by materialized views: what dashboards query.
-- terminal_minutes: per terminal (and its merchant), cause and dimension;
-- cause is 'approved' for approvals. Summed at merge: query with sum().
CREATE TABLE IF NOT EXISTS ${db}.terminal_minutes
(
    minute       DateTime('UTC'),
    merchant_id  String,
    terminal_id  String,
    cause        LowCardinality(String),
    region       LowCardinality(String),
    carrier      LowCardinality(String),
    host_id      LowCardinality(String),
    issuer_id    LowCardinality(String),
    attempts     UInt64,
    amount_minor Int64
)
ENGINE = SummingMergeTree((attempts, amount_minor))
PARTITION BY toYYYYMM(minute)
ORDER BY (merchant_id, terminal_id, minute, cause, region, carrier, host_id, issuer_id)
TTL minute + INTERVAL ${rollup_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.terminal_minutes_mv TO ${db}.terminal_minutes AS
SELECT toStartOfMinute(ts) AS minute, merchant_id, terminal_id, cause, region, carrier, host_id, issuer_id,
       count() AS attempts, sum(amount_minor) AS amount_minor
FROM ${db}.events
GROUP BY minute, merchant_id, terminal_id, cause, region, carrier, host_id, issuer_id;

-- scope_minutes: fleet dimensions with distinct affected terminals, for
-- network and issuer views. Query with sum(attempts), uniqMerge(terminals).
CREATE TABLE IF NOT EXISTS ${db}.scope_minutes
(
    minute    DateTime('UTC'),
    region    LowCardinality(String),
    carrier   LowCardinality(String),
    network   LowCardinality(String),
    host_id   LowCardinality(String),
    issuer_id LowCardinality(String),
    cause     LowCardinality(String),
    attempts  SimpleAggregateFunction(sum, UInt64),
    terminals AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, region, carrier, network, host_id, issuer_id, cause)
TTL minute + INTERVAL ${rollup_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.scope_minutes_mv TO ${db}.scope_minutes AS
SELECT toStartOfMinute(ts) AS minute, region, carrier, network, host_id, issuer_id, cause,
       count() AS attempts, uniqState(terminal_id) AS terminals
FROM ${db}.events
GROUP BY minute, region, carrier, network, host_id, issuer_id, cause;
