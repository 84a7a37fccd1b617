//go:build !demo

package main

import (
	"context"
	"fmt"
	"io"
)

// demoCmd: this binary was built without the demo, so production builds
// link no in-memory broker.
func demoCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("demo", "[--speed 60] [--config FILE]   (binaries built with make demo)", stdout)
	f.Float64("speed", 60, "event time runs this many times faster than the clock (0: as fast as possible)")
	f.String("config", "", "optional YAML configuration (http, detection, alertmanager, webhooks)")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	fmt.Fprintln(stderr, "demo: this binary was built without the demo; run `make demo` (go build -tags demo ./cmd/declinemon)")
	return 2
}
