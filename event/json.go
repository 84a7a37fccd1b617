package event

import (
	"strconv"
	"time"
)

// AppendJSON appends ev as one event-v1 JSON object. Absent optional
// fields are omitted. The monitor forwards accepted events in this form,
// re-encoded from what the decoder accepted and never as the bytes it
// received, so nothing the decoder did not validate (unknown fields, a
// sender's extra data) travels on.
func AppendJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendString(dst, ev.ID)
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
		dst = appendString(dst, v)
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

// appendString appends s as a JSON string. s is valid UTF-8 (the decoder
// guarantees it); only '"', '\\' and control characters need escapes.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
