package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/alerting/scenario"
)

// TestDemo runs `declinemon demo` end to end for a bounded time: kfake
// in-process broker, producer and consumer group through kafka-go, the
// real runner; every incident of the demo scenario must be raised.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("demo did not finish in time")
	}
	score := scenario.Evaluate(res.Truth, res.Alerts)
	if !score.Passed() {
		var b strings.Builder
		scenario.WriteTable(&b, []scenario.Score{score})
		t.Fatalf("demo alerts do not match its incidents:\n%s\n%s", b.String(), out.String())
	}
	if res.Stats.Committed.Load() != uint64(res.Truth.Events) {
		t.Errorf("committed %d of %d", res.Stats.Committed.Load(), res.Truth.Events)
	}
	if !strings.Contains(out.String(), "ALERT    network_outage") || !strings.Contains(out.String(), "incidents to expect") {
		t.Errorf("console output:\n%.2000s", out.String())
	}
}
