// Package stack runs the docker-compose topology (docker-compose.yml) as
// local processes on 127.0.0.1, for machines without Docker: a Kafka
// broker (KRaft, kafkatest), a ClickHouse server with compose's
// declinemon/declinemon account (chserver), Alertmanager and Prometheus
// (the Debian binaries) with the shipped configuration, and `declinemon
// run` with deploy/compose/declinemon.yaml, started before its topic
// exists as compose starts it. loadgen then plays a day into the topic.
//
// Every shipped file is used as is, but for the addresses that name
// compose services (kafka:9092, clickhouse:9000, alertmanager:9093,
// declinemon:9464), which become loopback addresses, the Alertmanager
// webhook receivers' address (a local recorder), and, for Prometheus,
// shorter scrape and evaluation intervals (Options).
//
// The system test (stack_test.go, DECLINEMON_SYSTEM=1) and `make stack`
// (cmd/stack) use it. The binary that calls Start must call
// chserver.Child first (TestMain, main): the ClickHouse server is that
// binary re-executed.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/kafkatest"
)

// Compose's names, as the shipped files spell them.
const (
	Topic = "pos.events"
	// GroupID is the group of declinemon's one consumer, which feeds
	// detection and storage (commits stop at what both made durable).
	GroupID  = "declinemon"
	User     = "declinemon"
	Password = "declinemon"
	Database = "declinemon"
)

// Ports fixes listener ports; 0 picks a free one.
type Ports struct {
	Declinemon, Prometheus, Alertmanager, ClickHouseHTTP, ClickHouseTCP, Webhooks int
}

// ComposePorts are the host ports docker-compose.yml publishes (and
// ClickHouse's native port, which compose does not publish).
var ComposePorts = Ports{Declinemon: 9464, Prometheus: 9090, Alertmanager: 9093, ClickHouseHTTP: 8123, ClickHouseTCP: 9000}

// Options configure Start.
type Options struct {
	// Root is the module root (deploy/ files, go build); default: found
	// from the working directory upwards.
	Root string
	// Dir holds configurations, logs and data. Required.
	Dir string
	// BinDir holds prebuilt declinemon and loadgen binaries; empty: they
	// are built from Root into Dir/bin.
	BinDir string
	Ports  Ports
	// ScrapeInterval and EvaluationInterval replace prometheus.yml's
	// global 15s and 30s; 0 keeps the shipped values.
	ScrapeInterval, EvaluationInterval time.Duration
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

// Stack is the running topology.
type Stack struct {
	opts Options
	// Binaries.
	Declinemon, Loadgen string

	Kafka      *kafkatest.Broker
	ClickHouse *chserver.Server
	Hooks      *Webhooks

	AlertmanagerURL string // http://127.0.0.1:port
	PrometheusURL   string
	DeclinemonAddr  string // host:port of /metrics /healthz /readyz /alerts

	// Configurations as written.
	DeclinemonConfig, PrometheusConfig, AlertmanagerConfig string

	Run          *Proc // declinemon run
	RunStarted   time.Time
	Prometheus   *Proc
	Alertmanager *Proc

	// Timings of the start-up steps, in order.
	Timings []Timing

	mu      sync.Mutex
	extra   []*Proc // loadgen runs
	stopped bool
}

// Timing is how long one step took.
type Timing struct {
	Step string
	Took time.Duration
}

func (s *Stack) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (s *Stack) timed(step string, start time.Time) {
	d := time.Since(start)
	s.Timings = append(s.Timings, Timing{step, d})
	s.logf("%s in %s", step, d.Round(time.Millisecond))
}

// FindRoot walks up from the working directory to this module's go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/declinemon/declinemon\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("stack: not inside the declinemon module (no go.mod found upwards)")
		}
		dir = parent
	}
}

// Start brings the topology up in compose's dependency order: Kafka and
// ClickHouse (healthy), Alertmanager and Prometheus, then declinemon,
// returned once its /healthz answers (compose's healthcheck), before any
// topic exists. On error everything started is stopped.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	if o.Dir == "" {
		return nil, errors.New("stack: Options.Dir is required")
	}
	if o.Root == "" {
		if o.Root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	for _, sub := range []string{"bin", "declinemon", "prometheus", "alertmanager", "clickhouse", "loadgen"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	s = &Stack{opts: o}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	if err := s.binaries(ctx); err != nil {
		return s, err
	}
	amBin, err := lookPath("prometheus-alertmanager", "alertmanager")
	if err != nil {
		return s, err
	}
	promBin, err := lookPath("prometheus")
	if err != nil {
		return s, err
	}
	// Pick every port first: configurations name each other.
	p := o.Ports
	for _, port := range []*int{&p.Declinemon, &p.Prometheus, &p.Alertmanager, &p.Webhooks, &p.ClickHouseHTTP, &p.ClickHouseTCP} {
		if *port == 0 {
			if *port, err = FreePort(); err != nil {
				return s, err
			}
		}
	}
	s.DeclinemonAddr = loopback(p.Declinemon)
	s.AlertmanagerURL = "http://" + loopback(p.Alertmanager)
	s.PrometheusURL = "http://" + loopback(p.Prometheus)

	// kafka and clickhouse: no dependencies, started together.
	t0 := time.Now()
	var wg sync.WaitGroup
	var kerr, cerr error
	wg.Go(func() {
		s.Kafka, kerr = kafkatest.StartWith(ctx, kafkatest.Options{})
	})
	wg.Go(func() {
		logf, err := os.Create(filepath.Join(o.Dir, "clickhouse", "server.log"))
		if err != nil {
			cerr = err
			return
		}
		s.ClickHouse, cerr = chserver.Start(ctx, chserver.Options{Dir: filepath.Join(o.Dir, "clickhouse"),
			TCPPort: p.ClickHouseTCP, HTTPPort: p.ClickHouseHTTP, Users: []chserver.User{{Name: User, Password: Password}}, Log: logf})
	})
	wg.Wait()
	if kerr != nil || cerr != nil {
		return s, errors.Join(kerr, cerr)
	}
	if err := s.waitClickHouse(ctx); err != nil {
		return s, err
	}
	s.timed(fmt.Sprintf("kafka %s and clickhouse %s healthy", s.Kafka.Addr, s.ClickHouse.HTTPAddr), t0)

	// alertmanager, with the webhook receivers recorded here.
	t0 = time.Now()
	if s.Hooks, err = StartWebhooks(loopback(p.Webhooks)); err != nil {
		return s, err
	}
	shipped, err := os.ReadFile(filepath.Join(o.Root, "deploy", "alertmanager", "alertmanager.yml"))
	if err != nil {
		return s, err
	}
	amCfg, err := AlertmanagerYAML(shipped, s.Hooks.URL)
	if err != nil {
		return s, err
	}
	s.AlertmanagerConfig = filepath.Join(o.Dir, "alertmanager", "alertmanager.yml")
	if err := os.WriteFile(s.AlertmanagerConfig, amCfg, 0o644); err != nil {
		return s, err
	}
	s.Alertmanager, err = StartProc("alertmanager", filepath.Join(o.Dir, "alertmanager", "alertmanager.log"), nil,
		amBin, "--config.file="+s.AlertmanagerConfig, "--storage.path="+filepath.Join(o.Dir, "alertmanager", "data"),
		"--web.listen-address="+loopback(p.Alertmanager), "--cluster.listen-address=", "--log.level=info")
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, s.Alertmanager, s.AlertmanagerURL+"/-/ready", 60*time.Second); err != nil {
		return s, err
	}
	s.timed("alertmanager ready at "+s.AlertmanagerURL, t0)

	// prometheus: declinemon is its only target, down until it starts.
	t0 = time.Now()
	shipped, err = os.ReadFile(filepath.Join(o.Root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		return s, err
	}
	promCfg, err := PrometheusYAML(shipped, loopback(p.Alertmanager), s.DeclinemonAddr, o.ScrapeInterval, o.EvaluationInterval)
	if err != nil {
		return s, err
	}
	rules, err := os.ReadFile(filepath.Join(o.Root, "deploy", "prometheus", "rules.yml"))
	if err != nil {
		return s, err
	}
	s.PrometheusConfig = filepath.Join(o.Dir, "prometheus", "prometheus.yml")
	if err := os.WriteFile(s.PrometheusConfig, promCfg, 0o644); err != nil {
		return s, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "prometheus", "rules.yml"), rules, 0o644); err != nil {
		return s, err
	}
	s.Prometheus, err = StartProc("prometheus", filepath.Join(o.Dir, "prometheus", "prometheus.log"), nil,
		promBin, "--config.file="+s.PrometheusConfig, "--storage.tsdb.path="+filepath.Join(o.Dir, "prometheus", "data"),
		"--web.listen-address="+loopback(p.Prometheus))
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, s.Prometheus, s.PrometheusURL+"/-/ready", 60*time.Second); err != nil {
		return s, err
	}
	s.timed("prometheus ready at "+s.PrometheusURL, t0)

	// declinemon: depends on kafka and clickhouse healthy; no topic yet.
	t0 = time.Now()
	shipped, err = os.ReadFile(filepath.Join(o.Root, "deploy", "compose", "declinemon.yaml"))
	if err != nil {
		return s, err
	}
	dmCfg, err := DeclinemonYAML(shipped, s.Kafka.Addr, s.ClickHouse.TCPAddr, s.AlertmanagerURL, s.DeclinemonAddr)
	if err != nil {
		return s, err
	}
	s.DeclinemonConfig = filepath.Join(o.Dir, "declinemon", "declinemon.yaml")
	if err := os.WriteFile(s.DeclinemonConfig, dmCfg, 0o644); err != nil {
		return s, err
	}
	s.RunStarted = time.Now()
	s.Run, err = StartProc("declinemon", filepath.Join(o.Dir, "declinemon", "run.log"), childEnv(),
		s.Declinemon, "run", "--config", s.DeclinemonConfig)
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, s.Run, "http://"+s.DeclinemonAddr+"/healthz", 2*time.Minute); err != nil {
		return s, err
	}
	s.timed("declinemon healthy at "+s.DeclinemonAddr, t0)
	return s, nil
}

// binaries builds declinemon and loadgen (as internal/chaos does) unless
// Options.BinDir has them.
func (s *Stack) binaries(ctx context.Context) error {
	dir := s.opts.BinDir
	if dir == "" {
		t0 := time.Now()
		dir = filepath.Join(s.opts.Dir, "bin")
		build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/declinemon", "./cmd/loadgen")
		build.Dir = s.opts.Root
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("stack: building declinemon and loadgen: %v\n%s", err, out)
		}
		s.timed("built declinemon and loadgen", t0)
	}
	s.Declinemon, s.Loadgen = filepath.Join(dir, "declinemon"), filepath.Join(dir, "loadgen")
	for _, b := range []string{s.Declinemon, s.Loadgen} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
	}
	return nil
}

// waitClickHouse waits until compose's account answers over HTTP (the
// compose healthcheck pings; this also proves the credentials).
func (s *Stack) waitClickHouse(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Query(ctx, "SELECT 1")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack: clickhouse does not answer as %s: %w", User, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop ends every process, newest first (loadgen, declinemon with SIGTERM
// so it flushes and commits, Prometheus, Alertmanager, ClickHouse, Kafka).
// It is safe to call more than once.
func (s *Stack) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	extra := s.extra
	s.mu.Unlock()
	for _, p := range extra {
		p.Stop(10 * time.Second)
	}
	for _, p := range []*Proc{s.Run, s.Prometheus, s.Alertmanager} {
		if p != nil {
			if err := p.Stop(30 * time.Second); err != nil {
				s.logf("%v", err)
			}
		}
	}
	if s.Hooks != nil {
		s.Hooks.Close()
	}
	if s.ClickHouse != nil {
		s.ClickHouse.Stop(20 * time.Second)
	}
	if s.Kafka != nil {
		s.Kafka.Stop()
	}
}

// Proc is a child process in its own process group, its output in a file.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	// Exit signals: Stop sets it so an expected SIGTERM exit is no error.
	stopping bool
}

// StartProc starts argv with output to logPath; env nil inherits.
func StartProc(name, logPath string, env []string, argv ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	// Its own group (Stop signals the group); killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("stack: starting %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits for the exit.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w; log tail:\n%s", p.Name, p.err, p.Tail(3000))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop sends SIGTERM to the process group and waits up to timeout, then
// SIGKILL. An error says the process had to be killed or failed.
func (p *Proc) Stop(timeout time.Duration) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	p.stopping = true
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s exited after SIGTERM: %v", p.Name, p.err)
		}
		return nil
	case <-time.After(timeout):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM (killed)", p.Name, timeout)
	}
}

// Output is the process's output so far.
func (p *Proc) Output() []byte {
	data, _ := os.ReadFile(p.LogPath)
	return data
}

// Tail is the last n bytes of the output.
func (p *Proc) Tail(n int) string {
	data := p.Output()
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// waitHTTP waits until url answers 200, failing early when p exits.
func waitHTTP(ctx context.Context, p *Proc, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("stack: %s exited while starting (%v); log tail:\n%s", p.Name, err, p.Tail(4000))
		}
		if resp, err := c.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack: %s not ready within %s (%s); log tail:\n%s", url, limit, last, p.Tail(4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// childEnv is this process's environment without DECLINEMON_* variables
// (declinemon reads DECLINEMON_KAFKA_* and others as overrides, and the
// ClickHouse child marker must not leak): the config file alone says what
// the process does.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DECLINEMON_") {
			env = append(env, kv)
		}
	}
	return env
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("stack: none of %v found (apt-get install prometheus prometheus-alertmanager; make tools)", names)
}

// FreePort returns a loopback port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("stack: picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether port can be listened on at 127.0.0.1.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", loopback(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
