package alerting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unsafe"

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
//	scopes: per scope type, the map's scopes, in address order (which
//	  makes writing them a sweep through memory); then the model cohorts
//	  (keyed by model and firmware); terminals last, since their dims
//	  refer to the others
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
	snapSeq                   // sequential evidence and peer rate follow
	snapVol                   // attempts per minute follow (regions)
	snapFlagsAll  = snapSuspect | snapExplained | snapDims | snapSeq | snapVol
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
// engine. It does not change the engine. It allocates nothing per scope:
// besides growing b, once, it allocates its working tables, about 30 bytes
// a scope (the scopes of the largest type in address order, and pointer
// indexes of the scopes that terminals refer to). For a fleet of 1M
// terminals it takes about 0.6 s and writes 44 MB (BenchmarkSnapshot1M);
// Restore takes 1.2 to 1.6 s (BenchmarkRestore1M).
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
	idx      [event.NumScopeTypes]scopeIndex
	detached map[*scope]uint32 // scopes referred to but not held: evicted
	codes    map[string]uint32 // response codes of records, written once
	refSlot  [event.NumScopeTypes]int32

	pending    scopeBatch
	order      []*scope // scopes of one type, by address
	scratch    []*scope
	nTerminals uint32 // terminals written
	sink       uint64 // see flush
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
	w.volume(&e.fleetVol)
}

func (w *snapWriter) volume(v *volume) {
	w.v(v.minute)
	for i, n := range v.n {
		w.uv(uint64(n))
		w.uv(uint64(v.f[i]))
	}
}

// seedTerminals indexes the terminals that the merchant set, the rules and
// the failure records refer to, so that writing the terminal table can
// note their indexes without a lookup table of every terminal.
func (w *snapWriter) seedTerminals() {
	e := w.e
	var refd []*scope
	seed := func(s *scope) {
		if s != nil && s.typ == event.ScopeTerminal {
			refd = append(refd, s)
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
	idx := &w.idx[event.ScopeTerminal]
	idx.init(len(refd))
	for _, s := range refd {
		idx.put(s, noIndex)
	}
}

func (w *snapWriter) scopeTables() {
	e := w.e
	for t := event.ScopeMerchant; t < event.NumScopeTypes; t++ {
		m := e.scopes[t]
		n := len(m)
		if t == event.ScopeModel {
			n += len(e.models)
		}
		w.idx[t].init(n)
		w.uv(uint64(len(m)))
		w.inAddressOrder(m)
	}
	// Model cohorts, keyed by model and firmware, continue the model table.
	w.uv(uint64(len(e.models)))
	w.pending.pairs = true
	for k, s := range e.models {
		w.batch(k[0], k[1], s)
	}
	w.flush()
	w.pending.pairs = false
	// Terminals last: their dims refer to the tables above.
	m := e.scopes[event.ScopeTerminal]
	w.uv(uint64(len(m)))
	w.inAddressOrder(m)
}

// inAddressOrder writes the scopes of m in the order of their addresses.
// A scope, its ring and its dims were allocated together, so in that
// order the writer sweeps through memory rather than jumping: with a
// million scopes, jumps cost a cache and a TLB miss each.
func (w *snapWriter) inAddressOrder(m map[string]*scope) {
	order := w.order[:0]
	if cap(order) < len(m) {
		n := max(len(m), len(w.e.scopes[event.ScopeTerminal]))
		order, w.scratch = make([]*scope, 0, n), make([]*scope, n)
	}
	for _, s := range m {
		order = append(order, s)
	}
	sortByAddress(order, w.scratch[:len(order)])
	for _, s := range order {
		w.batch(s.id, "", s)
	}
	w.flush()
	w.order = order[:0]
}

// sortByAddress sorts scopes by address, with tmp as scratch: a radix
// sort, in as few passes of 11 bits as the span of the addresses needs
// (three for a heap of up to 128 GB).
func sortByAddress(scopes, tmp []*scope) {
	if len(scopes) < 2 {
		return
	}
	addr := func(s *scope) uintptr { return uintptr(unsafe.Pointer(s)) }
	lo, hi := addr(scopes[0]), addr(scopes[0])
	for _, s := range scopes {
		lo, hi = min(lo, addr(s)), max(hi, addr(s))
	}
	const digit = 11
	var count [1 << digit]int
	src, dst := scopes, tmp
	for shift := uint(4); shift < 64 && (hi-lo)>>shift != 0; shift += digit { // scopes are 16-byte aligned
		clear(count[:])
		for _, s := range src {
			count[(addr(s)-lo)>>shift&(1<<digit-1)]++
		}
		sum := 0
		for i, c := range count {
			count[i], sum = sum, sum+c
		}
		for _, s := range src {
			d := (addr(s) - lo) >> shift & (1<<digit - 1)
			dst[count[d]] = s
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &scopes[0] {
		copy(scopes, src)
	}
}

// snapBatch is how many scopes the writer fetches from memory together.
const snapBatch = 64

// scopeBatch is the scopes of one type waiting to be written, with their
// keys: ids, or for model cohorts (pairs) model and firmware.
type scopeBatch struct {
	n      int
	pairs  bool
	keys   [snapBatch][2]string
	scopes [snapBatch]*scope
}

func (w *snapWriter) batch(k0, k1 string, s *scope) {
	bt := &w.pending
	bt.keys[bt.n], bt.scopes[bt.n] = [2]string{k0, k1}, s
	if bt.n++; bt.n == snapBatch {
		w.flush()
	}
}

// scopeIndex maps scopes to their index in their type's table: an open
// addressing table keyed by address (the collector does not move heap
// objects, and the scopes stay referenced by the engine's maps while it is
// used), two to four slots per scope, so that looking up a terminal's
// merchant, region... is a multiplication and, mostly, one memory access.
type scopeIndex struct {
	slots []scopeSlot
	shift uint8
	n     int
}

type scopeSlot struct {
	key uintptr
	i   uint32
}

func (x *scopeIndex) init(n int) {
	size := 8
	for size < 2*n {
		size *= 2
	}
	x.slots = make([]scopeSlot, size)
	x.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	x.n = 0
}

func (x *scopeIndex) home(key uintptr) int {
	return int(uint64(key) * 0x9e3779b97f4a7c15 >> x.shift)
}

// find returns the slot of s, or the empty slot where it would go.
func (x *scopeIndex) find(s *scope) *scopeSlot {
	key := uintptr(unsafe.Pointer(s))
	mask := len(x.slots) - 1
	for i := x.home(key); ; i = (i + 1) & mask {
		if sl := &x.slots[i]; sl.key == key || sl.key == 0 {
			return sl
		}
	}
}

// put adds s with index i; s must be new.
func (x *scopeIndex) put(s *scope, i uint32) {
	if sl := x.find(s); sl.key == 0 {
		sl.key, sl.i = uintptr(unsafe.Pointer(s)), i
		x.n++
	}
}

// set changes the index of s if it is in the table.
func (x *scopeIndex) set(s *scope, i uint32) {
	if sl := x.find(s); sl.key != 0 {
		sl.i = i
	}
}

func (x *scopeIndex) get(s *scope) (uint32, bool) {
	if x.n == 0 {
		return 0, false
	}
	sl := x.find(s)
	return sl.i, sl.key != 0
}

// flush writes the batched scopes, first loading a word of every cache
// line that writing them reads: the scopes, their rings and dims and ids.
// Those loads do not depend on one another, so the processor overlaps
// their cache misses, which writing one scope after another would take
// one at a time: at a million scopes scattered over the heap, that is
// most of the cost of a snapshot.
func (w *snapWriter) flush() {
	bt := &w.pending
	scopes := bt.scopes[:bt.n]
	var sink uint64
	for _, s := range scopes {
		sink += uint64(s.typ) + uint64(len(s.ring)) + uint64(s.explainedUntil) // the scope's 144 bytes
	}
	for i, s := range scopes {
		r := s.ring
		for j := 0; j < len(r); j += 2 { // 32-byte buckets
			sink += uint64(r[j].n)
		}
		if len(r) > 0 {
			sink += uint64(r[len(r)-1].n)
		}
		if d := s.dims; d != nil && d[0] != nil && d[len(d)-1] != nil {
			sink++
		}
		if id := bt.keys[i][0]; id != "" {
			sink += uint64(id[0])
		}
	}
	w.sink += sink // keeps the loads
	for i, s := range scopes {
		t := s.typ
		idx := &w.idx[t]
		if t == event.ScopeTerminal {
			// Only terminals referred to from elsewhere are indexed.
			if idx.n > 0 {
				idx.set(s, w.nTerminals)
			}
			w.nTerminals++
		} else {
			idx.put(s, uint32(idx.n))
		}
		w.str(bt.keys[i][0])
		if bt.pairs {
			w.str(bt.keys[i][1])
		}
		w.scope(s)
	}
	bt.n = 0
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
	if s.seq != (seqState{}) || s.peer != 0 || (s.probe != nil && s.probe.k > 0) {
		flags |= snapSeq
	}
	if s.vol != nil {
		flags |= snapVol
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
	if flags&snapSeq != 0 {
		w.u32(math.Float32bits(s.seq.up))
		w.u32(math.Float32bits(s.seq.down))
		w.v(s.seq.since)
		w.v(int64(s.seq.slot) - int64(w.refSlot[s.typ]))
		w.uv(uint64(s.seq.n))
		w.uv(uint64(s.seq.k))
		w.uv(uint64(s.seq.x))
		w.u32(math.Float32bits(s.peer))
		if p := s.probe; p != nil && p.k > 0 {
			w.uv(uint64(p.k))
			w.v(int64(p.from) - int64(w.refSlot[s.typ]))
			w.baseline(&p.sum)
		} else {
			w.uv(0)
		}
	}
	if flags&snapVol != 0 {
		w.volume(s.vol)
	}
	w.baseline(&s.base)

	// The count of non-empty buckets goes before them: one byte, filled
	// in after them, unless the ring is too long for that.
	at := len(w.b)
	if len(s.ring) < 0x80 {
		w.b = append(w.b, 0)
	} else {
		n := 0
		for i := range s.ring {
			if !s.ring[i].empty() {
				n++
			}
		}
		w.uv(uint64(n))
	}
	n := 0
	prev := w.refSlot[s.typ]
	for i := range s.ring {
		bk := &s.ring[i]
		if bk.empty() {
			continue
		}
		n++
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
	if len(s.ring) < 0x80 {
		w.b[at] = byte(n)
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

// empty reports whether bk was never filled (add always counts an
// attempt in a bucket it takes).
func (bk *bucket) empty() bool {
	return bk.n == 0 && bk.slot == 0 && bk.f == [event.NumCauses]uint16{}
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
	if i, ok := w.idx[t].get(s); ok && i != noIndex && !s.evicted {
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
		share := 0.0
		if inc.silence != nil {
			share = inc.silence.share
		}
		w.u64(math.Float64bits(share))
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
	e.relistFailing()
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
	fleetVol         volume
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
	st.volume(d, &st.fleetVol)
	if d.err != nil {
		return
	}
	// Invariants the engine keeps and relies on (the cap sweep would
	// misbehave without them), checked so that no snapshot can break it.
	if st.maxScopes <= 0 || st.sweepAt < st.maxScopes {
		d.fail("cap sweep at %d scopes, cap %d", st.sweepAt, st.maxScopes)
		return
	}
	if !st.started && (st.maxTs != 0 || st.nextTick != 0) {
		d.fail("clock set before the first event")
		return
	}
	if st.started {
		// Observe keeps maxTs-lateness < nextTick, Flush nextTick <=
		// maxTs+2*tick; tick ends are multiples of tick.
		if st.maxTs <= slotEpoch || st.nextTick%e.tick != 0 ||
			st.nextTick <= st.maxTs-e.lateness-e.tick || st.nextTick > st.maxTs+2*e.tick {
			d.fail("inconsistent clock: newest event %d, next tick %d", st.maxTs, st.nextTick)
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
			if share := math.Float64frombits(d.u64()); share != 0 {
				if !(share > 0 && share <= 1) {
					d.fail("silence share %v", share)
					return
				}
				inc.silence = &silenceState{share: share}
			}
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
	if d.err == nil && (!st.started || s.last <= slotEpoch || s.last > st.maxTs) {
		d.fail("%s %s last seen at %d, newest event %d", t, id, s.last, st.maxTs)
		return nil
	}
	if flags&snapSuspect != 0 {
		s.suspect = d.uv()
	}
	if flags&snapExplained != 0 {
		s.explainedUntil = st.maxTs + d.v()
		s.explainedCauses = uint16(d.bounded(math.MaxUint16, "explained causes"))
	}
	if flags&snapSeq != 0 {
		s.seq.up = math.Float32frombits(d.u32())
		s.seq.down = math.Float32frombits(d.u32())
		s.seq.since = d.v()
		slot := int64(st.refSlot[t]) + d.v()
		if slot < 0 || slot > math.MaxInt32 {
			d.fail("sequential slot %d out of range", slot)
			return nil
		}
		s.seq.slot = int32(slot)
		s.seq.n = uint32(d.bounded(math.MaxUint32, "sequential attempts"))
		s.seq.k = uint32(d.bounded(uint64(s.seq.n), "sequential failures"))
		s.seq.x = uint32(d.bounded(math.MaxUint32, "explained failures"))
		s.peer = math.Float32frombits(d.u32())
		if k := d.bounded(math.MaxInt32, "probation buckets"); k > 0 {
			from := int64(st.refSlot[t]) + d.v()
			if from < 0 || from > math.MaxInt32 {
				d.fail("probation slot %d out of range", from)
				return nil
			}
			s.probe = &probation{k: int32(k), from: int32(from)}
			st.baseline(d, &s.probe.sum)
		}
		if d.err == nil && !(validEvidence(s.seq.up) && validEvidence(s.seq.down) && s.peer >= 0 && s.peer <= 1) {
			d.fail("%s %s: bad sequential evidence", t, id)
			return nil
		}
	}
	if flags&snapVol != 0 {
		s.vol = new(volume)
		st.volume(d, s.vol)
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
	e.fleetVol = st.fleetVol
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

func (st *snapState) volume(d *snapReader, v *volume) {
	v.minute = d.v()
	for i := range v.n {
		v.n[i] = uint32(d.bounded(math.MaxUint32, "attempts per minute"))
		v.f[i] = uint32(d.bounded(uint64(v.n[i]), "failures per minute"))
	}
}
