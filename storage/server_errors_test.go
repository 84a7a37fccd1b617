package storage_test

// How storage failures on a real server are classified, as the pipeline
// sees them: a PermanentError halts consumption until an operator acts,
// anything else is retried. A handshake the server rejects aborts this
// test server, so each such case has a server of its own.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// permanentCode reports whether err is a PermanentError and the ClickHouse
// exception code it carries (0 when the failure was found client-side).
func permanentCode(err error) (bool, int32) {
	var perm *storage.PermanentError
	var ex *clickhouse.Exception
	code := int32(0)
	if errors.As(err, &ex) {
		code = ex.Code
	}
	return errors.As(err, &perm), code
}

// TestWrongPasswordIsPermanent: a rejected login (code 516) needs an
// operator, for the insert and for readiness alike.
func TestWrongPasswordIsPermanent(t *testing.T) {
	ops := chserver.User{Name: "ops", Password: "right"}
	for _, via := range []string{"insert", "ping"} {
		t.Run(via, func(t *testing.T) {
			s := chtest.Start(t, ops)
			c := chtest.Open(t, s, chserver.User{Name: "ops", Password: "wrong"}, storage.SchemaConfig{})
			var err error
			if via == "insert" {
				batch := recent(3, 0)
				err = c.Insert(context.Background(), columnsOf(batch), storage.Token(batch))
			} else {
				err = c.Ping(context.Background())
			}
			if perm, code := permanentCode(err); !perm || code != 516 {
				t.Errorf("wrong password: %v (permanent %v, code %d), want permanent 516", err, perm, code)
			}
		})
	}
}

// TestMissingTableIsPermanent: an events or alerts table that is not
// there (code 60) is not retried away.
func TestMissingTableIsPermanent(t *testing.T) {
	s, c := migrated(t, nil)
	ctx := context.Background()
	chtest.Query(t, s, "DROP TABLE declinemon.events")
	batch := recent(3, 0)
	err := c.Insert(ctx, columnsOf(batch), storage.Token(batch))
	if perm, code := permanentCode(err); !perm || code != 60 {
		t.Errorf("insert without the events table: %v (permanent %v, code %d), want permanent 60", err, perm, code)
	}
	// The writer gives it to the pipeline at once, without retrying.
	w := storage.NewWriter(c, storage.WriterConfig{Attempts: 5, Backoff: time.Hour})
	err = w.Write(ctx, batch)
	if perm, _ := permanentCode(err); !perm || w.Stats().Retries.Load() != 0 || w.Stats().Permanent.Load() != 1 {
		t.Errorf("writer: %v, %d retries, %d permanent; want a permanent error, no retry", err, w.Stats().Retries.Load(), w.Stats().Permanent.Load())
	}
	chtest.Query(t, s, "DROP TABLE declinemon.alerts")
	err = c.Send(ctx, testAlerts())
	if perm, code := permanentCode(err); !perm || code != 60 {
		t.Errorf("alerts without the alerts table: %v (permanent %v, code %d), want permanent 60", err, perm, code)
	}
}

// TestSchemaDriftIsPermanent: a table that no longer matches what this
// build inserts fails permanently, whether the server refuses the insert
// (a column gone, a view's target gone) or the client cannot encode a
// column into its new type. Adding a column is not drift.
func TestSchemaDriftIsPermanent(t *testing.T) {
	s := chtest.Start(t)
	ctx := context.Background()
	for i, tc := range []struct {
		name, alter string
		code        int32 // 0: refused by the client before sending
		ok          bool
	}{
		{"dropped column", "ALTER TABLE %s.events DROP COLUMN card_bin", 16, false},
		{"narrowed type", "ALTER TABLE %s.events MODIFY COLUMN amount_minor Int32", 0, false},
		{"changed type", "ALTER TABLE %s.events MODIFY COLUMN signal_dbm String", 0, false},
		{"enum without a value", "ALTER TABLE %s.events MODIFY COLUMN outcome Enum8('declined' = 2)", 0, false},
		{"rollup table dropped", "DROP TABLE %s.terminal_minutes", 60, false},
		{"column added", "ALTER TABLE %s.events ADD COLUMN note String DEFAULT ''", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := storage.SchemaConfig{Database: fmt.Sprintf("drift%d", i)}
			c := chtest.Open(t, s, chserver.User{}, cfg)
			if _, err := storage.Migrate(ctx, c, cfg); err != nil {
				t.Fatal(err)
			}
			chtest.Query(t, s, fmt.Sprintf(tc.alter, cfg.Database))
			batch := recent(6, 0)
			batch[1].Cause = 0 // an approval: outcome 'approved'
			err := c.Insert(ctx, columnsOf(batch), storage.Token(batch))
			if tc.ok {
				if err != nil {
					t.Fatalf("insert after an additive change: %v", err)
				}
				return
			}
			if perm, code := permanentCode(err); !perm || code != tc.code {
				t.Errorf("%v (permanent %v, code %d), want permanent with code %d", err, perm, code, tc.code)
			}
			if n := chtest.Value(t, s, "SELECT count() FROM "+cfg.Database+".events"); n != "0" {
				t.Errorf("a failed insert left %s rows", n)
			}
		})
	}
}

// TestServerKilledIsTransientAndTheClientRecovers: a server that is gone
// (crash, restart) is an outage, not an operator problem: the insert fails
// transiently, the writer keeps retrying the batch (consumption waits),
// and once the server is back the same client carries on, the batch
// stored once.
func TestServerKilledIsTransientAndTheClientRecovers(t *testing.T) {
	s, c := migrated(t, nil)
	ctx := context.Background()
	w := storage.NewWriter(c, storage.WriterConfig{Attempts: 1000, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	first := recent(20, 0)
	if err := w.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	second := recent(20, 20)
	err := c.Insert(ctx, columnsOf(second), storage.Token(second))
	if perm, _ := permanentCode(err); err == nil || perm {
		t.Fatalf("insert with the server down: %v, want a transient error", err)
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("ping with the server down succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- w.Write(ctx, second) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the writer returned while the server was down: %v", err)
	default:
	}
	t0 := time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the writer after the restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the writer did not recover within 30s of the restart")
	}
	t.Logf("stored %v after the restart, %d retries", time.Since(t0).Round(time.Millisecond), w.Stats().Retries.Load())
	if w.Stats().Retries.Load() == 0 || w.Stats().Failures.Load() != 0 || w.Stats().Permanent.Load() != 0 {
		t.Errorf("retries %d, failures %d, permanent %d", w.Stats().Retries.Load(), w.Stats().Failures.Load(), w.Stats().Permanent.Load())
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after the restart: %v", err)
	}
	if v := chtest.Query(t, s, "SELECT count(), uniqExact(event_id) FROM declinemon.events"); v[0][0] != "40" || v[0][1] != "40" {
		t.Errorf("events after the restart: %v rows/ids, want 40/40", v)
	}
}

// TestPingBeforeMigrateSaysToMigrate: readiness on a server that was never
// migrated tells the operator what to run.
func TestPingBeforeMigrateSaysToMigrate(t *testing.T) {
	s := chtest.Start(t)
	c := chtest.Open(t, s, chserver.User{}, storage.SchemaConfig{})
	ctx := context.Background()
	err := c.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "declinemon migrate") {
		t.Errorf("ping with no database: %v, want it to say to run declinemon migrate", err)
	}
	// The database exists (created by hand, or by a migrate that stopped
	// early) but schema_migrations does not.
	chtest.Query(t, s, "CREATE DATABASE declinemon")
	err = c.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "declinemon migrate") {
		t.Errorf("ping with no schema_migrations: %v, want it to say to run declinemon migrate", err)
	}
	if _, err := storage.Migrate(ctx, c, storage.SchemaConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after migrate: %v", err)
	}
	// A schema behind this build (a newer binary rolled out before its
	// migrate ran).
	chtest.Query(t, s, fmt.Sprintf("DELETE FROM declinemon.schema_migrations WHERE version = %d", storage.Latest()))
	err = c.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "declinemon migrate") {
		t.Errorf("ping with the schema one version behind: %v, want it to say to run declinemon migrate", err)
	}
}

// TestMissingRightsArePermanent: a user that may not write — no INSERT
// grant (497), or a read-only profile (164) — needs an operator, for the
// events and the alerts alike.
func TestMissingRightsArePermanent(t *testing.T) {
	s, _ := migrated(t, map[string]string{"users.d/limited.xml": `<clickhouse>
  <profiles><readonly><readonly>1</readonly></readonly></profiles>
  <users>
    <reader><password>pw</password><profile>readonly</profile><quota>default</quota><networks><ip>127.0.0.1</ip></networks></reader>
    <nogrant><password>pw</password><profile>default</profile><quota>default</quota><networks><ip>127.0.0.1</ip></networks>
      <grants><query>GRANT SELECT ON *.*</query></grants></nogrant>
  </users>
</clickhouse>
`})
	ctx := context.Background()
	for _, tc := range []struct {
		user string
		code int32
	}{{"nogrant", 497}, {"reader", 164}} {
		t.Run(tc.user, func(t *testing.T) {
			c := chtest.Open(t, s, chserver.User{Name: tc.user, Password: "pw"}, storage.SchemaConfig{})
			batch := recent(3, 0)
			err := c.Insert(ctx, columnsOf(batch), storage.Token(batch))
			if perm, code := permanentCode(err); !perm || code != tc.code {
				t.Errorf("insert: %v (permanent %v, code %d), want permanent %d", err, perm, code, tc.code)
			}
			err = c.Send(ctx, testAlerts())
			if perm, code := permanentCode(err); !perm || code != tc.code {
				t.Errorf("alerts: %v (permanent %v, code %d), want permanent %d", err, perm, code, tc.code)
			}
		})
	}
}
