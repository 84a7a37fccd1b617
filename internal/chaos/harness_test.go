package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/kafkatest"
	"github.com/declinemon/declinemon/internal/stack"
)

// harness is one case: a topic and a group on a broker, the day it
// streams, and the `declinemon run` processes started against them.
type harness struct {
	t          *testing.T
	ctx        context.Context
	bin        string
	b          *kafkatest.Broker
	d          *dataset
	dir        string
	cfgPath    string
	topic      string
	dlq        string
	group      string
	partitions int
	client     *kafka.Client
	instances  []*instance
	row        *row
	started    time.Time
}

func newHarness(ctx context.Context, t *testing.T, s *suite, b *kafkatest.Broker, d *dataset, name string) *harness {
	dir := t.TempDir()
	if keep := os.Getenv("DECLINEMON_CHAOS_DIR"); keep != "" {
		// Logs, configs and alerts files kept for a look afterwards.
		dir = filepath.Join(keep, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, ctx: ctx, bin: s.bin, b: b, d: d, dir: dir, topic: "pos.events." + name, dlq: "declinemon.dlq." + name,
		group: "declinemon-chaos-" + name, partitions: 4, client: &kafka.Client{Addr: kafka.TCP(b.Addr), Timeout: 5 * time.Second},
		started: time.Now()}
	h.row = &row{Case: name, Seed: d.seed, Expected: len(d.ref.firing), RefLate: d.ref.late}
	h.cfgPath = filepath.Join(dir, "declinemon.yaml")
	// Everything but where to consume, and an ephemeral port for /metrics,
	// is the default (session_timeout 10s, batch 5000, flush 1s...).
	cfg := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topics: [%q]\n  group_id: %q\n  dlq_topic: %q\nhttp:\n  listen: 127.0.0.1:0\n",
		b.Addr, h.topic, h.group, h.dlq)
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, in := range h.instances {
			if p := in.alive(); p != nil {
				p.kill()
			}
		}
	})
	return h
}

func (h *harness) createTopic() {
	h.t.Helper()
	if err := h.b.CreateTopic(h.ctx, h.topic, h.partitions); err != nil {
		h.t.Fatal(err)
	}
}

// instance is one deployment of `declinemon run` (one --alerts-out file),
// started again after each kill.
type instance struct {
	h      *harness
	name   string
	alerts string
	procs  []*proc
}

func (h *harness) instance(name string) *instance {
	in := &instance{h: h, name: name, alerts: filepath.Join(h.dir, "alerts-"+name+".jsonl")}
	h.instances = append(h.instances, in)
	return in
}

// kill is kill -9 of the live lifetime, if any.
func (in *instance) kill() {
	if p := in.alive(); p != nil {
		p.kill()
	}
}

func (in *instance) alive() *proc {
	if len(in.procs) == 0 {
		return nil
	}
	p := in.procs[len(in.procs)-1]
	select {
	case <-p.done:
		return nil
	default:
		return p
	}
}

// proc is one lifetime of a `declinemon run` process, its own process
// group, scraped for its counters every 100 ms so a kill loses little.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time
	// addr is the http listener's host:port, set before serving closes.
	addr    string
	serving chan struct{}
	done    chan struct{}
	exitErr error
	// last scraped values
	mu       sync.Mutex
	metrics  map[string]float64
	scrapes  int
	sigterm  time.Time
	killed   bool
	exitedIn time.Duration
	// alertsFrom is the size of the instance's alerts file when this
	// lifetime started: what it wrote follows.
	alertsFrom int64
}

// start launches a new lifetime of the instance.
func (in *instance) start() *proc {
	t := in.h.t
	t.Helper()
	n := len(in.procs) + 1
	p := &proc{name: fmt.Sprintf("%s#%d", in.name, n), log: filepath.Join(in.h.dir, fmt.Sprintf("run-%s-%d.log", in.name, n)),
		serving: make(chan struct{}), done: make(chan struct{}), metrics: map[string]float64{}}
	p.cmd = exec.Command(in.h.bin, "run", "--config", in.h.cfgPath, "--alerts-out", in.alerts, "--log-format", "json")
	p.cmd.Env = childEnv()
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = logf
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(in.alerts); err == nil {
		p.alertsFrom = fi.Size()
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	in.procs = append(in.procs, p)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			logf.Write(line)
			logf.Write([]byte{'\n'})
			if !sent && bytes.Contains(line, []byte(`"msg":"serving`)) {
				var l struct {
					Addr string `json:"addr"`
				}
				if json.Unmarshal(line, &l) == nil && l.Addr != "" {
					p.addr = l.Addr
					close(p.serving)
					sent = true
				}
			}
		}
		io.Copy(logf, stderr)
		p.exitErr = p.cmd.Wait()
		logf.Close()
		p.exitedIn = time.Since(p.started)
		close(p.done)
	}()
	go p.scrape()
	return p
}

// childEnv is the test's environment without DECLINEMON_* overrides: the
// config file alone says what the process does.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DECLINEMON_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) scrape() {
	select {
	case <-p.serving:
	case <-p.done:
		return
	}
	addr := p.addr
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			continue
		}
		m := stack.ParseMetrics(body)
		p.mu.Lock()
		p.metrics = m
		p.scrapes++
		p.mu.Unlock()
	}
}

// metric is the last scraped value of a series (0 before any scrape).
func (p *proc) metric(names ...string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		if v, ok := p.metrics[n]; ok {
			return v
		}
	}
	return 0
}

// optional lists the counters only some versions expose (checkpoints,
// the alert journal), as ", name value" for those scraped.
func (p *proc) optional() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, n := range []string{"declinemon_checkpoints_total", "declinemon_checkpoint_restores_total", "declinemon_alerts_already_delivered_total"} {
		if v, ok := p.metrics[n]; ok {
			fmt.Fprintf(&b, ", %.0f %s", v, strings.TrimSuffix(strings.TrimPrefix(n, "declinemon_"), "_total"))
		}
	}
	return b.String()
}

// Late events are exposed as declinemon_events_late_total; the other
// spelling is accepted in case it is renamed.
var lateNames = []string{"declinemon_events_late_total", "declinemon_late_events_total"}

// scraped counts the successful scrapes of /metrics.
func (p *proc) scraped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scrapes
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill is kill -9 of the process group.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	p.killed = true
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to 30 s for the exit (then kill -9).
func (p *proc) term() error {
	if !p.alive() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.exitErr)
	}
	p.sigterm = time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.exitErr != nil {
			return fmt.Errorf("%s exited after SIGTERM: %v", p.name, p.exitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not exit within 30s of SIGTERM (killed)", p.name)
	}
}

// problems returns the ERROR and WARN lines of the process's log but
// alerts, at most n.
func (p *proc) problems(n int) []string {
	data, _ := os.ReadFile(p.log)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"msg":"alert"`) { // alerts are logged at WARN
			continue
		}
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) || strings.Contains(line, "panic") {
			if len(line) > 400 {
				line = line[:400] + "..."
			}
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = append(out[:n/2], append([]string{fmt.Sprintf("... %d more ...", len(out)-n)}, out[len(out)-n/2:]...)...)
	}
	return out
}

// readyz returns /readyz's status and body ("" status 0 when unreachable).
func (p *proc) readyz() (int, string) {
	select {
	case <-p.serving:
	case <-time.After(5 * time.Second):
		return 0, ""
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + p.addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// offsets reads the group's committed offsets and the topic's end offsets
// from the broker, per partition (-1: nothing committed).
func (h *harness) offsets() (committed, end []int64, err error) {
	return h.offsetsOf(h.group)
}

// offsetsOf is offsets for another consumer group on the case's topic.
func (h *harness) offsetsOf(group string) (committed, end []int64, err error) {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	var reqs []kafka.OffsetRequest
	var parts []int
	for p := range h.partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
		parts = append(parts, p)
	}
	lo, err := h.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{h.topic: reqs}})
	if err != nil {
		return nil, nil, err
	}
	end = make([]int64, h.partitions)
	for _, po := range lo.Topics[h.topic] {
		if po.Error != nil {
			return nil, nil, po.Error
		}
		end[po.Partition] = po.LastOffset
	}
	of, err := h.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{h.topic: parts}})
	if err != nil {
		return nil, nil, err
	}
	if of.Error != nil {
		return nil, nil, of.Error
	}
	committed = make([]int64, h.partitions)
	for i := range committed {
		committed[i] = -1
	}
	for _, p := range of.Topics[h.topic] {
		if p.Error != nil {
			return nil, nil, p.Error
		}
		committed[p.Partition] = p.CommittedOffset
	}
	return committed, end, nil
}

func sum(offs []int64) int64 {
	var s int64
	for _, o := range offs {
		s += max(o, 0)
	}
	return s
}

func caughtUp(committed, end []int64) bool {
	if len(committed) == 0 || len(committed) != len(end) {
		return false
	}
	for i := range end {
		if committed[i] != end[i] && !(end[i] == 0 && committed[i] < 0) {
			return false
		}
	}
	return true
}

// waitCaughtUp waits until every partition's committed offset equals its
// end offset. It gives up when the committed offsets have not moved for
// stall (or after limit), reporting the last offsets seen.
func (h *harness) waitCaughtUp(stall, limit time.Duration) (ok bool, committed, end []int64) {
	start, lastMove, last := time.Now(), time.Now(), int64(-2)
	for time.Since(start) < limit && h.ctx.Err() == nil {
		c, e, err := h.offsets()
		if err == nil {
			committed, end = c, e
			if caughtUp(c, e) {
				return true, c, e
			}
			if s := sum(c); s != last {
				last, lastMove = s, time.Now()
			}
		}
		if time.Since(lastMove) > stall {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false, committed, end
}

// producer writes messages keyed by terminal, paced, retrying what the
// broker refuses; pause holds it between batches (a broker outage).
type producer struct {
	w, big  *kafka.Writer
	gate    sync.RWMutex
	sent    atomic.Int64
	retries atomic.Int64
	done    chan struct{}
	err     error
	elapsed time.Duration
}

// produce starts writing msgs at rate messages a second (0: as fast as
// possible). extra messages are written alone, before msgs[i].
func (h *harness) produce(msgs []message, rate float64, extra map[int]kafka.Message) *producer {
	p := &producer{done: make(chan struct{}),
		w: &kafka.Writer{Addr: kafka.TCP(h.b.Addr), Topic: h.topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchSize: 1000, BatchBytes: 512 << 10, BatchTimeout: 2 * time.Millisecond, MaxAttempts: 3, WriteTimeout: 5 * time.Second},
		big: &kafka.Writer{Addr: kafka.TCP(h.b.Addr), Topic: h.topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchSize: 1, BatchBytes: 4 << 20, BatchTimeout: time.Millisecond, MaxAttempts: 3, WriteTimeout: 10 * time.Second},
	}
	batch := 2000
	if rate > 0 {
		batch = max(100, int(rate/50))
	}
	go func() {
		defer close(p.done)
		defer p.w.Close()
		defer p.big.Close()
		start := time.Now()
		for i := 0; i < len(msgs); {
			if m, ok := extra[i]; ok {
				if err := p.write(h.ctx, p.big, []kafka.Message{m}); err != nil {
					p.err = fmt.Errorf("oversized message: %w", err)
					return
				}
				delete(extra, i)
			}
			j := min(i+batch, len(msgs))
			for k := i + 1; k < j; k++ {
				if _, ok := extra[k]; ok {
					j = k
					break
				}
			}
			out := make([]kafka.Message, 0, j-i)
			for _, m := range msgs[i:j] {
				out = append(out, kafka.Message{Key: m.key, Value: m.value})
			}
			if err := p.write(h.ctx, p.w, out); err != nil {
				return
			}
			p.sent.Add(int64(j - i))
			i = j
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
			}
		}
		p.elapsed = time.Since(start)
	}()
	return p
}

// write writes msgs, retrying the ones refused until the case ends.
func (p *producer) write(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) error {
	p.gate.RLock()
	defer p.gate.RUnlock()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			p.err = ctx.Err()
			return p.err
		}
		var we kafka.WriteErrors
		if errors.As(err, &we) && len(we) == len(msgs) {
			var again []kafka.Message
			for i, e := range we {
				if e != nil {
					again = append(again, msgs[i])
				}
			}
			msgs = again
			if len(msgs) == 0 {
				return nil
			}
		}
		if errors.Is(err, kafka.MessageSizeTooLarge) {
			p.err = err
			return err
		}
		p.retries.Add(1)
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *producer) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pause holds the producer after its current batch; resume lets it go on.
func (p *producer) pause()  { p.gate.Lock() }
func (p *producer) resume() { p.gate.Unlock() }

func (p *producer) wait(t testing.TB) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatalf("producing: %v", p.err)
	}
}
