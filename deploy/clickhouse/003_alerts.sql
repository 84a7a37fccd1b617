-- Every alerts-v1 record, firing and resolved (same alert_id).
CREATE TABLE IF NOT EXISTS ${db}.alerts
(
    alert_id      String,
    state         LowCardinality(String),
    kind          LowCardinality(String),
    cause         LowCardinality(String),
    scope_type    LowCardinality(String),
    scope_id      String,
    starts_at     DateTime64(3, 'UTC'),
    detected_at   DateTime64(3, 'UTC'),
    ends_at       Nullable(DateTime64(3, 'UTC')),
    attempts      UInt64,
    failures      UInt64,
    rate          Float64,
    baseline_rate Float64,
    affected      UInt32,
    summary       String,
    remedy        String,
    labels        Map(LowCardinality(String), String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (alert_id, state)
TTL toDateTime(detected_at) + INTERVAL ${rollup_ttl_days} DAY;
