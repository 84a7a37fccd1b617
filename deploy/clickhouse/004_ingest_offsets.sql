-- What is stored, per Kafka partition: every events insert adds, through
-- this view and in the same insert, one row per source partition with the
-- offset range the batch covered (all accepted events of the partition in
-- [lo, hi]; rejected messages are gaps). After a crash or a rebalance the
-- writer reads these ranges and skips re-delivered events that are already
-- stored, so events and every rollup hold each event once without FINAL.
CREATE TABLE IF NOT EXISTS ${db}.ingest_offsets
(
    source_topic     LowCardinality(String),
    source_partition UInt16,
    lo               Int64,
    hi               Int64,
    events           UInt64,
    inserted_at      DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY (source_topic, source_partition, hi)
TTL inserted_at + INTERVAL ${events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.ingest_offsets_mv TO ${db}.ingest_offsets AS
SELECT source_topic, source_partition, min(source_offset) AS lo, max(source_offset) AS hi, count() AS events
FROM ${db}.events
GROUP BY source_topic, source_partition;

-- Upgrading from a version without this table: what it stored, per
-- partition, is one contiguous range (it wrote every batch in order), so
-- the storage consumer, whose own group starts from the beginning of what
-- Kafka keeps, skips it instead of storing it again. One scan of three
-- columns of events, once.
INSERT INTO ${db}.ingest_offsets (source_topic, source_partition, lo, hi, events)
SELECT source_topic, source_partition, min(source_offset), max(source_offset), count()
FROM ${db}.events
GROUP BY source_topic, source_partition;
