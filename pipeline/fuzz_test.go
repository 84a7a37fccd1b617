package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// configSecrets are the yaml paths of the secret fields ("[]" walks a
// list): set in a config file, they must never show in the printed Config
// or in a load error.
var configSecrets = []string{
	"kafka.sasl.password",
	"http.bearer_token",
	"http.basic_auth.password",
	"clickhouse.password",
	"webhooks[].secret",
}

// loadTimeout is far above any honest load; a YAML bomb that got past
// yaml's alias limits would hit it.
const loadTimeout = 10 * time.Second

// FuzzLoadConfig feeds arbitrary YAML to LoadConfig. Invariants: no panic,
// no hang; a config that loads passes Validate and survives the calls
// run/replay make on it; the secret fields never show in %v, %+v, %#v, the
// YAML or JSON encoding of the Config, nor in the error.
func FuzzLoadConfig(f *testing.F) {
	clearConfigEnv(f)
	example, err := os.ReadFile("../deploy/declinemon.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"---\n",
		"~\n",
		"[]\n",
		"just a string\n",
		"default_scheme: cup\n---\ndefault_scheme: visa\n",
		"kafka:\n  sasl: {mechanism: PLAIN, username: u, password: hunter2hunter2}\n",
		"kafka:\n  sasl: {mechanism: SCRAM-SHA-9, username: u, password: hunter2hunter2}\n",
		"kafka:\n  sasl: {password: [a, b]}\n",
		"http:\n  bearer_token: tok3ntok3n\n  basic_auth: {username: ops, password: pw-pw-pw-pw}\n",
		"http:\n  bearer_token: !!int tok3ntok3n\n",
		"http: &h {bearer_token: tok3ntok3n}\ndetection: {labels: *h}\n",
		"http: {bearer_token: tok3ntok3n, bearer_tokn: x}\n",
		"clickhouse: {addr: [nohost], password: chpasschpass}\n",
		"webhooks:\n  - {url: 'ftp://x', secret: whsecretwhsecret}\n",
		"default_scheme: 12345678901234567890\n",
		"max_message_bytes: 9999999999999999999999\n",
		"max_message_bytes: 255\n",
		"detection: {alpha: .nan, tick: -1s, rules: {bogus: {min_rate: 2}}}\n",
		"detection:\n  maintenance:\n    - {scope_type: issuer, scope_id: X, start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z}\n",
		"kafka: {flush_interval: 1y, max_wait: 9223372036854775807}\n",
		"alertmanager: {urls: ['http://user:pass@am:9093', '::']}\n",
		"unknown_key: 1\n" + strings.Repeat("k", 10000) + ": 1\n",
		"a: b: c\n",
		"\t- x\n",
		"\"\\xff\\U0010ffff\": 1\n",
		strings.Repeat("[", 10001),
		strings.Repeat("{a: ", 5000),
		strings.Repeat("- ", 10001) + "x\n",
		billionLaughs(9),
		mergeBomb(30),
	} {
		f.Add([]byte(s))
	}

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadWithin(t, path)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("loaded a config that fails Validate: %v", verr)
			}
			_ = c.DecoderConfig()
			_ = c.HTTP.Addr()
			_ = c.Kafka.WithDefaults().Validate()
		}

		// Leak check: plant secret values found nowhere else in the file,
		// reload, and look for them.
		marked, secrets := markSecrets(data)
		if len(secrets) == 0 {
			return
		}
		if err := os.WriteFile(path, marked, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err = loadWithin(t, path)
		outputs := map[string]string{
			"%v":  fmt.Sprintf("%v", c),
			"%+v": fmt.Sprintf("%+v", c),
			"%#v": fmt.Sprintf("%#v", c),
		}
		if err != nil {
			outputs["the error"] = err.Error()
		}
		if y, yerr := yaml.Marshal(c); yerr == nil {
			outputs["yaml"] = string(y)
		}
		if j, jerr := json.Marshal(c); jerr == nil {
			outputs["json"] = string(j)
		}
		for _, s := range secrets {
			for where, out := range outputs {
				if strings.Contains(out, s.value) {
					t.Fatalf("%s leaks in %s; config file:\n%s\noutput:\n%s", s.path, where, marked, out)
				}
			}
		}
	})
}

// clearConfigEnv keeps the environment out of a config test.
func clearConfigEnv(tb interface{ Setenv(k, v string) }) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DECLINEMON_") {
			tb.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
}

func loadWithin(t *testing.T, path string) (Config, error) {
	t.Helper()
	type result struct {
		c   Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := LoadConfig(path)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(loadTimeout):
		t.Fatalf("LoadConfig still running after %s", loadTimeout)
		return Config{}, nil
	}
}

// billionLaughs defines 9^depth labels through merge keys under an unknown
// key (decoding goes on past it) and pulls them into detection.labels, a
// field LoadConfig decodes. Nested lists, the classic form, cannot
// expand: no Config field holds a list of lists.
func billionLaughs(depth int) string {
	var b strings.Builder
	b.WriteString("lol:\n  - &l0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}\n")
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "  - &l%d {<<: [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]}\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	fmt.Fprintf(&b, "detection:\n  labels: {<<: *l%d}\n", depth)
	return b.String()
}

// mergeBomb quadruples a mapping through merge keys depth times, in a
// field (detection.maintenance) that LoadConfig decodes.
func mergeBomb(depth int) string {
	var b strings.Builder
	b.WriteString("detection:\n  maintenance:\n  - &m0 {scope_type: issuer, scope_id: X}\n")
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d, *m%d, *m%d], note: n}\n", i, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

type markedSecret struct{ path, value string }

// secretMark starts every planted secret; inputs that already contain it
// are not leak-checked.
const secretMark = "zS3cr3t"

// markSecrets rewrites a YAML document so that every secret path holds a
// unique value, adding the keys where the document leaves room. Secrets
// under an anchor are left alone: aliases may legitimately copy them into
// printed fields.
func markSecrets(data []byte) ([]byte, []markedSecret) {
	if bytes.Contains(data, []byte(secretMark)) {
		return nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) != 1 {
		return nil, nil
	}
	var secrets []markedSecret
	for _, p := range configSecrets {
		for _, leaf := range secretNodes(doc.Content[0], strings.Split(p, ".")) {
			v := fmt.Sprintf("%s%d-%s", secretMark, len(secrets), strings.ReplaceAll(p, "[]", ""))
			*leaf = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
			secrets = append(secrets, markedSecret{p, v})
		}
	}
	if len(secrets) == 0 {
		return nil, nil
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, nil
	}
	return out, secrets
}

// secretNodes finds (creating where the document leaves room) the scalar
// nodes at path under n, skipping anything anchored or aliased.
func secretNodes(n *yaml.Node, path []string) []*yaml.Node {
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		return nil
	}
	if len(path) == 0 {
		if n.Kind != yaml.ScalarNode {
			return nil // a type error, not a secret
		}
		return []*yaml.Node{n}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	key, list := strings.CutSuffix(path[0], "[]")
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind != yaml.ScalarNode || k.Value != key || k.Anchor != "" {
			continue
		}
		v := n.Content[i+1]
		if !list {
			return secretNodes(v, path[1:])
		}
		if v.Kind != yaml.SequenceNode || v.Anchor != "" {
			return nil
		}
		var out []*yaml.Node
		for _, e := range v.Content {
			out = append(out, secretNodes(e, path[1:])...)
		}
		return out
	}
	if list {
		return nil // lists are not invented
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if len(path) == 1 {
		v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str"}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return secretNodes(v, path[1:])
}

// Credentials FuzzHandler configures.
