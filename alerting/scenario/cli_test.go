package scenario

import (
	"bytes"
	"maps"
	"slices"
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
	for _, cmd := range slices.Sorted(maps.Keys(subcommands)) {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			code, out, errOut := run(args...)
			if code != 0 || !strings.HasPrefix(out, "usage: loadgen "+cmd+" ") || errOut != "" {
				t.Errorf("loadgen %v: %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code, out, errOut)
			}
			if cmd != "list" && !strings.Contains(out, "-scenario") {
				t.Errorf("loadgen %v does not list the flags: %q", args, out)
			}
		}
		if code, out, errOut := run(cmd, "--bogus"); code != 2 || out != "" || !strings.Contains(errOut, "usage: loadgen "+cmd) {
			t.Errorf("loadgen %s --bogus: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", cmd, code, out, errOut)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"help", "frobnicate"}, {"generate", "--bogus"}, {"score", "extra"}, {"list", "extra"}} {
		if code, _, errOut := run(args...); code != 2 || errOut == "" {
			t.Errorf("loadgen %v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}
