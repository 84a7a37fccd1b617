// Package rulesgen builds declinemon's default classification rules file
// from the reference tables (response-codes.tsv, terminal-errors.tsv).
// Run through `go generate ./classify`.
package rulesgen

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Generate writes the rules file for the reference tables in dir to w.
func Generate(dir string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, `# declinemon classification rules, format v1.
# Generated from the reference response-code and terminal-error tables by
# classify/internal/rulesgen; copy and extend it, then pass --rules FILE.
#
# Columns (tab-separated):
#   kind       response (host response code) or terminal (terminal-local error)
#   scheme     cup, iso8583, or * for both; always * for terminal rows
#   code       the response code (2 characters) or terminal error identifier
#   cause      approved, or one of: hardware network data_transmission
#              issuer_credit maintenance fraud_risk operator_error
#              merchant_account policy unknown
#   retryable  yes, later, no, or - when not known
#   meaning    free text
# A later row for the same kind/scheme/code replaces an earlier one, so an
# extended copy can override defaults by appending rows.
kind	scheme	code	cause	retryable	meaning
`)
	err := eachRow(filepath.Join(dir, "response-codes.tsv"), func(col map[string]string) {
		cause := col["cause"]
		if strings.HasPrefix(col["meaning"], "APPROVAL") {
			cause = "approved"
		}
		fmt.Fprintf(bw, "response\t%s\t%s\t%s\t%s\t%s\n", col["scheme"], col["code"], cause, dash(col["retryable"]), clean(col["meaning"]))
	})
	if err != nil {
		return err
	}
	err = eachRow(filepath.Join(dir, "terminal-errors.tsv"), func(col map[string]string) {
		fmt.Fprintf(bw, "terminal\t*\t%s\t%s\t-\t%s\n", col["code"], col["cause"], clean(col["meaning"]))
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func eachRow(path string, fn func(map[string]string)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading reference table: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	header := strings.Split(lines[0], "\t")
	for i, line := range lines[1:] {
		fields := strings.Split(line, "\t")
		if len(fields) != len(header) {
			return fmt.Errorf("%s:%d: %d columns, want %d", path, i+2, len(fields), len(header))
		}
		col := make(map[string]string, len(header))
		for j, h := range header {
			col[h] = strings.TrimSpace(fields[j])
		}
		fn(col)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clean(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
}
