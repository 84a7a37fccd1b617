package pipeline

import (
	"testing"
	"time"

	"github.com/declinemon/declinemon/event"
)

func TestMergerReleasesInEventTimeOrder(t *testing.T) {
	r := newMergeRig(3 * time.Second)
	push, observe := r.push, r.observe
	// Partition 0 runs ahead by whole fetches; partition 1 lags. Nothing
	// goes out while partitions are still being discovered.
	push(0, 1)
	push(0, 5)
	push(0, 9)
	push(1, 2)
	r.now = r.now.Add(time.Second)
	push(1, 6)
	if len(r.got) != 0 {
		t.Fatalf("released %v during warm-up", r.got)
	}
	r.now = r.now.Add(2500 * time.Millisecond)
	push(1, 7) // partition 0 is idle now, 1 is not: release up to 1's head
	if want := []int{1, 2, 5, 6, 7}; !equal(r.got, want) {
		t.Fatalf("released %v, want %v", r.got, want)
	}
	// Partition 1 goes quiet too: after the idle timeout, the rest flows.
	r.now = r.now.Add(4 * time.Second)
	r.m.release(observe, false)
	if want := []int{1, 2, 5, 6, 7, 9}; !equal(r.got, want) {
		t.Fatalf("released %v, want %v", r.got, want)
	}
	// The buffer cap bounds memory even when a source never goes idle.
	m2 := newMerger(2, time.Hour, 0)
	r.got = nil
	m2.now = func() time.Time { return r.now }
	for ts := 1; ts <= 5; ts++ {
		ev := event.Event{Time: time.Unix(int64(ts), 0)}
		m2.push([]byte("t"), 0, partitionKey{"t", 0}, 0, &ev, event.CauseNone, observe)
		if ts == 1 {
			ev2 := event.Event{Time: time.Unix(0, 0)}
			m2.push([]byte("t"), 1, partitionKey{"t", 1}, 0, &ev2, event.CauseNone, observe) // partition 1 then silent
		}
	}
	if m2.buffered > 2 {
		t.Fatalf("buffered %d beyond the cap", m2.buffered)
	}
	m2.release(observe, true)
	if m2.buffered != 0 {
		t.Fatal("force did not drain")
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMergerStaysBoundedUnderSteadyFlow(t *testing.T) {
	now := time.Unix(0, 0)
	m := newMerger(1000, time.Second, 0)
	m.now = func() time.Time { return now }
	n := 0
	observe := func(*event.Event, event.Cause) { n++ }
	for i := 0; i < 200_000; i++ {
		now = now.Add(time.Millisecond)
		for p := 0; p < 2; p++ {
			ev := event.Event{Time: time.Unix(int64(i), 0)}
			m.push([]byte("t"), p, partitionKey{"t", p}, 0, &ev, event.CauseNone, observe)
		}
	}
	for _, s := range m.order {
		if cap(s.items) > 10_000 {
			t.Fatalf("source buffer grew to %d", cap(s.items))
		}
	}
	if n < 399_000 {
		t.Fatalf("released only %d", n)
	}
}

// TestMergerHoldsAfterAStall: after the whole stream stalled (a broker
// outage), the first partition to deliver again does not run ahead of the
// others: every partition gets the idle timeout to deliver again.
func TestMergerHoldsAfterAStall(t *testing.T) {
	r := newMergeRig(3 * time.Second)
	push, observe := r.push, r.observe
	push(0, 1)
	push(1, 2)
	r.now = r.now.Add(4 * time.Second)
	r.m.release(observe, false)
	r.got = r.got[:0]
	r.now = r.now.Add(30 * time.Second) // the broker is down
	push(0, 40)                         // partition 0 is back first
	push(0, 41)
	r.now = r.now.Add(time.Second)
	push(0, 42)
	if len(r.got) != 0 {
		t.Fatalf("released %v before partition 1 delivered again", r.got)
	}
	push(1, 39)
	r.now = r.now.Add(2 * time.Second)
	push(1, 43)
	if want := []int{39, 40, 41, 42}; !equal(r.got, want) {
		t.Fatalf("released %v, want %v", r.got, want)
	}
}

// mergeRig drives a merger on a settable clock and records the event
// seconds it releases.
type mergeRig struct {
	m   *merger
	now time.Time
	got []int
}

func newMergeRig(idle time.Duration) *mergeRig {
	r := &mergeRig{now: time.Unix(0, 0)}
	r.m = newMerger(100, idle, 0)
	r.m.now = func() time.Time { return r.now }
	return r
}

func (r *mergeRig) observe(ev *event.Event, _ event.Cause) {
	r.got = append(r.got, int(ev.Time.Unix()))
}

func (r *mergeRig) push(p, ts int) {
	ev := event.Event{Time: time.Unix(int64(ts), 0)}
	r.m.push([]byte("t"), p, partitionKey{"t", p}, 0, &ev, event.CauseNone, r.observe)
}
