package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// TestAlertTableQueuesThroughAnOutage: Send never blocks or fails while
// the table is unreachable; once it answers, every record is written in
// order, and Flush waits for that.
func TestAlertTableQueuesThroughAnOutage(t *testing.T) {
	var mu sync.Mutex
	down := true
	var written []string
	send := func(_ context.Context, as []alerting.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("connection refused")
		}
		for _, a := range as {
			written = append(written, a.ID)
		}
		return nil
	}
	tbl := newAlertTable(send, 3, zap.NewNop())
	defer tbl.Close(context.Background())
	for _, id := range []string{"a", "b", "c", "d"} {
		start := time.Now()
		if err := tbl.Send(context.Background(), []alerting.Alert{{ID: id}}); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Fatal("Send waited for the table")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := tbl.Drain(ctx); err == nil {
		t.Fatal("Flush returned while the table was down")
	}
	cancel()
	mu.Lock()
	down = false
	mu.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tbl.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The queue holds 3: the oldest record was dropped, and counted.
	if len(written) != 3 || written[0] != "b" || written[2] != "d" || tbl.Dropped.Load() != 1 {
		t.Fatalf("written %v, dropped %d", written, tbl.Dropped.Load())
	}
	if tbl.Retries.Load() == 0 {
		t.Fatal("no retry counted")
	}
}
