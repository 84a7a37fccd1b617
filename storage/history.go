package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ErrNoRollup: the rollups do not keep this scope type (network type,
// acquirer, model): only the live detector has it.
var ErrNoRollup = errors.New("no rollup keeps this scope type")

// rollupColumn is the terminal_minutes column of each scope type the
// rollup keeps ("" for the whole fleet).
var rollupColumn = map[string]string{
	"fleet": "", "terminal": "terminal_id", "merchant": "merchant_id", "region": "region",
	"carrier": "carrier", "host": "host_id", "issuer": "issuer_id", "region+carrier": "region+carrier",
}

// scopeFilter is the WHERE clause selecting one scope ({id:String}) in
// terminal_minutes; empty for the fleet.
func scopeFilter(scopeType string) (string, error) {
	col, ok := rollupColumn[scopeType]
	if !ok {
		return "", fmt.Errorf("%s: %w", scopeType, ErrNoRollup)
	}
	switch col {
	case "":
		return "", nil
	case "region+carrier":
		return " AND region = splitByChar('/', {id:String})[1] AND carrier = splitByChar('/', {id:String})[2]", nil
	}
	return " AND " + col + " = {id:String}", nil
}

// HourCount is one scope's attempts in one hour (starting at Start in the
// business time zone), by cause ("approved" for approvals).
type HourCount struct {
	Start    time.Time
	Attempts map[string]uint64
}

// Total is every attempt of the hour.
func (h HourCount) Total() (n uint64) {
	for _, v := range h.Attempts {
		n += v
	}
	return n
}

// Failures is every attempt but approvals.
func (h HourCount) Failures() uint64 { return h.Total() - h.Attempts["approved"] }

// ScopeHours reads one scope's attempts by cause per business-zone hour
// over [from, to) from the terminal_minutes rollup: what the console's
// drill-down shows beyond the detector's window. scopeType is an
// event.ScopeType name or "fleet".
func (c *Client) ScopeHours(ctx context.Context, scopeType, id string, from, to time.Time) ([]HourCount, error) {
	where, err := scopeFilter(scopeType)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT toUnixTimestamp(toStartOfHour(minute, {tz:String})) AS h, cause, sum(attempts)
FROM %s.terminal_minutes
WHERE minute >= toDateTime({from:Int64}, 'UTC') AND minute < toDateTime({to:Int64}, 'UTC')%s
GROUP BY h, cause ORDER BY h`, c.cfg.Database, where)
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"tz": c.cfg.BusinessTimezone, "id": id,
		"from": fmt.Sprint(from.Unix()), "to": fmt.Sprint(to.Unix()),
	}))
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading %s %s history: %w", scopeType, id, classify(err))
	}
	defer rows.Close()
	var out []HourCount
	for rows.Next() {
		var (
			h     uint32
			cause string
			n     uint64
		)
		if err := rows.Scan(&h, &cause, &n); err != nil {
			return nil, fmt.Errorf("reading %s %s history: %w", scopeType, id, classify(err))
		}
		start := time.Unix(int64(h), 0).UTC()
		if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
			out = append(out, HourCount{Start: start, Attempts: map[string]uint64{}})
		}
		out[len(out)-1].Attempts[cause] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s %s history: %w", scopeType, id, classify(err))
	}
	return out, nil
}

// TopTerminals lists the terminals with most failures over [from, to),
// within one scope (scopeType "fleet" for all), from terminal_minutes.
func (c *Client) TopTerminals(ctx context.Context, scopeType, id string, from, to time.Time, limit int) ([]TerminalTotal, error) {
	where, err := scopeFilter(scopeType)
	if err != nil {
		return nil, err
	}
	// The top cause is chosen from per-cause sums over the period (the
	// inner query), not from single rollup rows: a cause failing once a
	// minute for an hour outweighs a one-minute burst of another.
	q := fmt.Sprintf(`SELECT terminal_id, any(m), sum(cn) AS n, sumIf(cn, cause != 'approved') AS f,
       argMaxIf(cause, cn, cause != 'approved') AS top
FROM (
    SELECT terminal_id, cause, any(merchant_id) AS m, sum(attempts) AS cn
    FROM %s.terminal_minutes
    WHERE minute >= toDateTime({from:Int64}, 'UTC') AND minute < toDateTime({to:Int64}, 'UTC')%s
    GROUP BY terminal_id, cause
)
GROUP BY terminal_id HAVING f > 0 ORDER BY f DESC, terminal_id LIMIT %d`, c.cfg.Database, where, max(limit, 1))
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"id": id, "from": fmt.Sprint(from.Unix()), "to": fmt.Sprint(to.Unix()),
	}))
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading top terminals: %w", classify(err))
	}
	defer rows.Close()
	var out []TerminalTotal
	for rows.Next() {
		var t TerminalTotal
		if err := rows.Scan(&t.Terminal, &t.Merchant, &t.Attempts, &t.Failures, &t.TopCause); err != nil {
			return nil, fmt.Errorf("reading top terminals: %w", classify(err))
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading top terminals: %w", classify(err))
	}
	return out, nil
}

// TerminalTotal is one terminal's attempts and failures over a period.
type TerminalTotal struct {
	Terminal, Merchant string
	Attempts, Failures uint64
	TopCause           string // the cause with most failing attempts
}
