// Package kafkatest starts a real Apache Kafka broker (KRaft, single node,
// broker and controller in one JVM) for integration tests: jars from Maven
// Central (deploy/kafka/pom.xml, cached), free loopback ports, a temporary
// log directory, and a clean stop.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Broker is a running single-node Kafka.
type Broker struct {
	// Addr is host:port of the PLAINTEXT listener.
	Addr string
	dir  string
	cmd  *exec.Cmd
	done chan error
	// argv starts the broker process again (Resume) on the same ports and
	// log directory.
	argv []string
	// down is set between Halt and Resume: no process is running.
	down bool
}

// LibsDir is where the broker's jars are cached
// ($DECLINEMON_KAFKA_LIBS, else ~/.cache/declinemon/kafka-3.9.1/libs).
func LibsDir() string {
	if d := os.Getenv("DECLINEMON_KAFKA_LIBS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "declinemon", "kafka-3.9.1", "libs")
}

// Required reports whether tests must fail, not skip, when no broker can be
// started (set DECLINEMON_KAFKA_REQUIRED=1, as make test does).
func Required() bool { return os.Getenv("DECLINEMON_KAFKA_REQUIRED") == "1" }

// EnsureJars downloads the broker jars with Maven when they are not cached.
func EnsureJars(ctx context.Context) (string, error) {
	libs := LibsDir()
	if m, _ := filepath.Glob(filepath.Join(libs, "kafka_2.13-*.jar")); len(m) > 0 {
		return libs, nil
	}
	_, file, _, _ := runtime.Caller(0)
	pom := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "kafka", "pom.xml")
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-f", pom, "dependency:copy-dependencies", "-DoutputDirectory="+libs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fetching kafka jars with maven: %w\n%s", err, out)
	}
	return libs, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Options vary the broker's configuration.
type Options struct {
	// NoAutoCreateTopics sets auto.create.topics.enable=false, as many
	// production clusters do: a topic exists only once created.
	NoAutoCreateTopics bool
}

// Start formats a fresh log directory and starts the broker, returning once
// it answers metadata requests.
func Start(ctx context.Context) (*Broker, error) { return StartWith(ctx, Options{}) }

// StartWith is Start with options.
func StartWith(ctx context.Context, o Options) (*Broker, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("java not found: %w", err)
	}
	libs, err := EnsureJars(ctx)
	if err != nil {
		return nil, err
	}
	bport, err := freePort()
	if err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "declinemon-kafka-")
	if err != nil {
		return nil, fmt.Errorf("creating broker dir: %w", err)
	}
	props := strings.Join([]string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@127.0.0.1:" + strconv.Itoa(cport),
		"listeners=PLAINTEXT://127.0.0.1:" + strconv.Itoa(bport) + ",CONTROLLER://127.0.0.1:" + strconv.Itoa(cport),
		"advertised.listeners=PLAINTEXT://127.0.0.1:" + strconv.Itoa(bport),
		"controller.listener.names=CONTROLLER",
		"inter.broker.listener.name=PLAINTEXT",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"log.dirs=" + filepath.Join(dir, "data"),
		"num.partitions=4",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=4",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		"auto.create.topics.enable=" + strconv.FormatBool(!o.NoAutoCreateTopics),
		"",
	}, "\n")
	propsFile := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(propsFile, []byte(props), 0o644); err != nil {
		return nil, fmt.Errorf("writing server.properties: %w", err)
	}
	log4j := "log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\nlog4j.appender.file.File=" +
		filepath.Join(dir, "server.log") + "\nlog4j.appender.file.layout=org.apache.log4j.PatternLayout\nlog4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
	logCfg := filepath.Join(dir, "log4j.properties")
	if err := os.WriteFile(logCfg, []byte(log4j), 0o644); err != nil {
		return nil, fmt.Errorf("writing log4j.properties: %w", err)
	}
	// A cluster id starting with '-' would read as an option to the
	// storage tool.
	id := make([]byte, 16)
	for rand.Read(id); base64.RawURLEncoding.EncodeToString(id)[0] == '-'; rand.Read(id) {
	}
	cp := filepath.Join(libs, "*")
	jvm := []string{"-Xmx512m", "-Xms128m", "-XX:+UseG1GC", "-Dlog4j.configuration=file:" + logCfg, "-cp", cp}
	format := exec.CommandContext(ctx, java, append(jvm, "kafka.tools.StorageTool", "format", "-t",
		base64.RawURLEncoding.EncodeToString(id), "-c", propsFile)...)
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("formatting kafka storage: %w\n%s", err, out)
	}
	b := &Broker{Addr: "127.0.0.1:" + strconv.Itoa(bport), dir: dir, argv: append([]string{java}, append(jvm, "kafka.Kafka", propsFile)...)}
	if err := b.launch(); err != nil {
		return nil, err
	}
	if err := b.waitReady(ctx, 90*time.Second); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// launch starts the broker process (its own process group), appending its
// output to stdout.log.
func (b *Broker) launch() error {
	out, err := os.OpenFile(filepath.Join(b.dir, "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("creating broker log: %w", err)
	}
	cmd := exec.Command(b.argv[0], b.argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting kafka: %w", err)
	}
	done := make(chan error, 1)
	b.cmd, b.done, b.down = cmd, done, false
	go func() { done <- cmd.Wait(); out.Close() }()
	return nil
}

// Halt stops the broker process (SIGTERM: a controlled shutdown, SIGKILL
// after 15 s) and keeps its log directory, so Resume starts the same
// broker again with its topics, data and committed offsets.
func (b *Broker) Halt() {
	if b.down || b.cmd == nil || b.cmd.Process == nil {
		return
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
	b.down = true
}

// Resume starts a halted broker again on the same ports and log
// directory and returns once it answers metadata requests.
func (b *Broker) Resume(ctx context.Context) error {
	if !b.down {
		return errors.New("kafkatest: Resume of a broker that is running")
	}
	if err := b.launch(); err != nil {
		return err
	}
	return b.waitReady(ctx, 90*time.Second)
}

// Restart halts the broker and starts it again (Halt, then Resume).
func (b *Broker) Restart(ctx context.Context) error {
	b.Halt()
	return b.Resume(ctx)
}

func (b *Broker) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-b.done:
			return fmt.Errorf("kafka exited during start-up: %v; log:\n%s", err, b.Log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		conn, err := kafka.DialContext(ctx, "tcp", b.Addr)
		if err != nil {
			continue
		}
		// A broker still starting may accept and not answer yet: ask again
		// rather than wait on this connection.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Brokers()
		if err == nil {
			_, err = conn.Controller()
		}
		conn.Close()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("kafka did not answer within %s; log:\n%s", limit, b.Log())
}

// Log returns the tail of the broker's output, for failure messages.
func (b *Broker) Log() string {
	var s string
	for _, f := range []string{"stdout.log", "server.log"} {
		data, _ := os.ReadFile(filepath.Join(b.dir, f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		s += string(data)
	}
	return s
}

// CreateTopic creates a topic with the given partitions (replication 1).
func (b *Broker) CreateTopic(ctx context.Context, topic string, partitions int) error {
	conn, err := kafka.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return fmt.Errorf("dialing kafka: %w", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("finding controller: %w", err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dialing controller: %w", err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	// Wait until every partition has a leader.
	for i := 0; i < 100; i++ {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) == partitions {
			ok := true
			for _, p := range parts {
				ok = ok && p.Leader.Port != 0
			}
			if ok {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("topic %s has no leaders", topic)
}

// Stop terminates the broker and removes its data.
func (b *Broker) Stop() {
	b.Halt()
	os.RemoveAll(b.dir)
}

// ForTest starts a broker for one test: it fails the test, or skips it
// when brokers are not required (see Required), if none can start, and
// stops the broker when the test ends.
func ForTest(tb testing.TB, o Options) *Broker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := StartWith(ctx, o)
	if err != nil {
		if Required() {
			tb.Fatalf("starting kafka: %v", err)
		}
		tb.Skipf("no kafka broker (set DECLINEMON_KAFKA_REQUIRED=1 to fail instead): %v", err)
	}
	tb.Cleanup(b.Stop)
	return b
}
