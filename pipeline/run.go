package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Run consumes src until ctx ends or the input does (io.EOF), flushing
// every BatchSize messages or FlushInterval. Then it stops fetching, drains
// the event-time merge, flushes and commits what it processed (bounded by
// ShutdownTimeout, whatever happened to ctx) and returns: nil on a clean
// stop or end of input.
func (p *Pipeline) Run(ctx context.Context, src Source) error {
	if _, ok := src.(Rewinder); p.behind != nil && !ok {
		return errors.New("storage beside detection needs a source that can re-read from its commits (Kafka)")
	}
	defer p.stopCatchUp(true)
	runErr := p.consume(ctx, src)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.ShutdownTimeout)
	defer cancel()
	if p.merge != nil && (p.ckpt.store == nil || p.o.EndOfInput) {
		// Without checkpoints what the merge holds is observed now; with
		// them the final checkpoint carries it to the next run, so the
		// watermark does not jump past partitions not read yet.
		p.merge.release(p.observe, true)
	}
	if p.engine != nil && p.o.EndOfInput {
		p.engine.Flush() // detection to the end of the input
	}
	if runErr == nil {
		p.final = true
		if err := p.flush(sctx, src); err != nil {
			runErr = fmt.Errorf("final flush: %w", err)
		}
	}
	return runErr
}

func (p *Pipeline) consume(ctx context.Context, src Source) error {
	for {
		// One deadline per flush interval, not per message; while storage
		// catches up, flushes hand its readers' chunks to the inserts.
		every := p.o.FlushInterval
		if p.catching != nil {
			every = min(every, catchUpFlush)
		}
		fctx, cancel := context.WithTimeout(ctx, every)
		err := p.fetchBatch(ctx, fctx, src)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil // shutdown: Run flushes
		case errors.Is(err, io.EOF):
			return nil // end of input: Run flushes
		case err != nil:
			return err
		}
		if p.merge != nil {
			p.merge.release(p.observe, false) // sources gone quiet
		}
		if err := p.flushRetrying(ctx, src); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// fetchBatch handles messages until the batch is full or fctx (the flush
// interval within ctx) expires.
func (p *Pipeline) fetchBatch(ctx, fctx context.Context, src Source) error {
	for p.pending < p.o.BatchSize {
		m, err := src.Fetch(fctx)
		if err != nil {
			if fctx.Err() != nil {
				return nil
			}
			return err
		}
		if p.ckpt.store != nil && p.ckpt.restoreDue(src) {
			// Now that partitions are assigned (a standby waits here until
			// it takes over), resume from the latest checkpoint.
			if err := p.restore(ctx, src); err != nil {
				return nil // shutdown
			}
		}
		p.handle(&m)
	}
	return nil
}
