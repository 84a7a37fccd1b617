package chserver_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
)

func TestMain(m *testing.M) {
	chserver.Child()
	os.Exit(m.Run())
}

func query(t *testing.T, addr, user, pass, q string) (string, int) {
	t.Helper()
	u := "http://" + addr + "/?" + url.Values{"user": {user}, "password": {pass}}.Encode()
	resp, err := http.Post(u, "text/plain", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.StatusCode
}

func TestServerServesStopsAndRestartsWithItsData(t *testing.T) {
	if os.Getenv(chserver.LibEnv) == "" {
		t.Skip("no " + chserver.LibEnv)
	}
	dir := t.TempDir()
	t0 := time.Now()
	s, err := chserver.Start(context.Background(), chserver.Options{Dir: dir, Users: []chserver.User{{Name: "ops", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	t.Logf("listening after %v", time.Since(t0))
	if v, _ := query(t, s.HTTPAddr, "default", "", "SELECT version()"); !strings.HasPrefix(v, "26.") {
		t.Fatalf("version %q", v)
	}
	if v, _ := query(t, s.HTTPAddr, "ops", "s3cret", "SELECT currentUser()"); v != "ops" {
		t.Fatalf("currentUser %q", v)
	}
	if _, code := query(t, s.HTTPAddr, "ops", "wrong", "SELECT 1"); code == 200 {
		t.Fatal("a wrong password was accepted")
	}
	query(t, s.HTTPAddr, "ops", "s3cret", "CREATE DATABASE d")
	query(t, s.HTTPAddr, "ops", "s3cret", "CREATE TABLE d.t (x UInt8) ENGINE = MergeTree ORDER BY x")
	query(t, s.HTTPAddr, "ops", "s3cret", "INSERT INTO d.t VALUES (7)")
	t1 := time.Now()
	s.Stop(30 * time.Second)
	t.Logf("stopped in %v", time.Since(t1))
	if s.Running() {
		t.Fatal("still running")
	}
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := query(t, s.HTTPAddr, "default", "", "SELECT sum(x) FROM d.t"); v != "7" {
		t.Fatalf("after restart: %q", v)
	}
	s.Kill()
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := query(t, s.HTTPAddr, "default", "", "SELECT sum(x) FROM d.t"); v != "7" {
		t.Fatalf("after kill -9 and restart: %q", v)
	}
	s.Stop(30 * time.Second)
}
