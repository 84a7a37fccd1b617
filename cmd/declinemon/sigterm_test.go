package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/kafkatest"
)

// TestSIGTERMCommitsWhatWasProcessed runs the real binary against a real
// broker, sends SIGTERM mid-stream, and checks it exits 0 promptly with the
// group's committed offsets covering exactly what it processed.
func TestSIGTERMCommitsWhatWasProcessed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := kafkatest.ForTest(t, kafkatest.Options{})
	const topic, group = "pos.events", "declinemon-sigterm"
	if err := b.CreateTopic(ctx, topic, 3); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "declinemon")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}

	// A producer keeps writing while the service runs.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	pctx, stopProducing := context.WithCancel(ctx)
	produced := make(chan int, 1)
	go func() {
		n := 0
		for pctx.Err() == nil {
			var batch []kafka.Message
			for i := 0; i < 200; i++ {
				v := fmt.Sprintf(`{"event_id":"s-%d","ts":"%s","terminal_id":"T%d","merchant_id":"M1","response_code":"00"}`,
					n, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(n)*time.Millisecond).Format(time.RFC3339Nano), n%20)
				batch = append(batch, kafka.Message{Key: []byte(fmt.Sprint(n % 20)), Value: []byte(v)})
				n++
			}
			if w.WriteMessages(pctx, batch...) != nil {
				n -= len(batch)
				time.Sleep(100 * time.Millisecond)
			}
		}
		produced <- n
	}()

	cmd := exec.Command(bin, "run", "--log-format", "json")
	cmd.Env = append(os.Environ(), "DECLINEMON_KAFKA_BROKERS="+b.Addr, "DECLINEMON_KAFKA_TOPICS="+topic,
		"DECLINEMON_KAFKA_GROUP_ID="+group, "DECLINEMON_HTTP_LISTEN=127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100000)
	httpAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"msg":"serving`) {
				var l map[string]any
				json.Unmarshal([]byte(line), &l)
				httpAddr <- fmt.Sprint(l["addr"])
			}
			lines <- line
		}
		close(lines)
	}()
	client := &kafka.Client{Addr: kafka.TCP(b.Addr)}
	committed := func() int64 {
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
		if err != nil {
			return 0
		}
		var sum int64
		for _, p := range resp.Topics[topic] {
			if p.CommittedOffset > 0 {
				sum += p.CommittedOffset
			}
		}
		return sum
	}
	deadline := time.Now().Add(90 * time.Second)
	for committed() < 2000 {
		if time.Now().After(deadline) {
			t.Fatal("service never committed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The operational endpoints answer while it runs.
	base := "http://" + <-httpAddr
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "declinemon_committed_messages_total", "/alerts": "["} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var stopped map[string]any
	for line := range lines {
		if strings.Contains(line, `"msg":"stopped"`) {
			json.Unmarshal([]byte(line), &stopped)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("did not exit within 30s of SIGTERM")
	}
	took := time.Since(start)
	stopProducing()
	<-produced
	if stopped == nil {
		t.Fatal("no 'stopped' log line")
	}
	msgs, comm := int64(stopped["messages"].(float64)), int64(stopped["committed"].(float64))
	if msgs != comm || msgs == 0 {
		t.Fatalf("processed %d but committed %d", msgs, comm)
	}
	if got := committed(); got != comm {
		t.Fatalf("group offsets sum to %d, process says it committed %d", got, comm)
	}
	t.Logf("exited 0 in %s after SIGTERM; processed and committed %d messages", took.Round(time.Millisecond), comm)
}
