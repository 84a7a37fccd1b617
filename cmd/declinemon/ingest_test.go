package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/internal/kafkatest"
)

// TestRunIngestInstanceSharesItsGroup runs `declinemon run` as an ingest
// instance (disable_detection, ClickHouse on) against a real broker and a
// real ClickHouse server: its clickhouse.consumers members split the
// topic's partitions within kafka.group_id, every event is stored once in
// the raw table and the rollups, poison messages are dead-lettered once,
// /metrics counts each message once across the members, and on stop the
// group's committed offsets reach the end of every partition.
func TestRunIngestInstanceSharesItsGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := kafkatest.ForTest(t, kafkatest.Options{})
	s := chtest.Start(t)
	const topic, group, partitions = "pos.events", "declinemon-ingest", 4
	if err := b.CreateTopic(ctx, topic, partitions); err != nil {
		t.Fatal(err)
	}
	const events, poison = 20_000, 3
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	at := time.Now().UTC().Add(-time.Hour)
	for i := range events {
		code := "00"
		if i%10 == 0 {
			code = "05"
		}
		term := fmt.Sprintf("T%03d", i%97)
		v := fmt.Sprintf(`{"event_id":"ing-%d","ts":%q,"terminal_id":%q,"merchant_id":"M%d","response_code":%q,"amount_minor":1250,"currency":"CNY"}`,
			i, at.Add(time.Duration(i)*10*time.Millisecond).Format(time.RFC3339Nano), term, i%13, code)
		msgs = append(msgs, kafka.Message{Key: []byte(term), Value: []byte(v)})
	}
	for i := range poison {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("P%d", i)), Value: []byte(`{"event_id":`)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cfgPath := filepath.Join(t.TempDir(), "ingest.yaml")
	cfg := fmt.Sprintf(`disable_detection: true
kafka:
  brokers: [%q]
  topics: [%s]
  group_id: %s
  dlq_topic: %s.dlq
  flush_interval: 200ms
  max_wait: 100ms
http:
  listen: %q
clickhouse:
  addr: [%q]
  consumers: 2
  batch_size: 3000
`, b.Addr, topic, group, topic, httpAddr, s.TCPAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	rctx, stop := context.WithCancel(ctx)
	exited := make(chan int, 1)
	go func() { exited <- run(rctx, []string{"run", "--config", cfgPath}, io.Discard, &logs) }()
	defer func() {
		stop()
		<-exited
	}()

	client := &kafka.Client{Addr: kafka.TCP(b.Addr)}
	committed := func() (total int64) {
		offs, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3}}})
		if err != nil {
			return -1
		}
		for _, p := range offs.Topics[topic] {
			total += max(p.CommittedOffset, 0)
		}
		return total
	}
	deadline := time.Now().Add(2 * time.Minute)
	split := 0
	for {
		// Committed: every insert was acknowledged (an insert's rows are
		// visible in the events table a moment before its rollups).
		if time.Now().After(deadline) {
			t.Fatalf("stored %s of %d events, committed %d of %d messages, %d members held partitions; log:\n%s",
				countOf(s, "SELECT count() FROM declinemon.events"), events, committed(), events+poison, split, logs.String())
		}
		if split == 2 && committed() == events+poison {
			break
		}
		if resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}}); err == nil && len(resp.Groups) == 1 {
			n := 0
			for _, m := range resp.Groups[0].Members {
				for _, tp := range m.MemberAssignments.Topics {
					if len(tp.Partitions) > 0 {
						n++
						break
					}
				}
			}
			split = max(split, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for q, want := range map[string]string{
		"SELECT count() FROM declinemon.events":                       strconv.Itoa(events),
		"SELECT uniqExact(event_id) FROM declinemon.events":           strconv.Itoa(events),
		"SELECT countIf(outcome = 'declined') FROM declinemon.events": strconv.Itoa(events / 10),
		"SELECT sum(attempts) FROM declinemon.terminal_minutes":       strconv.Itoa(events),
	} {
		if got := chtest.Value(t, s, q); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for name, want := range map[string]int{"declinemon_messages_total": events + poison, "declinemon_events_accepted_total": events,
		"declinemon_dead_letters_total": poison, "declinemon_redelivered_skipped_total": 0} {
		if got := metricValue(body, name); got != want {
			t.Errorf("%s = %d, want %d (each message counted once across the members)", name, got, want)
		}
	}

	stop()
	if code := <-exited; code != 0 {
		t.Fatalf("run exited %d; log:\n%s", code, logs.String())
	}
	exited <- 0 // for the deferred stop
	if total := committed(); total != events+poison {
		t.Errorf("committed offsets cover %d messages after the stop, want %d", total, events+poison)
	}
}

// countOf is a query's value, "" while it fails (the schema is not there
// yet).
func countOf(s *chserver.Server, q string) string {
	rows, err := chtest.TryQuery(s, q)
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return ""
	}
	return rows[0][0]
}

// metricValue reads an unlabelled sample from a Prometheus text page (-1
// when absent).
func metricValue(page []byte, name string) int {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(page)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(v)
}

// syncBuffer is a log destination safe to read while run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
