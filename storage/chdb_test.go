//go:build chdb

// These tests run the schema, the rollups and the cookbook queries on a
// real ClickHouse engine (26.7) in-process: chdb's libchdb.so, driven by
// chdb-go. Run with: CHDB_LIB_PATH=/path/libchdb.so go test -tags chdb ./storage
// (make test fetches the library and does this).
package storage_test

import (
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	schema "github.com/declinemon/declinemon/deploy/clickhouse"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/internal/chdbtest"
	"github.com/declinemon/declinemon/storage"
)

func TestMigrateOnChdb(t *testing.T) {
	c := chdbtest.New(t)
	ctx := context.Background()
	applied, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != storage.Latest() {
		t.Fatalf("applied %v on a fresh database", applied)
	}
	again, err := storage.Migrate(ctx, c, storage.SchemaConfig{})
	if err != nil || len(again) != 0 {
		t.Fatalf("re-run applied %v, %v", again, err)
	}
	if v, err := storage.Version(ctx, c, storage.SchemaConfig{}); err != nil || v != storage.Latest() {
		t.Fatalf("version %d, %v", v, err)
	}
	rows, _ := c.QueryStrings(ctx, "SELECT toString(count()) FROM declinemon.schema_migrations")
	if rows[0][0] != strconv.Itoa(storage.Latest()) {
		t.Errorf("schema_migrations has %s rows", rows[0][0])
	}
}

// TestColumnTypesMatchSchema checks the Go side of the wire against the
// table: every inserted column exists with a type its Go slice can fill,
// and every column without a default is inserted.
func TestColumnTypesMatchSchema(t *testing.T) {
	c := chdbtest.New(t)
	ctx := context.Background()
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	rows, err := c.QueryStrings(ctx, "DESCRIBE TABLE declinemon.events")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	defaulted := map[string]bool{}
	for _, r := range rows {
		types[r[0]] = r[1]
		defaulted[r[0]] = r[2] != ""
	}
	compatible := map[string][]string{
		"[]string":    {"String", "LowCardinality(String)", "Enum8("},
		"[]time.Time": {"DateTime64("},
		"[]bool":      {"Bool"},
		"[]int64":     {"Int64"},
		"[]int32":     {"Int32"},
		"[]int16":     {"Int16"},
		"[]int8":      {"Int8"},
		"[]uint16":    {"UInt16"},
	}
	var cols storage.Columns
	inserted := map[string]bool{}
	for i, v := range cols.Values() {
		name := storage.ColumnNames[i]
		inserted[name] = true
		goType := reflect.TypeOf(v).String()
		chType, ok := types[name]
		if !ok {
			t.Errorf("column %s is not in the table", name)
			continue
		}
		match := false
		for _, prefix := range compatible[goType] {
			if strings.HasPrefix(chType, prefix) {
				match = true
			}
		}
		if !match {
			t.Errorf("column %s: Go %s cannot fill ClickHouse %s", name, goType, chType)
		}
	}
	for name := range types {
		if !inserted[name] && !defaulted[name] {
			t.Errorf("table column %s has no default and is not inserted", name)
		}
	}
}

// stream is a generated day with known counts: 4 merchants × 5 terminals
// over 3 regions and 2 issuers, the last 80 minutes; terminal T07 fails with
// hardware errors (and did less so ten days ago); issuer BANK2 is down for
// ten minutes.
func stream(now time.Time) []event.Classified {
	var out []event.Classified
	base := now.Add(-80 * time.Minute).Truncate(time.Minute)
	if sod := now.Truncate(24 * time.Hour); base.Before(sod) {
		base = sod // keep "today" queries simple near midnight
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

func TestRollupsAndCookbookOnChdb(t *testing.T) {
	c := chdbtest.New(t)
	ctx := context.Background()
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	events := stream(now)
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

	// Expected per merchant/terminal/cause/minute.
	want := map[string]int{}
	for _, a := range events {
		cause := a.Cause.String()
		want[fmt.Sprintf("%s|%s|%s|%s", a.Event.Merchant, a.Event.Terminal, cause, a.Event.Time.Truncate(time.Minute).Format("2006-01-02 15:04:05"))]++
	}
	got := func(q string) map[string]int {
		rows, err := c.QueryStrings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, r := range rows {
			n, _ := strconv.Atoi(r[4])
			m[strings.Join(r[:4], "|")] = n
		}
		return m
	}
	rollup := got("SELECT merchant_id, terminal_id, cause, toString(minute), toString(sum(attempts)) FROM declinemon.terminal_minutes GROUP BY merchant_id, terminal_id, cause, minute")
	raw := got("SELECT merchant_id, terminal_id, cause, toString(toStartOfMinute(ts)), toString(count()) FROM declinemon.events FINAL GROUP BY merchant_id, terminal_id, cause, toStartOfMinute(ts)")
	if !reflect.DeepEqual(raw, want) {
		t.Errorf("raw table (FINAL) disagrees with the generated stream: %d vs %d keys", len(raw), len(want))
	}
	if !reflect.DeepEqual(rollup, want) {
		t.Errorf("rollup disagrees with the generated stream (redelivered batch double-counted?): %d vs %d keys", len(rollup), len(want))
	}
	scope, _ := c.QueryStrings(ctx, "SELECT toString(sum(attempts)), toString(uniqMerge(terminals)) FROM declinemon.scope_minutes")
	if scope[0][0] != strconv.Itoa(len(events)) || scope[0][1] != "20" {
		t.Errorf("scope_minutes: %v attempts/terminals, want %d/20", scope[0], len(events))
	}

	query := func(name string) [][]string {
		data, err := fs.ReadFile(schema.Queries, "queries/"+name+".sql")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := c.QueryStrings(ctx, string(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return rows
	}
	recent := events[:len(events)-3]

	// Declined amount per merchant: exact sums.
	declAmount := map[string]int64{}
	for _, a := range recent {
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
	for _, a := range recent {
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
	if total != len(recent) {
		t.Errorf("hourly attempts add up to %d, want %d", total, len(recent))
	}
	keys := make([]string, 0, len(mix))
	for k := range mix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d events (+1 redelivered batch of %d) → %d rollup keys; cause mix %v", len(events), size, len(rollup), keys)
}
