package ingest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/declinemon/declinemon/internal/ratelog"
)

func TestStallTracker(t *testing.T) {
	var s stallTracker
	now := time.Now()
	s.failed("i/o timeout")
	if err := s.err(now); err != nil {
		t.Fatalf("one harmless error made the consumer stalled: %v", err)
	}
	s.failed("dial tcp 127.0.0.1:9092: connection refused")
	s.failed("dial tcp 127.0.0.1:9092: connection refused")
	if err := s.err(now); err == nil {
		t.Fatal("three errors and no message: not reported as stalled")
	}
	if err := s.err(now.Add(stallRecent + time.Second)); err != nil {
		t.Errorf("errors that stopped long ago still stall a member that fetches nothing: %v", err)
	}
	s.fetched()
	if err := s.err(now); err != nil {
		t.Errorf("a message fetched did not clear the stall: %v", err)
	}
}

// TestReaderErrors: kafka-go's complaint about a fetch deadline on a quiet
// partition is counted and kept at debug level, never a stall; other
// errors are warnings that count towards a stall, and the transient ones a
// changing group meets say what they mean.
func TestReaderErrors(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	s := &KafkaSource{log: log, errLog: ratelog.New(log, time.Nanosecond)}
	for range 5 {
		s.readerError("the kafka reader got an unknown error reading partition %d of %s at offset %d: %s", 3, "pos.events", 1200,
			"read tcp 127.0.0.1:50012->127.0.0.1:9092: i/o timeout")
	}
	if n := s.IdleReadTimeouts(); n != 5 {
		t.Errorf("idle read timeouts counted %d, want 5", n)
	}
	if got := logs.FilterLevelExact(zap.WarnLevel).Len(); got != 0 {
		t.Errorf("%d warnings for harmless fetch deadlines", got)
	}
	if err := s.stall.err(time.Now()); err != nil {
		t.Errorf("harmless fetch deadlines made the consumer stalled: %v", err)
	}

	s.readerError("Failed to sync group %s: %v", "declinemon", fmt.Errorf("syncing: %w", kafka.RebalanceInProgress))
	warn := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warn) != 1 || !strings.Contains(warn[0].ContextMap()["meaning"].(string), "rebalancing") {
		t.Errorf("rebalance warning without its meaning: %+v", warn)
	}
	s.readerError("Unable to establish connection to consumer group coordinator for group %s: %v", "declinemon",
		errors.New("dial tcp 127.0.0.1:9092: connection refused"))
	warn = logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warn) != 2 || warn[1].ContextMap()["meaning"] != nil {
		t.Errorf("a real error got a reassuring meaning: %+v", warn)
	}
	s.readerError("Failed to join group %s: %v", "declinemon", kafka.GroupCoordinatorNotAvailable)
	if err := s.stall.err(time.Now()); err == nil {
		t.Error("three reader errors and no message: not reported as stalled")
	}
}
