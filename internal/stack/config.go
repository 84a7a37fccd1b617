package stack

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The shipped files name compose services; each rewrite below replaces an
// exact string and fails when it is missing (the shipped file changed:
// update the rewrite rather than run something else than compose does),
// then checks no compose service address is left.

// composeAddr matches an address of a compose service: host:port or a URL
// host.
var composeAddr = regexp.MustCompile(`\b(kafka|clickhouse|alertmanager|prometheus|declinemon|grafana|loadgen):[0-9]+\b|//(kafka|clickhouse|alertmanager|prometheus|declinemon|grafana|loadgen)\b`)

func rewrite(name string, src []byte, pairs ...string) ([]byte, error) {
	out := string(src)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(out, pairs[i]) {
			return nil, fmt.Errorf("stack: %s no longer contains %q: update the rewrite in internal/stack/config.go", name, pairs[i])
		}
		out = strings.ReplaceAll(out, pairs[i], pairs[i+1])
	}
	if m := composeAddr.FindString(out); m != "" {
		return nil, fmt.Errorf("stack: %s still names a compose service (%s) after the rewrite", name, m)
	}
	return []byte(out), nil
}

// DeclinemonYAML is deploy/compose/declinemon.yaml with the compose
// services' addresses replaced: kafka, clickhouse, alertmanager, the
// listener (compose listens on 0.0.0.0:9464, published as localhost:9464)
// and the generator URL that points at it. Everything else is kept.
func DeclinemonYAML(src []byte, kafkaAddr, clickhouseTCP, alertmanagerURL, listen string) ([]byte, error) {
	return rewrite("deploy/compose/declinemon.yaml", src,
		"[kafka:9092]", "["+kafkaAddr+"]",
		"[clickhouse:9000]", "["+clickhouseTCP+"]",
		"[http://alertmanager:9093]", "["+alertmanagerURL+"]",
		"listen: 0.0.0.0:9464", "listen: "+listen,
		"http://localhost:9464/alerts", "http://"+listen+"/alerts")
}

// PrometheusYAML is deploy/prometheus/prometheus.yml with the targets
// (alertmanager:9093, declinemon:9464) replaced and, when non-zero, the
// global scrape and evaluation intervals (15s and 30s shipped) shortened
// so a test sees several evaluations within a minute.
func PrometheusYAML(src []byte, alertmanager, declinemon string, scrape, eval time.Duration) ([]byte, error) {
	pairs := []string{`["alertmanager:9093"]`, `["` + alertmanager + `"]`, `["declinemon:9464"]`, `["` + declinemon + `"]`}
	if scrape > 0 {
		pairs = append(pairs, "scrape_interval: 15s", "scrape_interval: "+promDuration(scrape))
	}
	if eval > 0 {
		pairs = append(pairs, "evaluation_interval: 30s", "evaluation_interval: "+promDuration(eval))
	}
	return rewrite("deploy/prometheus/prometheus.yml", src, pairs...)
}

func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// AlertmanagerYAML is deploy/alertmanager/alertmanager.yml with the
// webhook receivers' address (http://127.0.0.1:9094, nothing in compose)
// replaced by hooksURL, a recorder. Routes, receivers' names and inhibit
// rules are kept as shipped.
func AlertmanagerYAML(src []byte, hooksURL string) ([]byte, error) {
	n := bytes.Count(src, []byte("http://127.0.0.1:9094/hooks/"))
	if n < 4 {
		return nil, fmt.Errorf("stack: deploy/alertmanager/alertmanager.yml has %d webhook receivers at http://127.0.0.1:9094/hooks/, want 4: update internal/stack/config.go", n)
	}
	return rewrite("deploy/alertmanager/alertmanager.yml", src, "http://127.0.0.1:9094/hooks/", strings.TrimSuffix(hooksURL, "/")+"/hooks/")
}
