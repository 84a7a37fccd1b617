package pipeline

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Storage catching up after an outage, with detection live.
//
// While ClickHouse is away, detection goes on and nothing is staged, so
// each partition has a gap: the messages after the last stored offset up
// to the last handled one. When the held batch is stored, a source that
// can read a partition outside its group (Backfiller: ingest.KafkaSource)
// is asked for one reader per partition with a gap, from the offset after
// the stored one. Those readers decode and classify in their own
// goroutines and hand chunks of events to the pipeline goroutine, which
// stages them at each flush (as much as one batch holds). Meanwhile the
// group's consumer goes on with new messages: detected at once, and
// staged again once their partition's gap is closed.
//
// Per partition, while it catches up (partitionState.catchUp):
//   - new and re-delivered messages are not staged: the reader stages
//     every message of the gap, in offset order, and st.staged is how far
//     it got (rejected messages count: they have nothing to store);
//   - a batch's cut is st.staged, not the last handled offset;
//   - once st.staged reaches the last handled offset the reader stops and
//     the consumer stages what follows (what the reader staged beyond it
//     is not staged twice: only offsets past st.staged are).
//
// If ClickHouse fails again the readers stop and staging stops, as before;
// the next recovery starts new readers from what is stored then. A source
// without Backfill, or one that cannot open a reader, re-reads from its
// committed offsets instead (Rewinder), detection skipping what it saw.

// Backfiller is a source that can read one partition from an offset on,
// outside its consumer group.
type Backfiller interface {
	Backfill(topic string, partition int, from int64) (ingest.Reader, error)
}

// catchUpChunk is what a reader read of one partition: every message up to
// through, and the events among them to store.
type catchUpChunk struct {
	key     partitionKey
	st      *partitionState
	events  []event.Classified
	through int64
}

// catchUpChunkSize is how many events a reader hands over at once (at
// most a batch).
const catchUpChunkSize = 4096

// catchUpIdle is how long a reader waits for more messages before it hands
// over a partial chunk.
const catchUpIdle = 100 * time.Millisecond

// catchUpFlush is how often the pipeline flushes at least while storage
// catches up: each flush stages what the readers handed over and starts
// the next insert once the running one is done.
const catchUpFlush = 50 * time.Millisecond

// catchUpReaders is how many partitions are read at once: each holds up to
// a chunk and its Kafka reader's queue, whatever the number of partitions.
const catchUpReaders = 4

// catchUpStuck is how long the readers may hand over nothing before the
// catch-up is given up for the re-read from the commits (a partition that
// cannot be read, and would otherwise hold its commits forever).
const catchUpStuck = time.Minute

// catchUp is one recovery's readers.
type catchUp struct {
	chunks  chan catchUpChunk
	slots   chan struct{} // catchUpReaders
	cancel  context.CancelFunc
	wg      *sync.WaitGroup // Pipeline.readers
	readers map[partitionKey]context.CancelFunc
	started time.Time
	last    time.Time // the last chunk staged
	events  uint64    // staged from the readers
}

// startCatchUp opens a reader for every partition with a gap. It reports
// false if the source cannot (the caller re-reads from the commits then).
func (p *Pipeline) startCatchUp(src Source) bool {
	bf, ok := src.(Backfiller)
	if !ok {
		return false
	}
	type gap struct {
		key partitionKey
		st  *partitionState
		r   ingest.Reader
	}
	var gaps []gap
	for k, st := range p.partitions {
		if st.stored == unknownOffset || st.handled == unknownOffset || st.stored >= st.handled {
			continue
		}
		r, err := bf.Backfill(k.topic, k.partition, st.stored+1)
		if err != nil {
			p.log.Warn("cannot read a partition again for storage: re-reading from the committed offsets instead",
				zap.String("topic", k.topic), zap.Int("partition", k.partition), zap.Error(err))
			for _, g := range gaps {
				g.r.Close()
			}
			return false
		}
		gaps = append(gaps, gap{k, st, r})
	}
	if len(gaps) == 0 {
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &catchUp{chunks: make(chan catchUpChunk, max(p.behind.batch/catchUpChunkSize, 1)), slots: make(chan struct{}, catchUpReaders),
		cancel: cancel, wg: &p.readers, readers: map[partitionKey]context.CancelFunc{}, started: time.Now()}
	c.last = c.started
	behind := int64(0)
	for _, g := range gaps {
		g.st.catchUp = true
		g.st.staged = g.st.stored
		behind += g.st.handled - g.st.stored
		rctx, rcancel := context.WithCancel(ctx)
		c.readers[g.key] = rcancel
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer g.r.Close()
			c.read(rctx, g.r, g.key, g.st, min(catchUpChunkSize, p.behind.batch), ingest.NewDecoder(p.o.Config.DecoderConfig()), p.rules)
		}()
	}
	p.catching = c
	p.behind.counted(&p.behind.status.catchUps)
	p.log.Info("storage is back: catching up from Kafka on what was not stored meanwhile; detection stays live",
		zap.Int("partitions", len(gaps)), zap.Int64("messages", behind))
	return true
}

// read hands over the partition's messages, decoded and classified for
// storage, in chunks, until ctx ends.
func (c *catchUp) read(ctx context.Context, r ingest.Reader, key partitionKey, st *partitionState, size int,
	dec *ingest.Decoder, rules *classify.Rules) {
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return
	}
	var ev event.Event
	for ctx.Err() == nil {
		chunk := catchUpChunk{key: key, st: st, through: unknownOffset}
		idle, cancel := context.WithTimeout(ctx, catchUpIdle)
		var failed error
		for len(chunk.events) < size {
			m, err := r.Fetch(idle)
			if err != nil {
				if idle.Err() == nil {
					failed = err // not a pause in the partition: wait before reading on
				}
				break
			}
			chunk.through = m.Offset
			// Rejected messages were dead-lettered when they were first
			// handled: here they only count as read.
			if decodeMessage(dec, &m, &ev) != nil {
				continue
			}
			chunk.events = append(chunk.events, classified(&m, &ev, rules.Classify(&ev)))
		}
		cancel()
		if chunk.through != unknownOffset {
			select {
			case c.chunks <- chunk:
			case <-ctx.Done():
				return
			}
		}
		if failed != nil {
			select {
			case <-time.After(catchUpIdle):
			case <-ctx.Done():
				return
			}
		}
	}
}

// drainCatchUp stages what the readers handed over, up to a batch, and
// ends the catch-up of every partition whose gap is closed.
func (p *Pipeline) drainCatchUp() {
	c := p.catching
	if c == nil || p.behind == nil {
		return
	}
	b := p.behind
	for len(b.staging) < b.batch {
		var chunk catchUpChunk
		select {
		case chunk = <-c.chunks:
			c.last = time.Now()
		default:
			if time.Since(c.last) > catchUpStuck {
				p.abandonCatchUp("its partition readers handed over nothing for " + catchUpStuck.String())
			}
			return
		}
		st := chunk.st
		if p.partitions[chunk.key] != st || !st.catchUp {
			continue // reset, or caught up already
		}
		for i := range chunk.events {
			if chunk.events[i].Offset > st.staged {
				b.add(&chunk.events[i])
				c.events++
			}
		}
		st.staged = max(st.staged, chunk.through)
		if st.staged >= st.handled {
			st.catchUp = false
			c.readers[chunk.key]()
			delete(c.readers, chunk.key)
			if len(c.readers) == 0 {
				p.log.Info("storage caught up", zap.Uint64("events", c.events), zap.Duration("took", time.Since(c.started)))
				p.stopCatchUp(false)
				return
			}
		}
	}
}

// stopCatchUp ends the readers (the partitions were reset, storage failed
// again, or the pipeline stops; wait: until they are closed); partitions
// still catching up stage nothing until the next recovery or re-read
// covers their gap.
func (p *Pipeline) stopCatchUp(wait bool) {
	if c := p.catching; c != nil {
		p.catching = nil
		c.cancel()
	}
	if wait { // every catch-up's readers, those stopped before too
		p.readers.Wait()
	}
}

// abandonCatchUp ends the catch-up for the re-read from the committed
// offsets: the readers stop, what is staged is dropped, and nothing is
// staged until a flush has committed what is stored and the source
// re-reads. After a rebalance, a reader could go on storing a partition
// another member now stores too; the re-read delivers from the commits
// only what this member still owns.
func (p *Pipeline) abandonCatchUp(why string) {
	p.stopCatchUp(false)
	for _, st := range p.partitions {
		st.catchUp = false
	}
	p.behind.drop()
	p.rewindDue = true
	p.log.Warn("storage stops catching up with its own readers and re-reads from the committed offsets instead (detection skips what it saw)",
		zap.String("why", why))
}
