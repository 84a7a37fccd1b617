package storage_test

// Storage against a real ClickHouse 26.7 server (chserver): the production
// wire — storage.Open, clickhouse-go/v2, native protocol, LZ4. Everything
// that inserts is tested here; chdb_test.go keeps what needs only SQL.

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	schema "github.com/declinemon/declinemon/deploy/clickhouse"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

func TestMain(m *testing.M) {
	chserver.Child()
	os.Exit(m.Run())
}

// TestMigrateOnAFreshServer: the first thing a new user runs. The database
// does not exist yet; migrate creates it, and again is a no-op.
func TestMigrateOnAFreshServer(t *testing.T) {
	s := chtest.Start(t)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	ctx := context.Background()
	applied, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil {
		t.Fatalf("migrate on a fresh server: %v", err)
	}
	if len(applied) != storage.Latest() {
		t.Fatalf("applied %v", applied)
	}
	if again, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil || len(again) != 0 {
		t.Fatalf("second migrate: %v, %v", again, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after migrate: %v", err)
	}
}

// migrated starts a server (with extra config.d files, if any), connects
// through storage.Open and migrates the default schema.
func migrated(t *testing.T, configD map[string]string) (*chserver.Server, *storage.Client) {
	t.Helper()
	s := chtest.StartWith(t, configD)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// recent is n accepted events one second apart ending a minute ago, over
// three terminals and two partitions, offsets from offset on; every third
// is a network failure.
func recent(n, offset int) []event.Classified {
	base := time.Now().UTC().Add(-time.Minute - time.Duration(n)*time.Second).Truncate(time.Millisecond)
	out := make([]event.Classified, n)
	for i := range out {
		term := i % 3
		out[i] = event.Classified{
			Event: event.Event{ID: fmt.Sprintf("e%d", offset+i), Time: base.Add(time.Duration(i) * time.Second),
				Terminal: fmt.Sprintf("T%d", term), Merchant: "M1", Region: "R1", Issuer: "BANK1", Host: "H1", Carrier: "CMCC", Network: "4g",
				Scheme: event.SchemeCUP, ResponseCode: "00", AmountMinor: int64(100 + i), LatencyMS: 250, BatteryPct: -1},
			Cause: event.CauseNone, Known: true, Topic: "pos.events", Partition: i % 2, Offset: int64(offset + i),
		}
		if i%3 == 0 {
			out[i].Cause = event.CauseNetwork
			out[i].Event.TerminalError = "COMM_TIMEOUT"
		}
	}
	return out
}

func columnsOf(batch []event.Classified) *storage.Columns {
	var c storage.Columns
	for i := range batch {
		c.Append(&batch[i])
	}
	return &c
}

// testAlerts is one incident's records: firing (no end), then resolved.
func testAlerts() []alerting.Alert {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	end := start.Add(20 * time.Minute)
	firing := alerting.Alert{ID: "a1", State: alerting.StateFiring, Kind: alerting.KindNetworkOutage, Cause: "network",
		ScopeType: "region", ScopeID: "R1", StartsAt: start, DetectedAt: start.Add(90 * time.Second), Attempts: 120, Failures: 80,
		Rate: 0.6667, BaselineRate: 0.01, Affected: 14, Summary: "network outage in R1", Remedy: "check the carrier",
		Labels: map[string]string{"region": "R1", "carrier": "CMCC"}}
	resolved := firing
	resolved.State, resolved.EndsAt = alerting.StateResolved, &end
	return []alerting.Alert{firing, resolved}
}

// stored is what the tables hold, read without FINAL: raw rows in events
// and sum(attempts) in each rollup.
type stored struct{ events, terminalMinutes, scopeMinutes int }

func readStored(t *testing.T, s *chserver.Server) stored {
	t.Helper()
	n := func(q string) int {
		v, err := strconv.Atoi(chtest.Value(t, s, q))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return stored{
		events:          n("SELECT count() FROM declinemon.events"),
		terminalMinutes: n("SELECT sum(attempts) FROM declinemon.terminal_minutes"),
		scopeMinutes:    n("SELECT sum(attempts) FROM declinemon.scope_minutes"),
	}
}

// TestInsertModeOnTheWire checks, in the server's own query log, how
// Client.Insert's INSERT ran: over the native protocol from clickhouse-go,
// synchronously and with every setting of storage.InsertSettings — on a
// server whose default profile says the opposite (async_insert=1, as
// ClickHouse 26.2+ defaults to, and no deduplication), so the values the
// log shows are the ones the client sent. Then what deduplication by
// token means: the same token twice stores the rows once, in events and in
// both rollups (read without FINAL); the same rows under another token are
// stored twice — dedup is by token, not by content (events FINAL collapses
// the copies, the rollups keep both).
func TestInsertModeOnTheWire(t *testing.T) {
	files := chtest.ProfileDefaults(map[string]string{"async_insert": "1", "insert_deduplicate": "0",
		"deduplicate_blocks_in_dependent_materialized_views": "0"})
	maps.Copy(files, chtest.QueryLog)
	s, c := migrated(t, files)
	ctx := context.Background()
	if v := chtest.Query(t, s, "SELECT getSetting('async_insert'), getSetting('insert_deduplicate'), getSetting('deduplicate_blocks_in_dependent_materialized_views')"); !reflect.DeepEqual(v, [][]string{{"true", "false", "false"}}) {
		t.Fatalf("the server's profile defaults are %v, want true false false", v)
	}
	chtest.Query(t, s, "SYSTEM STOP MERGES declinemon.events")
	batch := recent(30, 0)
	cols := columnsOf(batch)
	token := storage.Token(batch)
	if err := c.Insert(ctx, cols, token); err != nil {
		t.Fatal(err)
	}
	chtest.Query(t, s, "SYSTEM FLUSH LOGS")
	if v := chtest.Value(t, s, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'"); v != "1" {
		t.Fatal("system.query_log is not on: the insert mode cannot be checked")
	}
	logged := chtest.Query(t, s, fmt.Sprintf(`SELECT Settings['async_insert'], Settings['insert_deduplicate'],
		Settings['insert_deduplication_token'], Settings['deduplicate_blocks_in_dependent_materialized_views'],
		interface, client_name, written_rows, ProfileEvents['AsyncInsertQuery'],
		Settings['low_cardinality_allow_in_native_format'], Settings['optimize_on_insert']
		FROM system.query_log
		WHERE type = 'QueryFinish' AND query_kind = 'Insert' AND has(tables, 'declinemon.events')
		  AND Settings['insert_deduplication_token'] = '%s'`, token))
	if len(logged) != 1 {
		t.Fatalf("query_log has %d finished INSERTs into events with the batch's token, want 1: %v", len(logged), logged)
	}
	got := logged[0]
	want := storage.InsertSettings(token)
	for i, name := range []string{"async_insert", "insert_deduplicate", "insert_deduplication_token", "deduplicate_blocks_in_dependent_materialized_views"} {
		if got[i] != fmt.Sprint(want[name]) {
			t.Errorf("the INSERT ran with %s=%q, InsertSettings says %v", name, got[i], want[name])
		}
	}
	for i, name := range map[int]string{8: "low_cardinality_allow_in_native_format", 9: "optimize_on_insert"} {
		if got[i] != fmt.Sprint(want[name]) {
			t.Errorf("the INSERT ran with %s=%q, InsertSettings says %v", name, got[i], want[name])
		}
	}
	if got[4] != "1" || !strings.Contains(strings.ToLower(got[5]), "clickhouse-go") {
		t.Errorf("the INSERT came over interface %s from %q, want 1 (native TCP) from clickhouse-go", got[4], got[5])
	}
	if got[6] == "0" || got[7] != "0" {
		t.Errorf("written_rows %s, AsyncInsertQuery %s: want rows written by a synchronous insert", got[6], got[7])
	}
	t.Logf("query_log: async_insert=%s insert_deduplicate=%s dedup_in_views=%s interface=%s client=%q written_rows=%s", got[0], got[1], got[3], got[4], got[5], got[6])

	once := stored{events: 30, terminalMinutes: 30, scopeMinutes: 30}
	if st := readStored(t, s); st != once {
		t.Fatalf("after one insert: %+v, want %+v", st, once)
	}
	// The same batch again (a retry, or a redelivery after a crash before
	// the commit): same token, dropped in the table and in every view.
	if err := c.Insert(ctx, cols, token); err != nil {
		t.Fatal(err)
	}
	if st := readStored(t, s); st != once {
		t.Errorf("the same token twice: %+v, want the rows once %+v", st, once)
	}
	chtest.Query(t, s, "SYSTEM FLUSH LOGS")
	if dup := chtest.Value(t, s, fmt.Sprintf(`SELECT sum(ProfileEvents['DuplicatedInsertedBlocks']) FROM system.query_log
		WHERE type = 'QueryFinish' AND query_kind = 'Insert' AND has(tables, 'declinemon.events')
		  AND Settings['insert_deduplication_token'] = '%s'`, token)); dup == "0" {
		t.Errorf("the server did not report the second insert's blocks as duplicates")
	}
	// The same rows under another token (re-batched differently): stored
	// again. Dedup is by token.
	if err := c.Insert(ctx, cols, token+"-other"); err != nil {
		t.Fatal(err)
	}
	twice := stored{events: 60, terminalMinutes: 60, scopeMinutes: 60}
	if st := readStored(t, s); st != twice {
		t.Errorf("the same rows under another token: %+v, want them twice %+v", st, twice)
	}
	if v := chtest.Value(t, s, "SELECT count() FROM declinemon.events FINAL"); v != "30" {
		t.Errorf("events FINAL has %s rows, want 30 (ReplacingMergeTree collapses the copies)", v)
	}
}

// TestAnInsertOfManyWireBlocksIsOnePart: Client.Insert sends a batch in
// blocks of a few thousand rows; the server still makes of it one part
// per day partition of events and of each rollup (not one per block: more
// parts would cost merges), and the same token again is dropped whole,
// in the table and in every view.
func TestAnInsertOfManyWireBlocksIsOnePart(t *testing.T) {
	s, c := migrated(t, nil)
	ctx := context.Background()
	for _, tbl := range []string{"events", "terminal_minutes", "scope_minutes", "ingest_offsets"} {
		chtest.Query(t, s, "SYSTEM STOP MERGES declinemon."+tbl)
	}
	batch := recent(3*8192+5, 0)
	cols := columnsOf(batch)
	token := storage.Token(batch)
	if err := c.Insert(ctx, cols, token); err != nil {
		t.Fatal(err)
	}
	days := len(dayPartitions(batch))
	parts := func() map[string]string {
		out := map[string]string{}
		for _, r := range chtest.Query(t, s, `SELECT table, toString(count()) FROM system.parts
			WHERE database = 'declinemon' AND table != 'schema_migrations' AND active GROUP BY table`) {
			out[r[0]] = r[1]
		}
		return out
	}
	// events are partitioned by day, the rollups by month, ingest_offsets
	// not at all.
	months := len(monthPartitions(batch))
	want := map[string]string{"events": strconv.Itoa(days), "terminal_minutes": strconv.Itoa(months),
		"scope_minutes": strconv.Itoa(months), "ingest_offsets": "1"}
	if got := parts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("active parts after one insert of %d rows: %v, want %v", len(batch), got, want)
	}
	once := stored{events: len(batch), terminalMinutes: len(batch), scopeMinutes: len(batch)}
	if st := readStored(t, s); st != once {
		t.Fatalf("after one insert: %+v, want %+v", st, once)
	}
	// Fresh parts are compact up to 128 MB (migration 005), in the tables
	// every insert writes a large part of.
	for _, tbl := range []string{"events", "terminal_minutes", "scope_minutes"} {
		if v := chtest.Value(t, s, "SELECT extract(engine_full, 'min_bytes_for_wide_part = (\\d+)') FROM system.tables WHERE database = 'declinemon' AND name = '"+tbl+"'"); v != "134217728" {
			t.Errorf("%s: min_bytes_for_wide_part %q, want 134217728", tbl, v)
		}
		if v := chtest.Value(t, s, "SELECT arrayStringConcat(groupUniqArray(part_type)) FROM system.parts WHERE database = 'declinemon' AND active AND table = '"+tbl+"'"); v != "Compact" {
			t.Errorf("%s: parts are %q, want Compact", tbl, v)
		}
	}
	if err := c.Insert(ctx, cols, token); err != nil {
		t.Fatal(err)
	}
	if st := readStored(t, s); st != once {
		t.Errorf("the same token twice: %+v, want the rows once %+v", st, once)
	}
	if got := parts(); !reflect.DeepEqual(got, want) {
		t.Errorf("active parts after the same insert again: %v, want %v", got, want)
	}
}

// dayPartitions counts batch's events per UTC day.
func dayPartitions(batch []event.Classified) map[string]int {
	out := map[string]int{}
	for i := range batch {
		out[batch[i].Event.Time.UTC().Format(time.DateOnly)]++
	}
	return out
}

// monthPartitions counts batch's events per UTC month.
func monthPartitions(batch []event.Classified) map[string]int {
	out := map[string]int{}
	for i := range batch {
		out[batch[i].Event.Time.UTC().Format("2006-01")]++
	}
	return out
}

// TestColumnsRoundTripOnTheWire: every column the writer fills comes back
// as sent, edge values included (absent numbers, millisecond times,
// non-ASCII ids, the widest partition and offset).
func TestColumnsRoundTripOnTheWire(t *testing.T) {
	s, c := migrated(t, nil)
	batch := recent(4, 1<<40)
	batch[0].Event.Merchant = "商户-1"
	batch[0].Event.SignalDBM, batch[0].Event.HasSignal = -97, true
	batch[0].Event.LatencyMS, batch[0].Event.BatteryPct = -1, 100
	batch[1].Event.AmountMinor = -5 // stored as 0
	batch[1].Known = false
	batch[1].Cause = event.CauseIssuerCredit
	batch[1].Event.ResponseCode, batch[1].Event.CardBIN = "51", "62284804"
	batch[2].Partition = 65535
	batch[3].Event.Time = batch[3].Event.Time.Add(999 * time.Millisecond)
	cols := columnsOf(batch)
	if err := c.Insert(context.Background(), cols, storage.Token(batch)); err != nil {
		t.Fatal(err)
	}
	rows := chtest.Query(t, s, "SELECT "+strings.Join(storage.ColumnNames, ", ")+" FROM declinemon.events ORDER BY source_offset")
	if len(rows) != len(batch) {
		t.Fatalf("%d rows back, want %d", len(rows), len(batch))
	}
	vals := cols.Values()
	for i, row := range rows {
		for j, name := range storage.ColumnNames {
			sent := reflect.ValueOf(vals[j]).Index(i).Interface()
			var want string
			switch v := sent.(type) {
			case time.Time:
				want = v.UTC().Format("2006-01-02 15:04:05.000")
			default:
				want = fmt.Sprint(v)
			}
			if row[j] != want {
				t.Errorf("row %d %s: sent %q, read %q", i, name, want, row[j])
			}
		}
	}
}

// TestAlertsThroughSend: Client.Send writes alert records as the pipeline
// hands them over, firing (no end) and resolved alike.
func TestAlertsThroughSend(t *testing.T) {
	s, c := migrated(t, nil)
	if err := c.Send(context.Background(), testAlerts()); err != nil {
		t.Fatal(err)
	}
	rows := chtest.Query(t, s, `SELECT alert_id, state, kind, scope_type, scope_id, toString(starts_at), toString(ends_at),
		attempts, failures, rate, affected, labels['carrier'] FROM declinemon.alerts FINAL ORDER BY state`)
	want := [][]string{
		{"a1", "firing", alerting.KindNetworkOutage.String(), "region", "R1", "2026-11-27 10:00:00.000", `\N`, "120", "80", "0.6667", "14", "CMCC"},
		{"a1", "resolved", alerting.KindNetworkOutage.String(), "region", "R1", "2026-11-27 10:00:00.000", "2026-11-27 10:20:00.000", "120", "80", "0.6667", "14", "CMCC"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("alerts table:\n got %v\nwant %v", rows, want)
	}
}

// cookbookDay is a generated day with known counts: 4 merchants × 5 terminals
// over 3 regions and 2 issuers, the last 80 minutes; terminal T07 fails with
// hardware errors (and did less so ten days ago); issuer BANK2 is down for
// ten minutes.
func cookbookDay(now time.Time) []event.Classified {
	var out []event.Classified
	base := now.Add(-80 * time.Minute).Truncate(time.Minute)
	loc, _ := time.LoadLocation(storage.DefaultBusinessTimezone)
	y, mo, d := now.In(loc).Date()
	if sod := time.Date(y, mo, d, 0, 0, 0, 0, loc); base.Before(sod) {
		base = sod.UTC() // keep "today" (the business day) queries simple near midnight
	}
	add := func(ts time.Time, term int, issuer string, cause event.Cause, amount int64, off int) {
		ev := event.Event{ID: fmt.Sprintf("e-%d", off), Time: ts, Terminal: fmt.Sprintf("T%02d", term), Merchant: fmt.Sprintf("M%d", term/5),
			Region: fmt.Sprintf("R%d", term%3), Issuer: issuer, Carrier: "CMCC", Network: "4g", Host: "H1", Scheme: event.SchemeCUP,
			ResponseCode: "00", AmountMinor: amount, LatencyMS: 300, BatteryPct: -1}
		out = append(out, event.Classified{Event: ev, Cause: cause, Known: true, Topic: "pos.events", Partition: term % 4, Offset: int64(off)})
	}
	off := 0
	for m := 0; m < 60; m++ {
		ts := base.Add(time.Duration(m) * time.Minute)
		if ts.After(now.Add(-time.Minute)) {
			break
		}
		for term := 0; term < 20; term++ {
			issuer := []string{"BANK1", "BANK2"}[term%2]
			cause := event.CauseNone
			switch {
			case term == 7:
				cause = event.CauseHardware
			case issuer == "BANK2" && m >= 20 && m < 30:
				cause = event.CauseMaintenance
			case (m+term)%10 == 0:
				cause = event.CauseIssuerCredit
			}
			add(ts.Add(time.Duration(term)*time.Second), term, issuer, cause, int64(1000+term), off)
			off++
		}
	}
	lastWeek := now.Add(-10 * 24 * time.Hour)
	for i := 0; i < 3; i++ {
		add(lastWeek.Add(time.Duration(i)*time.Minute), 7, "BANK1", event.CauseHardware, 500, off)
		off++
	}
	return out
}

// TestWriterRollupsAndCookbook: a generated day goes through storage.Writer
// over the wire in batches, one batch is redelivered whole (to the same
// writer, and to a new one as after a restart), and the raw table, both
// rollups and every cookbook query agree with the stream.
func TestWriterRollupsAndCookbook(t *testing.T) {
	s, c := migrated(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	events := cookbookDay(now)
	w := storage.NewWriter(c, storage.WriterConfig{})
	const size = 200
	for i := 0; i < len(events); i += size {
		if err := w.Write(ctx, events[i:min(i+size, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	// A batch redelivered whole after a crash before the commit.
	if err := w.Write(ctx, events[size:2*size]); err != nil {
		t.Fatal(err)
	}
	if err := storage.NewWriter(c, storage.WriterConfig{}).Write(ctx, events[size:2*size]); err != nil {
		t.Fatal(err)
	}

	// Expected per merchant/terminal/cause/minute.
	want := map[string]int{}
	for _, a := range events {
		cause := a.Cause.String()
		want[fmt.Sprintf("%s|%s|%s|%s", a.Event.Merchant, a.Event.Terminal, cause, a.Event.Time.Truncate(time.Minute).Format("2006-01-02 15:04:05"))]++
	}
	got := func(q string) map[string]int {
		m := map[string]int{}
		for _, r := range chtest.Query(t, s, q) {
			n, _ := strconv.Atoi(r[4])
			m[strings.Join(r[:4], "|")] = n
		}
		return m
	}
	rollup := got("SELECT merchant_id, terminal_id, cause, toString(minute), sum(attempts) FROM declinemon.terminal_minutes GROUP BY merchant_id, terminal_id, cause, minute")
	raw := got("SELECT merchant_id, terminal_id, cause, toString(toStartOfMinute(ts)), count() FROM declinemon.events FINAL GROUP BY merchant_id, terminal_id, cause, toStartOfMinute(ts)")
	if !reflect.DeepEqual(raw, want) {
		t.Errorf("raw table (FINAL) disagrees with the generated stream: %d vs %d keys", len(raw), len(want))
	}
	if !reflect.DeepEqual(rollup, want) {
		t.Errorf("rollup disagrees with the generated stream (redelivered batch double-counted?): %d vs %d keys", len(rollup), len(want))
	}
	if st := readStored(t, s); st.events != len(events) || st.terminalMinutes != len(events) || st.scopeMinutes != len(events) {
		t.Errorf("without FINAL: %+v, want %d everywhere", st, len(events))
	}
	if v := chtest.Value(t, s, "SELECT uniqMerge(terminals) FROM declinemon.scope_minutes"); v != "20" {
		t.Errorf("scope_minutes: %s terminals, want 20", v)
	}

	query := func(name string) [][]string {
		data, err := fs.ReadFile(schema.Queries, "queries/"+name+".sql")
		if err != nil {
			t.Fatal(err)
		}
		q := strings.NewReplacer("${db}", "declinemon", "${tz}", storage.DefaultBusinessTimezone).Replace(string(data))
		rows, err := chtest.TryQuery(s, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return rows
	}
	recentEvents := events[:len(events)-3]

	// Declined amount per merchant: exact sums.
	declAmount := map[string]int64{}
	for _, a := range recentEvents {
		if a.Cause != event.CauseNone {
			declAmount[a.Event.Merchant] += a.Event.AmountMinor
		}
	}
	for _, r := range query("declined_amount_per_merchant") {
		if n, _ := strconv.ParseInt(r[3], 10, 64); n != declAmount[r[0]] {
			t.Errorf("declined amount of %s = %s, want %d", r[0], r[3], declAmount[r[0]])
		}
	}
	// Top failing terminal today is T07, every attempt a hardware failure.
	top := query("top_failing_terminals_today")
	if len(top) == 0 || top[0][0] != "T07" || top[0][4] != "1" || top[0][5] != "hardware" {
		t.Errorf("top failing terminals: %v", top)
	}
	// Hardware failures rising: only T07, this week vs 3 last week.
	rising := query("hardware_failures_rising_this_week")
	if len(rising) != 1 || rising[0][0] != "T07" || rising[0][3] != "3" {
		t.Errorf("hardware rising: %v", rising)
	}
	// Issuer outage timeline: BANK2 for exactly its ten minutes.
	timeline := query("issuer_outage_timeline")
	if len(timeline) != 10 {
		t.Errorf("issuer timeline has %d minutes, want 10: %v", len(timeline), timeline)
	}
	for _, r := range timeline {
		if r[1] != "BANK2" {
			t.Errorf("timeline row %v", r)
		}
	}
	// Cause mix by region: counts match.
	mix := map[string]int{}
	for _, a := range recentEvents {
		if a.Cause != event.CauseNone {
			mix[a.Event.Region+"|"+a.Cause.String()]++
		}
	}
	for _, r := range query("cause_mix_by_region") {
		if n, _ := strconv.Atoi(r[2]); n != mix[r[0]+"|"+r[1]] {
			t.Errorf("cause mix %s/%s = %s, want %d", r[0], r[1], r[2], mix[r[0]+"|"+r[1]])
		}
	}
	// Decline rate per merchant per hour: attempts add up.
	total := 0
	for _, r := range query("decline_rate_per_merchant_per_hour") {
		n, _ := strconv.Atoi(r[2])
		total += n
	}
	if total != len(recentEvents) {
		t.Errorf("hourly attempts add up to %d, want %d", total, len(recentEvents))
	}
	keys := make([]string, 0, len(mix))
	for k := range mix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d events (+1 batch of %d redelivered twice) → %d rollup keys; cause mix %v", len(events), size, len(rollup), keys)
}
