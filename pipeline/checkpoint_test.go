package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// partitionedLog is a stand-in for a topic with a consumer group: messages
// per partition in offset order and the group's committed offsets, which
// outlive the consumers (sessions) that read them.
type partitionedLog struct {
	parts     [][]ingest.Message
	committed []int64
}

func newPartitionedLog(t *testing.T, s scenario.Scenario, partitions int) *partitionedLog {
	t.Helper()
	l := &partitionedLog{parts: make([][]ingest.Message, partitions), committed: make([]int64, partitions)}
	for i := range l.committed {
		l.committed[i] = -1
	}
	_, err := s.Generate(func(ev *event.Event) {
		h := fnv.New32a()
		h.Write([]byte(ev.Terminal))
		p := int(h.Sum32() % uint32(partitions))
		l.parts[p] = append(l.parts[p], ingest.Message{Key: []byte(ev.Terminal), Value: event.AppendJSON(nil, ev),
			Topic: "pos.events", Partition: p, Offset: int64(len(l.parts[p])), OriginTopic: []byte("pos.events"), OriginPartition: p})
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *partitionedLog) total() int {
	n := 0
	for _, p := range l.parts {
		n += len(p)
	}
	return n
}

var errCrash = errors.New("process killed")

// session is one consumer's life: it reads every partition from the
// committed offset, round-robin in fetches of 64 messages, and "dies"
// (Fetch fails, so Run ends without a final flush) after crashAfter
// messages; 0 reads to the end.
type session struct {
	log        *partitionedLog
	next       []int64
	part, left int
	delivered  int
	crashAfter int
}

func (l *partitionedLog) session(crashAfter int) *session {
	s := &session{log: l, next: make([]int64, len(l.parts)), crashAfter: crashAfter}
	for i, c := range l.committed {
		s.next[i] = c + 1
	}
	return s
}

func (s *session) Fetch(context.Context) (ingest.Message, error) {
	if s.crashAfter > 0 && s.delivered >= s.crashAfter {
		return ingest.Message{}, errCrash
	}
	for tries := 0; tries <= len(s.next); tries++ {
		if s.left == 0 {
			s.part = (s.part + 1) % len(s.next)
			s.left = 64
		}
		p := s.part
		if int(s.next[p]) < len(s.log.parts[p]) {
			m := s.log.parts[p][s.next[p]]
			m.HighWaterMark = int64(len(s.log.parts[p]))
			s.next[p]++
			s.left--
			s.delivered++
			return m, nil
		}
		s.left = 0
	}
	return ingest.Message{}, io.EOF
}

func (s *session) Commit(_ context.Context, positions []ingest.Position) error {
	for _, p := range positions {
		s.log.committed[p.Partition] = max(s.log.committed[p.Partition], p.Offset)
	}
	return nil
}

// memCheckpoints is an in-memory CheckpointStore with the topic's
// semantics: the latest checkpoint and the journal's latest values.
type memCheckpoints struct {
	mu      sync.Mutex
	seq     uint64
	data    []byte
	journal map[string][]byte
	saves   int
}

func (m *memCheckpoints) Load(context.Context) (ingest.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := map[string][]byte{}
	for k, v := range m.journal {
		j[k] = v
	}
	return ingest.Checkpoint{Seq: m.seq, Data: slices.Clone(m.data), Journal: j}, nil
}

func (m *memCheckpoints) Save(_ context.Context, seq uint64, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq != m.seq+1 {
		return fmt.Errorf("checkpoint %d saved after %d", seq, m.seq)
	}
	m.seq, m.data = seq, slices.Clone(data)
	m.saves++
	return nil
}

func (m *memCheckpoints) Journal(_ context.Context, entries []ingest.JournalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.journal == nil {
		m.journal = map[string][]byte{}
	}
	for _, e := range entries {
		if e.Value == nil {
			delete(m.journal, e.ID)
		} else {
			m.journal[e.ID] = slices.Clone(e.Value)
		}
	}
	return nil
}

// alertLog collects every record delivered, across sessions, and notes
// how many messages the session had delivered at the first one.
type alertLog struct {
	records         []alerting.Alert
	src             *session
	firstAt, lastAt int
}

func (a *alertLog) Send(_ context.Context, alerts []alerting.Alert) error {
	if len(alerts) > 0 && a.src != nil {
		if len(a.records) == 0 {
			a.firstAt = a.src.delivered
		}
		a.lastAt = a.src.delivered
	}
	a.records = append(a.records, alerts...)
	return nil
}

func (a *alertLog) lines() []string {
	var out []string
	for _, r := range a.records {
		out = append(out, r.ID+" "+r.State+" "+r.Kind.String()+" "+r.ScopeType+"/"+r.ScopeID)
	}
	return out
}

// runSession runs one consumer life and reports how it ended.
func runSession(t *testing.T, src *session, store *memCheckpoints, alerts *alertLog, interval time.Duration, last bool) *Pipeline {
	t.Helper()
	var clock time.Time
	alerts.src = src
	p, err := New(Options{Alerts: []AlertSink{alerts}, Checkpoints: store, CheckpointInterval: interval, Partitions: 4,
		BatchSize: 2000, FlushInterval: time.Second, EndOfInput: last})
	if err != nil {
		t.Fatal(err)
	}
	p.ckpt.now = func() time.Time { clock = clock.Add(time.Second); return clock } // a checkpoint every few flushes
	err = p.Run(context.Background(), src)
	switch {
	case last && err != nil:
		t.Fatalf("last session: %v", err)
	case !last && !errors.Is(err, errCrash):
		t.Fatalf("session ended with %v, want the crash", err)
	}
	return p
}

// TestCheckpointCrashesLoseNothingAndRepeatNothing kills the consumer at
// several points of a day with incidents and restarts it from the group's
// committed offsets and the latest checkpoint. Across all lives every
// alert record of the uninterrupted run is delivered exactly once, and
// every event is detected on exactly once.
func TestCheckpointCrashesLoseNothingAndRepeatNothing(t *testing.T) {
	s, err := scenario.Find("regional-outage")
	if err != nil {
		t.Fatal(err)
	}
	log := newPartitionedLog(t, s, 4)
	n := log.total()

	ref := &alertLog{}
	refP := runSession(t, log.session(0), &memCheckpoints{}, ref, 3*time.Second, true)
	want := ref.lines()
	if len(want) < 2 {
		t.Fatalf("the reference run raised %d records, want an incident that fires and resolves", len(want))
	}
	refStats := refP.Engine().Stats()

	for _, tc := range []struct {
		name    string
		crashes []int // messages each life delivers before it dies
		// lostCommit: the group's offsets go back to the start before
		// each restart, as if every commit after the checkpoint was lost.
		lostCommit bool
		// interval between checkpoints, in flushes (about); lastInterval
		// for the last life when it differs
		interval, lastInterval time.Duration
	}{
		{name: "one crash mid-incident", crashes: []int{n * 55 / 100}},
		{name: "three crashes", crashes: []int{n / 5, n / 4, n / 3}},
		{name: "crash right after start", crashes: []int{100, n / 2}},
		{name: "commits lost", crashes: []int{n / 3, n / 3}, lostCommit: true},
		// Alerts delivered, then a crash before any checkpoint: the next
		// life re-reads everything and must not announce them again.
		{name: "alerts delivered after the last checkpoint", crashes: []int{ref.firstAt + 4000}, interval: time.Hour},
		// Fired and resolved, then a crash; the next life checkpoints
		// before it raises them again and must still not repeat them.
		{name: "resolves delivered, then a crash", crashes: []int{ref.lastAt + 4000}, interval: time.Hour, lastInterval: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newPartitionedLog(t, s, 4)
			store, got := &memCheckpoints{}, &alertLog{}
			interval := cmp.Or(tc.interval, 3*time.Second)
			for _, k := range tc.crashes {
				runSession(t, log.session(k), store, got, interval, false)
				if tc.lostCommit {
					for i := range log.committed {
						log.committed[i] = -1
					}
				}
			}
			p := runSession(t, log.session(0), store, got, cmp.Or(tc.lastInterval, interval), true)
			observed := p.Engine().Stats().Observed
			if g := got.lines(); !slices.Equal(g, want) {
				t.Errorf("records delivered across crashes differ from the uninterrupted run:\n got %q\nwant %q", g, want)
			}
			if observed != refStats.Observed || p.Engine().Stats().Late != refStats.Late {
				t.Errorf("detector observed %d (late %d) across crashes, uninterrupted %d (late %d)",
					observed, p.Engine().Stats().Late, refStats.Observed, refStats.Late)
			}
			for i, c := range log.committed {
				if c != int64(len(log.parts[i]))-1 {
					t.Errorf("partition %d committed %d, want its end %d", i, c, len(log.parts[i])-1)
				}
			}
			if tc.interval == time.Hour && p.Counters().AlertsAlreadyDelivered.Load() == 0 {
				t.Error("no record was recognised as delivered before the crash")
			}
			t.Logf("%d events, %d checkpoints, %d journal entries left; last life skipped %d redelivered, suppressed %d already delivered",
				n, store.saves, len(store.journal), p.Counters().Redelivered.Load(), p.Counters().AlertsAlreadyDelivered.Load())
		})
	}
}

// rejoining is a session whose consumer has joined its group joins times.
type rejoining struct {
	*session
	joins uint64
}

func (r *rejoining) Joins() uint64 { return r.joins }

// TestCheckpointStaleMemberRejoins: member A checkpoints and loses its
// partitions (its session expired) while still alive; B takes over,
// restores A's checkpoint, moves on and checkpoints; then A is assigned
// the partitions again. A must drop its stale state for B's checkpoint:
// across the three the alerts are exactly the uninterrupted run's.
func TestCheckpointStaleMemberRejoins(t *testing.T) {
	s, err := scenario.Find("regional-outage")
	if err != nil {
		t.Fatal(err)
	}
	ref := &alertLog{}
	runSession(t, newPartitionedLog(t, s, 4).session(0), &memCheckpoints{}, ref, 3*time.Second, true)

	log := newPartitionedLog(t, s, 4)
	n := log.total()
	store, got := &memCheckpoints{}, &alertLog{}
	newMember := func() *Pipeline {
		var clock time.Time
		p, err := New(Options{Alerts: []AlertSink{got}, Checkpoints: store, CheckpointInterval: 3 * time.Second, Partitions: 4,
			BatchSize: 2000, FlushInterval: time.Second, EndOfInput: true})
		if err != nil {
			t.Fatal(err)
		}
		p.ckpt.now = func() time.Time { clock = clock.Add(time.Second); return clock }
		return p
	}
	run := func(p *Pipeline, src *rejoining, wantCrash bool) {
		got.src = src.session
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := p.Run(ctx, src)
		if wantCrash != errors.Is(err, errCrash) {
			t.Fatalf("run ended with %v", err)
		}
	}
	a, b := newMember(), newMember()
	run(a, &rejoining{log.session(n / 3), 1}, true)
	run(b, &rejoining{log.session(n / 3), 1}, true)
	run(a, &rejoining{log.session(0), 2}, false) // A joins again
	if g, w := got.lines(), ref.lines(); !slices.Equal(g, w) {
		t.Errorf("records delivered differ from the uninterrupted run:\n got %q\nwant %q", g, w)
	}
	if a.Counters().CheckpointRestores.Load() != 1 || store.seq == 0 {
		t.Errorf("A restored %d checkpoints (want 1: B's)", a.Counters().CheckpointRestores.Load())
	}
}
