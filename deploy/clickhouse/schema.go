// Package clickhouse holds declinemon's ClickHouse schema as versioned SQL
// files, applied in order by `declinemon migrate` (and on `run`), and the
// analyst cookbook queries. The tests apply the same files.
//
// Placeholders: ${db} (database), ${events_ttl_days}, ${rollup_ttl_days}, ${tz} (business time zone).
// Rejected messages are not stored here: the dead-letter topic is their
// record (masked, with reason and source headers).
package clickhouse

import "embed"

// Migrations are NNN_name.sql files; statements end with ";" at a line end.
//
//go:embed *.sql
var Migrations embed.FS

// Queries are the analyst cookbook, one query per file, against the
// default database "declinemon".
//
//go:embed queries/*.sql
var Queries embed.FS
