package event

import (
	"strconv"
	"time"
)

// AppendJSON appends ev as one event-v1 JSON object. Absent optional
// fields are omitted. Used by the scenario generator and tests; the
// monitor itself never re-encodes events.
func AppendJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = strconv.AppendQuote(dst, ev.ID)
	dst = append(dst, `,"ts":"`...)
	dst = ev.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	str := func(name, v string) {
		if v == "" {
			return
		}
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = strconv.AppendQuote(dst, v)
	}
	num := func(name string, v int64) {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = strconv.AppendInt(dst, v, 10)
	}
	str("terminal_id", ev.Terminal)
	str("merchant_id", ev.Merchant)
	if ev.Scheme != SchemeUnset {
		str("scheme", ev.Scheme.String())
	}
	str("response_code", ev.ResponseCode)
	str("terminal_error", ev.TerminalError)
	str("txn_type", ev.TxnType)
	if ev.AmountMinor >= 0 {
		num("amount_minor", ev.AmountMinor)
	}
	str("currency", ev.Currency)
	str("entry_mode", ev.EntryMode)
	str("card_bin", ev.CardBIN)
	str("issuer_id", ev.Issuer)
	str("acquirer_id", ev.Acquirer)
	str("host_id", ev.Host)
	str("region", ev.Region)
	str("network", ev.Network)
	str("carrier", ev.Carrier)
	if ev.HasSignal {
		num("signal_dbm", int64(ev.SignalDBM))
	}
	if ev.LatencyMS >= 0 {
		num("latency_ms", int64(ev.LatencyMS))
	}
	str("model", ev.Model)
	str("firmware", ev.Firmware)
	if ev.BatteryPct >= 0 {
		num("battery_pct", int64(ev.BatteryPct))
	}
	return append(dst, '}')
}
