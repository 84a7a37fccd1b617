// Package ops serves declinemon's operational HTTP endpoints: /metrics,
// /healthz, /readyz, /alerts and the ops console, behind optional bearer
// or basic auth.
// It knows nothing of the pipeline; the command wires it with a
// Prometheus gatherer, a readiness check and the firing alerts.
package ops

import (
	"net"

	"github.com/declinemon/declinemon/internal/secret"

	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/declinemon/declinemon/alerting"
)

// HTTPConfig is the `http:` section: the operational endpoints.
type HTTPConfig struct {
	// Listen address; default 127.0.0.1:9464 (localhost only). "off"
	// disables the server.
	Listen string `yaml:"listen"`
	// BearerToken or BasicAuth, when set, protect every endpoint but
	// /healthz. People opening the console in a browser give the bearer
	// token as the basic-auth password (any user name).
	BearerToken secret.String `yaml:"bearer_token"`
	BasicAuth   BasicAuth     `yaml:"basic_auth"`
}

// BasicAuth is a user name and password for HTTP basic authentication.
type BasicAuth struct {
	Username string        `yaml:"username"`
	Password secret.String `yaml:"password"`
}

// Validate checks the section: credentials come in pairs, so a half-set
// basic_auth never turns authentication off.
func (c HTTPConfig) Validate() error {
	if (c.BasicAuth.Username == "") != !c.BasicAuth.Password.IsSet() {
		return errors.New("http.basic_auth: set both username and password, or neither")
	}
	return nil
}

// Addr returns the listen address with its default ("" when disabled).
func (c HTTPConfig) Addr() string {
	switch c.Listen {
	case "":
		return "127.0.0.1:9464"
	case "off":
		return ""
	}
	return c.Listen
}

// Endpoints are what the HTTP handler serves.
type Endpoints struct {
	Gatherer prometheus.Gatherer
	Ready    func(ctx context.Context) error // nil error: ready
	Active   func() []alerting.Alert
	// Console, when set, adds its pages (/ and below) behind the same
	// authentication.
	Console interface{ Register(*http.ServeMux) }
}

// NewHandler serves /metrics, /healthz (process alive), /readyz (Kafka and
// storage reachable), /alerts (firing alerts as alerts-v1 JSON) and, when
// given one, the ops console at /.
func NewHandler(cfg HTTPConfig, ep Endpoints) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	protected := http.NewServeMux()
	protected.Handle("GET /metrics", promhttp.HandlerFor(ep.Gatherer, promhttp.HandlerOpts{}))
	protected.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ep.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	protected.HandleFunc("GET /alerts", func(w http.ResponseWriter, r *http.Request) {
		active := ep.Active()
		w.Header().Set("Content-Type", "application/json")
		if id := r.URL.Query().Get("alert_id"); id != "" {
			for _, a := range active {
				if a.ID == id {
					json.NewEncoder(w).Encode([]alerting.Alert{a})
					return
				}
			}
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no firing alert with this alert_id"}` + "\n"))
			return
		}
		if active == nil {
			active = []alerting.Alert{}
		}
		json.NewEncoder(w).Encode(active)
	})
	if ep.Console != nil {
		ep.Console.Register(protected)
	}
	mux.Handle("/", authenticate(cfg, protected))
	return mux
}

func authenticate(cfg HTTPConfig, next http.Handler) http.Handler {
	token, user, pass := cfg.BearerToken.Reveal(), cfg.BasicAuth.Username, cfg.BasicAuth.Password.Reveal()
	if token == "" && user == "" && pass == "" {
		return next
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && eq(r.Header.Get("Authorization"), "Bearer "+token) {
			next.ServeHTTP(w, r)
			return
		}
		if u, p, ok := r.BasicAuth(); ok && user != "" && pass != "" && eq(u, user) && eq(p, pass) {
			next.ServeHTTP(w, r)
			return
		}
		// Browsers cannot send a bearer token when people open the
		// console: the token is also accepted as a basic-auth password
		// (any user name).
		if _, p, ok := r.BasicAuth(); ok && token != "" && eq(p, token) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="declinemon"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})
}

// Serve listens on cfg's address and serves h in the background; nil
// server when the endpoints are disabled ("off").
func Serve(cfg HTTPConfig, h http.Handler) (*http.Server, net.Addr, error) {
	addr := cfg.Addr()
	if addr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, ln.Addr(), nil
}
