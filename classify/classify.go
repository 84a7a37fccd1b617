// Package classify assigns every declined or failed transaction attempt
// exactly one decline cause, from a rules table that is data: a default
// rules file embedded in the binary (built from the reference response-code
// and terminal-error tables) or an operator's extended copy.
//
// The package is pure: it reads no files except a rules file handed to
// LoadFile, and keeps no counters. Callers count unknown codes using
// Result.Known.
package classify

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/declinemon/declinemon/event"
)

//go:embed rules/default.tsv
var defaultRules string

// Result is the classification of one event.
type Result struct {
	// Cause is event.CauseNone for an approval, else the decline cause.
	Cause event.Cause
	// Known is false when the deciding code is not in the rules; the cause
	// is then event.CauseUnknown and the code should be counted.
	Known bool
}

// Approved reports whether the attempt succeeded.
func (r Result) Approved() bool { return r.Cause == event.CauseNone }

// Rule is one row of a rules file.
type Rule struct {
	Terminal  bool         // terminal-local error rather than response code
	Scheme    event.Scheme // SchemeUnset means every scheme
	Code      string
	Cause     event.Cause // CauseNone for approval codes
	Retryable string
	Meaning   string
}

// Rules is a loaded rules table. It is read-only after loading and safe for
// concurrent use.
type Rules struct {
	// response[scheme][code] where code is two bytes packed into a uint16;
	// notFound marks codes absent from the table.
	response [3][]uint8
	terminal map[string]event.Cause
	rules    []Rule
}

const notFound = 0xff

// Default returns the rules embedded in the binary.
func Default() *Rules {
	r, err := Parse(strings.NewReader(defaultRules))
	if err != nil {
		// The embedded file is tested; failing here is a build defect.
		panic(fmt.Sprintf("classify: embedded rules are invalid: %v", err))
	}
	return r
}

// LoadFile reads a rules file.
func LoadFile(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening rules file: %w", err)
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return r, nil
}

// Parse reads a rules table in the tab-separated format of
// rules/default.tsv. Later rows override earlier rows for the same key.
func Parse(in io.Reader) (*Rules, error) {
	r := &Rules{terminal: make(map[string]event.Cause)}
	for s := range r.response {
		r.response[s] = make([]uint8, 1<<16)
		for i := range r.response[s] {
			r.response[s][i] = notFound
		}
	}
	sc := bufio.NewScanner(in)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "kind\t") {
			continue
		}
		rule, err := parseRule(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		r.add(rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	if len(r.rules) == 0 {
		return nil, fmt.Errorf("no rules found")
	}
	return r, nil
}

func parseRule(text string) (Rule, error) {
	f := strings.Split(text, "\t")
	if len(f) < 4 {
		return Rule{}, fmt.Errorf("want at least 4 tab-separated columns (kind, scheme, code, cause), got %d", len(f))
	}
	var rule Rule
	switch f[0] {
	case "response":
	case "terminal":
		rule.Terminal = true
	default:
		return Rule{}, fmt.Errorf("kind %s: want response or terminal", quote(f[0]))
	}
	switch f[1] {
	case "*", "":
	default:
		s, ok := event.ParseScheme(f[1])
		if !ok {
			return Rule{}, fmt.Errorf("scheme %s: want cup, iso8583 or *", quote(f[1]))
		}
		if rule.Terminal {
			// Classify looks terminal errors up without a scheme, so a
			// scheme here would be silently ignored.
			return Rule{}, fmt.Errorf("scheme %s: terminal rows apply to every scheme, want *", quote(f[1]))
		}
		rule.Scheme = s
	}
	rule.Code = strings.TrimSpace(f[2])
	if rule.Code == "" {
		return Rule{}, fmt.Errorf("empty code")
	}
	if !rule.Terminal && len(rule.Code) != 2 {
		return Rule{}, fmt.Errorf("response code %s: want exactly 2 characters", quote(rule.Code))
	}
	c, ok := event.ParseCause(f[3])
	if !ok {
		return Rule{}, fmt.Errorf("cause %s is not in the taxonomy", quote(f[3]))
	}
	if rule.Terminal && c == event.CauseNone {
		return Rule{}, fmt.Errorf("terminal error %s cannot be an approval", quote(rule.Code))
	}
	rule.Cause = c
	if len(f) > 4 {
		rule.Retryable = f[4]
	}
	if len(f) > 5 {
		rule.Meaning = f[5]
	}
	return rule, nil
}

// maxQuoted bounds how many characters of a bad field an error quotes:
// enough to find it in the file, not a copy of a 64 KiB line.
const maxQuoted = 40

func quote(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%.*q...", maxQuoted, s)
}

func (r *Rules) add(rule Rule) {
	r.rules = append(r.rules, rule)
	if rule.Terminal {
		r.terminal[rule.Code] = rule.Cause
		return
	}
	k := packCode(rule.Code)
	if rule.Scheme == event.SchemeUnset {
		r.response[event.SchemeISO8583][k] = uint8(rule.Cause)
		r.response[event.SchemeCUP][k] = uint8(rule.Cause)
		return
	}
	r.response[rule.Scheme][k] = uint8(rule.Cause)
}

func packCode(code string) uint16 { return uint16(code[0])<<8 | uint16(code[1]) }

// Classify decides the outcome of ev. A terminal error takes precedence over
// the response code: it means the attempt failed on the terminal or in
// transit, whatever the host answered.
func (r *Rules) Classify(ev *event.Event) Result {
	if ev.TerminalError != "" {
		if c, ok := r.terminal[ev.TerminalError]; ok {
			return Result{Cause: c, Known: true}
		}
		return Result{Cause: event.CauseUnknown}
	}
	if len(ev.ResponseCode) != 2 || int(ev.Scheme) >= len(r.response) {
		return Result{Cause: event.CauseUnknown}
	}
	c := r.response[ev.Scheme][packCode(ev.ResponseCode)]
	if c == notFound {
		return Result{Cause: event.CauseUnknown}
	}
	return Result{Cause: event.Cause(c), Known: true}
}

// Rules returns the loaded rows in file order.
func (r *Rules) Rules() []Rule { return r.rules }
