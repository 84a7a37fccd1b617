package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"
)

func TestNeverPrints(t *testing.T) {
	type config struct {
		User     string
		Password String `yaml:"password" json:"password"`
	}
	var c config
	if err := yaml.Unmarshal([]byte("password: hunter2-very-secret\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != "hunter2-very-secret" || !c.Password.IsSet() {
		t.Fatalf("loaded %q", c.Password.Reveal())
	}
	j, _ := json.Marshal(c)
	y, _ := yaml.Marshal(c)
	core, logs := observer.New(zap.InfoLevel)
	zap.New(core).Info("config", zap.Any("config", c), zap.Stringer("password", c.Password))
	var logged strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&logged, "%v", e.ContextMap())
	}
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %d %x %10.3v", c, c, c, c.Password, c.Password, c.Password, c.Password, c.Password), string(j), string(y), logged.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}
