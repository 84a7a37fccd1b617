package stack

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Webhooks records what Alertmanager notifies the shipped receivers
// (payments-ops, network-oncall, risk, field-service) of: the on-call
// side of the routing tree.
type Webhooks struct {
	URL string
	srv *http.Server
	mu  sync.Mutex
	got []Notification
}

// Notification is one Alertmanager webhook post (version 4).
type Notification struct {
	Receiver string    `json:"receiver"` // from the path /hooks/NAME
	Status   string    `json:"status"`
	At       time.Time `json:"-"`
	Alerts   []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
	GroupLabels map[string]string `json:"groupLabels"`
}

// StartWebhooks serves the recorder at addr.
func StartWebhooks(addr string) (*Webhooks, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	w := &Webhooks{URL: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{receiver}", func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		n.Receiver, n.At = r.PathValue("receiver"), time.Now()
		w.mu.Lock()
		w.got = append(w.got, n)
		w.mu.Unlock()
	})
	w.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go w.srv.Serve(l)
	return w, nil
}

// Notifications returns what was received so far.
func (w *Webhooks) Notifications() []Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Notification(nil), w.got...)
}

// Receivers maps "kind scope_type=scope_id" of every notified firing
// alert to the receivers that got it.
func (w *Webhooks) Receivers() map[string][]string {
	out := map[string][]string{}
	for _, n := range w.Notifications() {
		for _, a := range n.Alerts {
			if a.Status != "firing" {
				continue
			}
			k := AlertKey(a.Labels)
			if !strings.Contains(strings.Join(out[k], ","), n.Receiver) {
				out[k] = append(out[k], n.Receiver)
			}
		}
	}
	return out
}

// Close stops the recorder.
func (w *Webhooks) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.srv.Shutdown(ctx)
}

// AlertKey names an alert by what the truth says of an incident:
// "kind scope_type=scope_id".
func AlertKey(labels map[string]string) string {
	return labels["kind"] + " " + labels["scope_type"] + "=" + labels["scope_id"]
}
