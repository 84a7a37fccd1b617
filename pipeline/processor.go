package pipeline

import (
	"errors"

	"github.com/declinemon/declinemon/alerting"
	"github.com/declinemon/declinemon/classify"
	"github.com/declinemon/declinemon/event"
	"github.com/declinemon/declinemon/ingest"
)

// Counts are the processor's running totals.
type Counts struct {
	Messages uint64
	Accepted uint64
	Rejected [ingest.NumReasons]uint64
	Late     uint64 // accepted but beyond the lateness bound: not detected on
	Approved uint64
	ByCause  [event.NumCauses]uint64 // declines by cause (index 0 unused)
	// UnknownCodes counts codes the rules do not know, by code (bounded).
	UnknownCodes map[string]uint64
	// AmountDeclined sums amount_minor of declined attempts per currency.
	AmountDeclined Amounts
}

// maxUnknownCodes bounds the unknown-code table: a garbage feed must not
// grow it without limit. Codes beyond it are counted under "(other)".
const maxUnknownCodes = 1000

// Processor runs decode → classify → detect for one stream of messages.
// Not safe for concurrent use.
type Processor struct {
	dec    *ingest.Decoder
	rules  *classify.Rules
	engine *alerting.Engine
	ev     event.Event
	counts Counts
}

// NewProcessor builds a processor. engine may be nil to skip detection.
func NewProcessor(dec *ingest.Decoder, rules *classify.Rules, engine *alerting.Engine) *Processor {
	return &Processor{dec: dec, rules: rules, engine: engine, counts: Counts{UnknownCodes: map[string]uint64{}}}
}

// Result is the outcome of one message.
type Result struct {
	// Event is valid until the next Process call; nil when rejected.
	Event  *event.Event
	Class  classify.Result
	Late   bool
	Reject *ingest.DecodeError
	// Partial holds, for a rejected message, whatever identifiers were
	// decoded before the rejection (possibly none); valid until the next
	// Process call. For logs only.
	Partial *event.Event
}

// Process handles one message. Rejections are counted and returned in the
// Result, never as a failure of the pipeline.
func (p *Processor) Process(msg []byte) Result {
	p.counts.Messages++
	if err := p.dec.Decode(msg, &p.ev); err != nil {
		var de *ingest.DecodeError
		if !errors.As(err, &de) {
			de = &ingest.DecodeError{Reason: ingest.ReasonInvalidJSON, Msg: err.Error()}
		}
		p.counts.Rejected[de.Reason]++
		return Result{Reject: de, Partial: &p.ev}
	}
	return p.classified(&p.ev)
}

// Reject counts a message rejected before decoding (e.g. too large to read).
func (p *Processor) Reject(de *ingest.DecodeError) Result {
	p.counts.Messages++
	p.counts.Rejected[de.Reason]++
	return Result{Reject: de}
}

func (p *Processor) classified(ev *event.Event) Result {
	c := &p.counts
	c.Accepted++
	res := p.rules.Classify(ev)
	if res.Approved() {
		c.Approved++
	} else {
		c.ByCause[res.Cause]++
		c.AmountDeclined.Add(ev.Currency, ev.AmountMinor)
		if !res.Known {
			code := ev.Code()
			if _, ok := c.UnknownCodes[code]; !ok && len(c.UnknownCodes) >= maxUnknownCodes {
				code = "(other)"
			}
			c.UnknownCodes[code]++
		}
	}
	late := false
	if p.engine != nil && !p.engine.Observe(ev, res.Cause) {
		late = true
		c.Late++
	}
	return Result{Event: ev, Class: res, Late: late}
}

// Counts returns the running totals (the map is shared; do not modify).
func (p *Processor) Counts() *Counts { return &p.counts }

// Flush runs detection to the end of the input seen so far.
func (p *Processor) Flush() {
	if p.engine != nil {
		p.engine.Flush()
	}
}
