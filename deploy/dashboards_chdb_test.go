//go:build chdb

package deploy

import (
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	schema "github.com/declinemon/declinemon/deploy/clickhouse"
	"github.com/declinemon/declinemon/internal/chdbtest"
	"github.com/declinemon/declinemon/storage"
)

// testZones are the business zones the queries are checked in: the
// default, a zone west of UTC with daylight saving, and a +05:30 zone whose
// hours start at :30 UTC.
var testZones = []string{storage.DefaultBusinessTimezone, "America/New_York", "Asia/Kolkata"}

// grafana is what the dashboards' macros and variables expand to.
type grafana struct {
	tz        string    // ${business_tz}
	from, to  time.Time // the time picker's range
	intervalS int       // $__interval_s
	now       time.Time // when set, now() is this instant (a fixed clock)
}

// sqlTime is t as a ClickHouse DateTime literal.
func sqlTime(t time.Time) string {
	return "toDateTime('" + t.UTC().Format("2006-01-02 15:04:05") + "', 'UTC')"
}

var (
	timeFilterMacro   = regexp.MustCompile(`\$__timeFilter\(([a-z_]+)\)`)
	timeIntervalMacro = regexp.MustCompile(`\$__timeInterval\(([a-z_]+)\)`)
)

// expand turns a dashboard query into plain SQL as the ClickHouse
// datasource does ($__timeFilter, $__fromTime, $__toTime, $__interval_s,
// $__timeInterval) with the dashboards' variables filled in.
func (g grafana) expand(sql string) string {
	sql = timeFilterMacro.ReplaceAllString(sql, "$1 >= "+sqlTime(g.from)+" AND $1 <= "+sqlTime(g.to))
	sql = timeIntervalMacro.ReplaceAllString(sql, "toStartOfInterval(toDateTime($1), INTERVAL "+strconv.Itoa(g.intervalS)+" second)")
	sql = strings.NewReplacer("$__fromTime", sqlTime(g.from), "$__toTime", sqlTime(g.to), "$__interval_s", strconv.Itoa(g.intervalS),
		"${business_tz}", g.tz, "${merchant}", "M1", "${terminal}", "T01").Replace(sql)
	if !g.now.IsZero() {
		sql = strings.ReplaceAll(sql, "now()", sqlTime(g.now))
	}
	return sql
}

// cookbook reads a cookbook query with its business zone filled in, as
// analysts run it (the same ${tz} placeholder the migrations use). With a
// non-zero clock, now() is that instant.
func cookbook(t *testing.T, name, tz string, clock time.Time) string {
	t.Helper()
	data, err := fs.ReadFile(schema.Queries, "queries/"+name+".sql")
	if err != nil {
		t.Fatal(err)
	}
	sql := strings.ReplaceAll(string(data), "${tz}", tz)
	if !clock.IsZero() {
		sql = strings.ReplaceAll(sql, "now()", sqlTime(clock))
	}
	return sql
}

// TestDashboardQueriesRunOnTheSchema runs every ClickHouse panel and
// variable query of every dashboard, and every cookbook query, against the
// migrated schema on the ClickHouse 26.7 engine, in each test zone and at
// minute, hour and day intervals.
func TestDashboardQueriesRunOnTheSchema(t *testing.T) {
	c := chdbtest.New(t)
	if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	now := time.Now()
	for _, tz := range testZones {
		for _, interval := range []int{1, 60, 3600, 86400} {
			g := grafana{tz: tz, from: now.Add(-6 * time.Hour), to: now, intervalS: interval}
			for file, d := range loadDashboards(t) {
				for _, v := range d.Templating.List {
					if v.Type != "query" {
						continue
					}
					if _, err := c.QueryStrings(context.Background(), g.expand(v.Query)); err != nil {
						t.Errorf("%s variable %s: %v", file, v.Name, err)
					}
					n++
				}
				for _, p := range d.Panels {
					for _, tg := range p.Targets {
						if tg.RawSQL == "" {
							continue
						}
						if _, err := c.QueryStrings(context.Background(), g.expand(tg.RawSQL)); err != nil {
							t.Errorf("%s / %s (%s, %ds): %v", file, p.Title, tz, interval, err)
						}
						n++
					}
				}
			}
		}
		names, _ := fs.Glob(schema.Queries, "queries/*.sql")
		for _, name := range names {
			name = strings.TrimSuffix(strings.TrimPrefix(name, "queries/"), ".sql")
			if _, err := c.QueryStrings(context.Background(), cookbook(t, name, tz, time.Time{})); err != nil {
				t.Errorf("cookbook %s (%s): %v", name, tz, err)
			}
		}
	}
	if n < 15*len(testZones)*4 {
		t.Errorf("only %d queries checked", n)
	}
}

// attempt is one generated event; the oracle below recomputes every
// answer from these with Go's time zone database, apart from the SQL.
type attempt struct {
	ts                         time.Time
	merchant, terminal, region string
	issuer, cause              string
	amount                     int64
}

func (a attempt) declined() bool { return a.cause != "approved" }

// clock is the fixed "now" of the oracle tests: 2026-11-29 12:20 UTC, which
// is 20:20 in Shanghai, 17:50 in Kolkata and 07:20 in New York: three
// different starts of the business day (16:00Z and 18:30Z the day before,
// 05:00Z) and of the hour (12:00Z, 11:30Z).
var clock = time.Date(2026, 11, 29, 12, 20, 0, 0, time.UTC)

// fleet generates fifteen days of attempts up to the clock, every three
// minutes on one of six terminals, with causes that depend on the terminal
// and the time, plus attempts on both sides of each test zone's midnight
// (23:30 and 00:30 in Shanghai: 15:30Z and 16:30Z), hardware failures on
// both sides of each zone's week boundary, and an issuer outage straddling
// the Shanghai midnight.
func fleet() []attempt {
	var out []attempt
	start := clock.Add(-15 * 24 * time.Hour)
	terms := []struct{ merchant, region, issuer string }{
		{"M0", "R0", "BANK1"}, {"M0", "R1", "BANK2"}, {"M1", "R0", "BANK1"},
		{"M1", "R2", "BANK2"}, {"M2", "R1", "BANK1"}, {"M2", "R2", "BANK2"},
	}
	add := func(ts time.Time, term int, cause string, amount int64) {
		tm := terms[term]
		out = append(out, attempt{ts: ts, merchant: tm.merchant, terminal: fmt.Sprintf("T%02d", term), region: tm.region,
			issuer: tm.issuer, cause: cause, amount: amount})
	}
	for i := 0; ; i++ {
		ts := start.Add(time.Duration(i)*3*time.Minute + time.Duration(i%50)*time.Second)
		if !ts.Before(clock) {
			break
		}
		term := i % 6
		cause := "approved"
		switch {
		case term == 5 && ts.After(clock.Add(-5*24*time.Hour)) && i%4 == 1: // failing more and more
			cause = "hardware"
		case term == 4 && i%5 == 0:
			cause = "hardware"
		case term == 3 && ts.Hour() >= 14 && ts.Hour() < 20: // evenings in Shanghai, mornings in New York
			cause = "hardware"
		case term == 1 && i%7 == 0:
			cause = "network"
		case term == 2 && i%9 == 0:
			cause = "data_transmission"
		case term == 0 && i%6 == 0:
			cause = "issuer_credit"
		case term%2 == 1 && i%11 == 0:
			cause = "maintenance"
		}
		add(ts, term, cause, int64(100+i%900))
	}
	for _, ts := range []time.Time{
		time.Date(2026, 11, 28, 15, 30, 0, 0, time.UTC), // 23:30 Shanghai
		time.Date(2026, 11, 28, 16, 30, 0, 0, time.UTC), // 00:30 Shanghai
		time.Date(2026, 11, 28, 15, 59, 59, 0, time.UTC), time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 28, 18, 29, 59, 0, time.UTC), time.Date(2026, 11, 28, 18, 30, 0, 0, time.UTC), // Kolkata
		time.Date(2026, 11, 29, 4, 59, 59, 0, time.UTC), time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC), // New York
	} {
		for term := 0; term < 6; term++ {
			add(ts, term, []string{"network", "hardware", "data_transmission", "approved"}[term%4], 5000)
		}
	}
	// Hardware failures a week ago whose week depends on the zone: T16's at
	// 20:00Z on the 22nd are this week in Shanghai and Kolkata (the 23rd
	// there), last week in New York and in UTC; T17's at 03:00Z on the 23rd
	// are last week in New York only.
	for term, ts := range map[string]time.Time{
		"T16": time.Date(2026, 11, 22, 20, 0, 0, 0, time.UTC),
		"T17": time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC),
	} {
		for k := 0; k < 8; k++ {
			at := ts.Add(time.Duration(k) * time.Minute)
			if k >= 6 {
				at = time.Date(2026, 11, 21, 12, k, 0, 0, time.UTC) // last week everywhere
			}
			out = append(out, attempt{ts: at, merchant: "M3", terminal: term, region: "R1", issuer: "BANK1", cause: "hardware", amount: 300})
		}
	}
	for m := -3; m < 3; m++ { // BANK3 down around the Shanghai midnight
		ts := time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
		for k := 0; k < 6; k++ {
			cause := "approved"
			if k < 3 {
				cause = "maintenance"
			}
			a := attempt{ts: ts.Add(time.Duration(k) * time.Second), merchant: "M3", terminal: fmt.Sprintf("T1%d", k), region: "R0",
				issuer: "BANK3", cause: cause, amount: 700}
			out = append(out, a)
		}
	}
	return out
}

// insert writes attempts into the events table; the materialized views
// fill the rollups the queries read.
func insert(t *testing.T, c chdbtest.Conn, as []attempt) {
	t.Helper()
	for i := 0; i < len(as); i += 2000 {
		var b strings.Builder
		b.WriteString("INSERT INTO declinemon.events (event_id, ts, terminal_id, merchant_id, outcome, cause, region, issuer_id, amount_minor) VALUES ")
		for j, a := range as[i:min(i+2000, len(as))] {
			if j > 0 {
				b.WriteString(", ")
			}
			outcome := "approved"
			if a.declined() {
				outcome = "declined"
			}
			fmt.Fprintf(&b, "('e%d', '%s', '%s', '%s', '%s', '%s', '%s', '%s', %d)", i+j, a.ts.UTC().Format("2006-01-02 15:04:05.000"),
				a.terminal, a.merchant, outcome, a.cause, a.region, a.issuer, a.amount)
		}
		if err := c.Exec(context.Background(), b.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// The oracle's calendar: local days and hours from Go's zone database.
func dayStart(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

func hourStart(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, loc)
}

func localDate(t time.Time, loc *time.Location) string { return t.In(loc).Format("2006-01-02") }

func localTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05")
}

func query(t *testing.T, c chdbtest.Conn, sql string) [][]string {
	t.Helper()
	rows, err := c.QueryStrings(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	return rows
}

// keyed maps each row's key columns to its value columns (indices into
// the row), each joined with "|".
func keyed(rows [][]string, key []int, vals []int) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		var k, v []string
		for _, i := range key {
			k = append(k, r[i])
		}
		for _, i := range vals {
			v = append(v, r[i])
		}
		out[strings.Join(k, "|")] = strings.Join(v, "|")
	}
	return out
}

func panelSQL(t *testing.T, file, title string) string {
	t.Helper()
	d, ok := loadDashboards(t)[file]
	if !ok {
		t.Fatalf("no dashboard %s", file)
	}
	for _, p := range d.Panels {
		if p.Title == title {
			return p.Targets[0].RawSQL
		}
	}
	t.Fatalf("%s has no panel %q", file, title)
	return ""
}

// TestBusinessZoneOracle inserts fifteen days of attempts around the
// business midnights and checks, at a fixed clock and in each test zone,
// that the cookbook's and the dashboards' "today", "this hour", per-hour,
// per-day and this-week answers are exactly those computed in Go with
// time.LoadLocation; and that they differ from the UTC-day answer (so the
// check could fail).
func TestBusinessZoneOracle(t *testing.T) {
	c := chdbtest.New(t)
	if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	as := fleet()
	insert(t, c, as)
	alerts := insertAlerts(t, c)
	failure := map[string]bool{"hardware": true, "network": true, "data_transmission": true}
	merchantOf := map[string]string{}
	for _, a := range as {
		merchantOf[a.terminal] = a.merchant
	}

	// topFailing is the oracle of top_failing_terminals_today since start.
	topFailing := func(start time.Time) map[string]string {
		n, f := map[string]int{}, map[string]int{}
		for _, a := range as {
			if !a.ts.Before(start) {
				n[a.terminal]++
				if failure[a.cause] {
					f[a.terminal]++
				}
			}
		}
		out := map[string]string{}
		for term := range n {
			if n[term] >= 10 && f[term] > 0 {
				out[term] = fmt.Sprintf("%s|%d|%d", merchantOf[term], n[term], f[term])
			}
		}
		return out
	}

	for _, tz := range testZones {
		t.Run(tz, func(t *testing.T) {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				t.Fatal(err)
			}
			today, thisHour := dayStart(clock, loc), hourStart(clock, loc)

			// Cookbook: top failing terminals today.
			rows := query(t, c, cookbook(t, "top_failing_terminals_today", tz, clock))
			want := topFailing(today)
			if got := keyed(rows, []int{0}, []int{1, 2, 3}); !reflect.DeepEqual(got, want) || len(want) == 0 {
				t.Errorf("top failing terminals today (since %s):\n got %v\nwant %v", today, got, want)
			}
			if reflect.DeepEqual(want, topFailing(dayStart(clock, time.UTC))) {
				t.Errorf("oracle: today in %s gives the same terminals as the UTC day", tz)
			}
			for _, r := range rows {
				if r[6] != localDate(clock, loc) || r[7] != tz {
					t.Errorf("top failing: business_day %s, tz %s; want %s, %s", r[6], r[7], localDate(clock, loc), tz)
				}
			}

			// Cookbook: decline rate per merchant per business hour.
			first := thisHour.Add(-23 * time.Hour)
			counts := map[string][2]int{}
			for _, a := range as {
				if !a.ts.Before(first) {
					k := localTime(hourStart(a.ts, loc), loc) + "|" + a.merchant
					v := counts[k]
					v[0]++
					if a.declined() {
						v[1]++
					}
					counts[k] = v
				}
			}
			wantHours := map[string]string{}
			for k, v := range counts {
				wantHours[k] = fmt.Sprintf("%d|%d", v[0], v[1])
			}
			rows = query(t, c, cookbook(t, "decline_rate_per_merchant_per_hour", tz, clock))
			if got := keyed(rows, []int{0, 1}, []int{2, 3}); !reflect.DeepEqual(got, wantHours) {
				t.Errorf("per merchant per hour: %d rows, want %d; differ at %s", len(got), len(wantHours), firstDiff(got, wantHours))
			}
			if len(rows) == 0 || rows[0][5] != tz || rows[0][0] != localTime(first, loc) {
				t.Errorf("per hour: rows start %v, want hour %s in %s", rows[:min(1, len(rows))], localTime(first, loc), tz)
			}

			// Cookbook: hardware failures rising, weeks of business days.
			todayDate := localDate(clock, loc)
			cut, oldest := localDate(today.AddDate(0, 0, -7), loc), localDate(today.AddDate(0, 0, -13), loc)
			this, last := map[string]int{}, map[string]int{}
			for _, a := range as {
				if a.cause != "hardware" {
					continue
				}
				switch d := localDate(a.ts, loc); {
				case d > cut && d <= todayDate:
					this[a.terminal]++
				case d <= cut && d >= oldest:
					last[a.terminal]++
				}
			}
			wantRising := map[string]string{}
			for term, n := range this {
				if n >= 5 && n >= 2*last[term] {
					wantRising[term] = fmt.Sprintf("%s|%d|%d|%s", merchantOf[term], n, last[term], localDate(today.AddDate(0, 0, -6), loc))
				}
			}
			rows = query(t, c, cookbook(t, "hardware_failures_rising_this_week", tz, clock))
			if got := keyed(rows, []int{0}, []int{1, 2, 3, 4}); !reflect.DeepEqual(got, wantRising) || len(wantRising) == 0 {
				t.Errorf("hardware rising:\n got %v\nwant %v", got, wantRising)
			}

			// Cookbook: issuer outage timeline, minutes shown in the zone.
			type mi struct {
				minute time.Time
				issuer string
			}
			tl := map[mi][2]int{}
			for _, a := range as {
				if !a.ts.Before(clock.Add(-24*time.Hour)) && a.issuer != "" {
					k := mi{a.ts.Truncate(time.Minute), a.issuer}
					v := tl[k]
					v[0]++
					if a.cause == "maintenance" || a.cause == "network" {
						v[1]++
					}
					tl[k] = v
				}
			}
			wantTL := map[string]string{}
			for k, v := range tl {
				if v[0] >= 5 && float64(v[1])/float64(v[0]) >= 0.2 {
					wantTL[localTime(k.minute, loc)+"|"+k.issuer] = fmt.Sprintf("%d|%d", v[0], v[1])
				}
			}
			rows = query(t, c, cookbook(t, "issuer_outage_timeline", tz, clock))
			if got := keyed(rows, []int{0, 1}, []int{2, 3}); !reflect.DeepEqual(got, wantTL) || len(wantTL) < 6 {
				t.Errorf("issuer outage timeline:\n got %v\nwant %v", got, wantTL)
			}

			// Cookbook: the rolling windows are the same in every zone.
			amount := map[string]int64{}
			for _, a := range as {
				if !a.ts.Before(clock.Add(-24*time.Hour)) && a.declined() {
					amount[a.merchant] += a.amount
				}
			}
			for _, r := range query(t, c, cookbook(t, "declined_amount_per_merchant", tz, clock)) {
				if r[3] != strconv.FormatInt(amount[r[0]], 10) {
					t.Errorf("declined amount of %s = %s, want %d", r[0], r[3], amount[r[0]])
				}
			}

			// Dashboards: today so far and this hour, fleet and one merchant.
			g := grafana{tz: tz, from: clock.Add(-6 * time.Hour), to: clock, intervalS: 60, now: clock}
			soFar := func(merchant string) string {
				var n, d, nh, dh int
				var amt int64
				for _, a := range as {
					if a.ts.Before(today) || (merchant != "" && a.merchant != merchant) {
						continue
					}
					n++
					if a.declined() {
						d++
						amt += a.amount
					}
					if !a.ts.Before(thisHour) {
						nh++
						if a.declined() {
							dh++
						}
					}
				}
				if nh == 0 || n == nh {
					t.Errorf("oracle: %d attempts today, %d this hour: nothing tells them apart", n, nh)
				}
				return fmt.Sprintf("%s|%d|%d|%d|%d|%d", localDate(clock, loc), n, d, amt, nh, dh)
			}
			for file, merchant := range map[string]string{"fleet-overview.json": "", "merchant.json": "M1"} {
				rows = query(t, c, g.expand(panelSQL(t, file, "Today so far (${business_tz})")))
				if got := keyed(rows, []int{0}, []int{1, 2, 4, 5, 6}); len(rows) != 1 || got[rows[0][0]] == "" ||
					rows[0][0]+"|"+got[rows[0][0]] != soFar(merchant) {
					t.Errorf("%s today so far: %v, want %s", file, rows, soFar(merchant))
				}
			}

			// Dashboards: per business day, last 14 days, fleet-wide.
			type day struct {
				n, d  int
				terms map[string]bool
			}
			days := map[string]*day{}
			for _, a := range as {
				if a.ts.Before(today.AddDate(0, 0, -13)) {
					continue
				}
				k := localDate(a.ts, loc)
				if days[k] == nil {
					days[k] = &day{terms: map[string]bool{}}
				}
				days[k].n++
				if a.declined() {
					days[k].d++
					days[k].terms[a.terminal] = true
				}
			}
			wantDays := map[string]string{}
			for k, v := range days {
				wantDays[k] = fmt.Sprintf("%d|%d|%d", v.n, v.d, len(v.terms))
			}
			rows = query(t, c, g.expand(panelSQL(t, "fleet-overview.json", "Per business day, last 14 days (${business_tz})")))
			if got := keyed(rows, []int{0}, []int{1, 2, 4}); !reflect.DeepEqual(got, wantDays) || len(wantDays) != 14 {
				t.Errorf("per business day:\n got %v\nwant %v", got, wantDays)
			}

			// Dashboards: buckets of an hour and of a day start where the
			// zone's hours and days start.
			for _, interval := range []int{3600, 86400} {
				g := grafana{tz: tz, from: clock.Add(-3 * 24 * time.Hour), to: clock, intervalS: interval, now: clock}
				bucket := func(ts time.Time) string {
					if interval == 3600 {
						return localTime(hourStart(ts, loc), loc)
					}
					return localTime(dayStart(ts, loc), loc)
				}
				terms := map[string]map[string]bool{}
				for _, a := range as {
					if a.cause != "network" || a.ts.Before(g.from) || a.ts.Truncate(time.Minute).After(g.to) {
						continue
					}
					k := bucket(a.ts) + "|" + a.region
					if terms[k] == nil {
						terms[k] = map[string]bool{}
					}
					terms[k][a.terminal] = true
				}
				wantNet := map[string]string{}
				for k, v := range terms {
					wantNet[k] = strconv.Itoa(len(v))
				}
				rows = query(t, c, g.expand(panelSQL(t, "network.json", "Terminals with network failures, by region")))
				got := keyed(rows, []int{0, 1}, []int{2})
				for k, v := range got {
					if v == "0" {
						delete(got, k) // regions with other causes only
					}
				}
				if !reflect.DeepEqual(got, wantNet) {
					t.Errorf("network terminals per %ds: differ at %s", interval, firstDiff(got, wantNet))
				}

				incidents := map[string]int{}
				for _, al := range alerts {
					if !al.detected.Before(g.from) && !al.detected.After(g.to) {
						incidents[bucket(al.detected)+"|"+al.kind]++
					}
				}
				wantInc := map[string]string{}
				for k, v := range incidents {
					wantInc[k] = strconv.Itoa(v)
				}
				rows = query(t, c, g.expand(panelSQL(t, "alerts.json", "Incidents by kind")))
				if got := keyed(rows, []int{0, 1}, []int{2}); !reflect.DeepEqual(got, wantInc) || len(wantInc) == 0 {
					t.Errorf("incidents per %ds:\n got %v\nwant %v", interval, got, wantInc)
				}
			}
		})
	}
}

type alert struct {
	detected time.Time
	kind     string
}

// insertAlerts records firing alerts on both sides of each zone's midnight.
func insertAlerts(t *testing.T, c chdbtest.Conn) []alert {
	t.Helper()
	var out []alert
	var b strings.Builder
	b.WriteString("INSERT INTO declinemon.alerts (alert_id, state, kind, cause, scope_type, scope_id, starts_at, detected_at) VALUES ")
	for i, m := range []int{-25, -20, -5, 0, 10, 40, 75, 130, 160, 190, 250, 300, 800, 900} {
		ts := time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC).Add(time.Duration(m)*time.Minute + 1500*time.Millisecond)
		kind := []string{"network_outage", "terminal_hardware", "issuer_outage"}[i%3]
		out = append(out, alert{ts, kind})
		if i > 0 {
			b.WriteString(", ")
		}
		f := ts.Format("2006-01-02 15:04:05.000")
		fmt.Fprintf(&b, "('a%d', 'firing', '%s', 'network', 'region', 'R0', '%s', '%s')", i, kind, f, f)
	}
	if err := c.Exec(context.Background(), b.String()); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstDiff names the first key (in order) where two answers differ.
func firstDiff(got, want map[string]string) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var all []string
	for k := range keys {
		all = append(all, k)
	}
	sort.Strings(all)
	for _, k := range all {
		if got[k] != want[k] {
			return fmt.Sprintf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
	return "nowhere"
}

// TestTodayOnTheRealClock runs the "today" and "this hour" queries
// untouched (the server's own now()), with attempts just before and at the
// business zone's midnight and hour start, in each test zone.
func TestTodayOnTheRealClock(t *testing.T) {
	c := chdbtest.New(t)
	if _, err := storage.Migrate(context.Background(), c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, tz := range testZones {
		t.Run(tz, func(t *testing.T) {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				t.Fatal(err)
			}
			for try := 0; ; try++ {
				for _, table := range []string{"events", "terminal_minutes", "scope_minutes"} {
					if err := c.Exec(context.Background(), "TRUNCATE TABLE declinemon."+table); err != nil {
						t.Fatal(err)
					}
				}
				now := time.Now()
				midnight, hour := dayStart(now, loc), hourStart(now, loc)
				var as []attempt
				add := func(ts time.Time, n int, cause string) {
					for k := 0; k < n; k++ {
						as = append(as, attempt{ts: ts.Add(time.Duration(k) * time.Second), merchant: "M1", terminal: "T09", region: "R0",
							issuer: "BANK1", cause: cause, amount: 100})
					}
				}
				add(midnight.Add(-time.Minute), 10, "hardware") // yesterday in the zone
				add(midnight, 10, "hardware")                   // the first minute of today
				add(hour.Add(-time.Minute), 3, "approved")      // before this hour (yesterday when hour = midnight)
				add(hour, 4, "network")                         // this hour
				insert(t, c, as)
				var n, d, nh, dh int
				for _, a := range as {
					if !a.ts.Before(midnight) {
						n++
						if a.declined() {
							d++
						}
						if !a.ts.Before(hour) {
							nh++
							if a.declined() {
								dh++
							}
						}
					}
				}
				top := query(t, c, cookbook(t, "top_failing_terminals_today", tz, time.Time{}))
				g := grafana{tz: tz, from: now.Add(-6 * time.Hour), to: now, intervalS: 60}
				soFar := query(t, c, g.expand(panelSQL(t, "fleet-overview.json", "Today so far (${business_tz})")))
				if !dayStart(time.Now(), loc).Equal(midnight) || !hourStart(time.Now(), loc).Equal(hour) {
					if try < 2 {
						continue // the zone's day or hour turned while we asked
					}
					t.Fatal("the hour keeps turning")
				}
				if len(top) != 1 || top[0][0] != "T09" || top[0][2] != strconv.Itoa(n) || top[0][6] != localDate(now, loc) {
					t.Errorf("top failing today: %v, want T09 with %d attempts on %s", top, n, localDate(now, loc))
				}
				want := fmt.Sprintf("%s|%d|%d|%d|%d", localDate(now, loc), n, d, nh, dh)
				if len(soFar) != 1 || strings.Join([]string{soFar[0][0], soFar[0][1], soFar[0][2], soFar[0][5], soFar[0][6]}, "|") != want {
					t.Errorf("today so far: %v, want %s", soFar, want)
				}
				break
			}
		})
	}
}
