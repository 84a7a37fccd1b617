package chaos

// The chaos suite runs the real `declinemon run` binary against a real
// Kafka broker (internal/kafkatest) and breaks things while it works: kill
// -9 once the group has caught up, kill -9 at random points, a broker
// outage, a topic created after start, an oversized message, and a
// standby taking over from a killed instance. Each case streams a
// generated day (alerting/scenario, fixed seeds) and checks the acceptance
// criteria against `declinemon replay` of the same events:
//
//   - every firing alert_id replay raises is announced exactly once, in
//     the union of what every process lifetime wrote to --alerts-out, and
//     no incident fires twice under another id;
//   - the group's committed offsets reach the topic's end offsets;
//   - late events, summed over every lifetime, are not above replay's.
//
// The storage cases (storage_test.go) add a real ClickHouse server
// (internal/chserver): it is stopped or killed for 60 s mid-stream, or
// the binary is killed -9 while it stores; ClickHouse must then hold
// each valid event produced exactly once, without FINAL.
//
// Run it (about 10 minutes on 2 cores; -run picks cases):
//
//	DECLINEMON_KAFKA_LIBS=$HOME/.cache/declinemon/kafka-3.9.1/libs DECLINEMON_KAFKA_REQUIRED=1 \
//	CHDB_LIB_PATH=$HOME/.cache/declinemon/chdb-26.7.3/package/libchdb.so DECLINEMON_CLICKHOUSE_REQUIRED=1 \
//	DECLINEMON_CHAOS=1 DECLINEMON_CHAOS_REPORT=/tmp/chaos.md go test -count=1 -v -timeout 20m ./internal/chaos/
//
// DECLINEMON_CHAOS_SEEDS=1,2,3 runs every case on each of those seeds
// instead of its own; DECLINEMON_CHAOS_BIN=path uses that binary instead
// of building ./cmd/declinemon (to measure an older commit);
// DECLINEMON_CHAOS_DIR=dir keeps each case's config, process logs and
// alerts files under dir/<case>-<seed>.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/kafkatest"
)

// suite is what the cases share: the binary, the generated days with
// their replay references, a broker for the cases that do not restart or
// reconfigure theirs, and the result rows.
type suite struct {
	bin, dir string

	mu     sync.Mutex
	data   map[uint64]*dataset
	broker *kafkatest.Broker
	rows   []*row
}

type chaosCase struct {
	name string
	seed uint64 // its default seed
	run  func(t *testing.T, s *suite, seed uint64)
}

var cases = []chaosCase{
	{"kill-at-lag0", 1, caseKillAtLag0},
	{"kill-random", 2, caseKillRandom},
	{"broker-outage", 3, caseBrokerOutage},
	{"topic-after-start", 4, caseTopicAfterStart},
	{"oversized-message", 5, caseOversized},
	{"standby-takeover", 6, caseStandby},
	{"clickhouse-stop", 7, caseClickHouseOutage(false)},
	{"clickhouse-kill", 8, caseClickHouseOutage(true)},
	{"storage-kill-random", 9, caseStorageKill},
}

func TestChaos(t *testing.T) {
	if testing.Short() || os.Getenv("DECLINEMON_CHAOS") != "1" {
		t.Skip("chaos suite: real broker and binary, minutes; run alone with `make chaos` (DECLINEMON_CHAOS=1), not with -short")
	}
	if !kafkatest.Required() {
		if m, _ := filepath.Glob(filepath.Join(kafkatest.LibsDir(), "kafka_2.13-*.jar")); len(m) == 0 {
			t.Skip("no Kafka jars in " + kafkatest.LibsDir() + " (make kafka-jars, or set DECLINEMON_KAFKA_REQUIRED=1)")
		}
	}
	start := time.Now()
	dir := t.TempDir()
	s := &suite{dir: dir, bin: filepath.Join(dir, "declinemon"), data: map[uint64]*dataset{}}
	if bin := os.Getenv("DECLINEMON_CHAOS_BIN"); bin != "" {
		// A binary built elsewhere, e.g. from an older commit to see
		// what the suite measured before a fix.
		s.bin = bin
		t.Logf("using %s (DECLINEMON_CHAOS_BIN)", bin)
	} else {
		build := exec.Command("go", "build", "-o", s.bin, "./cmd/declinemon")
		build.Dir = moduleRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building declinemon: %v\n%s", err, out)
		}
		t.Logf("built declinemon in %s", time.Since(start).Round(time.Millisecond))
	}
	t.Cleanup(func() {
		if s.broker != nil {
			s.broker.Stop()
		}
		if len(s.rows) == 0 {
			return
		}
		report := markdown(s.rows, time.Since(start))
		t.Log("\n" + report)
		if err := writeReport(report); err != nil {
			t.Errorf("writing report: %v", err)
		}
	})
	seeds, err := envSeeds()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if len(seeds) == 0 {
			t.Run(c.name, func(t *testing.T) { c.run(t, s, c.seed) })
			continue
		}
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s-seed%d", c.name, seed), func(t *testing.T) { c.run(t, s, seed) })
		}
	}
}

func envSeeds() ([]uint64, error) {
	v := os.Getenv("DECLINEMON_CHAOS_SEEDS")
	var out []uint64
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("DECLINEMON_CHAOS_SEEDS: %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// sharedBroker is one broker (topic auto-creation on, as kafkatest's
// default) for the cases that do not stop or reconfigure theirs.
func (s *suite) sharedBroker(t *testing.T) *kafkatest.Broker {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b, err := kafkatest.Start(ctx)
		if err != nil {
			if kafkatest.Required() {
				t.Fatalf("starting kafka: %v", err)
			}
			t.Skipf("no kafka broker (set DECLINEMON_KAFKA_REQUIRED=1 to fail instead): %v", err)
		}
		s.broker = b
	}
	return s.broker
}

// dataset generates the seed's day and its replay reference, once.
func (s *suite) dataset(t *testing.T, seed uint64) *dataset {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.data[seed]; d != nil {
		return d
	}
	start := time.Now()
	d := generate(t, s.dir, seed)
	replayReference(t, s.bin, d)
	s.data[seed] = d
	t.Logf("seed %d: %d events, %d incidents injected; replay raises %d firing alerts (%d records), %d late, in %s",
		seed, len(d.msgs), len(d.truth.Incidents), len(d.ref.firing), d.ref.all, d.ref.late, time.Since(start).Round(time.Millisecond))
	return d
}

// begin sets a case up: its dataset, its harness and its result row.
func (s *suite) begin(t *testing.T, b *kafkatest.Broker, seed uint64, name string) *harness {
	t.Helper()
	d := s.dataset(t, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	h := newHarness(ctx, t, s, b, d, fmt.Sprintf("%s-%d", name, seed))
	h.row.Case = name
	s.mu.Lock()
	s.rows = append(s.rows, h.row)
	s.mu.Unlock()
	return h
}

// fail records an acceptance failure in the case's row and fails the test.
func (h *harness) fail(short, format string, args ...any) {
	h.t.Helper()
	h.row.Failures = append(h.row.Failures, short)
	h.t.Errorf(format, args...)
}

func (h *harness) note(format string, args ...any) {
	h.row.Notes = append(h.row.Notes, fmt.Sprintf(format, args...))
}

// finish ends a case once its stream is fully produced: it waits until the
// group has committed the end offsets, stops every live process with
// SIGTERM, and checks the acceptance criteria.
func (h *harness) finish() {
	h.t.Helper()
	ok, c, e := h.waitCaughtUp(40*time.Second, 150*time.Second)
	if ok {
		h.row.Offsets = "caught up"
	} else {
		h.row.Offsets = fmt.Sprintf("behind by %d", sum(e)-sum(c))
		h.fail("offsets not at the end", "committed offsets never reached the end offsets: committed %v, end %v", c, e)
	}
	for _, in := range h.instances {
		if p := in.alive(); p != nil {
			// A lifetime started a moment ago is let come up first.
			for deadline := time.Now().Add(30 * time.Second); p.alive() && p.scraped() == 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			if err := p.term(); err != nil {
				h.fail("SIGTERM exit", "%v", err)
			}
		}
	}
	if ok {
		// The final flush commits nothing new, and must not move them back.
		if c2, e2, err := h.offsets(); err == nil && !caughtUp(c2, e2) {
			h.fail("offsets moved at stop", "after SIGTERM committed %v, end %v", c2, e2)
		}
	}

	var got []alertRecord
	var late, processed, tooLarge, deadLetters, redelivered float64
	lifetimes, torn := 0, 0
	for _, in := range h.instances {
		data, err := os.ReadFile(in.alerts)
		if err != nil && !os.IsNotExist(err) {
			h.t.Fatal(err)
		}
		for i, p := range in.procs {
			lifetimes++
			end := int64(len(data))
			if i+1 < len(in.procs) {
				end = in.procs[i+1].alertsFrom
			}
			recs, tn := parseAlerts(data[min(p.alertsFrom, end):end])
			torn += tn
			var firing []string
			for _, r := range recs {
				if r.State == "firing" {
					got = append(got, r)
					firing = append(firing, r.Kind+" "+r.ScopeType+"/"+r.ScopeID+" "+r.ID)
				}
			}
			late += p.metric(lateNames...)
			processed += p.metric("declinemon_messages_total")
			tooLarge += p.metric(`declinemon_events_rejected_total{reason="too_large"}`)
			deadLetters += p.metric("declinemon_dead_letters_total")
			redelivered += p.metric("declinemon_redelivered_skipped_total")
			how := "SIGTERM"
			switch {
			case p.killed:
				how = "kill -9"
			case p.sigterm.IsZero():
				how = fmt.Sprintf("exiting by itself (%v)", p.exitErr)
				h.fail(p.name+" exited", "%s exited by itself after %s: %v", p.name, round(p.exitedIn), p.exitErr)
			}
			h.row.Details = append(h.row.Details, fmt.Sprintf("%s: %s, ended by %s; %d scrapes: %.0f messages, %.0f late, %.0f flushes, %.0f committed%s; firing: %s",
				p.name, p.exitedIn.Round(100*time.Millisecond), how, p.scraped(), p.metric("declinemon_messages_total"),
				p.metric(lateNames...), p.metric("declinemon_flushes_total"), p.metric("declinemon_committed_messages_total"),
				p.optional(), or(strings.Join(firing, ", "), "none")))
		}
	}
	h.row.Lifetimes = lifetimes
	h.row.Late = uint64(late)
	cmp := compare(h.d.ref.firing, got)
	h.row.IDOnce, h.row.IDDup, h.row.IDMissed = cmp.idOnce, cmp.idDup, cmp.idMissed
	h.row.IncOnce, h.row.IncDup, h.row.IncMissed = cmp.incOnce, cmp.incDup, cmp.incMissed
	h.row.Extra = len(cmp.extra)
	h.row.Details = append(h.row.Details, cmp.detail...)
	h.note("%d of %d messages produced were processed over all lifetimes (%.0f skipped as redelivered); %d torn alert lines",
		int(processed), len(h.d.msgs), redelivered, torn)
	if tooLarge > 0 || deadLetters > 0 {
		h.note("rejected too_large: %.0f, dead-lettered: %.0f", tooLarge, deadLetters)
	}
	h.row.Wall = time.Since(h.started)
	h.row.Done = true

	if cmp.idMissed > 0 || cmp.idDup > 0 {
		h.fail(fmt.Sprintf("%d ids missed, %d duplicated", cmp.idMissed, cmp.idDup),
			"of %d firing alert_ids replay raises, %d were announced once, %d more than once, %d never:\n  %s",
			cmp.expected, cmp.idOnce, cmp.idDup, cmp.idMissed, strings.Join(cmp.detail, "\n  "))
	}
	if cmp.incDup > 0 {
		h.fail(fmt.Sprintf("%d incidents fired twice", cmp.incDup), "%d incidents fired more than once (under any id)", cmp.incDup)
	}
	if uint64(late) > h.d.ref.late {
		h.fail(fmt.Sprintf("%d late > %d", uint64(late), h.d.ref.late), "late events over all lifetimes: %d, replay counts %d", uint64(late), h.d.ref.late)
	}
	if len(h.row.Failures) > 0 {
		for _, in := range h.instances {
			for _, p := range in.procs {
				for _, l := range p.problems(6) {
					h.row.Details = append(h.row.Details, p.name+" log: "+l)
				}
			}
		}
	}
	h.t.Logf("%s seed %d: expected %d; by id once %d dup %d missed %d; by incident once %d dup %d missed %d; extra %d; late %d (replay %d); recovery %s; %s",
		h.row.Case, h.d.seed, cmp.expected, cmp.idOnce, cmp.idDup, cmp.idMissed, cmp.incOnce, cmp.incDup, cmp.incMissed, len(cmp.extra),
		uint64(late), h.d.ref.late, or(h.row.Recovery, "-"), h.row.Offsets)
}

// recovery waits until the committed offset of every partition that has
// had data since base has moved past base (at least one must), and says
// how long after from that was. When nothing is left to consume (the group
// is at the end offsets and prod is done) there is nothing to measure.
func (h *harness) recovery(from time.Time, base []int64, limit time.Duration, prod *producer) (string, bool) {
	return h.recoveryOf(nil, from, base, limit, prod)
}

// recoveryOf is recovery by process p: it gives up when p is killed first.
func (h *harness) recoveryOf(p *proc, from time.Time, base []int64, limit time.Duration, prod *producer) (string, bool) {
	for time.Since(from) < limit && h.ctx.Err() == nil {
		if p != nil && !p.alive() {
			return "killed before committing", true
		}
		c, e, err := h.offsets()
		if err == nil && len(c) == len(base) {
			moved, all := false, true
			for p := range base {
				switch {
				case c[p] > base[p]:
					moved = true
				case e[p] > max(base[p], 0):
					all = false
				}
			}
			if moved && all {
				return round(time.Since(from)), true
			}
			if !moved && caughtUp(c, e) && prod.finished() {
				return "n/a (nothing left)", true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "never", false
}

// watchResume notes when the processes, together, next process a message
// (their scraped declinemon_messages_total grows): consumption resumed.
// The returned func waits for that moment (zero if it never came within
// three minutes).
func (h *harness) watchResume(procs ...*proc) func() time.Time {
	return h.watchGrowth("declinemon_messages_total", procs...)
}

// awaitKillPoint waits until p, whose lifetime started at committed offset
// from, has processed share f of the stream's total messages (something,
// at least: not killed while it joins) and ready holds, when given. A
// process that stalls for 40 s or dies fails the case.
func (h *harness) awaitKillPoint(p *proc, from int64, f, total float64, ready func(m float64) bool) {
	lastMove, last := time.Now(), -1.0
	for {
		m := p.metric("declinemon_messages_total")
		if m > 0 && float64(from)+m >= f*total && (ready == nil || ready(m)) {
			return
		}
		if m != last {
			last, lastMove = m, time.Now()
		}
		if time.Since(lastMove) > 40*time.Second || !p.alive() {
			h.fail("stalled", "%s processed nothing for 40s (at %.0f messages) before kill point %.2f", p.name, m, f)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchGrowth notes when the processes' metric, summed, next grows; the
// returned func waits for that moment (zero if not within three minutes).
func (h *harness) watchGrowth(metric string, procs ...*proc) func() time.Time {
	total := func() float64 {
		m := 0.0
		for _, p := range procs {
			m += p.metric(metric)
		}
		return m
	}
	base, from := total(), time.Now()
	done := make(chan time.Time, 1)
	go func() {
		for h.ctx.Err() == nil && time.Since(from) < 3*time.Minute {
			if total() > base {
				done <- time.Now()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- time.Time{}
	}()
	return func() time.Time { return <-done }
}

// within fails the case when consumption did not resume within limit of
// from (the bound: within seconds), and says how long it took.
func (h *harness) within(what string, from, at time.Time, limit time.Duration) string {
	if at.IsZero() || at.Sub(from) > limit {
		h.fail("slow recovery", "%s: consuming again %s after, want within %s", what, since(from, at), limit)
	}
	return since(from, at)
}

// since formats how long after from at was ("never" for a zero at).
func since(from, at time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return round(at.Sub(from))
}

// waitProcessed waits until the processes have together processed the
// fraction f of the day's messages (scraped), failing the case when they
// stall for 40 s.
func (h *harness) waitProcessed(f float64, procs ...*proc) bool {
	h.t.Helper()
	lastMove, last := time.Now(), -1.0
	for h.ctx.Err() == nil {
		m := 0.0
		for _, p := range procs {
			m += p.metric("declinemon_messages_total")
		}
		if m >= f*float64(len(h.d.msgs)) {
			return true
		}
		if m != last {
			last, lastMove = m, time.Now()
		}
		if time.Since(lastMove) > 40*time.Second {
			h.fail("stalled", "processing stalled at %.0f messages for 40s, waiting for %.0f", m, f*float64(len(h.d.msgs)))
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (h *harness) committedNow() []int64 {
	for range 50 {
		c, _, err := h.offsets()
		if err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatal("broker does not answer offset requests")
	return nil
}

func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// caseKillAtLag0 is the repro: the day until 13:14 is consumed
// and committed (lag 0), the process is killed with -9 right then and
// started again, and the rest of the day follows. At 13:14 the four
// clustered incidents are all going on: some already alerted (they must
// not be announced again), some not yet (they must still be, with replay's
// alert_id).
func caseKillAtLag0(t *testing.T, s *suite, seed uint64) {
	h := s.begin(t, s.sharedBroker(t), seed, "kill-at-lag0")
	h.createTopic()
	split := splitAt(h.d, 13*time.Hour+14*time.Minute)
	cut := h.d.msgs[split].ts
	var before, after []alertRecord
	for _, r := range h.d.ref.firing {
		if r.DetectedAt.Before(cut) {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	ongoing := 0
	for _, inc := range h.d.truth.Incidents {
		if inc.Start.Before(cut) && inc.End.After(cut) {
			ongoing++
		}
	}
	a := h.instance("a")
	a.start()
	h.produce(h.d.msgs[:split], 0, nil).wait(t)
	ok, c, e := h.waitCaughtUp(30*time.Second, 90*time.Second)
	if !ok {
		h.fail("never at lag 0", "the stream until 13:14 (%d messages) was never committed: committed %v, end %v", split, c, e)
	}
	a.kill()
	h.note("killed -9 at lag 0 with the day until 13:14 consumed (%d of %d messages); %d incidents going on; replay alerted %d of its %d before and %d after",
		split, len(h.d.msgs), ongoing, len(before), len(h.d.ref.firing), len(after))
	restart := time.Now()
	p2 := a.start()
	resumed := h.watchResume(p2)
	prod := h.produce(h.d.msgs[split:], 30000, nil)
	rec, ok := h.recovery(restart, c, 90*time.Second, prod)
	h.row.Recovery = "restart → consuming " + h.within("restart", restart, resumed(), 15*time.Second) + ", → committed " + rec
	if !ok {
		h.fail("no commits after restart", "after the restart the committed offsets never advanced from %v", c)
	}
	prod.wait(t)
	h.finish()
	// The repro's measure: what the restarted process announced.
	got := firingSince(a.alerts, p2.alertsFrom)
	c2 := compare(after, got)
	h.note("after the restart %s announced %d firing records: %d of the %d alerts replay raises after 13:14 by id (%d by incident), %d others",
		p2.name, len(got), c2.idOnce+c2.idDup, len(after), c2.incOnce+c2.incDup, len(c2.extra))
}

// splitAt returns the index of the first message at or after the day's
// start plus at.
func splitAt(d *dataset, at time.Duration) int {
	cut := d.scenario.Start.Add(at)
	i, _ := slices.BinarySearchFunc(d.msgs, cut, func(m message, t time.Time) int { return m.ts.Compare(t) })
	return i
}

// caseKillRandom kills -9 at 2–3 seeded random points of a paced stream,
// restarting each time. A point is a position in the stream (what the
// live process has processed on top of the offsets it started from); the
// second kill also waits until that lifetime has announced an alert, so
// one kill always lands just after a delivery (the alert journal's window),
// and every kill comes a random 0–1 s after its trigger.
func caseKillRandom(t *testing.T, s *suite, seed uint64) {
	h := s.begin(t, s.sharedBroker(t), seed, "kill-random")
	h.createTopic()
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	kills := 2 + rng.IntN(2)
	total := float64(len(h.d.msgs))
	var points []float64
	for k := range kills {
		// One point in each of kills equal slices of the stream's middle.
		points = append(points, 0.1+0.8*(float64(k)+rng.Float64())/float64(kills))
	}
	a := h.instance("a")
	a.start()
	prod := h.produce(h.d.msgs, 5000, nil)
	type measured struct {
		text string
		ok   bool
	}
	var recs []chan measured
	from := int64(0) // committed when the live lifetime started
	for k, f := range points {
		afterAlert := k == 1
		p := a.alive()
		h.awaitKillPoint(p, from, f, total, func(m float64) bool {
			return !afterAlert || float64(from)+m >= 0.97*total || len(firingSince(a.alerts, p.alertsFrom)) > 0
		})
		if !p.alive() || len(h.row.Failures) > 0 {
			break
		}
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		base := h.committedNow()
		processed := p.metric("declinemon_messages_total")
		a.kill()
		trigger := fmt.Sprintf("point %.2f", f)
		if afterAlert {
			trigger += fmt.Sprintf(" after %d alerts announced", len(firingSince(a.alerts, p.alertsFrom)))
		}
		h.note("kill -9 at %s: %s had processed %.0f messages, %d of %d committed, %d produced",
			trigger, p.name, processed, sum(base), len(h.d.msgs), prod.sent.Load())
		restart := time.Now()
		next := a.start()
		resumed := h.watchResume(next)
		from = sum(base)
		ch := make(chan measured, 1)
		recs = append(recs, ch)
		go func() {
			text, ok := h.recoveryOf(next, restart, base, 90*time.Second, prod)
			ch <- measured{"consuming " + since(restart, resumed()) + ", → committed " + text, ok}
		}()
	}
	var texts []string
	for i, ch := range recs {
		m := <-ch
		texts = append(texts, m.text)
		if !m.ok {
			h.fail("no commits after restart", "after restart %d the committed offsets never advanced", i+1)
		}
	}
	h.row.Recovery = "restart → " + strings.Join(texts, "; restart → ")
	prod.wait(t)
	h.finish()
}

// firingSince returns the firing records in the alerts file after offset.
func firingSince(path string, offset int64) []alertRecord {
	data, _ := os.ReadFile(path)
	recs, _ := parseAlerts(data[min(offset, int64(len(data))):])
	var out []alertRecord
	for _, r := range recs {
		if r.State == "firing" {
			out = append(out, r)
		}
	}
	return out
}

// caseBrokerOutage stops the broker mid-stream (a controlled shutdown)
// and starts it again on the same port and log directory, 10–15 s of
// outage in all; recovery is from the broker accepting connections again
// to the group's committed offsets advancing again.
func caseBrokerOutage(t *testing.T, s *suite, seed uint64) {
	b := kafkatest.ForTest(t, kafkatest.Options{})
	h := s.begin(t, b, seed, "broker-outage")
	h.createTopic()
	a := h.instance("a")
	p := a.start()
	prod := h.produce(h.d.msgs, 10000, nil)
	if !h.waitProcessed(0.3, p) {
		h.t.FailNow()
	}
	// Producers buffer while the cluster is down: hold ours between
	// batches so nothing is written twice.
	prod.pause()
	base := h.committedNow()
	processed := p.metric("declinemon_messages_total")
	down := time.Now()
	b.Halt()
	halted := time.Since(down)
	time.Sleep(time.Until(down.Add(7 * time.Second))) // then 4–12 s to start
	accepting := make(chan time.Time, 1)
	go func() {
		for h.ctx.Err() == nil {
			if c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); err == nil {
				c.Close()
				accepting <- time.Now()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		accepting <- time.Time{}
	}()
	resumed := h.watchResume(a.alive())
	if err := b.Resume(h.ctx); err != nil {
		t.Fatalf("broker did not come back: %v", err)
	}
	ready := time.Now()
	prod.resume()
	up := <-accepting
	h.note("broker down %s: controlled shutdown %s, accepting connections %s after it stopped, answering metadata %s later; %.0f of %d messages processed, %d committed, %d produced when it stopped",
		round(ready.Sub(down)), round(halted), round(up.Sub(down)), round(ready.Sub(up)), processed, len(h.d.msgs), sum(base), prod.sent.Load())
	rec, ok := h.recovery(up, base, 120*time.Second, prod)
	h.row.Recovery = "broker accepting → consuming " + h.within("broker back", up, resumed(), 15*time.Second) + ", → committed " + rec
	if !ok {
		h.fail("no commits after the outage", "committed offsets never advanced after the broker came back (from %v)", base)
	}
	prod.wait(t)
	h.note("producer retried %d times", prod.retries.Load())
	h.finish()
}

// caseTopicAfterStart starts run before its topic exists, on a broker
// that does not create topics by itself.
func caseTopicAfterStart(t *testing.T, s *suite, seed uint64) {
	b := kafkatest.ForTest(t, kafkatest.Options{NoAutoCreateTopics: true})
	h := s.begin(t, b, seed, "topic-after-start")
	a := h.instance("a")
	p := a.start()
	var code int
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if code, body = p.readyz(); code == 503 && strings.Contains(body, h.topic) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if code != 503 || !strings.Contains(body, h.topic) {
		h.fail("readyz", "before the topic exists /readyz answered %d %q, want 503 naming %s", code, body, h.topic)
	}
	time.Sleep(2 * time.Second)
	resumed := h.watchResume(a.alive())
	h.createTopic()
	created := time.Now()
	prod := h.produce(h.d.msgs, 20000, nil)
	rec, ok := h.recovery(created, make([]int64, h.partitions), 60*time.Second, prod)
	h.row.Recovery = "created → consuming " + h.within("topic created", created, resumed(), 10*time.Second) + ", → committed " + rec
	if !ok {
		h.fail("topic never consumed", "the topic created after start was never consumed")
	}
	prod.wait(t)
	h.finish()
}

// oversizedSize is close to the broker's max.message.bytes (1048588 for
// the whole record batch).
const oversizedSize = 1_048_400

// caseOversized puts one message of oversizedSize bytes into the stream.
func caseOversized(t *testing.T, s *suite, seed uint64) {
	h := s.begin(t, s.sharedBroker(t), seed, "oversized-message")
	h.createTopic()
	k := len(h.d.msgs) * 2 / 5
	prefix := fmt.Sprintf(`{"event_id":"oversized-%d","ts":"%s","terminal_id":"%s","merchant_id":"M-OVERSIZED","response_code":"00","note":"`,
		seed, h.d.msgs[k].ts.Format(time.RFC3339Nano), h.d.msgs[k].key)
	value := []byte(prefix + strings.Repeat("x", oversizedSize-len(prefix)-2) + `"}`)
	a := h.instance("a")
	a.start()
	prod := h.produce(h.d.msgs, 20000, map[int]kafka.Message{k: {Key: h.d.msgs[k].key, Value: value}})
	prod.wait(t)
	h.note("one %d-byte message at event %d of %d (key %s)", len(value), k, len(h.d.msgs), h.d.msgs[k].key)
	h.finish()
}

// caseStandby runs two instances in one group and kills -9 the one
// consuming; the other must take over.
func caseStandby(t *testing.T, s *suite, seed uint64) {
	h := s.begin(t, s.sharedBroker(t), seed, "standby-takeover")
	h.createTopic()
	a, b := h.instance("a"), h.instance("b")
	pa := a.start()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := pa.readyz(); code == 200 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	pb := b.start()
	time.Sleep(3 * time.Second)
	prod := h.produce(h.d.msgs, 10000, nil)
	if !h.waitProcessed(0.35, pa, pb) {
		h.t.FailNow()
	}
	ma, mb := pa.metric("declinemon_messages_total"), pb.metric("declinemon_messages_total")
	victim, survivor := pa, pb
	if mb > ma {
		victim, survivor = pb, pa
	}
	if ma > 0 && mb > 0 {
		h.fail("split, not standby", "both instances consumed before the kill (a %.0f, b %.0f messages): the second is not a hot standby", ma, mb)
	}
	h.note("before the kill: a consumed %.0f, b %.0f messages; killing %s", ma, mb, victim.name)
	base := h.committedNow()
	resumed := h.watchResume(survivor)
	killed := time.Now()
	victim.kill()
	rec, ok := h.recovery(killed, base, 90*time.Second, prod)
	h.row.Recovery = "kill → " + survivor.name + " consuming " + h.within("takeover", killed, resumed(), 15*time.Second) + ", → committed " + rec
	if !ok {
		h.fail("no takeover", "%s never committed the partitions of %s", survivor.name, victim.name)
	}
	prod.wait(t)
	h.finish()
}
