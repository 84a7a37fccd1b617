package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Detector checkpoints make detection crash-consistent (as Flink aligns
// state snapshots with source offsets): a checkpoint holds, as of one
// flush, the position processed in every consumed partition, the events
// the event-time merge still holds, and the detector's whole state. Offsets
// are committed only once the checkpoint with those very positions is
// durable, so after a crash (or on a standby's takeover) restoring the
// latest checkpoint and skipping what it already covers resumes detection
// exactly where the checkpoint left it: no event counted twice, none
// missed, incidents keep their alert_id and resolve once.
//
// Alerts raised between the checkpoint and the crash were delivered, and
// the restored detector raises them again as it re-reads those events.
// The alert journal prevents announcing them twice: each record delivered
// is journaled (after delivery: at-least-once, never lost); after a
// restore a record the journal already holds is not sent again. Journal
// entries a later checkpoint covers are deleted.
//
// Cost: a checkpoint is taken at a flush at most every CheckpointInterval,
// and never more often than ten times its own duration (up to five
// intervals), so a fleet whose checkpoint takes 1 s pays at most 10% of
// the processing time.

// CheckpointStore keeps checkpoints and the alert journal durable
// (ingest.CheckpointTopic).
type CheckpointStore interface {
	Load(ctx context.Context) (ingest.Checkpoint, error)
	Save(ctx context.Context, seq uint64, data []byte) error
	Journal(ctx context.Context, entries []ingest.JournalEntry) error
}

// AlertAdopter is an alert sink that keeps state per alert (Alertmanager):
// after a restore it is handed the incidents already firing, so it keeps
// them alive without announcing them again.
type AlertAdopter interface {
	Adopt(alerts []alerting.Alert)
}

// checkpointer is the pipeline's checkpoint state.
type checkpointer struct {
	store    CheckpointStore
	interval time.Duration
	now      func() time.Time
	loaded   bool   // restore has run (at the first message: after this instance was assigned partitions)
	joins    uint64 // the source's group joins as of the last restore
	recheck  bool   // rejoined since: another member may have checkpointed meanwhile
	seq      uint64
	last     time.Time     // the last durable checkpoint
	took     time.Duration // how long it took
	buf      []byte
	// journal is what was announced and not yet covered by a checkpoint,
	// plus, after a restore, what the crashed run had announced.
	journal map[string]journaled
}

type journaled struct {
	resolved bool
	at       int64 // event time of the record, unix s
	// restored: announced by a run that crashed, ahead of the restored
	// detector. No checkpoint covers it until the detector raises the
	// record again (suppressed then) or a day of event time passes.
	restored bool
}

// journalKeep is how long (event time) an announced alert the restored
// detector has not raised again is remembered.
const journalKeep = 24 * time.Hour

func (j journaled) encode() []byte {
	st := byte('f')
	if j.resolved {
		st = 'r'
	}
	return binary.BigEndian.AppendUint64([]byte{st}, uint64(j.at))
}

func decodeJournaled(v []byte) (journaled, bool) {
	if len(v) != 9 || (v[0] != 'f' && v[0] != 'r') {
		return journaled{}, false
	}
	return journaled{resolved: v[0] == 'r', at: int64(binary.BigEndian.Uint64(v[1:]))}, true
}

// announce decides whether the detector's record a goes out: false when
// the journal shows it was delivered before a restart. A record that goes
// out is journaled.
func (p *Pipeline) announce(a *alerting.Alert) bool {
	c := &p.ckpt
	if c.store == nil {
		return true
	}
	resolved := a.State == alerting.StateResolved
	if j, ok := c.journal[a.ID]; ok && (!resolved || j.resolved) {
		p.counters.AlertsAlreadyDelivered.Add(1)
		p.adopt([]alerting.Alert{*a})
		if j.restored && resolved == j.resolved {
			// The detector has caught up with the crashed run on this
			// alert: the next checkpoint covers the entry.
			j.restored = false
			c.journal[a.ID] = j
		}
		return false
	}
	at := a.DetectedAt
	if a.EndsAt != nil {
		at = *a.EndsAt
	}
	j := journaled{resolved: resolved, at: at.Unix()}
	c.journal[a.ID] = j
	p.journalStage.add(ingest.JournalEntry{ID: a.ID, Value: j.encode()})
	return true
}

// restoreDue reports whether the checkpoint must be read before the
// message just fetched is handled: at the first message, and at the
// first after the consumer joined its group again (a standby may have
// taken over and moved on meanwhile).
func (c *checkpointer) restoreDue(src Source) bool {
	if j, ok := src.(interface{ Joins() uint64 }); ok {
		if n := j.Joins(); n != c.joins {
			c.joins = n
			c.recheck = c.loaded
		}
	}
	return !c.loaded || c.recheck
}

// restore loads the latest checkpoint before the first message is
// handled. It retries until the store answers (or ctx ends); a checkpoint
// that cannot be used is logged and detection starts empty.
func (p *Pipeline) restore(ctx context.Context, src Source) error {
	c := &p.ckpt
	var cp ingest.Checkpoint
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var err error
		t0 := time.Now()
		cp, err = c.store.Load(ctx)
		var unusable *ingest.UnusableCheckpointError
		if errors.As(err, &unusable) {
			p.log.Error("the latest detector checkpoint cannot be used; detection starts empty from the committed offsets", zap.Error(err))
			cp.Seq, cp.Data, err = 0, nil, nil
		}
		if err == nil {
			p.log.Info("checkpoint store read", zap.Uint64("checkpoint", cp.Seq), zap.Int64("bytes_read", cp.Bytes),
				zap.Int("journal", len(cp.Journal)), zap.Duration("took", time.Since(t0)))
			if p.Halted() != "" {
				p.setHalted("")
			}
			break
		}
		// Not ready meanwhile: a standby could take over only if this
		// member left, and it holds the partitions.
		p.setHalted("reading the detector checkpoint: " + err.Error())
		p.flushLog.Warn("reading the detector checkpoint failed; retrying (/readyz not ready meanwhile)", "checkpoint", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	if c.recheck {
		c.recheck = false
		if cp.Seq == c.seq {
			return nil // nobody checkpointed since ours: this state is the latest
		}
		p.log.Warn("another member checkpointed since this one last held the partitions: dropping this detector state for its checkpoint",
			zap.Uint64("ours", c.seq), zap.Uint64("latest", cp.Seq))
		if err := p.resetDetection(); err != nil {
			return err
		}
	}
	c.loaded = true
	c.seq = cp.Seq
	c.last = c.now() // the next checkpoint an interval from now
	for id, v := range cp.Journal {
		if j, ok := decodeJournaled(v); ok {
			j.restored = true
			c.journal[id] = j
		}
	}
	if cp.Seq == 0 {
		p.log.Info("no detector checkpoint yet: detection starts empty")
		return nil
	}
	t0 := time.Now()
	positions, err := p.decodeCheckpoint(cp.Data)
	if err != nil {
		p.log.Error("the detector checkpoint cannot be used; detection starts empty from the committed offsets",
			zap.Uint64("checkpoint", cp.Seq), zap.Error(err))
		return nil
	}
	active := p.engine.Active()
	var adopt []alerting.Alert
	for _, a := range active {
		if j, ok := c.journal[a.ID]; !ok || !j.resolved { // a resolve delivered after the checkpoint stands
			adopt = append(adopt, a)
		}
	}
	p.adopt(adopt)
	p.active.set(active)
	p.counters.setEngine(p.engine.Stats())
	p.counters.CheckpointRestores.Add(1)
	p.log.Info("detector checkpoint restored: resuming from its offsets", zap.Uint64("checkpoint", cp.Seq),
		zap.Int("bytes", len(cp.Data)), zap.Int("partitions", len(positions)), zap.Int("firing", len(active)),
		zap.Time("watermark", p.engine.Watermark()), zap.Duration("took", time.Since(t0)))
	// The group's committed offsets may trail the checkpoint (a crash
	// between the two): bring them level now, unless storage is beside
	// detection — then they stay at what is stored, and what the
	// checkpoint covers beyond is re-read for storage alone.
	if p.behind != nil {
		return nil
	}
	if err := src.Commit(ctx, positions); err != nil {
		p.log.Warn("committing the restored checkpoint's offsets failed; they are committed with the next checkpoint", zap.Error(err))
	}
	return nil
}

// resetDetection drops the detector state, what the merge holds, the
// positions and the alert records not yet delivered, all computed from a
// state that another member's checkpoint supersedes.
func (p *Pipeline) resetDetection() error {
	if err := p.newDetection(); err != nil {
		return err
	}
	p.stopCatchUp(false)
	clear(p.partitions)
	p.last = nil
	if p.behind != nil {
		p.behind.drop()
	}
	for _, st := range p.alerts {
		st.drop()
	}
	p.journalStage.drop()
	clear(p.ckpt.journal)
	return nil
}

// adopt hands records delivered before a restart to the sinks that keep
// per-alert state.
func (p *Pipeline) adopt(alerts []alerting.Alert) {
	if len(alerts) == 0 {
		return
	}
	for _, s := range p.o.Alerts {
		if ad, ok := s.(AlertAdopter); ok {
			ad.Adopt(alerts)
		}
	}
}

// checkpointDue reports whether this flush takes a checkpoint.
func (p *Pipeline) checkpointDue(final bool) bool {
	c := &p.ckpt
	if !c.loaded {
		return false
	}
	// One slow save (a broker hiccup) must not suspend commits for long.
	return final || c.now().Sub(c.last) >= max(c.interval, min(10*c.took, 5*c.interval))
}

// checkpoint makes the detection state as of now durable and returns the
// positions it covers, which may then be committed.
func (p *Pipeline) checkpoint(ctx context.Context) ([]ingest.Position, error) {
	c := &p.ckpt
	t0 := c.now()
	positions := p.processedPositions()
	c.buf = p.encodeCheckpoint(c.buf[:0], positions)
	if err := c.store.Save(ctx, c.seq+1, c.buf); err != nil {
		return nil, err
	}
	c.seq++
	c.last = c.now()
	c.took = c.last.Sub(t0)
	p.counters.Checkpoints.Add(1)
	p.counters.CheckpointBytes.Store(int64(len(c.buf)))
	p.counters.CheckpointNanos.Store(int64(c.took))
	p.obs.ObserveStage("checkpoint", c.took)
	if cap(c.buf) > 4*len(c.buf) && cap(c.buf) > 64<<20 {
		c.buf = nil // a burst's buffer is not kept
	}
	p.forgetCovered(ctx)
	return positions, nil
}

// forgetCovered deletes the journal entries the checkpoint just written
// covers: resolves, and incidents the detector holds as firing. Entries
// of a crashed run the detector has not raised again (restored) stay, for
// at most a day of event time.
func (p *Pipeline) forgetCovered(ctx context.Context) {
	c := &p.ckpt
	firing := map[string]bool{}
	for _, a := range p.engine.Active() {
		firing[a.ID] = true
	}
	horizon := p.engine.Watermark().Add(-journalKeep).Unix()
	var del []ingest.JournalEntry
	for id, j := range c.journal {
		if (!j.restored && (j.resolved || firing[id])) || j.at < horizon {
			del = append(del, ingest.JournalEntry{ID: id})
		}
	}
	if len(del) == 0 {
		return
	}
	if err := c.store.Journal(ctx, del); err != nil {
		p.log.Warn("deleting covered alert journal entries failed; retried at the next checkpoint", zap.Error(err))
		return
	}
	for _, e := range del {
		delete(c.journal, e.ID)
	}
}

// processedPositions is the position processed in every consumed
// partition, sorted.
func (p *Pipeline) processedPositions() []ingest.Position {
	var out []ingest.Position
	for _, st := range p.partitions {
		if st.processed.Topic != "" {
			out = append(out, st.processed)
		}
	}
	sortPositions(out)
	return out
}

// The checkpoint format: magic, positions, held events, detector state.
const checkpointMagic = "DMPC1"

func (p *Pipeline) encodeCheckpoint(b []byte, positions []ingest.Position) []byte {
	b = append(b, checkpointMagic...)
	b = binary.AppendUvarint(b, uint64(len(positions)))
	for _, pos := range positions {
		b = appendString(b, pos.Topic)
		b = binary.AppendUvarint(b, uint64(pos.Partition))
		b = binary.AppendVarint(b, pos.Offset)
		b = binary.AppendVarint(b, pos.HighWaterMark)
	}
	b = binary.AppendUvarint(b, uint64(p.merge.buffered))
	p.merge.each(func(origin *source, from partitionKey, offset int64, h *held) {
		b = appendString(b, from.topic)
		b = binary.AppendUvarint(b, uint64(from.partition))
		b = binary.AppendVarint(b, offset)
		b = appendString(b, origin.topic)
		b = binary.AppendUvarint(b, uint64(origin.partition))
		b = append(b, byte(h.cause))
		n := len(b)
		b = append(b, 0, 0, 0, 0)
		b = event.AppendJSON(b, &h.ev)
		binary.BigEndian.PutUint32(b[n:], uint32(len(b)-n-4))
	})
	return p.engine.AppendSnapshot(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeCheckpoint restores a checkpoint into the fresh detector, merge
// and partition states, and returns its positions.
func (p *Pipeline) decodeCheckpoint(data []byte) ([]ingest.Position, error) {
	r := ckptReader{b: data}
	if string(r.take(len(checkpointMagic))) != checkpointMagic {
		return nil, errors.New("not a declinemon checkpoint of a known format")
	}
	positions := make([]ingest.Position, r.count(4))
	for i := range positions {
		positions[i] = ingest.Position{Topic: r.str(), Partition: int(r.uvarint()), Offset: r.varint(), HighWaterMark: r.varint()}
	}
	type heldEvent struct {
		from    partitionKey
		offset  int64
		origin  partitionKey
		cause   event.Cause
		payload []byte
	}
	heldEvents := make([]heldEvent, r.count(16))
	for i := range heldEvents {
		h := &heldEvents[i]
		h.from = partitionKey{r.str(), int(r.uvarint())}
		h.offset = r.varint()
		h.origin = partitionKey{r.str(), int(r.uvarint())}
		h.cause = event.Cause(r.byte())
		h.payload = r.take(int(r.uint32()))
	}
	if r.err != nil {
		return nil, r.err
	}
	// Everything is checked before anything is applied: a checkpoint is
	// used whole or not at all.
	events := make([]event.Event, len(heldEvents))
	for i, h := range heldEvents {
		if h.cause >= event.NumCauses {
			return nil, fmt.Errorf("held event at %s/%d offset %d: cause %d", h.from.topic, h.from.partition, h.offset, h.cause)
		}
		if err := p.dec.Decode(h.payload, &events[i]); err != nil {
			return nil, fmt.Errorf("held event at %s/%d offset %d: %w", h.from.topic, h.from.partition, h.offset, err)
		}
	}
	if err := p.engine.Restore(r.b); err != nil {
		return nil, fmt.Errorf("detector state: %w", err)
	}
	// The exported counter is what this process counts itself, so
	// Prometheus never sees it fall after a restart.
	p.counters.DetectorRestored.Store(p.engine.Stats().Observed)
	for _, pos := range positions {
		st := &partitionState{processed: pos, committed: pos.Offset, handled: unknownOffset, stored: pos.Offset, staged: pos.Offset, atJoin: unknownOffset}
		if p.behind != nil {
			// What is committed and stored is known at its first message.
			st.committed, st.stored, st.staged = unknownOffset, unknownOffset, unknownOffset
		}
		p.partitions[partitionKey{pos.Topic, pos.Partition}] = st
	}
	for i, h := range heldEvents {
		p.merge.push([]byte(h.origin.topic), h.origin.partition, h.from, h.offset, &events[i], h.cause, p.observe)
	}
	return positions, nil
}

// ckptReader reads the checkpoint format; the first error sticks.
type ckptReader struct {
	b   []byte
	err error
}

func (r *ckptReader) fail() {
	if r.err == nil {
		r.err = errors.New("checkpoint truncated or corrupt")
	}
	r.b = nil
}

func (r *ckptReader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *ckptReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *ckptReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *ckptReader) byte() byte {
	v := r.take(1)
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

func (r *ckptReader) uint32() uint32 {
	v := r.take(4)
	if len(v) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *ckptReader) str() string { return string(r.take(int(r.uvarint()))) }

// count reads an element count, bounded by what the remaining bytes can
// hold at minBytes per element.
func (r *ckptReader) count(minBytes int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minBytes) {
		r.fail()
		return 0
	}
	return int(n)
}
