package storage_test

// Benchmarks of the events insert into a real ClickHouse server (chserver),
// without Kafka: what one storage flush costs on the wire and in the
// server, and what our own part (columns, token, resume skip check) costs.

import (
	"context"
	"maps"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/internal/proctest"
	"github.com/declinemon/declinemon/storage"
)

// fleetBatch is n events as the pipeline hands them to the writer: event-v1
// messages of a 2000-terminal, 500-merchant fleet with the usual mix of
// approvals and declines, decoded and classified.
func fleetBatch(tb testing.TB, n int) []event.Classified {
	tb.Helper()
	codes := []string{`"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`, `"response_code":"00"`,
		`"response_code":"00"`, `"response_code":"00"`, `"response_code":"51"`, `"terminal_error":"COMM_TIMEOUT"`}
	dec := ingest.NewDecoder(ingest.DecoderConfig{})
	rules := classify.Default()
	out := make([]event.Classified, n)
	for i := range out {
		msg := []byte(`{"event_id":"evt-` + strconv.Itoa(i) + `","ts":"2026-11-27T12:03:` + strconv.Itoa(10+i%50) + `.482+08:00","terminal_id":"LKL-` + strconv.Itoa(i%2000) +
			`","merchant_id":"M-310-` + strconv.Itoa(i%500) + `","scheme":"cup","txn_type":"sale","amount_minor":12800,"currency":"CNY","entry_mode":"chip","card_bin":"622848","issuer_id":"ABC","acquirer_id":"LKL","host_id":"sh-fe-2","region":"310000","network":"4g","carrier":"CMCC","signal_dbm":-97,"latency_ms":412,"model":"A8","firmware":"3.2.1",` +
			codes[i%len(codes)] + `}`)
		a := &out[i]
		if err := dec.Decode(msg, &a.Event); err != nil {
			tb.Fatal(err)
		}
		res := rules.Classify(&a.Event)
		a.Cause, a.Known, a.Topic = res.Cause, res.Known, "pos.events"
	}
	return out
}

// position numbers batch as the next events of a 4-partition topic, from
// the stream's event next on: later batches never overlap earlier ones, so
// neither the token nor the stored ranges repeat.
func position(batch []event.Classified, next int64) int64 {
	for i := range batch {
		g := next + int64(i)
		batch[i].Partition, batch[i].Offset = int(g%4), g/4
	}
	return next + int64(len(batch))
}

// BenchmarkWriterOnServer is storage.Writer.Write of prepared batches into
// a real server, one op per batch: resume skip check + columns + token +
// clickhouse-go encoding + LZ4 + the server's synchronous insert with the
// rollup and ingest_offsets views. Variants:
//   - insert-only: Client.Insert of columns built beforehand (the wire
//     and the server alone);
//   - no-views: the three materialized views dropped (the events table
//     alone);
//   - lc-as-string: the server's default profile sets
//     low_cardinality_allow_in_native_format=0, so LowCardinality columns
//     travel as plain String and the server builds the dictionaries;
//   - optimize_on_insert=0: besides, the server does not collapse
//     ReplacingMergeTree duplicates within each inserted block (merges
//     still do).
func BenchmarkWriterOnServer(b *testing.B) {
	servers := []struct {
		name  string
		files map[string]string
	}{
		{"default", nil},
		{"lc-as-string", chtest.ProfileDefaults(map[string]string{"low_cardinality_allow_in_native_format": "0"})},
		{"lc-as-string,optimize_on_insert=0", chtest.ProfileDefaults(map[string]string{"low_cardinality_allow_in_native_format": "0",
			"optimize_on_insert": "0"})},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			s := chtest.StartWith(b, srv.files)
			c := chtest.Open(b, s, chserver.User{}, storage.SchemaConfig{})
			if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
				b.Fatal(err)
			}
			var next int64
			for _, size := range []int{10_000, 50_000, 100_000} {
				b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
					batch := fleetBatch(b, size)
					w := storage.NewWriter(c, storage.WriterConfig{})
					benchInserts(b, s, size, func() error {
						next = position(batch, next)
						return w.Write(context.Background(), batch)
					})
				})
			}
			b.Run("batch=50000/insert-only", func(b *testing.B) {
				batch := fleetBatch(b, 50_000)
				var cols storage.Columns
				for i := range batch {
					cols.Append(&batch[i])
				}
				n := 0
				benchInserts(b, s, len(batch), func() error {
					n++
					return c.Insert(context.Background(), &cols, "bench-insert-only-"+strconv.Itoa(n))
				})
			})
			b.Run("batch=50000/per-query-settings", func(b *testing.B) {
				// The same two settings sent with each INSERT instead of
				// in the server's profile: what InsertSettings would carry.
				ins := newSettingsInserter(b, s, clickhouse.Settings{"low_cardinality_allow_in_native_format": 0, "optimize_on_insert": 0})
				batch := fleetBatch(b, 50_000)
				w := storage.NewWriter(ins, storage.WriterConfig{})
				benchInserts(b, s, len(batch), func() error {
					next = position(batch, next)
					return w.Write(context.Background(), batch)
				})
			})
			b.Run("batch=50000/no-views", func(b *testing.B) {
				for _, v := range []string{"terminal_minutes_mv", "scope_minutes_mv", "ingest_offsets_mv"} {
					chtest.Query(b, s, "DROP VIEW IF EXISTS declinemon."+v)
				}
				batch := fleetBatch(b, 50_000)
				w := storage.NewWriter(c, storage.WriterConfig{})
				benchInserts(b, s, len(batch), func() error {
					next = position(batch, next)
					return w.Write(context.Background(), batch)
				})
			})
		})
	}
}

// dayBatch is n classified events of a morning of the scenario fleet
// (16,000 terminals in 16 regions with their own carriers, hosts,
// issuers and decline mix), in time order: the rollups get about one row
// per event, as they do on a real fleet of that size.
func dayBatch(tb testing.TB, n int) []event.Classified {
	tb.Helper()
	loc := time.FixedZone("+08:00", 8*3600)
	s := scenario.Scenario{Name: "bench-day", Fleet: scenario.Fleet{Seed: 11, Terminals: 16_000, Regions: 16, IDPrefix: "BN", RegionBase: 310000},
		Start: time.Date(2026, 11, 27, 9, 0, 0, 0, loc), Duration: scenario.Duration(4 * time.Hour)}
	rules := classify.Default()
	out := make([]event.Classified, 0, n)
	if _, err := s.Generate(func(ev *event.Event) {
		if len(out) < n {
			res := rules.Classify(ev)
			out = append(out, event.Classified{Event: *ev, Cause: res.Cause, Known: res.Known, Topic: "pos.events"})
		}
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkServerCostOfViews is where the server's CPU goes on a fleet
// day: 100,000-event Writer.Write batches of dayBatch, with the full schema
// and with one or all of the materialized views dropped (ch-cpu-µs/row).
func BenchmarkServerCostOfViews(b *testing.B) {
	all := dayBatch(b, 1_000_000)
	for _, drop := range [][]string{nil, {"terminal_minutes_mv"}, {"scope_minutes_mv"}, {"ingest_offsets_mv"},
		{"terminal_minutes_mv", "scope_minutes_mv", "ingest_offsets_mv"}} {
		name := "schema"
		for _, d := range drop {
			name += "-" + d
		}
		b.Run(name, func(b *testing.B) {
			s := chtest.Start(b)
			c := chtest.Open(b, s, chserver.User{}, storage.SchemaConfig{})
			if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
				b.Fatal(err)
			}
			for _, v := range drop {
				chtest.Query(b, s, "DROP VIEW IF EXISTS declinemon."+v)
			}
			w := storage.NewWriter(c, storage.WriterConfig{})
			var next int64
			i := 0
			benchInserts(b, s, 100_000, func() error {
				batch := all[(i%10)*100_000 : (i%10+1)*100_000]
				i++
				next = position(batch, next)
				return w.Write(context.Background(), batch)
			})
		})
	}
}

// benchInserts times insert (one op, rows events) and reports rows/s, the
// allocations per row and the CPU per row of this process and the server.
func benchInserts(b *testing.B, s *chserver.Server, rows int, insert func() error) {
	b.ReportAllocs()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	goCPU, chCPU := proctest.CPU(os.Getpid()), proctest.CPU(s.Pid())
	for b.Loop() {
		if err := insert(); err != nil {
			b.Fatal(err)
		}
	}
	goCPU, chCPU = proctest.CPU(os.Getpid())-goCPU, proctest.CPU(s.Pid())-chCPU
	runtime.ReadMemStats(&m1)
	total := float64(b.N * rows)
	b.ReportMetric(total/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/total, "allocs/row")
	b.ReportMetric(float64(goCPU.Microseconds())/total, "go-cpu-µs/row")
	b.ReportMetric(float64(chCPU.Microseconds())/total, "ch-cpu-µs/row")
}

// settingsInserter is storage.Client.Insert with extra settings on each
// INSERT, over its own clickhouse-go connection (native protocol, LZ4).
type settingsInserter struct {
	conn  driver.Conn
	extra clickhouse.Settings
}

func newSettingsInserter(tb testing.TB, s *chserver.Server, extra clickhouse.Settings) *settingsInserter {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.TCPAddr}, Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &settingsInserter{conn: conn, extra: extra}
}

func (i *settingsInserter) Insert(ctx context.Context, cols *storage.Columns, token string) error {
	settings := storage.InsertSettings(token)
	maps.Copy(settings, i.extra)
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	b, err := i.conn.PrepareBatch(ctx, "INSERT INTO declinemon.events ("+strings.Join(storage.ColumnNames, ", ")+")")
	if err != nil {
		return err
	}
	for n, v := range cols.Values() {
		if err := b.Column(n).Append(v); err != nil {
			b.Abort()
			return err
		}
	}
	return b.Send()
}

// nopWire is an Inserter that sends nothing and has nothing stored: what
// is left of Writer.Write is our part.
type nopWire struct{}

func (nopWire) Insert(context.Context, *storage.Columns, string) error { return nil }
func (nopWire) StoredRanges(context.Context, string, []int, int64) ([]storage.OffsetRange, error) {
	return nil, nil
}

// BenchmarkWriterOwnPart is Writer.Write without a wire, per 50,000-event
// batch: resume skip check + Columns.Append + Token + handled.
func BenchmarkWriterOwnPart(b *testing.B) {
	batch := fleetBatch(b, 50_000)
	w := storage.NewWriter(nopWire{}, storage.WriterConfig{})
	var next int64
	b.ReportAllocs()
	for b.Loop() {
		next = position(batch, next)
		if err := w.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}

// BenchmarkTokenOf50k is the deduplication token of a 50,000-event batch
// over 4 partitions.
func BenchmarkTokenOf50k(b *testing.B) {
	batch := fleetBatch(b, 50_000)
	position(batch, 0)
	b.ReportAllocs()
	for b.Loop() {
		_ = storage.Token(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}

// BenchmarkServerPartLayout is what the server spends per event on inserts
// and on the merges they cause, for the layout of fresh parts: wide (a
// file per column, ClickHouse's default for parts over 10 MB) and as
// shipped (compact up to 128 MB, migration 005). Each op is 3M events of
// dayBatch (the scenario fleet's morning, ids made unique per pass) in
// 100,000-event Writer.Write batches (and 200,000, clickhouse.batch_size),
// then the wait until no merge has run for 3 s: ch-cpu-µs/event counts
// the server's CPU over both.
func BenchmarkServerPartLayout(b *testing.B) {
	const passes = 3
	day := dayBatch(b, 1_000_000)
	ids := make([]string, len(day))
	for i := range day {
		ids[i] = day[i].Event.ID
	}
	for _, layout := range []struct {
		name  string
		wide  int
		batch int
	}{{"wide", 10 << 20, 100_000}, {"compact-to-128MB", 0, 100_000}, {"compact-to-128MB/batch=200000", 0, 200_000}} {
		b.Run(layout.name, func(b *testing.B) {
			s := chtest.Start(b)
			c := chtest.Open(b, s, chserver.User{}, storage.SchemaConfig{})
			ctx := context.Background()
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				chtest.Query(b, s, "DROP DATABASE IF EXISTS declinemon SYNC")
				if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
					b.Fatal(err)
				}
				if layout.wide != 0 {
					for _, t := range []string{"events", "terminal_minutes", "scope_minutes"} {
						chtest.Query(b, s, "ALTER TABLE declinemon."+t+" MODIFY SETTING min_bytes_for_wide_part = "+strconv.Itoa(layout.wide))
					}
				}
				w := storage.NewWriter(c, storage.WriterConfig{})
				b.StartTimer()
				ch0 := proctest.CPU(s.Pid())
				var next int64
				for pass := range passes {
					for i := range day {
						day[i].Event.ID = ids[i] + "-" + strconv.Itoa(pass)
					}
					for lo := 0; lo < len(day); lo += layout.batch {
						batch := day[lo : lo+layout.batch]
						next = position(batch, next)
						if err := w.Write(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
				}
				for quiet := 0; quiet < 6; {
					time.Sleep(500 * time.Millisecond)
					if chtest.Value(b, s, "SELECT count() FROM system.merges WHERE database = 'declinemon'") == "0" {
						quiet++
					} else {
						quiet = 0
					}
				}
				cpu += proctest.CPU(s.Pid()) - ch0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*passes*len(day)), "ch-cpu-µs/event")
			b.Logf("parts at the end: %v", chtest.Query(b, s, "SELECT table, part_type, count(), sum(rows) FROM system.parts WHERE database = 'declinemon' AND active AND table IN ('events', 'terminal_minutes', 'scope_minutes') GROUP BY table, part_type ORDER BY table, part_type"))
		})
	}
}
