package demo

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting/scenario"
	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/pipeline"
)

func TestMain(m *testing.M) {
	chserver.Child() // the demo's ClickHouse server
	os.Exit(m.Run())
}

// TestDemoStoresAndAnswers: with the engine library, the demo stores every
// event and alert record in a real ClickHouse server and the cookbook
// queries answer on it ("today" included: the morning is dated to end now).
func TestDemoStoresAndAnswers(t *testing.T) {
	if _, err := os.Stat(DefaultLib()); err != nil {
		if chtest.Required() {
			t.Fatalf("no engine library at %s", DefaultLib())
		}
		t.Skip("no ClickHouse engine library")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := StartStorage(ctx, DefaultLib(), zap.NewNop())
	if err != nil || st == nil {
		t.Fatalf("storage: %v", err)
	}
	defer st.Close()
	s := DatedForToday(scenario.Demo(), time.Now())
	var out bytes.Buffer
	res, err := Run(ctx, Options{Out: &out, Scenario: &s, Store: st.Writer, Alerts: []pipeline.AlertSink{st.Alerts}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Alerts.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(q string) string {
		got, err := st.Query(ctx, q+" FORMAT TSV")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(got)
	}
	if got, want := count("SELECT count() FROM declinemon.events"), res.Truth.Events; got != strconv.Itoa(want) {
		t.Errorf("events stored %s, the demo produced %d", got, want)
	}
	if got, want := count("SELECT count() FROM (SELECT DISTINCT alert_id, state FROM declinemon.alerts)"), len(res.Alerts); got != strconv.Itoa(want) {
		t.Errorf("alert records stored %s, raised %d", got, want)
	}
	var book bytes.Buffer
	if err := st.Cookbook(ctx, &book, "top_failing_terminals_today", "cause_mix_by_region"); err != nil {
		t.Fatal(err)
	}
	// The demo's failing card reader is today's top failing terminal.
	hw := ""
	for _, inc := range res.Truth.Incidents {
		if inc.Kind == "terminal_hardware" {
			hw = inc.ScopeID
		}
	}
	if hw == "" || !strings.Contains(book.String(), hw) || !strings.Contains(book.String(), "cause mix by region") {
		t.Errorf("cookbook output (failing terminal %q):\n%s", hw, book.String())
	}
}

func TestDatedForToday(t *testing.T) {
	s := scenario.Demo() // 3 hours
	at := func(v string) time.Time {
		x, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// 20:10 in Shanghai: ends now.
	if got := DatedForToday(s, at("2026-11-29T12:10:30Z")).Start; !got.Equal(at("2026-11-29T09:10:00Z")) {
		t.Errorf("afternoon: starts %s", got)
	}
	// 00:40 in Shanghai: starts at its midnight, not the day before.
	if got := DatedForToday(s, at("2026-11-29T16:40:00Z")).Start; !got.Equal(at("2026-11-29T16:00:00Z")) {
		t.Errorf("after midnight: starts %s", got)
	}
}
