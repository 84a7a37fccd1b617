// Package chaos is a fault-injection suite for `declinemon run` against a
// real Kafka broker (see chaos_test.go): kill -9 at lag 0 and at random
// points, a broker outage, a topic created late, an oversized message and
// a standby takeover, each compared with what `declinemon replay` raises
// for the same events; and, with a real ClickHouse server, a storage
// outage and kill -9 while storing, checked against the events produced.
package chaos
