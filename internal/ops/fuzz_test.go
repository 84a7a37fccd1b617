package ops

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/alerting"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	fuzzToken = "tok-3f9a"
	fuzzUser  = "ops"
	fuzzPass  = "pw-77c1"
)

// maxEcho bounds how much of the query a response may repeat.
const maxEcho = 64

// FuzzHandler sends arbitrary requests (method, path, query, Authorization)
// to NewHandler in each auth mode. Invariants: no panic; the status is one
// of a small set; nothing but /healthz answers 2xx without valid
// credentials when auth is configured; redirects stay on the server; no
// response repeats more than maxEcho bytes of the request beyond what the
// endpoints serve anyway.
func FuzzHandler(f *testing.F) {
	bearer := "Bearer " + fuzzToken
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(fuzzUser+":"+fuzzPass))
	long := strings.Repeat("A", 300)
	for _, s := range []struct {
		method, path, query, auth string
	}{
		{"GET", "/healthz", "", ""},
		{"GET", "/metrics", "", bearer},
		{"GET", "/readyz", "", basic},
		{"GET", "/alerts", "", ""},
		{"GET", "/alerts", "alert_id=a1", bearer},
		{"GET", "/alerts", "alert_id=a1", "bearer " + fuzzToken},
		{"GET", "/alerts", "alert_id=a1", bearer + " "},
		{"GET", "/alerts", "alert_id=" + long, bearer},
		{"GET", "/alerts", "alert_id=%zz&alert_id=a2", basic},
		{"GET", "/alerts", "alert_id=a1;alert_id=a2", basic},
		{"GET", "/nope", "x=" + long, ""},
		{"GET", "/alerts/", "", bearer},
		{"GET", "/alerts/../metrics", "q=" + long, ""},
		{"GET", "//alerts", "", ""},
		{"GET", "/%2e%2e/alerts", "", ""},
		{"GET", "/healthz/", "", ""},
		{"HEAD", "/healthz", "", ""},
		{"POST", "/healthz", "", ""},
		{"POST", "/alerts", "", bearer},
		{"DELETE", "/metrics", "", ""},
		{"OPTIONS", "*", "", ""},
		{"GET", "/metrics", "", "Basic " + base64.StdEncoding.EncodeToString([]byte(fuzzUser+":"))},
		{"GET", "/metrics", "", "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+fuzzPass))},
	} {
		for mode := byte(0); mode < 4; mode++ {
			f.Add(mode, s.method, s.path, s.query, s.auth)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "declinemon_fuzz_total", Help: "A fixed metric."}))
	active := []alerting.Alert{
		{ID: "a1", State: alerting.StateFiring, Kind: alerting.KindNetworkOutage, Cause: "network", ScopeType: "region", ScopeID: "north", Summary: "north is down"},
		{ID: "a2", State: alerting.StateFiring, Kind: alerting.KindFraudAttack, Cause: "fraud_risk", ScopeType: "merchant", ScopeID: "M1"},
	}
	ep := Endpoints{
		Gatherer: reg,
		Ready:    func(context.Context) error { return nil },
		Active:   func() []alerting.Alert { return active },
	}
	// mode bit 0: bearer token; bit 1: basic auth.
	var handlers [4]http.Handler
	for mode := range handlers {
		var cfg HTTPConfig
		if mode&1 != 0 {
			cfg.BearerToken = fuzzToken
		}
		if mode&2 != 0 {
			cfg.BasicAuth.Username, cfg.BasicAuth.Password = fuzzUser, fuzzPass
		}
		handlers[mode] = NewHandler(cfg, ep)
	}
	// served is what the endpoints answer anyway: a query that matches it
	// (alert_id=a1) is not an echo.
	var served strings.Builder
	for _, p := range []string{"/healthz", "/metrics", "/readyz", "/alerts"} {
		rec := httptest.NewRecorder()
		handlers[0].ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		served.WriteString(rec.Body.String())
	}
	allowed := map[int]bool{
		http.StatusOK: true, http.StatusMovedPermanently: true, http.StatusTemporaryRedirect: true,
		http.StatusPermanentRedirect: true, http.StatusBadRequest: true, http.StatusUnauthorized: true,
		http.StatusNotFound: true, http.StatusMethodNotAllowed: true,
	}

	f.Fuzz(func(t *testing.T, mode byte, method, path, query, auth string) {
		mode &= 3
		switch method {
		case "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS":
		default:
			method = "GET"
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: declinemon\r\n"
		if auth != "" {
			raw += "Authorization: " + auth + "\r\n"
		}
		// Parse as the server does; what it refuses never reaches the handler.
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		handlers[mode].ServeHTTP(rec, req)
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)

		if !allowed[res.StatusCode] {
			t.Fatalf("%s %q: status %d", method, target, res.StatusCode)
		}
		if res.StatusCode/100 == 2 && mode != 0 && !credentialsValid(mode, req) && !isHealthz(req) {
			t.Fatalf("%s %q with Authorization %q answered %d without valid credentials", method, target, auth, res.StatusCode)
		}
		if res.StatusCode/100 == 3 {
			// ServeMux repeats the query in its redirect to the cleaned
			// path; the redirect must stay on this server.
			loc := res.Header.Get("Location")
			u, err := url.Parse(loc)
			if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
				t.Fatalf("%s %q redirects off the server: %q", method, target, loc)
			}
			return
		}
		if res.StatusCode == http.StatusOK && req.URL.Path == "/alerts" && method != "HEAD" {
			var got []alerting.Alert
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("/alerts body is not a JSON list of alerts: %v: %q", err, body)
			}
			if id := req.URL.Query().Get("alert_id"); id != "" {
				for _, a := range got {
					if a.ID != id {
						t.Fatalf("alert_id=%q returned alert %q", id, a.ID)
					}
				}
			}
		}
		var headers strings.Builder
		res.Header.Write(&headers)
		out := string(body) + headers.String()
		unescaped, _ := url.QueryUnescape(query)
		for _, q := range []string{query, unescaped, path, auth} {
			for i := 0; i+maxEcho < len(q); i++ {
				w := q[i : i+maxEcho+1]
				if strings.Contains(out, w) && !strings.Contains(served.String(), w) {
					t.Fatalf("%s %q: response repeats %q", method, target, w)
				}
			}
		}
	})
}

func isHealthz(r *http.Request) bool {
	return r.URL.Path == "/healthz" && (r.Method == "GET" || r.Method == "HEAD")
}

// credentialsValid is an independent reading of the auth rules.
func credentialsValid(mode byte, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if mode&1 != 0 && h == "Bearer "+fuzzToken {
		return true
	}
	if mode&2 != 0 {
		scheme, enc, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "basic") {
			return false
		}
		dec, err := base64.StdEncoding.DecodeString(enc)
		return err == nil && string(dec) == fuzzUser+":"+fuzzPass
	}
	return false
}
