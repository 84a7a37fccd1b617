// Package notify delivers alert records to the tools on-call engineers
// already run: Alertmanager (v2 API) and generic JSON webhooks.
//
// No record is lost because a queue was full. Alertmanager delivery keeps
// the desired state of each alert (its latest firing or resolved record),
// updated when Send is called; that state map is the queue, so Send never
// blocks and a resolve always replaces the firing record it ends. Webhooks
// deliver every record in order through a bounded queue; when it is full,
// Send waits (honouring its context), which pauses the caller's pipeline
// rather than dropping data.
//
// A record that still fails after its attempts is counted as failed and
// logged; records left undelivered when Close gives up are counted as
// dropped. Flush tells a caller whether everything it sent so far was
// delivered. What to do about an undelivered record (exit status, a page
// on the failure counters) is left to the caller.
package notify

import (
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"
)

// Stats count delivered records. Every record Send accepts ends in exactly
// one of Sent, Failed, Dropped or Superseded.
type Stats struct {
	// Sent records were accepted by the receiver.
	Sent atomic.Uint64
	// Failed records were given up after the sink's attempts.
	// (Alertmanager keeps re-posting the alert's state at every resend
	// interval until one succeeds; that late delivery is not counted again.)
	Failed atomic.Uint64
	// Dropped records were still undelivered when Close gave up.
	Dropped atomic.Uint64
	// Retries are failed delivery attempts that were tried again.
	Retries atomic.Uint64
	// Superseded Alertmanager records were replaced by a newer record of
	// the same alert before they were posted; the newer one carries the
	// state, so they are neither failed nor lost.
	Superseded atomic.Uint64
}

// DeliveryCounts reports sent, failed, dropped and retried deliveries.
func (s *Stats) DeliveryCounts() (sent, failed, dropped, retries uint64) {
	return s.Sent.Load(), s.Failed.Load(), s.Dropped.Load(), s.Retries.Load()
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("alert notifier closed")

// UndeliveredError is Flush's report of records Send accepted that were
// not delivered.
type UndeliveredError struct {
	Failed  uint64 // given up after the sink's attempts
	Dropped uint64 // discarded by Close before they could be delivered
	Pending uint64 // still waiting when Flush's context ended
	Err     error  // the context's error when Pending > 0
}

func (e *UndeliveredError) Error() string {
	msg := fmt.Sprintf("alert records not delivered: %d failed, %d dropped", e.Failed, e.Dropped)
	if e.Pending > 0 {
		msg += fmt.Sprintf(", %d pending: %v", e.Pending, e.Err)
	}
	return msg
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// flushReport tracks what Flush has already reported, so each Flush
// reports failures since the previous one. The owner's mutex guards it.
type flushReport struct{ failed, dropped uint64 }

func (r *flushReport) take(s *Stats, pending uint64, ctxErr error) error {
	failed, dropped := s.Failed.Load(), s.Dropped.Load()
	e := &UndeliveredError{Failed: failed - r.failed, Dropped: dropped - r.dropped}
	r.failed, r.dropped = failed, dropped
	if pending > 0 {
		e.Pending, e.Err = pending, ctxErr
	}
	if e.Failed == 0 && e.Dropped == 0 && e.Pending == 0 {
		return nil
	}
	return e
}

// signal wakes every goroutine waiting for a change; the owner's mutex
// guards it. Waiters take wait() under the mutex and select on it outside.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// nextBackoff doubles a retry wait up to a ceiling.
func nextBackoff(d time.Duration) time.Duration { return min(2*d, 10*time.Second) }

// redactURL is how an endpoint appears in logs and errors: webhook URLs
// often carry a token in their path or query, and either may carry user
// credentials, so only the scheme and host are shown.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[invalid url]"
	}
	return u.Scheme + "://" + u.Host
}

// redactErr replaces the full URL that net/http puts in its errors.
func redactErr(err error, shown string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = shown
	}
	return err
}
