package ingest

import (
	"testing"
	"time"
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
