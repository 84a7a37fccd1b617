package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBinaryLinksNoDemoBroker: the in-memory Kafka broker and the
// scenario generator are linked only into demo builds (-tags demo).
func TestProductionBinaryLinksNoDemoBroker(t *testing.T) {
	deps := func(tags ...string) string {
		args := append([]string{"list", "-deps"}, tags...)
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return string(out)
	}
	for _, pkg := range []string{"github.com/twmb/franz-go/pkg/kfake", "github.com/declinemon/declinemon/alerting/scenario", "github.com/declinemon/declinemon/internal/demo"} {
		if strings.Contains(deps(), pkg+"\n") {
			t.Errorf("the production binary links %s", pkg)
		}
	}
	if !strings.Contains(deps("-tags", "demo"), "github.com/twmb/franz-go/pkg/kfake\n") {
		t.Error("the demo build does not link the in-process broker")
	}
}
