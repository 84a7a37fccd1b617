package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

// fakeInserter is the hand-written fake of the wire: it records batches
// and fails as told.
type fakeInserter struct {
	fail    []error // returned in order before succeeding
	batches []fakeBatch
	calls   int
}

type fakeBatch struct {
	rows   int
	token  string
	ids    []string
	causes []string
}

func (f *fakeInserter) Insert(_ context.Context, c *Columns, token string) error {
	f.calls++
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return err
	}
	f.batches = append(f.batches, fakeBatch{rows: c.Len(), token: token, ids: append([]string(nil), c.EventID...), causes: append([]string(nil), c.Cause...)})
	return nil
}

func accepted(n, offset int) []event.Classified {
	out := make([]event.Classified, n)
	for i := range out {
		out[i] = event.Classified{
			Event: event.Event{ID: fmt.Sprintf("e%d", offset+i), Time: time.Date(2026, 11, 27, 10, 0, i, 0, time.UTC),
				Terminal: "T1", Merchant: "M1", Scheme: event.SchemeCUP, ResponseCode: "00", AmountMinor: -1, LatencyMS: -1, BatteryPct: -1},
			Topic: "pos.events", Partition: i % 2, Offset: int64(offset + i),
		}
		if i%3 == 0 {
			out[i].Cause = event.CauseNetwork
			out[i].Event.TerminalError = "COMM_TIMEOUT"
		}
	}
	return out
}

func noSleep(context.Context, time.Duration) error { return nil }

func TestWriterBatchesColumns(t *testing.T) {
	f := &fakeInserter{}
	w := NewWriter(f, WriterConfig{})
	if err := w.Write(context.Background(), accepted(5, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), accepted(3, 105)); err != nil {
		t.Fatal(err)
	}
	if len(f.batches) != 2 || f.batches[0].rows != 5 || f.batches[1].rows != 3 || f.batches[1].ids[0] != "e105" {
		t.Fatalf("batches %+v", f.batches)
	}
	if f.batches[0].causes[0] != "network" || f.batches[0].causes[1] != "approved" {
		t.Errorf("causes %v", f.batches[0].causes)
	}
	if f.batches[0].token == f.batches[1].token {
		t.Error("different offset ranges share a dedup token")
	}
	if Token(accepted(5, 100)) != f.batches[0].token {
		t.Error("token is not a function of the batch's offsets")
	}
	if w.Stats().Rows.Load() != 8 || w.Stats().Batches.Load() != 2 {
		t.Errorf("stats %d rows %d batches", w.Stats().Rows.Load(), w.Stats().Batches.Load())
	}
}

func TestWriterRetriesTransientWithTheSameToken(t *testing.T) {
	f := &fakeInserter{fail: []error{errors.New("connection reset"), errors.New("timeout")}}
	w := NewWriter(f, WriterConfig{})
	w.sleep = noSleep
	if err := w.Write(context.Background(), accepted(4, 0)); err != nil {
		t.Fatal(err)
	}
	if f.calls != 3 || len(f.batches) != 1 || w.Stats().Retries.Load() != 2 {
		t.Fatalf("calls %d, batches %d, retries %d", f.calls, len(f.batches), w.Stats().Retries.Load())
	}
	if f.batches[0].token != Token(accepted(4, 0)) {
		t.Error("retry changed the dedup token")
	}
}

func TestWriterSurfacesPermanentErrorsAtOnce(t *testing.T) {
	f := &fakeInserter{fail: []error{&PermanentError{Err: errors.New("code 16: no such column card_bin")}}}
	w := NewWriter(f, WriterConfig{})
	w.sleep = noSleep
	err := w.Write(context.Background(), accepted(2, 0))
	var perm *PermanentError
	if !errors.As(err, &perm) || f.calls != 1 || w.Stats().Permanent.Load() != 1 {
		t.Fatalf("err %v, calls %d", err, f.calls)
	}
}

func TestWriterGivesUpAfterAttemptsAndHonoursCancel(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	f := &fakeInserter{fail: []error{down, down, down, down, down, down}}
	w := NewWriter(f, WriterConfig{Attempts: 3})
	w.sleep = noSleep
	if err := w.Write(context.Background(), accepted(2, 0)); !errors.Is(err, down) || f.calls != 3 {
		t.Fatalf("err %v after %d calls", err, f.calls)
	}
	// Backpressure: while ClickHouse is down a Write blocks in backoff until
	// the runner gives up (shutdown), never buffering more.
	f2 := &fakeInserter{fail: []error{down, down, down}}
	w2 := NewWriter(f2, WriterConfig{Attempts: 10, Backoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := w2.Write(ctx, accepted(2, 0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("cancel not honoured during backoff")
	}
}

func TestMigrationsParse(t *testing.T) {
	migs, err := Migrations(SchemaConfig{Database: "x", EventsTTLDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 3 || migs[0].Version != 1 || Latest() != migs[len(migs)-1].Version {
		t.Fatalf("migrations %+v", migs)
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if s == "" || s[len(s)-1] == ';' || contains(s, "${") {
				t.Errorf("%s: bad statement %q", m.Name, s)
			}
		}
	}
	if !contains(migs[0].Statements[0], "x.events") || !contains(migs[0].Statements[0], "INTERVAL 7 DAY") {
		t.Errorf("placeholders not filled: %s", migs[0].Statements[0])
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// BenchmarkColumnsAppend builds 5,000-row batches (one op = one batch).
func BenchmarkColumnsAppend(b *testing.B) {
	batch := accepted(5000, 0)
	var c Columns
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		for i := range batch {
			c.Append(&batch[i])
		}
	}
	b.ReportMetric(float64(b.N)*5000/b.Elapsed().Seconds(), "rows/s")
}

// rangedInserter is the fake wire with ingest_offsets: it records what
// each insert stored per partition, and answers StoredRanges from it.
type rangedInserter struct {
	mu sync.Mutex
	fakeInserter
	stored  []OffsetRange
	lookups int
	failGet error
	// entered and gate, when set, hold the next insert after it started.
	entered, gate chan struct{}
	// landButFail: the next insert is stored, then reports an error.
	landButFail error
}

func (r *rangedInserter) Insert(ctx context.Context, c *Columns, token string) error {
	r.mu.Lock()
	entered, gate := r.entered, r.gate
	r.entered, r.gate = nil, nil
	r.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fakeInserter.Insert(ctx, c, token); err != nil {
		return err
	}
	byPart := map[int]*OffsetRange{}
	for i := range c.Len() {
		p := int(c.SourcePartition[i])
		if byPart[p] == nil {
			byPart[p] = &OffsetRange{Topic: c.SourceTopic[i], Partition: p, Lo: c.SourceOffset[i], Hi: c.SourceOffset[i]}
		}
		byPart[p].Lo, byPart[p].Hi = min(byPart[p].Lo, c.SourceOffset[i]), max(byPart[p].Hi, c.SourceOffset[i])
	}
	for _, v := range byPart {
		r.stored = append(r.stored, *v)
	}
	if err := r.landButFail; err != nil {
		r.landButFail = nil
		return err
	}
	return nil
}

func (r *rangedInserter) StoredRanges(_ context.Context, topic string, parts []int, from int64) ([]OffsetRange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if r.failGet != nil {
		return nil, r.failGet
	}
	var out []OffsetRange
	for _, s := range r.stored {
		for _, p := range parts {
			if s.Topic == topic && s.Partition == p && s.Hi >= from {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// TestWriterSkipsWhatIsStored: the unit view of exactly-once resume — a
// new writer re-delivered an overlapping range inserts only the new
// events, looks up once per partition, and a failed lookup is an error
// (the flush is retried) rather than a guess.
func TestWriterSkipsWhatIsStored(t *testing.T) {
	f := &rangedInserter{}
	ctx := context.Background()
	if err := NewWriter(f, WriterConfig{}).Write(ctx, accepted(10, 0)); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, WriterConfig{})
	f.failGet = errors.New("timeout")
	if err := w.Write(ctx, accepted(10, 6)); err == nil {
		t.Fatal("a failed lookup was not an error")
	}
	f.failGet = nil
	if err := w.Write(ctx, accepted(10, 6)); err != nil {
		t.Fatal(err)
	}
	last := f.batches[len(f.batches)-1]
	if last.rows != 6 || last.ids[0] != "e10" {
		t.Fatalf("second insert %d rows starting %s, want the 6 new ones from e10", last.rows, last.ids[0])
	}
	if w.Stats().Skipped.Load() != 4 {
		t.Fatalf("skipped %d", w.Stats().Skipped.Load())
	}
	n := f.lookups
	if err := w.Write(ctx, accepted(4, 16)); err != nil { // in order: no lookup
		t.Fatal(err)
	}
	if f.lookups != n {
		t.Fatal("looked up again for an in-order batch")
	}
	// Everything re-delivered: nothing inserted, nothing lost.
	before := len(f.batches)
	w.Reassigned()
	if err := w.Write(ctx, accepted(20, 0)); err != nil {
		t.Fatal(err)
	}
	if len(f.batches) != before {
		t.Fatalf("a fully stored redelivery was inserted")
	}
}

// TestWriterPartitionMovesMidInsert: two consumers of one process share the
// writer; a rebalance hands a partition to the second while the first's
// insert of it is still in flight. The second waits for that insert, then
// sees it stored: nothing is stored twice.
func TestWriterPartitionMovesMidInsert(t *testing.T) {
	entered, gate := make(chan struct{}), make(chan struct{})
	f := &rangedInserter{entered: entered, gate: gate}
	w := NewWriter(f, WriterConfig{})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- w.Write(ctx, accepted(50, 100)) }()
	<-entered // the first consumer's insert is in flight
	w.Reassigned()
	second := make(chan error, 1)
	go func() { second <- w.Write(ctx, accepted(70, 100)) }()
	select {
	case err := <-second:
		t.Fatalf("the second consumer inserted while the first's insert of the same partitions was in flight (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, b := range f.batches {
		for _, id := range b.ids {
			seen[id]++
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if len(seen) != 70 || w.Stats().Contended.Load() != 1 {
		t.Fatalf("%d distinct events stored, contended %d; want 70 and 1", len(seen), w.Stats().Contended.Load())
	}
}

// TestWriterInsertThatLandedButFailed: ClickHouse stored the batch but the
// answer was lost; the writer gives up on it. Whatever is written next
// for those partitions, cut differently, must not store them again.
func TestWriterInsertThatLandedButFailed(t *testing.T) {
	f := &rangedInserter{landButFail: errors.New("read: i/o timeout")}
	w := NewWriter(f, WriterConfig{Attempts: 1})
	ctx := context.Background()
	if err := w.Write(ctx, accepted(50, 100)); err == nil {
		t.Fatal("the lost answer was not an error")
	}
	if err := w.Write(ctx, accepted(70, 100)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, b := range f.batches {
		for _, id := range b.ids {
			seen[id]++
		}
	}
	dup := 0
	for _, n := range seen {
		if n > 1 {
			dup++
		}
	}
	if dup != 0 || len(seen) != 70 {
		t.Fatalf("%d events stored twice, %d distinct; want 0 and 70", dup, len(seen))
	}
}

// The column buffers kept between inserts are reused while batches stay
// large, and given back once traffic falls well below a past peak.
func TestWriterKeepsColumnsForSimilarBatches(t *testing.T) {
	w := NewWriter(&fakeInserter{}, WriterConfig{})
	big := accepted(40_000, 0)
	if err := w.Write(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if len(w.free) != 1 || cap(w.free[0].EventID) < 40_000 {
		t.Fatalf("after a 40K batch: %d buffers kept", len(w.free))
	}
	kept := w.free[0]
	if err := w.Write(context.Background(), accepted(30_000, 40_000)); err != nil {
		t.Fatal(err)
	}
	if len(w.free) != 1 || w.free[0] != kept {
		t.Fatal("a batch of similar size did not reuse the kept buffer")
	}
	if err := w.Write(context.Background(), accepted(100, 70_000)); err != nil {
		t.Fatal(err)
	}
	if len(w.free) != 0 {
		t.Fatalf("a 40K-row buffer is still kept after a 100-event batch")
	}
	if err := w.Write(context.Background(), accepted(100, 70_100)); err != nil {
		t.Fatal(err)
	}
	if len(w.free) != 1 || cap(w.free[0].EventID) > 16<<10 {
		t.Fatal("small buffers are not kept")
	}
}
