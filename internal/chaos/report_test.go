package chaos

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// row is one case's result.
type row struct {
	Case string
	Seed uint64
	// Expected firing alerts (the reference), then by alert_id and by
	// incident (kind, scope, onset within onsetSlack).
	Expected                   int
	IDOnce, IDDup, IDMissed    int
	IncOnce, IncDup, IncMissed int
	Extra                      int
	Late, RefLate              uint64
	Recovery                   string
	Offsets                    string
	// Stored is what the storage cases found in ClickHouse: events rows,
	// terminal_minutes and scope_minutes attempts (want: valid events).
	Stored    string
	Lifetimes int
	Wall      time.Duration
	Failures  []string
	Notes     []string
	Details   []string
	Done      bool
}

func (r *row) result() string {
	switch {
	case !r.Done && len(r.Failures) == 0:
		return "ABORTED"
	case len(r.Failures) == 0:
		return "PASS"
	}
	return "FAIL: " + strings.Join(r.Failures, "; ")
}

// markdown renders the rows as a table, then each case's notes.
func markdown(rows []*row, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## declinemon chaos suite (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	b.WriteString("Counts are by alert_id, then (in brackets) by incident: same kind and scope, onset within " +
		onsetSlack.String() + ", whatever the id. *extra*: firing records matching no reference incident. " +
		"*stored*: events rows / terminal_minutes / scope_minutes attempts in ClickHouse, without FINAL (want: the valid events produced).\n\n")
	b.WriteString("| case | seed | expected | found once | duplicated | missed | extra | late (replay) | recovery | offsets | stored (want) | lifetimes | wall | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %d (%d) | %d (%d) | %d | %d (%d) | %s | %s | %s | %d | %s | %s |\n",
			r.Case, r.Seed, r.Expected, r.IDOnce, r.IncOnce, r.IDDup, r.IncDup, r.IDMissed, r.IncMissed, r.Extra,
			r.Late, r.RefLate, or(r.Recovery, "—"), or(r.Offsets, "—"), or(r.Stored, "—"), r.Lifetimes, r.Wall.Round(100*time.Millisecond),
			strings.ReplaceAll(r.result(), "|", "/"))
	}
	fmt.Fprintf(&b, "\nTotal wall time: %s\n", total.Round(100*time.Millisecond))
	for _, r := range rows {
		if len(r.Notes)+len(r.Details) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s (seed %d)\n\n", r.Case, r.Seed)
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, d := range r.Details {
			fmt.Fprintf(&b, "- %s\n", d)
		}
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func writeReport(text string) error {
	path := os.Getenv("DECLINEMON_CHAOS_REPORT")
	if path == "" {
		return nil
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
