package alerting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Checkpoints: AppendSnapshot writes everything the engine keeps from one
// Observe call to the next, and Restore loads it into a fresh engine, which
// then goes on exactly as the engine that wrote it would have: the same
// input after the snapshot gives the same alerts, byte for byte.
//
// The format is binary, versioned and meant to be written often (one
// scope costs a few tens of bytes, about 40 MB for a 1M-terminal fleet):
//
//	magic "DMONSNAP", format version (uvarint)
//	layout: the configuration the state's meaning depends on (layoutOf)
//	engine: clock, counters, fleet baseline, the tick being filled
//	scopes: per scope type, the map's scopes; then the model cohorts (keyed
//	  by model and firmware); terminals last, since their dims refer to
//	  the others
//	merchants with a decline since the last evaluation, in order
//	per rule: its firing incidents in order, its pending holds
//	per attributed cause: its failure records, oldest first
//	CRC-32C of all of the above, little endian
//
// Integers are varints, times deltas from the newest event time, bucket
// slots deltas from the previous bucket's, and only non-empty buckets and
// non-zero counters are written. A reference to a scope is written as its
// index in its type's table (scope types are known from context or written
// before it), so scopes that the engine shares — a region's scope in its
// map, in its terminals' dims and in failure records — are shared again
// after Restore. A terminal's dims may still point at a scope evicted
// since the terminal's last event (the next event looks the id up again);
// such a scope is written once, as its id, and restored as a detached
// evicted scope, which is all that is read of it (a terminal alert's
// dimension labels).
//
// What is not written, because it holds nothing between Observe calls:
// the evaluation's buffers (release empties them) and the holds renewed at
// the evaluation under way (expire clears them). The per-scope incident
// array a scope keeps after its incidents resolved is not written either:
// empty, it means the same as none.
//
// Rule thresholds, ClearAfter, Pending, IdleTTL, MaxRecords, labels and
// maintenance windows may change between the snapshot and the restore:
// the state means the same under them. MaxScopes may change too; the next
// cap sweep then waits for the new cap. What the state's layout or meaning
// depends on — tick, lateness, the buckets of each scope type (the
// windows), the baseline half-life, and the build's scope types, causes,
// rules and kinds — must not; Restore refuses such a snapshot with an error
// wrapping ErrSnapshotIncompatible that names what differs.

// ErrSnapshotIncompatible is wrapped by Restore's error when the snapshot
// was written by a build or under a configuration whose state layout
// differs from the engine's.
var ErrSnapshotIncompatible = errors.New("detector snapshot incompatible with this engine")

const (
	snapMagic   = "DMONSNAP"
	snapVersion = 1
	snapCRCLen  = 4
)

var snapCRCTable = crc32.MakeTable(crc32.Castagnoli)

// Scope flags.
const (
	snapSuspect   = 1 << iota // suspect follows
	snapExplained             // explainedUntil and explainedCauses follow
	snapDims                  // dims follow (terminals)
	snapFlagsAll  = snapSuspect | snapExplained | snapDims
)

// noIndex marks a terminal that is referenced from outside the scope
// tables but not written (yet).
const noIndex = ^uint32(0)

// layoutField is one value the state's layout depends on.
type layoutField struct {
	name string
	v    int64
	dur  bool
}

func (f layoutField) format(v int64) string {
	if f.dur {
		return time.Duration(v).String()
	}
	return fmt.Sprint(v)
}

// layoutHead is how many of layoutOf's fields decide how many follow.
const layoutHead = 4

func (e *Engine) layoutOf() []layoutField {
	f := []layoutField{
		{name: "scope types", v: int64(event.NumScopeTypes)},
		{name: "causes", v: int64(event.NumCauses)},
		{name: "rules", v: numRules},
		{name: "alert kinds", v: int64(NumKinds)},
	}
	for _, r := range e.rules {
		var mask int64
		for _, t := range r.scopes {
			mask |= 1 << t
		}
		name := fmt.Sprintf("rule %d (%s)", r.idx, r.kind)
		f = append(f, layoutField{name: name + " kind", v: int64(r.kind)},
			layoutField{name: name + " cause", v: int64(r.cause)},
			layoutField{name: name + " scope types", v: mask})
	}
	var rc int64
	for _, c := range recordCauses {
		rc |= 1 << c
	}
	f = append(f, layoutField{name: "attributed causes", v: rc},
		layoutField{name: "tick", v: e.tick, dur: true},
		layoutField{name: "lateness", v: e.lateness, dur: true})
	for t := range event.NumScopeTypes {
		key := "group_window"
		switch t {
		case event.ScopeTerminal:
			key = "terminal_window"
		case event.ScopeMerchant:
			key = "merchant_window"
		}
		f = append(f, layoutField{name: fmt.Sprintf("%s bucket width (%s/%d)", t, key, e.nb[t]), v: e.width[t], dur: true},
			layoutField{name: fmt.Sprintf("%s buckets per window", t), v: int64(e.nb[t])},
			layoutField{name: fmt.Sprintf("%s ring length", t), v: int64(e.ringLen[t])})
	}
	return append(f, layoutField{name: "baseline_half_life", v: int64(e.cfg.BaselineHalfLife), dur: true})
}

// AppendSnapshot appends the engine's complete detection state to b in a
// versioned binary form and returns the extended slice.
//
// Call it between Observe (or Flush) calls, from the goroutine feeding the
// engine. It does not change the engine. Apart from growing b it allocates
// no memory per scope: only index tables, sized once.
func (e *Engine) AppendSnapshot(b []byte) []byte {
	start := len(b)
	records := 0
	for _, c := range recordCauses {
		records += len(e.queues[c].live())
	}
	b = slices.Grow(b, 1024+48*e.nScopes+24*records)
	w := snapWriter{e: e, b: b}
	if e.started {
		for t := range w.refSlot {
			w.refSlot[t] = e.slot(event.ScopeType(t), e.maxTs)
		}
	}
	w.header()
	w.engine()
	w.seedTerminals()
	w.scopeTables()
	w.uv(uint64(len(e.changed.list)))
	for _, s := range e.changed.list {
		w.anyRef(s)
	}
	for _, r := range e.rules {
		w.rule(r)
	}
	for _, c := range recordCauses {
		w.records(e.queues[c].live())
	}
	b = w.b
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], snapCRCTable))
}

// snapWriter appends a snapshot to b.
type snapWriter struct {
	e *Engine
	b []byte
	// idx is, per scope type, the index of a written scope in its table.
	// Terminals are only indexed when something beyond their own dims
	// refers to them (seedTerminals).
	idx      [event.NumScopeTypes]map[*scope]uint32
	detached map[*scope]uint32 // scopes referred to but not held: evicted
	codes    map[string]uint32 // response codes of records, written once
	refSlot  [event.NumScopeTypes]int32
}

func (w *snapWriter) uv(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *snapWriter) v(x int64)   { w.b = binary.AppendVarint(w.b, x) }
func (w *snapWriter) u32(x uint32) {
	w.b = binary.LittleEndian.AppendUint32(w.b, x)
}
func (w *snapWriter) u64(x uint64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, x)
}

func (w *snapWriter) str(s string) {
	w.uv(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *snapWriter) bool(x bool) {
	if x {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *snapWriter) header() {
	w.b = append(w.b, snapMagic...)
	w.uv(snapVersion)
	layout := w.e.layoutOf()
	w.uv(uint64(len(layout)))
	for _, f := range layout {
		w.v(f.v)
	}
}

func (w *snapWriter) engine() {
	e := w.e
	w.bool(e.started)
	w.v(e.maxTs)
	w.v(e.nextTick - e.maxTs)
	w.uv(e.tickNo)
	s := &e.stats
	for _, x := range [...]uint64{s.Observed, s.Late, s.Fired, s.Resolved, s.Inhibited, s.Suppressed,
		s.RecordsDropped, s.EvictedScopes, s.EvictedAtCap, s.CapSweeps} {
		w.uv(x)
	}
	w.u32(math.Float32bits(e.pool.n))
	for _, f := range e.pool.f {
		w.u32(math.Float32bits(f))
	}
	w.v(int64(e.tickCount.n))
	for _, n := range e.tickCount.f {
		w.v(int64(n))
	}
	w.v(int64(e.nScopes))
	w.v(int64(e.sweepAt))
	w.v(int64(e.cfg.MaxScopes))
}

// seedTerminals indexes the terminals that the merchant set, the rules and
// the failure records refer to, so that writing the terminal table can
// note their indexes without a lookup table of every terminal.
func (w *snapWriter) seedTerminals() {
	e := w.e
	m := map[*scope]uint32{}
	seed := func(s *scope) {
		if s != nil && s.typ == event.ScopeTerminal {
			m[s] = noIndex
		}
	}
	for _, s := range e.changed.list {
		seed(s)
	}
	for _, r := range e.rules {
		for _, inc := range r.active {
			seed(inc.scope)
		}
		for s := range r.holds.since {
			seed(s)
		}
	}
	for _, c := range recordCauses {
		recs := e.queues[c].live()
		for i := range recs {
			seed(recs[i].dims[event.ScopeTerminal])
		}
	}
	w.idx[event.ScopeTerminal] = m
}

func (w *snapWriter) scopeTables() {
	e := w.e
	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		m := e.scopes[t]
		n := len(m)
		if t == event.ScopeModel {
			n += len(e.models)
		}
		idx := make(map[*scope]uint32, n)
		w.idx[t] = idx
		w.uv(uint64(len(m)))
		for id, s := range m {
			idx[s] = uint32(len(idx))
			w.str(id)
			w.scope(s)
		}
	}
	// Model cohorts, keyed by model and firmware, continue the model table.
	idx := w.idx[event.ScopeModel]
	w.uv(uint64(len(e.models)))
	for k, s := range e.models {
		idx[s] = uint32(len(idx))
		w.str(k[0])
		w.str(k[1])
		w.scope(s)
	}
	// Terminals last: their dims refer to the tables above.
	m := e.scopes[event.ScopeTerminal]
	refd := w.idx[event.ScopeTerminal]
	w.uv(uint64(len(m)))
	i := uint32(0)
	for id, s := range m {
		if len(refd) > 0 {
			if _, ok := refd[s]; ok {
				refd[s] = i
			}
		}
		w.str(id)
		w.scope(s)
		i++
	}
}

func (w *snapWriter) scope(s *scope) {
	maxTs := w.e.maxTs
	var flags uint64
	if s.suspect != 0 {
		flags |= snapSuspect
	}
	if s.explainedUntil != 0 || s.explainedCauses != 0 {
		flags |= snapExplained
	}
	if s.dims != nil {
		flags |= snapDims
	}
	w.uv(flags)
	w.v(maxTs - s.last)
	if flags&snapSuspect != 0 {
		w.uv(s.suspect)
	}
	if flags&snapExplained != 0 {
		w.v(s.explainedUntil - maxTs)
		w.uv(uint64(s.explainedCauses))
	}
	w.baseline(&s.base)

	n := 0
	for i := range s.ring {
		if s.ring[i] != (bucket{}) {
			n++
		}
	}
	w.uv(uint64(n))
	prev := w.refSlot[s.typ]
	for i := range s.ring {
		bk := &s.ring[i]
		if *bk == (bucket{}) {
			continue
		}
		w.v(int64(bk.slot) - int64(prev))
		prev = bk.slot
		w.uv(uint64(bk.n))
		var mask uint64
		for c, f := range bk.f {
			if f != 0 {
				mask |= 1 << c
			}
		}
		w.uv(mask)
		for _, f := range bk.f {
			if f != 0 {
				w.uv(uint64(f))
			}
		}
	}

	if d := s.dims; d != nil {
		switch d[event.ScopeTerminal] {
		case nil:
			w.uv(0)
		case s:
			w.uv(1)
		default: // not done by Observe; kept for completeness
			w.uv(2)
			w.ref(event.ScopeTerminal, d[event.ScopeTerminal])
		}
		for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
			w.ref(t, d[t])
		}
	}
}

// baseline writes a mask of the non-zero values (bit 0: n, bit c+1: f[c])
// and then their bits.
func (w *snapWriter) baseline(b *baseline) {
	var mask uint64
	if math.Float32bits(b.n) != 0 {
		mask = 1
	}
	for c, f := range b.f {
		if math.Float32bits(f) != 0 {
			mask |= 2 << c
		}
	}
	w.uv(mask)
	if mask&1 != 0 {
		w.u32(math.Float32bits(b.n))
	}
	for _, f := range b.f {
		if x := math.Float32bits(f); x != 0 {
			w.u32(x)
		}
	}
}

// ref writes a reference to s, a scope of type t: 0 for none, 2i+1 for
// the i-th of t's table, 2(j+1) for the j-th detached scope, followed by
// its id when it is new.
func (w *snapWriter) ref(t event.ScopeType, s *scope) {
	if s == nil {
		w.uv(0)
		return
	}
	if i, ok := w.idx[t][s]; ok && i != noIndex && !s.evicted {
		w.uv(uint64(i)<<1 | 1)
		return
	}
	if j, ok := w.detached[s]; ok {
		w.uv(uint64(j+1) << 1)
		return
	}
	if w.detached == nil {
		w.detached = map[*scope]uint32{}
	}
	j := uint32(len(w.detached))
	w.detached[s] = j
	w.uv(uint64(j+1) << 1)
	w.str(s.id)
}

// anyRef writes a reference to a scope of any type: the type, then ref.
func (w *snapWriter) anyRef(s *scope) {
	w.b = append(w.b, byte(s.typ))
	w.ref(s.typ, s)
}

func (w *snapWriter) rule(r *rule) {
	maxTs := w.e.maxTs
	w.uv(uint64(len(r.active)))
	for _, inc := range r.active {
		w.anyRef(inc.scope)
		w.v(inc.quietSince)
		w.uv(inc.confirmed)
		w.alert(&inc.alert)
	}
	// r.holds.renewed is empty between evaluations: expire clears it.
	w.uv(uint64(len(r.holds.since)))
	for s, since := range r.holds.since {
		w.anyRef(s)
		w.v(since - maxTs)
	}
}

func (w *snapWriter) alert(a *Alert) {
	w.str(a.ID)
	w.str(a.State)
	w.uv(uint64(a.Kind))
	w.str(a.Cause)
	w.str(a.ScopeType)
	w.str(a.ScopeID)
	w.v(a.StartsAt.UnixNano())
	w.v(a.DetectedAt.UnixNano())
	if a.EndsAt == nil {
		w.bool(false)
	} else {
		w.bool(true)
		w.v(a.EndsAt.UnixNano())
	}
	w.v(int64(a.Attempts))
	w.v(int64(a.Failures))
	w.v(int64(a.Affected))
	w.u64(math.Float64bits(a.Rate))
	w.u64(math.Float64bits(a.BaselineRate))
	w.str(a.Summary)
	w.str(a.Remedy)
	if a.Labels == nil {
		w.uv(0)
		return
	}
	w.uv(uint64(len(a.Labels)) + 1)
	for k, v := range a.Labels {
		w.str(k)
		w.str(v)
	}
}

func (w *snapWriter) records(recs []record) {
	w.uv(uint64(len(recs)))
	prev := w.e.maxTs
	for i := range recs {
		rec := &recs[i]
		w.v(rec.ts - prev)
		prev = rec.ts
		if j, ok := w.codes[rec.code]; ok {
			w.uv(uint64(j) + 1)
		} else {
			if w.codes == nil {
				w.codes = map[string]uint32{}
			}
			w.codes[rec.code] = uint32(len(w.codes))
			w.uv(0)
			w.str(rec.code)
		}
		for t, s := range rec.dims {
			w.ref(event.ScopeType(t), s)
		}
	}
}

// Restore replaces the state of a fresh engine (made by NewEngine, nothing
// observed yet) with a snapshot's. It fails, leaving the engine fresh, when
// the data is corrupt or was written under an incompatible configuration.
//
// data must be exactly what one AppendSnapshot call appended. The engine
// keeps no reference to it.
func (e *Engine) Restore(data []byte) error {
	if e.started || e.stats != (Stats{}) || e.nScopes != 0 || e.tickCount.n != 0 {
		return errors.New("restoring a detector snapshot: the engine has already observed events")
	}
	if len(data) < len(snapMagic)+1+snapCRCLen || string(data[:len(snapMagic)]) != snapMagic {
		return errors.New("restoring a detector snapshot: not a detector snapshot")
	}
	body := data[:len(data)-snapCRCLen]
	d := snapReader{b: body, off: len(snapMagic)}
	if v := d.uv(); d.err == nil && v != snapVersion {
		return fmt.Errorf("restoring a detector snapshot: %w: format version %d, this build reads version %d",
			ErrSnapshotIncompatible, v, snapVersion)
	}
	if got, want := crc32.Checksum(body, snapCRCTable), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return fmt.Errorf("restoring a detector snapshot: corrupt: checksum %08x, want %08x", got, want)
	}
	if err := e.checkLayout(&d); err != nil {
		return fmt.Errorf("restoring a detector snapshot: %w", err)
	}
	st := snapState{e: e}
	st.read(&d)
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes left over", len(d.b)-d.off)
	}
	if d.err != nil {
		return fmt.Errorf("restoring a detector snapshot: %w", d.err)
	}
	st.commit()
	return nil
}

// checkLayout reads the snapshot's layout and compares it with e's.
func (e *Engine) checkLayout(d *snapReader) error {
	mine := e.layoutOf()
	n := d.count(1)
	theirs := make([]int64, n)
	for i := range theirs {
		theirs[i] = d.v()
	}
	if d.err != nil {
		return d.err
	}
	var diffs []string
	cmp := func(from, to int) {
		for i := from; i < min(to, n, len(mine)); i++ {
			if f := mine[i]; theirs[i] != f.v {
				diffs = append(diffs, fmt.Sprintf("%s is %s in the snapshot, %s here", f.name, f.format(theirs[i]), f.format(f.v)))
			}
		}
	}
	cmp(0, layoutHead)
	if len(diffs) == 0 {
		cmp(layoutHead, len(mine))
		if len(diffs) == 0 && n != len(mine) {
			diffs = append(diffs, fmt.Sprintf("the snapshot's layout has %d values, this engine's %d", n, len(mine)))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrSnapshotIncompatible, strings.Join(diffs, "; "))
	}
	return nil
}

// snapReader reads what snapWriter wrote. The first problem sticks: later
// reads return zero values and consume nothing, so loops bounded by counts
// (themselves bounded by the bytes left) end quickly.
type snapReader struct {
	b   []byte
	off int
	err error
}

func (d *snapReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("corrupt at byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *snapReader) uv() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return x
}

func (d *snapReader) v() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return x
}

// bounded reads an unsigned value of at most limit.
func (d *snapReader) bounded(limit uint64, what string) uint64 {
	x := d.uv()
	if x > limit {
		d.fail("%s %d out of range", what, x)
		return 0
	}
	return x
}

// count reads a number of items that take at least size bytes each.
func (d *snapReader) count(size int) int {
	x := d.uv()
	if left := uint64(len(d.b)-d.off) / uint64(size); x > left {
		d.fail("count %d exceeds the data left", x)
		return 0
	}
	return int(x)
}

func (d *snapReader) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail("truncated")
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *snapReader) u32() uint32 {
	if p := d.fixed(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *snapReader) u64() uint64 {
	if p := d.fixed(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *snapReader) str() string {
	n := d.count(1)
	if d.err != nil || n == 0 {
		return ""
	}
	return string(d.fixed(n))
}

func (d *snapReader) bool() bool {
	switch d.uv() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

func (d *snapReader) time() time.Time { return time.Unix(0, d.v()).UTC() }

// snapState is a snapshot being read, committed to the engine only once it
// has all been read.
type snapState struct {
	e *Engine

	started          bool
	maxTs, nextTick  int64
	tickNo           uint64
	stats            Stats
	pool             baseline
	tickCount        tickCounts
	nScopes, sweepAt int
	maxScopes        int
	refSlot          [event.NumScopeTypes]int32
	scopes           [event.NumScopeTypes]map[string]*scope
	models           map[[2]string]*scope
	tables           [event.NumScopeTypes][]*scope
	detached         []*scope
	changed          []*scope
	active           [numRules][]*incident
	since            [numRules]map[*scope]int64
	queues           [len(recordCauses)][]record
	codes            []string
}

// terminalAlloc places a terminal and its dims in one allocation: they
// live and die together (Observe allocates them apart, once each).
type terminalAlloc struct {
	s    scope
	dims [event.NumScopeTypes]*scope
}

// Smallest encodings, to bound counts by the bytes left.
const (
	minScopeBytes  = 6  // id, flags, last, baseline mask, ring count
	minRecordBytes = 11 // ts, code, NumScopeTypes references
)

func (st *snapState) read(d *snapReader) {
	e := st.e
	st.started = d.bool()
	st.maxTs = d.v()
	st.nextTick = st.maxTs + d.v()
	st.tickNo = d.uv()
	s := &st.stats
	for _, p := range [...]*uint64{&s.Observed, &s.Late, &s.Fired, &s.Resolved, &s.Inhibited, &s.Suppressed,
		&s.RecordsDropped, &s.EvictedScopes, &s.EvictedAtCap, &s.CapSweeps} {
		*p = d.uv()
	}
	st.pool.n = math.Float32frombits(d.u32())
	for c := range st.pool.f {
		st.pool.f[c] = math.Float32frombits(d.u32())
	}
	st.tickCount.n = st.int(d)
	for c := range st.tickCount.f {
		st.tickCount.f[c] = st.int(d)
	}
	st.nScopes = st.int(d)
	st.sweepAt = st.int(d)
	st.maxScopes = st.int(d)
	if d.err != nil {
		return
	}
	if st.started {
		if st.maxTs <= slotEpoch {
			d.fail("newest event time %d before the slot epoch", st.maxTs)
			return
		}
		for t := range st.refSlot {
			st.refSlot[t] = e.slot(event.ScopeType(t), st.maxTs)
		}
	}

	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		n := d.count(minScopeBytes)
		m := make(map[string]*scope, n)
		st.scopes[t] = m
		for range n {
			id := d.str()
			s := st.scope(d, t, id)
			if d.err != nil {
				return
			}
			m[id] = s
			st.tables[t] = append(st.tables[t], s)
		}
		if len(m) != n {
			d.fail("%s ids repeat", t)
			return
		}
	}
	n := d.count(minScopeBytes + 1)
	st.models = make(map[[2]string]*scope, n)
	for range n {
		model, firmware := d.str(), d.str()
		id := model
		if firmware != "" {
			id = model + "/" + firmware
		}
		s := st.scope(d, event.ScopeModel, id)
		if d.err != nil {
			return
		}
		st.models[[2]string{model, firmware}] = s
		st.tables[event.ScopeModel] = append(st.tables[event.ScopeModel], s)
	}
	if len(st.models) != n {
		d.fail("model cohorts repeat")
		return
	}
	n = d.count(minScopeBytes)
	m := make(map[string]*scope, n)
	st.scopes[event.ScopeTerminal] = m
	st.tables[event.ScopeTerminal] = make([]*scope, 0, n)
	for range n {
		id := d.str()
		s := st.scope(d, event.ScopeTerminal, id)
		if d.err != nil {
			return
		}
		m[id] = s
		st.tables[event.ScopeTerminal] = append(st.tables[event.ScopeTerminal], s)
	}
	if len(m) != n {
		d.fail("terminal ids repeat")
		return
	}
	held := 0
	for _, m := range st.scopes {
		held += len(m)
	}
	if held += len(st.models); held != st.nScopes {
		d.fail("%d scopes held, the snapshot counts %d", held, st.nScopes)
		return
	}

	n = d.count(2)
	st.changed = make([]*scope, 0, n)
	seen := make(map[*scope]struct{}, n)
	for range n {
		s := st.anyRef(d)
		if s == nil {
			d.fail("no merchant in the merchant set")
			return
		}
		if _, dup := seen[s]; dup {
			d.fail("merchant set repeats %s", s.id)
			return
		}
		seen[s] = struct{}{}
		st.changed = append(st.changed, s)
	}

	for r := range numRules {
		n := d.count(8)
		for range n {
			s := st.anyRef(d)
			inc := &incident{rule: e.rules[r], scope: s, quietSince: d.v(), confirmed: d.uv()}
			st.alert(d, &inc.alert)
			if d.err != nil {
				return
			}
			if s == nil || s.incident(r) != nil {
				d.fail("rule %d: incident without a scope of its own", r)
				return
			}
			s.setIncident(r, inc)
			st.active[r] = append(st.active[r], inc)
		}
		n = d.count(3)
		st.since[r] = make(map[*scope]int64, n)
		for range n {
			s := st.anyRef(d)
			since := st.maxTs + d.v()
			if s == nil {
				d.fail("rule %d: hold without a scope", r)
				return
			}
			st.since[r][s] = since
		}
	}

	for i := range recordCauses {
		n := d.count(minRecordBytes)
		recs := make([]record, n)
		prev := st.maxTs
		for k := range recs {
			rec := &recs[k]
			rec.ts = prev + d.v()
			prev = rec.ts
			if j := d.uv(); j == 0 {
				rec.code = d.str()
				st.codes = append(st.codes, rec.code)
			} else if j <= uint64(len(st.codes)) {
				rec.code = st.codes[j-1]
			} else {
				d.fail("unknown code %d", j)
			}
			for t := range rec.dims {
				rec.dims[t] = st.ref(d, event.ScopeType(t))
			}
			if d.err != nil {
				return
			}
		}
		st.queues[i] = recs
	}
}

func (st *snapState) int(d *snapReader) int {
	x := d.v()
	if x != int64(int(x)) {
		d.fail("integer %d out of range", x)
	}
	return int(x)
}

func (st *snapState) scope(d *snapReader, t event.ScopeType, id string) *scope {
	e := st.e
	flags := d.uv()
	if flags&^snapFlagsAll != 0 {
		d.fail("bad scope flags %x", flags)
		return nil
	}
	var s *scope
	var dims *[event.NumScopeTypes]*scope
	if flags&snapDims != 0 && t == event.ScopeTerminal {
		a := new(terminalAlloc)
		s, dims = &a.s, &a.dims
	} else if flags&snapDims != 0 {
		d.fail("%s %s has dims", t, id)
		return nil
	} else {
		s = &scope{}
	}
	s.typ, s.id = t, id
	s.ring = make([]bucket, e.ringLen[t])
	s.last = st.maxTs - d.v()
	if flags&snapSuspect != 0 {
		s.suspect = d.uv()
	}
	if flags&snapExplained != 0 {
		s.explainedUntil = st.maxTs + d.v()
		s.explainedCauses = uint16(d.bounded(math.MaxUint16, "explained causes"))
	}
	st.baseline(d, &s.base)

	nb := d.count(3)
	if nb > len(s.ring) {
		d.fail("%d buckets for a ring of %d", nb, len(s.ring))
		return nil
	}
	prev := int64(st.refSlot[t])
	for range nb {
		slot := prev + d.v()
		if slot < 0 || slot > math.MaxInt32 {
			d.fail("bucket slot %d out of range", slot)
			return nil
		}
		prev = slot
		b := &s.ring[int(slot)%len(s.ring)]
		if *b != (bucket{}) {
			d.fail("two buckets in one ring position")
			return nil
		}
		b.slot = int32(slot)
		b.n = uint32(d.bounded(math.MaxUint32, "bucket count"))
		mask := d.bounded(1<<event.NumCauses-1, "bucket cause mask")
		for c := range b.f {
			if mask&(1<<c) != 0 {
				b.f[c] = uint16(d.bounded(math.MaxUint16, "bucket failures"))
			}
		}
	}

	if dims != nil {
		switch d.uv() {
		case 0:
		case 1:
			dims[event.ScopeTerminal] = s
		case 2:
			dims[event.ScopeTerminal] = st.ref(d, event.ScopeTerminal)
		default:
			d.fail("bad terminal reference")
		}
		for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
			dims[t] = st.ref(d, t)
		}
		s.dims = dims
	}
	if d.err != nil {
		return nil
	}
	return s
}

func (st *snapState) baseline(d *snapReader, b *baseline) {
	mask := d.bounded(1<<(event.NumCauses+1)-1, "baseline mask")
	if mask&1 != 0 {
		b.n = math.Float32frombits(d.u32())
	}
	for c := range b.f {
		if mask&(2<<c) != 0 {
			b.f[c] = math.Float32frombits(d.u32())
		}
	}
}

func (st *snapState) ref(d *snapReader, t event.ScopeType) *scope {
	v := d.uv()
	switch {
	case d.err != nil || v == 0:
		return nil
	case v&1 == 1:
		if i := v >> 1; i < uint64(len(st.tables[t])) {
			return st.tables[t][i]
		}
		d.fail("%s reference %d out of range", t, v>>1)
		return nil
	}
	j := v>>1 - 1
	switch {
	case j < uint64(len(st.detached)):
		if s := st.detached[j]; s.typ == t {
			return s
		}
		d.fail("evicted scope reference %d of the wrong type", j)
		return nil
	case j == uint64(len(st.detached)):
		id := d.str()
		if d.err != nil {
			return nil
		}
		// Only its id is ever read: its holder looks the id up again.
		s := &scope{typ: t, id: id, evicted: true}
		st.detached = append(st.detached, s)
		return s
	}
	d.fail("evicted scope reference %d out of range", j)
	return nil
}

func (st *snapState) anyRef(d *snapReader) *scope {
	t := d.bounded(uint64(event.NumScopeTypes)-1, "scope type")
	return st.ref(d, event.ScopeType(t))
}

func (st *snapState) alert(d *snapReader, a *Alert) {
	a.ID = d.str()
	a.State = d.str()
	a.Kind = Kind(d.bounded(uint64(NumKinds)-1, "alert kind"))
	a.Cause = d.str()
	a.ScopeType = d.str()
	a.ScopeID = d.str()
	a.StartsAt = d.time()
	a.DetectedAt = d.time()
	if d.bool() {
		t := d.time()
		a.EndsAt = &t
	}
	a.Attempts = st.int(d)
	a.Failures = st.int(d)
	a.Affected = st.int(d)
	a.Rate = math.Float64frombits(d.u64())
	a.BaselineRate = math.Float64frombits(d.u64())
	a.Summary = d.str()
	a.Remedy = d.str()
	if n := d.count(2); n > 0 {
		a.Labels = make(map[string]string, n-1)
		for range n - 1 {
			k := d.str()
			a.Labels[k] = d.str()
		}
	}
}

// commit replaces the engine's state with the snapshot's.
func (st *snapState) commit() {
	e := st.e
	e.started, e.maxTs, e.nextTick, e.tickNo = st.started, st.maxTs, st.nextTick, st.tickNo
	e.stats = st.stats
	e.pool, e.tickCount = st.pool, st.tickCount
	e.scopes, e.models = st.scopes, st.models
	e.nScopes = st.nScopes
	e.sweepAt = st.sweepAt
	if st.maxScopes != e.cfg.MaxScopes {
		// The cap changed: sweep once past the new one.
		e.sweepAt = e.cfg.MaxScopes
	}
	e.changed.reset()
	for _, s := range st.changed {
		e.changed.add(s)
	}
	for i, r := range e.rules {
		r.active = st.active[i]
		r.holds.since = st.since[i]
		clear(r.holds.renewed)
	}
	for i, c := range recordCauses {
		q := e.queues[c]
		q.recs, q.head = st.queues[i], 0
	}
}
