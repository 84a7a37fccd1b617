package scenario

import (
	"bytes"
	"strings"
	"testing"
)

// TestMainHelpAndExitCodes: --help for the command and every subcommand
// goes to stdout with exit 0; usage errors exit 2.
func TestMainHelpAndExitCodes(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, h := range []string{"--help", "-h", "help"} {
		if code, out, _ := run(h); code != 0 || !strings.Contains(out, "produce") {
			t.Errorf("loadgen %s: %d %q", h, code, out)
		}
	}
	for _, cmd := range []string{"generate", "produce", "score"} {
		if code, out, _ := run(cmd, "--help"); code != 0 || !strings.Contains(out, "-scenario") {
			t.Errorf("loadgen %s --help: %d, stdout %q", cmd, code, out)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"generate", "--bogus"}, {"score", "extra"}} {
		if code, _, errOut := run(args...); code != 2 || errOut == "" {
			t.Errorf("loadgen %v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}
