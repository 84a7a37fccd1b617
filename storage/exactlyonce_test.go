package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// stream is a topic's worth of classified events: three partitions, event
// times across a UTC midnight (two table partitions per insert), a few
// offsets missing (messages rejected to the dead-letter topic).
func stream(perPartition int) [][]event.Classified {
	rng := rand.New(rand.NewPCG(7, 7))
	causes := []event.Cause{event.CauseNone, event.CauseNone, event.CauseNone, event.CauseNetwork, event.CauseHardware, event.CauseIssuerCredit}
	t0 := time.Date(2026, 11, 27, 23, 50, 0, 0, time.UTC)
	out := make([][]event.Classified, 3)
	for p := range out {
		for off := 0; off < perPartition; off++ {
			if rng.IntN(200) == 0 {
				continue // rejected: never stored
			}
			cause := causes[rng.IntN(len(causes))]
			ev := event.Event{ID: fmt.Sprintf("p%d-o%d", p, off), Time: t0.Add(time.Duration(off) * 150 * time.Millisecond),
				Terminal: "T" + strconv.Itoa(rng.IntN(40)), Merchant: "M" + strconv.Itoa(rng.IntN(7)), Scheme: event.SchemeCUP,
				ResponseCode: "00", AmountMinor: int64(rng.IntN(10000)), LatencyMS: -1, BatteryPct: -1, Region: "R" + strconv.Itoa(p)}
			if cause != event.CauseNone {
				ev.ResponseCode, ev.TerminalError = "", "COMM_TIMEOUT"
			}
			out[p] = append(out[p], event.Classified{Event: ev, Cause: cause, Topic: "pos.events", Partition: p, Offset: int64(off)})
		}
	}
	return out
}

// deliver interleaves the partitions' events from the given positions
// into batches of size n, as a consumer with one fetch per partition
// turn would.
func deliver(parts [][]event.Classified, from []int, to []int, n int) [][]event.Classified {
	var all []event.Classified
	pos := append([]int(nil), from...)
	for {
		moved := false
		for p := range parts {
			for k := 0; k < 37 && pos[p] < to[p]; k++ {
				all = append(all, parts[p][pos[p]])
				pos[p]++
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	var out [][]event.Classified
	for len(all) > 0 {
		k := min(n, len(all))
		out = append(out, all[:k])
		all = all[k:]
	}
	return out
}

// TestRedeliveryIsStoredExactlyOnce: a writer stores part of a stream and
// dies; the next one (a restarted process, or another group member) is
// re-delivered everything from older offsets, cut into different batches.
// The events table and both rollups count each event once, without FINAL,
// and match counts computed here from the stream itself.
func TestRedeliveryIsStoredExactlyOnce(t *testing.T) {
	s := chtest.Start(t)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	ctx := context.Background()
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	parts := stream(3000)
	ends := []int{len(parts[0]), len(parts[1]), len(parts[2])}

	first := storage.NewWriter(c, storage.WriterConfig{})
	for _, b := range deliver(parts, []int{0, 0, 0}, []int{1700, 900, 2400}, 500) {
		if err := first.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// Crash: the committed offsets were older (400, 0, 1000); a new
	// writer is re-delivered from there in batches of another size.
	second := storage.NewWriter(c, storage.WriterConfig{})
	for _, b := range deliver(parts, []int{400, 0, 1000}, []int{2200, 2000, 2600}, 777) {
		if err := second.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// A rebalance away and back: the same writer is told, and re-delivered
	// from before what it stored.
	second.Reassigned()
	for _, b := range deliver(parts, []int{2100, 1500, 2500}, ends, 313) {
		if err := second.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// A redelivery the writer notices by itself (offsets going back).
	for _, b := range deliver(parts, []int{2900, 2800, 2900}, ends, 100) {
		if err := second.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if second.Stats().Skipped.Load() == 0 {
		t.Fatal("nothing was skipped: the test did not re-deliver")
	}

	// The oracle: counts from the stream.
	want := map[string]int{}
	total := 0
	for _, p := range parts {
		for _, e := range p {
			want[e.Cause.String()+"/"+e.Event.Merchant]++
			total++
		}
	}
	one := func(q string) int {
		rows, err := c.QueryStrings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(rows[0][0])
		return n
	}
	for q, what := range map[string]string{
		"SELECT toString(count()) FROM declinemon.events":                 "events rows",
		"SELECT toString(uniqExact(event_id)) FROM declinemon.events":     "distinct events",
		"SELECT toString(sum(attempts)) FROM declinemon.terminal_minutes": "terminal_minutes attempts",
		"SELECT toString(sum(attempts)) FROM declinemon.scope_minutes":    "scope_minutes attempts",
		"SELECT toString(sum(events)) FROM declinemon.ingest_offsets":     "ingest_offsets events",
	} {
		if got := one(q); got != total {
			t.Errorf("%s: %d, the stream has %d", what, got, total)
		}
	}
	rows, err := c.QueryStrings(ctx, "SELECT cause, merchant_id, toString(sum(attempts)) FROM declinemon.terminal_minutes GROUP BY cause, merchant_id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[2])
		got[r[0]+"/"+r[1]] = n
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("terminal_minutes %s: %d, the stream has %d", k, got[k], n)
		}
	}
	t.Logf("%d events, %d re-delivered ones skipped, %d partition lookups", total, second.Stats().Skipped.Load(), second.Stats().Lookups.Load())
}

// TestUpgradeBackfillsStoredRanges: a deployment upgraded from a version
// without ingest_offsets has events but no ranges; migration 004 backfills
// them, so the storage consumer's new group, starting from the beginning
// of what Kafka keeps, stores nothing twice.
func TestUpgradeBackfillsStoredRanges(t *testing.T) {
	s := chtest.Start(t)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	ctx := context.Background()
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	parts := stream(1000)
	old := storage.NewWriter(c, storage.WriterConfig{})
	for _, b := range deliver(parts, []int{0, 0, 0}, []int{800, 500, 900}, 400) {
		if err := old.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// As the older version left it: events, no ranges.
	if err := c.Exec(ctx, "TRUNCATE TABLE declinemon.ingest_offsets"); err != nil {
		t.Fatal(err)
	}
	migs, err := storage.Migrations(storage.SchemaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := migs[3]
	if m.Version != 4 {
		t.Fatalf("migration %d is %s", 4, m.Name)
	}
	for _, stmt := range m.Statements {
		if err := c.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	fresh := storage.NewWriter(c, storage.WriterConfig{})
	ends := []int{len(parts[0]), len(parts[1]), len(parts[2])}
	for _, b := range deliver(parts, []int{0, 0, 0}, ends, 555) {
		if err := fresh.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	total := len(parts[0]) + len(parts[1]) + len(parts[2])
	for _, q := range []string{"SELECT toString(count()) FROM declinemon.events", "SELECT toString(sum(attempts)) FROM declinemon.terminal_minutes"} {
		rows, err := c.QueryStrings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if rows[0][0] != strconv.Itoa(total) {
			t.Errorf("%s: %s, the stream has %d", q, rows[0][0], total)
		}
	}
}
