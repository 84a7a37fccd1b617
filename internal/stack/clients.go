package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/segmentio/kafka-go"
)

var httpc = &http.Client{Timeout: 30 * time.Second}

func get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Query runs sql on ClickHouse over HTTP as compose's account and returns
// the rows as TabSeparated fields (escaped as ClickHouse escapes them).
func (s *Stack) Query(ctx context.Context, sql string) ([][]string, error) {
	body, err := s.ClickHouse.Query(ctx, chserver.User{Name: User, Password: Password}, "TabSeparated", sql)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, nil
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows, nil
}

// QueryInt runs a query returning one integer.
func (s *Stack) QueryInt(ctx context.Context, sql string) (int64, error) {
	rows, err := s.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, fmt.Errorf("clickhouse: %q returned %v, want one value", sql, rows)
	}
	return strconv.ParseInt(rows[0][0], 10, 64)
}

// QueryCounts runs a two-column query (key, integer) into a map.
func (s *Stack) QueryCounts(ctx context.Context, sql string) (map[string]int64, error) {
	rows, err := s.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		if len(r) != 2 {
			return nil, fmt.Errorf("clickhouse: %q: row %v, want key and count", sql, r)
		}
		n, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %q: %w", sql, err)
		}
		out[r[0]] += n
	}
	return out, nil
}

// AMAlert is an alert as Alertmanager's API v2 lists it.
type AMAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
	Receivers   []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
		SilencedBy  []string `json:"silencedBy"`
	} `json:"status"`
}

// Alerts lists Alertmanager's current alerts (GET /api/v2/alerts: active,
// suppressed and unprocessed; resolved ones are not listed).
func (s *Stack) Alerts(ctx context.Context) ([]AMAlert, error) {
	code, body, err := get(ctx, s.AlertmanagerURL+"/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("alertmanager: %d: %s", code, body)
	}
	var out []AMAlert
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	return out, nil
}

// Seen is what a watch saw of one alert (by AlertKey) over time.
type Seen struct {
	Key         string
	Labels      map[string]string
	Fingerprint string
	First, Last time.Time
	States      map[string]int // polls per status.state
	// InhibitedBy is the union of the inhibiting fingerprints seen.
	InhibitedBy map[string]bool
	Receivers   map[string]bool
}

// AMWatch polls Alertmanager and keeps every alert it saw, since resolved
// alerts drop out of the API.
type AMWatch struct {
	mu     sync.Mutex
	seen   map[string]*Seen
	polls  int
	errs   int
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchAlertmanager polls /api/v2/alerts every interval until Stop.
func (s *Stack) WatchAlertmanager(interval time.Duration) *AMWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &AMWatch{seen: map[string]*Seen{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			alerts, err := s.Alerts(ctx)
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				w.errs++
			} else {
				w.polls++
			}
			for _, a := range alerts {
				k := AlertKey(a.Labels)
				x := w.seen[k]
				if x == nil {
					x = &Seen{Key: k, Labels: a.Labels, Fingerprint: a.Fingerprint, First: now, States: map[string]int{},
						InhibitedBy: map[string]bool{}, Receivers: map[string]bool{}}
					w.seen[k] = x
				}
				x.Last = now
				x.States[a.Status.State]++
				for _, f := range a.Status.InhibitedBy {
					x.InhibitedBy[f] = true
				}
				for _, r := range a.Receivers {
					x.Receivers[r.Name] = true
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}()
	return w
}

// Stop ends the polling.
func (w *AMWatch) Stop() {
	w.cancel()
	<-w.done
}

// Seen returns the alerts seen so far by key, and the poll counts.
func (w *AMWatch) Seen() (map[string]Seen, int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]Seen, len(w.seen))
	for k, v := range w.seen {
		out[k] = *v
	}
	return out, w.polls, w.errs
}

// PromSample is one series of an instant query.
type PromSample struct {
	Metric map[string]string
	Value  float64
}

// PromQuery runs an instant query on Prometheus.
func (s *Stack) PromQuery(ctx context.Context, expr string) ([]PromSample, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := s.PromGet(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s: %s", expr, r.Error)
	}
	var out []PromSample
	for _, x := range r.Data.Result {
		str, _ := x.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			// Prometheus writes NaN and ±Inf as strings ParseFloat reads;
			// anything else is malformed.
			return nil, fmt.Errorf("prometheus: %s: value %v", expr, x.Value[1])
		}
		out = append(out, PromSample{Metric: x.Metric, Value: v})
	}
	return out, nil
}

// PromGet decodes a Prometheus API response.
func (s *Stack) PromGet(ctx context.Context, path string, out any) error {
	code, body, err := get(ctx, s.PrometheusURL+path)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusBadRequest && code != 422 {
		return fmt.Errorf("prometheus %s: %d %s", path, code, body)
	}
	return json.Unmarshal(body, out)
}

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Readyz returns declinemon's /readyz status and body.
func (s *Stack) Readyz(ctx context.Context) (int, string, error) {
	code, body, err := get(ctx, "http://"+s.DeclinemonAddr+"/readyz")
	return code, string(body), err
}

// Metrics scrapes declinemon's /metrics, summing samples by name and
// keeping labelled series as name{labels} too.
func (s *Stack) Metrics(ctx context.Context) (map[string]float64, error) {
	code, body, err := get(ctx, "http://"+s.DeclinemonAddr+"/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", code)
	}
	return ParseMetrics(body), nil
}

// ParseMetrics sums Prometheus text-format samples by metric name, and by
// name{labels} for labelled ones.
func ParseMetrics(body []byte) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		name := series
		if j := strings.IndexByte(series, '{'); j >= 0 {
			name = series[:j]
			m[series] += v
		}
		m[name] += v
	}
	return m
}

// Offsets reads the group's committed offsets and the topic's end offsets
// by partition (committed -1: nothing committed).
func (s *Stack) Offsets(ctx context.Context, topic, group string) (committed, end map[int]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", s.Kafka.Addr)
	if err != nil {
		return nil, nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, nil, err
	}
	var reqs []kafka.OffsetRequest
	var ids []int
	for _, p := range parts {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		ids = append(ids, p.ID)
	}
	sort.Ints(ids)
	client := &kafka.Client{Addr: kafka.TCP(s.Kafka.Addr), Timeout: 10 * time.Second}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, err
	}
	end = map[int]int64{}
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			return nil, nil, po.Error
		}
		end[po.Partition] = po.LastOffset
	}
	of, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, nil, err
	}
	if of.Error != nil {
		return nil, nil, of.Error
	}
	committed = map[int]int64{}
	for _, id := range ids {
		committed[id] = -1
	}
	for _, p := range of.Topics[topic] {
		if p.Error != nil {
			return nil, nil, p.Error
		}
		committed[p.Partition] = p.CommittedOffset
	}
	return committed, end, nil
}

// TopicExists lists the broker's topics (a metadata request for all
// topics, which never auto-creates one) and reports whether topic is
// among them.
func (s *Stack) TopicExists(ctx context.Context, topic string) (bool, error) {
	conn, err := kafka.DialContext(ctx, "tcp", s.Kafka.Addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	parts, err := conn.ReadPartitions()
	if err != nil {
		return false, err
	}
	for _, p := range parts {
		if p.Topic == topic {
			return true, nil
		}
	}
	return false, nil
}

// Lag is the sum over partitions of end minus committed offsets.
func Lag(committed, end map[int]int64) int64 {
	var lag int64
	for p, e := range end {
		lag += e - max(committed[p], 0)
	}
	return lag
}

// WaitCaughtUp waits until the group has committed the topic's end
// offsets, within limit.
func (s *Stack) WaitCaughtUp(ctx context.Context, topic, group string, limit time.Duration) (committed, end map[int]int64, err error) {
	deadline := time.Now().Add(limit)
	for {
		committed, end, err = s.Offsets(ctx, topic, group)
		if err == nil && len(end) > 0 && Lag(committed, end) == 0 {
			return committed, end, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("group %s still %d messages behind on %s after %s (committed %v, end %v)", group, Lag(committed, end), topic, limit, committed, end)
			}
			return committed, end, err
		}
		select {
		case <-ctx.Done():
			return committed, end, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
