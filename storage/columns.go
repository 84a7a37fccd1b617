package storage

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/declinemon/declinemon/event"
)

// Columns is one insert batch of the events table in columnar form: one
// typed slice per column, in table order. Appending a whole slice per
// column costs nothing per row on the wire side, and the slices are reused
// from batch to batch.
type Columns struct {
	EventID         []string
	TS              []time.Time
	TerminalID      []string
	MerchantID      []string
	Outcome         []string
	Cause           []string
	Code            []string
	KnownCode       []bool
	ResponseCode    []string
	TerminalError   []string
	Scheme          []string
	TxnType         []string
	AmountMinor     []int64
	Currency        []string
	EntryMode       []string
	CardBIN         []string
	IssuerID        []string
	AcquirerID      []string
	HostID          []string
	Region          []string
	Network         []string
	Carrier         []string
	Model           []string
	Firmware        []string
	SignalDBM       []int16
	LatencyMS       []int32
	BatteryPct      []int8
	SourceTopic     []string
	SourcePartition []uint16
	SourceOffset    []int64
}

// ColumnNames is the insert column list, matching Columns field order.
var ColumnNames = []string{
	"event_id", "ts", "terminal_id", "merchant_id", "outcome", "cause", "code", "known_code",
	"response_code", "terminal_error", "scheme", "txn_type", "amount_minor", "currency", "entry_mode",
	"card_bin", "issuer_id", "acquirer_id", "host_id", "region", "network", "carrier", "model",
	"firmware", "signal_dbm", "latency_ms", "battery_pct", "source_topic", "source_partition", "source_offset",
}

// Values returns the column slices in ColumnNames order.
func (c *Columns) Values() []any { return c.Rows(0, c.Len()) }

// Rows returns rows [lo, hi) of every column, in ColumnNames order.
func (c *Columns) Rows(lo, hi int) []any {
	return []any{c.EventID[lo:hi], c.TS[lo:hi], c.TerminalID[lo:hi], c.MerchantID[lo:hi], c.Outcome[lo:hi], c.Cause[lo:hi],
		c.Code[lo:hi], c.KnownCode[lo:hi], c.ResponseCode[lo:hi], c.TerminalError[lo:hi], c.Scheme[lo:hi], c.TxnType[lo:hi],
		c.AmountMinor[lo:hi], c.Currency[lo:hi], c.EntryMode[lo:hi], c.CardBIN[lo:hi], c.IssuerID[lo:hi], c.AcquirerID[lo:hi],
		c.HostID[lo:hi], c.Region[lo:hi], c.Network[lo:hi], c.Carrier[lo:hi], c.Model[lo:hi], c.Firmware[lo:hi],
		c.SignalDBM[lo:hi], c.LatencyMS[lo:hi], c.BatteryPct[lo:hi], c.SourceTopic[lo:hi], c.SourcePartition[lo:hi],
		c.SourceOffset[lo:hi]}
}

// Len is the number of rows.
func (c *Columns) Len() int { return len(c.EventID) }

// Reset empties the batch, keeping capacity.
func (c *Columns) Reset() {
	*c = Columns{
		c.EventID[:0], c.TS[:0], c.TerminalID[:0], c.MerchantID[:0], c.Outcome[:0], c.Cause[:0], c.Code[:0], c.KnownCode[:0],
		c.ResponseCode[:0], c.TerminalError[:0], c.Scheme[:0], c.TxnType[:0], c.AmountMinor[:0], c.Currency[:0], c.EntryMode[:0],
		c.CardBIN[:0], c.IssuerID[:0], c.AcquirerID[:0], c.HostID[:0], c.Region[:0], c.Network[:0], c.Carrier[:0], c.Model[:0],
		c.Firmware[:0], c.SignalDBM[:0], c.LatencyMS[:0], c.BatteryPct[:0], c.SourceTopic[:0], c.SourcePartition[:0], c.SourceOffset[:0],
	}
}

// Append adds one classified event. Absent numbers are stored as 0 (and -1
// for latency and battery, which have meaningful zeros).
func (c *Columns) Append(a *event.Classified) {
	ev := &a.Event
	outcome, cause := "declined", a.Cause.String()
	if a.Cause == event.CauseNone {
		outcome = "approved"
	}
	amount := ev.AmountMinor
	if amount < 0 {
		amount = 0
	}
	var signal int16
	if ev.HasSignal {
		signal = int16(ev.SignalDBM)
	}
	c.EventID = append(c.EventID, ev.ID)
	c.TS = append(c.TS, ev.Time)
	c.TerminalID = append(c.TerminalID, ev.Terminal)
	c.MerchantID = append(c.MerchantID, ev.Merchant)
	c.Outcome = append(c.Outcome, outcome)
	c.Cause = append(c.Cause, cause)
	c.Code = append(c.Code, ev.Code())
	c.KnownCode = append(c.KnownCode, a.Known)
	c.ResponseCode = append(c.ResponseCode, ev.ResponseCode)
	c.TerminalError = append(c.TerminalError, ev.TerminalError)
	c.Scheme = append(c.Scheme, ev.Scheme.String())
	c.TxnType = append(c.TxnType, ev.TxnType)
	c.AmountMinor = append(c.AmountMinor, amount)
	c.Currency = append(c.Currency, ev.Currency)
	c.EntryMode = append(c.EntryMode, ev.EntryMode)
	c.CardBIN = append(c.CardBIN, ev.CardBIN)
	c.IssuerID = append(c.IssuerID, ev.Issuer)
	c.AcquirerID = append(c.AcquirerID, ev.Acquirer)
	c.HostID = append(c.HostID, ev.Host)
	c.Region = append(c.Region, ev.Region)
	c.Network = append(c.Network, ev.Network)
	c.Carrier = append(c.Carrier, ev.Carrier)
	c.Model = append(c.Model, ev.Model)
	c.Firmware = append(c.Firmware, ev.Firmware)
	c.SignalDBM = append(c.SignalDBM, signal)
	c.LatencyMS = append(c.LatencyMS, ev.LatencyMS)
	c.BatteryPct = append(c.BatteryPct, ev.BatteryPct)
	c.SourceTopic = append(c.SourceTopic, a.Topic)
	c.SourcePartition = append(c.SourcePartition, uint16(a.Partition))
	c.SourceOffset = append(c.SourceOffset, a.Offset)
}

// Token derives the insert_deduplication_token of a batch from the offset
// ranges it covers per topic/partition: a batch redelivered whole (after a
// crash between insert and commit) carries the same token, and ClickHouse
// drops it, in the table and in the materialized views.
func Token(batch []event.Classified) string {
	type span struct {
		topic     string
		partition int
		lo, hi    int64
	}
	var spans []span
	for i := range batch {
		a := &batch[i]
		found := false
		for j := range spans {
			if spans[j].topic == a.Topic && spans[j].partition == a.Partition {
				spans[j].lo, spans[j].hi = min(spans[j].lo, a.Offset), max(spans[j].hi, a.Offset)
				found = true
				break
			}
		}
		if !found {
			spans = append(spans, span{a.Topic, a.Partition, a.Offset, a.Offset})
		}
	}
	slices.SortFunc(spans, func(x, y span) int {
		if x.topic != y.topic {
			if x.topic < y.topic {
				return -1
			}
			return 1
		}
		return x.partition - y.partition
	})
	h := fnv.New128a()
	for _, s := range spans {
		fmt.Fprintf(h, "%s/%d/%d-%d;", s.topic, s.partition, s.lo, s.hi)
	}
	return fmt.Sprintf("declinemon-%x-%d", h.Sum(nil), len(batch))
}
