package chaos

// The storage cases run `declinemon run` with a `clickhouse:` section
// against a real ClickHouse server (internal/chserver) and break the
// server or the binary while it stores:
//
//   - clickhouse-stop / clickhouse-kill: the server is stopped cleanly
//     (Stop) or killed -9 (Kill) mid-stream and started again on the same
//     directory and ports 60 s later. Nothing may be lost, the binary's
//     memory must stay bounded while it cannot store, the incidents
//     detected while the server is down must reach the alert sink during
//     the outage, and the lag must recover once the server is back.
//   - storage-kill-random: the binary is killed -9 at seeded points of the
//     stream, at least one of them while an events insert is running on
//     the server, and restarted each time.
//
// Both check ClickHouse against an oracle the test computes from the
// messages it produced (not from declinemon's counters): the events table
// and the rollups hold each valid event exactly once without FINAL.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
)

// chOutage is how long the outage cases keep ClickHouse down.
const chOutage = 60 * time.Second

// rssSlack bounds the binary's resident memory while ClickHouse is down,
// over its peak in the seconds before. Detection goes on; storage holds
// the one batch whose insert failed and stages nothing more (a batch is at
// most clickhouse.batch_size events; at this case's rate, a second's
// worth: a few thousand), and the collector runs at GOGC 400. The
// outage's share of the stream (about 118k events, ~50 MiB as produced,
// several times that decoded and in columns) would cross this bound if it
// were buffered; the group's lag growing by that share (noted below)
// shows it was left in Kafka instead: commits stop at what is stored.
const rssSlack = 96 << 20

// chRecoveryBound bounds the time from ClickHouse accepting connections
// again to every group of the case at the end offsets: the writer's and
// the flush's backoff (5 s each at most) and the backlog of the outage
// (~120k events, stored at tens of thousands a second).
const chRecoveryBound = 60 * time.Second

// clickhouse starts the case's ClickHouse server (data under the case's
// directory, its output in clickhouse.log) and adds it to the config.
func (h *harness) clickhouse() *chserver.Server {
	h.t.Helper()
	if os.Getenv(chserver.LibEnv) == "" {
		if chtest.Required() {
			h.t.Fatalf("%s is not set and DECLINEMON_CLICKHOUSE_REQUIRED=1 (make chdb-lib fetches it)", chserver.LibEnv)
		}
		h.t.Skipf("%s not set: no ClickHouse server (set DECLINEMON_CLICKHOUSE_REQUIRED=1 to fail instead)", chserver.LibEnv)
	}
	logf, err := os.Create(filepath.Join(h.dir, "clickhouse.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: filepath.Join(h.dir, "clickhouse"), Log: logf})
	if err != nil {
		logf.Close()
		h.t.Fatalf("starting clickhouse: %v", err)
	}
	h.t.Cleanup(func() {
		srv.Kill()
		logf.Close()
	})
	h.note("ClickHouse server (chserver) on %s, HTTP %s, up in %s", srv.TCPAddr, srv.HTTPAddr, round(time.Since(t0)))
	f, err := os.OpenFile(h.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "clickhouse:\n  addr: [%q]\n", srv.TCPAddr); err != nil {
		h.t.Fatal(err)
	}
	return srv
}

// storeOracle is what the events table and the rollups must hold, from
// the messages produced: each valid event once.
type storeOracle struct {
	produced, valid, distinct int
	byMerchant, byTerminal    map[string]int
	byMinute                  map[string]int // minute in UTC, as ClickHouse prints DateTime('UTC')
}

// oracleOf reads every message the case produces: an event is valid when
// it is a JSON object with event_id, ts (RFC 3339), terminal_id and
// merchant_id, the fields the decoder requires.
func oracleOf(msgs []message, extra map[int]kafka.Message) storeOracle {
	o := storeOracle{byMerchant: map[string]int{}, byTerminal: map[string]int{}, byMinute: map[string]int{}}
	ids := map[string]bool{}
	add := func(value []byte) {
		o.produced++
		var e struct {
			ID       string `json:"event_id"`
			TS       string `json:"ts"`
			Terminal string `json:"terminal_id"`
			Merchant string `json:"merchant_id"`
		}
		if json.Unmarshal(value, &e) != nil || e.ID == "" || e.Terminal == "" || e.Merchant == "" {
			return
		}
		ts, err := time.Parse(time.RFC3339Nano, e.TS)
		if err != nil {
			return
		}
		o.valid++
		ids[e.ID] = true
		o.byMerchant[e.Merchant]++
		o.byTerminal[e.Terminal]++
		o.byMinute[ts.UTC().Truncate(time.Minute).Format(time.DateTime)]++
	}
	for _, m := range msgs {
		add(m.value)
	}
	for _, m := range extra {
		add(m.Value)
	}
	o.distinct = len(ids)
	return o
}

// invalidMessages are n messages the decoder rejects (not JSON, a required
// field missing), at seeded positions of the stream: dead letters, gaps
// in the stored offset ranges.
func invalidMessages(d *dataset, rng *rand.Rand, n int) map[int]kafka.Message {
	out := map[int]kafka.Message{}
	for i := 0; len(out) < n; i++ {
		k := 1 + rng.IntN(len(d.msgs)-1)
		m := d.msgs[k]
		var v string
		switch i % 3 {
		case 0:
			v = fmt.Sprintf("not an event %d", i)
		case 1: // no merchant_id
			v = fmt.Sprintf(`{"event_id":"invalid-%d-%d","ts":"%s","terminal_id":"%s","response_code":"05"}`,
				d.seed, i, m.ts.Format(time.RFC3339Nano), m.key)
		default: // no event_id
			v = fmt.Sprintf(`{"ts":"%s","terminal_id":"%s","merchant_id":"M-INVALID","response_code":"00"}`,
				m.ts.Format(time.RFC3339Nano), m.key)
		}
		out[k] = kafka.Message{Key: m.key, Value: []byte(v)}
	}
	return out
}

// chValue runs a one-value query over HTTP.
func chValue(srv *chserver.Server, q string) (string, error) {
	rows, err := chtest.TryQuery(srv, q)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("%s: want one value, got %v", q, rows)
	}
	return rows[0][0], nil
}

func chInt(srv *chserver.Server, q string) (int64, error) {
	v, err := chValue(srv, q)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// chCounts runs a query of (key, count) rows.
func chCounts(srv *chserver.Server, q string) (map[string]int, error) {
	rows, err := chtest.TryQuery(srv, q)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range rows {
		if len(r) != 2 {
			return nil, fmt.Errorf("%s: want two columns, got %v", q, r)
		}
		n, err := strconv.Atoi(r[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %v", q, err)
		}
		out[r[0]] = n
	}
	return out, nil
}

// diffCounts describes how got differs from want (at most a few keys).
func diffCounts(want, got map[string]int) (string, bool) {
	var diffs []string
	keys := slices.Sorted(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if want[k] != got[k] {
			diffs = append(diffs, fmt.Sprintf("%s: %d, want %d", k, got[k], want[k]))
		}
	}
	if len(diffs) == 0 {
		return "", true
	}
	n := len(diffs)
	if n > 5 {
		diffs = diffs[:5]
	}
	return fmt.Sprintf("%d of %d keys differ (%s)", n, len(keys), strings.Join(diffs, "; ")), false
}

// checkStored compares ClickHouse with the oracle, without FINAL: the
// events table (rows, distinct event_id, per merchant), terminal_minutes
// (attempts, per terminal) and scope_minutes (attempts, per minute).
func (h *harness) checkStored(srv *chserver.Server, o storeOracle) {
	h.t.Helper()
	totals := []struct{ what, q string }{
		{"events count()", "SELECT count() FROM declinemon.events"},
		{"events uniqExact(event_id)", "SELECT uniqExact(event_id) FROM declinemon.events"},
		{"terminal_minutes sum(attempts)", "SELECT sum(attempts) FROM declinemon.terminal_minutes"},
		{"scope_minutes sum(attempts)", "SELECT sum(attempts) FROM declinemon.scope_minutes"},
	}
	got := make([]int64, len(totals))
	for i, c := range totals {
		n, err := chInt(srv, c.q)
		if err != nil {
			h.fail("clickhouse query", "%s: %v", c.what, err)
			return
		}
		got[i] = n
		want := int64(o.valid)
		if i == 1 {
			want = int64(o.distinct)
		}
		if n != want {
			h.fail(fmt.Sprintf("%s %d ≠ %d", c.what, n, want), "%s without FINAL: %d, want %d (valid events produced)", c.what, n, want)
		}
	}
	h.row.Stored = fmt.Sprintf("%d / %d / %d (%d)", got[0], got[2], got[3], o.valid)
	breakdowns := []struct {
		what, q string
		want    map[string]int
	}{
		{"events per merchant", "SELECT merchant_id, count() FROM declinemon.events GROUP BY merchant_id", o.byMerchant},
		{"terminal_minutes per terminal", "SELECT terminal_id, sum(attempts) FROM declinemon.terminal_minutes GROUP BY terminal_id", o.byTerminal},
		{"scope_minutes per minute", "SELECT minute, sum(attempts) FROM declinemon.scope_minutes GROUP BY minute", o.byMinute},
	}
	for _, b := range breakdowns {
		m, err := chCounts(srv, b.q)
		if err != nil {
			h.fail("clickhouse query", "%s: %v", b.what, err)
			continue
		}
		if d, ok := diffCounts(b.want, m); !ok {
			h.fail(b.what+" differ", "%s: %s", b.what, d)
		}
	}
	dups, err := chInt(srv, "SELECT count() FROM (SELECT event_id FROM declinemon.events GROUP BY event_id HAVING count() > 1)")
	ranges, err2 := chInt(srv, "SELECT count() FROM declinemon.ingest_offsets")
	alertIDs, err3 := chInt(srv, "SELECT uniqExact(alert_id) FROM declinemon.alerts WHERE state = 'firing'")
	if err == nil && err2 == nil && err3 == nil {
		h.note("stored without FINAL: %d events rows (%d distinct event_id, %d ids stored more than once), terminal_minutes %d, scope_minutes %d attempts; oracle from the %d messages produced: %d valid, %d merchants, %d terminals, %d minutes; %d ingest_offsets ranges; %d firing alert_ids in the alerts table (replay raises %d)",
			got[0], got[1], dups, got[2], got[3], o.produced, o.valid, len(o.byMerchant), len(o.byTerminal), len(o.byMinute), ranges, alertIDs, len(h.d.ref.firing))
	}
	var rows, skipped, retries float64
	for _, in := range h.instances {
		for _, p := range in.procs {
			rows += p.metric("declinemon_store_rows_total")
			skipped += p.metric("declinemon_store_redelivered_skipped_total")
			retries += p.metric("declinemon_store_retries_total")
		}
	}
	h.note("the writer's counters over all lifetimes (last scrape of each): %.0f rows inserted, %.0f re-delivered events skipped, %.0f insert retries",
		rows, skipped, retries)
}

// groups lists the case's consumer groups: group_id, which detection and
// storage share (its commits stop at what is both checkpointed and
// stored). Named, not discovered.
func (h *harness) groups() []string {
	return []string{h.group}
}

// lagOf is each group's lag (end offsets minus committed, summed over the
// partitions; -1 when the broker does not answer).
func (h *harness) lagOf(groups []string) map[string]int64 {
	out := map[string]int64{}
	for _, g := range groups {
		c, e, err := h.offsetsOf(g)
		switch {
		case err != nil:
			out[g] = -1
		case caughtUp(c, e):
			out[g] = 0
		default:
			out[g] = max(sum(e)-sum(c), 1)
		}
	}
	return out
}

// waitAllCaughtUp waits until prod is done and every group of the case is
// at the end offsets, up to limit; zero time when it never was.
func (h *harness) waitAllCaughtUp(prod *producer, limit time.Duration) (time.Time, map[string]int64) {
	from := time.Now()
	var lag map[string]int64
	for time.Since(from) < limit && h.ctx.Err() == nil {
		lag = h.lagOf(h.groups())
		all := prod.finished()
		for _, l := range lag {
			all = all && l == 0
		}
		if all {
			return time.Now(), lag
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, lag
}

// rssOf is a process's resident set size from /proc/<pid>/status (0 when
// it cannot be read).
func rssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rssSampler samples a process's RSS every 100 ms until stopped.
type rssSampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	peak, last int64
	samples    int
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if v := rssOf(pid); v > 0 {
				s.mu.Lock()
				s.peak, s.last = max(s.peak, v), v
				s.samples++
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// end stops sampling and returns the peak, the last value and the count.
func (s *rssSampler) end() (peak, last int64, n int) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.last, s.samples
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// firingBetween returns the firing records of an alerts file in [from, to).
func firingBetween(path string, from, to int64) []alertRecord {
	data, _ := os.ReadFile(path)
	to = min(to, int64(len(data)))
	recs, _ := parseAlerts(data[min(from, to):to])
	var out []alertRecord
	for _, r := range recs {
		if r.State == "firing" {
			out = append(out, r)
		}
	}
	return out
}

// sameIncident is compare's match: kind, scope, onset within onsetSlack.
func sameIncident(a, b alertRecord) bool {
	return a.Kind == b.Kind && a.ScopeType == b.ScopeType && a.ScopeID == b.ScopeID && absDur(a.StartsAt.Sub(b.StartsAt)) <= onsetSlack
}

// caseClickHouseOutage takes ClickHouse down for chOutage mid-stream,
// stopped cleanly or killed -9 (kill), then starts it again on the same
// directory and ports. The stream is paced to last about 60 s and the
// outage starts once a fifth of it is processed, so the stream ends while
// the server is down: the recovery measured is the whole backlog's.
func caseClickHouseOutage(kill bool) func(t *testing.T, s *suite, seed uint64) {
	name, how := "clickhouse-stop", "stopped cleanly"
	if kill {
		name, how = "clickhouse-kill", "killed -9"
	}
	return func(t *testing.T, s *suite, seed uint64) {
		h := s.begin(t, s.sharedBroker(t), seed, name)
		ch := h.clickhouse()
		h.createTopic()
		oracle := oracleOf(h.d.msgs, nil)
		a := h.instance("a")
		p := a.start()
		rate := float64(len(h.d.msgs)) / 60
		prod := h.produce(h.d.msgs, rate, nil)
		if !h.waitProcessed(0.2, p) {
			t.FailNow()
		}
		for deadline := time.Now().Add(30 * time.Second); p.metric("declinemon_store_rows_total") == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		if p.metric("declinemon_store_rows_total") == 0 {
			h.fail("nothing stored", "%s stored nothing before the outage", p.name)
		}
		pid := p.cmd.Process.Pid
		before := sampleRSS(pid)
		time.Sleep(2 * time.Second)
		baseline, _, _ := before.end()

		sentDown := int(prod.sent.Load())
		processedDown := p.metric("declinemon_messages_total")
		storedDown := p.metric("declinemon_store_rows_total")
		alertsDown := fileSize(a.alerts)
		lagDown := h.lagOf(h.groups())
		down := time.Now()
		if kill {
			ch.Kill()
		} else if err := ch.Stop(30 * time.Second); err != nil {
			t.Fatalf("stopping clickhouse: %v", err)
		}
		stopTook := time.Since(down)
		during := sampleRSS(pid)
		time.Sleep(time.Until(down.Add(chOutage / 2)))
		readyCode, readyBody := p.readyz()
		time.Sleep(time.Until(down.Add(chOutage - 10*time.Second)))
		// Incidents detected (in event time) between the outage's start and
		// 10 s before its end must be announced before it ends: 10 s of
		// wall time is hours of the paced day, room for the event-time
		// merge and the flush.
		sentLate := int(prod.sent.Load())
		time.Sleep(time.Until(down.Add(chOutage)))
		sentUp := int(prod.sent.Load())
		processedUp := p.metric("declinemon_messages_total")
		storedUp := p.metric("declinemon_store_rows_total")
		alertsUp := fileSize(a.alerts)
		lagUp := h.lagOf(h.groups())
		peak, last, samples := during.end()
		storing := h.watchStored(p)
		t0 := time.Now()
		if err := ch.Restart(h.ctx); err != nil {
			t.Fatalf("clickhouse did not come back: %v", err)
		}
		up := time.Now()
		h.note("ClickHouse %s after %.0f of %d messages were processed (%.0f stored, %d produced), in %s; started again on the same ports %s later, accepting in %s",
			how, processedDown, len(h.d.msgs), storedDown, sentDown, round(stopTook), round(t0.Sub(down)), round(up.Sub(t0)))
		h.note("during the outage: %.0f messages processed, %.0f stored; produced %d → %d; /readyz at %s: %d %s; lag at its start %v, at its end %v",
			processedUp-processedDown, storedUp-storedDown, sentDown, sentUp, round(chOutage/2), readyCode, strings.TrimSpace(readyBody), lagDown, lagUp)

		// Memory while storage cannot keep anything.
		h.note("RSS of %s (pid %d, /proc/%d/status VmRSS): %s peak in the 2 s before the outage; during it %s peak, %s at its end (%d samples); bound %s (+%s)",
			p.name, pid, pid, mib(baseline), mib(peak), mib(last), samples, mib(baseline+rssSlack), mib(rssSlack))
		if peak > baseline+rssSlack {
			h.fail("memory grew", "RSS peaked at %s during the outage, over the bound %s (baseline %s + %s)", mib(peak), mib(baseline+rssSlack), mib(baseline), mib(rssSlack))
		}

		// Alerts delivered while ClickHouse was down.
		var window []alertRecord
		if sentDown > 0 && sentLate > sentDown {
			from, to := h.d.msgs[sentDown-1].ts, h.d.msgs[sentLate-1].ts
			for _, r := range h.d.ref.firing {
				if r.DetectedAt.After(from) && !r.DetectedAt.After(to) {
					window = append(window, r)
				}
			}
			h.note("replay detects %d of its %d alerts between %s and %s (event time of the messages produced at the outage's start and 10 s before its end)",
				len(window), len(h.d.ref.firing), from.In(cst).Format("15:04:05"), to.In(cst).Format("15:04:05"))
		}
		delivered := firingBetween(a.alerts, alertsDown, alertsUp)
		var missed []string
		for _, r := range window {
			if !slices.ContainsFunc(delivered, func(g alertRecord) bool { return sameIncident(g, r) }) {
				missed = append(missed, r.String())
			}
		}
		h.note("%d firing records written to --alerts-out during the outage; %d of the %d incidents detected in it among them",
			len(delivered), len(window)-len(missed), len(window))
		if len(window) == 0 {
			h.note("no reference incident is detected inside the outage for this seed: the delivery check is vacuous")
		}
		if len(missed) > 0 {
			h.fail(fmt.Sprintf("%d of %d alerts not delivered during the outage", len(missed), len(window)),
				"incidents detected while ClickHouse was down were not announced before it came back:\n  %s", strings.Join(missed, "\n  "))
		}

		// Recovery: storing again, then every group at the end offsets.
		at, lag := h.waitAllCaughtUp(prod, chRecoveryBound+30*time.Second)
		stored := storing()
		h.row.Recovery = "ClickHouse back → storing " + since(up, stored) + ", → lag 0 " + since(up, at)
		if stored.IsZero() || stored.Sub(up) > 20*time.Second {
			h.fail("slow storage recovery", "storing again %s after ClickHouse came back, want within 20s", since(up, stored))
		}
		if at.IsZero() || at.Sub(up) > chRecoveryBound {
			h.fail("lag not recovered", "groups at the end offsets %s after ClickHouse came back (want within %s); lag %v", since(up, at), chRecoveryBound, lag)
		}
		h.note("groups %v; lag 0 %s after ClickHouse came back (the backlog: %d messages produced since the outage began)",
			slices.Collect(maps.Keys(lag)), since(up, at), len(h.d.msgs)-sentDown)
		prod.wait(t)
		h.finish()
		h.checkStored(ch, oracle)
	}
}

// watchStored is watchResume for storage: when the processes' stored rows
// next grow (zero if not within three minutes).
func (h *harness) watchStored(procs ...*proc) func() time.Time {
	return h.watchGrowth("declinemon_store_rows_total", procs...)
}

// reviveServer checks the ClickHouse server answers half a second after
// a client of it was killed -9. The test server (chserver, libchdb 26.7)
// sometimes aborts when a native-protocol client dies mid-INSERT ("The
// server is shutting down due to a fatal error", then it exits): that
// is started again on the same directory and ports, as a crashed
// clickhouse-server would be, and noted. It reports whether it had to.
func (h *harness) reviveServer(srv *chserver.Server, killed time.Time, victim string) bool {
	h.t.Helper()
	time.Sleep(500 * time.Millisecond)
	if _, err := chValue(srv, "SELECT 1"); err == nil && srv.Running() {
		return false
	} else if err != nil {
		h.note("ClickHouse stopped answering after %s was killed -9: %v", victim, err)
	}
	for deadline := time.Now().Add(15 * time.Second); srv.Running() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	exited := time.Since(killed)
	srv.Kill() // if it still runs
	if err := srv.Restart(h.ctx); err != nil {
		h.t.Fatalf("restarting clickhouse: %v", err)
	}
	h.note("ClickHouse server exited %s after the kill of %s; started again on the same ports, answering %s after the kill",
		round(exited), victim, round(time.Since(killed)))
	return true
}

// insertRunning reports whether an events insert is running on the
// server (system.processes).
func insertRunning(srv *chserver.Server) bool {
	n, err := chInt(srv, "SELECT count() FROM system.processes WHERE query_kind = 'Insert' AND positionCaseInsensitive(query, 'declinemon.events') > 0")
	return err == nil && n > 0
}

// caseStorageKill kills -9 the binary at 3–4 seeded points of a stream
// of 5000 messages a second while it stores, restarting it each time:
// the even kills come a random 0–1 s after their point, the odd ones as
// soon as an events insert is seen running on the server after it (mid-
// insert). A dozen invalid messages are mixed in (dead letters, gaps in
// the stored offset ranges). At the end ClickHouse must hold each valid
// event exactly once, without FINAL, and every reference incident must
// have fired once.
func caseStorageKill(t *testing.T, s *suite, seed uint64) {
	h := s.begin(t, s.sharedBroker(t), seed, "storage-kill-random")
	ch := h.clickhouse()
	h.createTopic()
	rng := rand.New(rand.NewPCG(seed, 0x5709e))
	invalid := invalidMessages(h.d, rng, 12)
	oracle := oracleOf(h.d.msgs, invalid)
	kills := 3 + rng.IntN(2)
	total := float64(len(h.d.msgs))
	var points []float64
	for k := range kills {
		points = append(points, 0.1+0.8*(float64(k)+rng.Float64())/float64(kills))
	}
	aborts := 0
	a := h.instance("a")
	a.start()
	prod := h.produce(h.d.msgs, 5000, maps.Clone(invalid))
	type measured struct {
		text string
		ok   bool
	}
	var recs []chan measured
	from := int64(0)
	midInsert := 0
	for k, f := range points {
		p := a.alive()
		h.awaitKillPoint(p, from, f, total, nil)
		if !p.alive() || len(h.row.Failures) > 0 {
			break
		}
		trigger := fmt.Sprintf("point %.2f", f)
		if k%2 == 1 {
			seen := false
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !seen; {
				seen = insertRunning(ch)
			}
			if seen {
				midInsert++
				trigger += ", an events insert running on the server"
			} else {
				trigger += ", no insert seen running within 10s"
			}
		} else {
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		processed, stored := p.metric("declinemon_messages_total"), p.metric("declinemon_store_rows_total")
		killed := time.Now()
		a.kill()
		base := h.committedNow()
		if h.reviveServer(ch, killed, p.name) {
			aborts++
		}
		rows, _ := chInt(ch, "SELECT count() FROM declinemon.events")
		h.note("kill -9 at %s: %s had processed %.0f messages and stored %.0f (last scrape); %d of %d committed, %d produced, %d rows in events",
			trigger, p.name, processed, stored, sum(base), len(h.d.msgs), prod.sent.Load(), rows)
		restart := time.Now()
		next := a.start()
		resumed := h.watchResume(next)
		storing := h.watchStored(next)
		from = sum(base)
		res := make(chan measured, 1)
		recs = append(recs, res)
		go func() {
			text, ok := h.recoveryOf(next, restart, base, 90*time.Second, prod)
			res <- measured{"consuming " + since(restart, resumed()) + ", storing " + since(restart, storing()) + ", → committed " + text, ok}
		}()
	}
	var texts []string
	for i, res := range recs {
		m := <-res
		texts = append(texts, m.text)
		if !m.ok {
			h.fail("no commits after restart", "after restart %d the committed offsets never advanced", i+1)
		}
	}
	h.row.Recovery = "restart → " + strings.Join(texts, "; restart → ")
	if midInsert == 0 {
		h.fail("no kill mid-insert", "no kill landed while an events insert was running")
	}
	if aborts > 0 {
		h.note("the ClickHouse server aborted (code 236, \"shutting down due to a fatal error\") after %d of the %d kills of its client, and was started again each time: a limit of the test server (chserver on libchdb), reproduced with a bare clickhouse-go client killed -9 mid-INSERT", aborts, len(recs))
	}
	prod.wait(t)
	h.finish()
	var dead float64
	for _, p := range a.procs {
		dead += p.metric("declinemon_dead_letters_total")
	}
	h.note("%d invalid messages produced among %d; %.0f dead-lettered over all lifetimes (last scrapes)", len(invalid), oracle.produced, dead)
	h.checkStored(ch, oracle)
}
