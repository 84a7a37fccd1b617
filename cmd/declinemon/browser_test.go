//go:build demo

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowser runs `declinemon demo` as a user would and looks at
// its ops console in a real browser (headless Chromium): the incidents the
// demo injects appear on the page by themselves (live updates), each with
// the remedy the alert record carries, a drill-down opens from an
// incident, and the browser fetches nothing but the console's own
// address. The oracle is the demo's own console output (the alert records
// it printed and the incidents it injected), not the page's code.
// Screenshots go to DECLINEMON_SCREENSHOTS (default: a temp dir).
func TestConsoleInBrowser(t *testing.T) {
	browser := chromiumPath()
	if browser == "" {
		if os.Getenv("DECLINEMON_BROWSER_REQUIRED") != "" {
			t.Fatal("no chromium on PATH (make browser-test installs Debian's)")
		}
		t.Skip("no chromium on PATH")
	}
	shots := os.Getenv("DECLINEMON_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(cfg, []byte("http:\n  listen: "+addr+"\n"), 0o644)
	base := "http://" + addr

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- demoCmd(ctx, []string{"--speed", "240", "--config", cfg}, out, io.Discard) }()
	waitHTTP(t, base+"/healthz", done)

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))...)
	defer stopAlloc()
	bctx, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()
	var mu sync.Mutex
	var fetched []string
	// Loaded before the first incident: it must arrive without a reload.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			fetched = append(fetched, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	wait := func(sel string, d time.Duration) error {
		c, stop := context.WithTimeout(bctx, d)
		defer stop()
		return chromedp.Do(c, chromedp.WaitVisible(chromedp.CSS(sel)))
	}
	text := func(sel string) string {
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}
	if err := wait("article.incident", 3*time.Minute); err != nil {
		t.Fatalf("no incident on the console: %v\ndemo output:\n%s", err, out.String())
	}
	// Let more of the morning play, then look at the whole page.
	wait("article.incident:nth-of-type(3)", 90*time.Second)
	ids, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("article.incident")).map(a => a.dataset.alertId)`))
	if err != nil {
		t.Fatal(err)
	}
	printed := printedAlerts(out.String())
	injected := injectedScopes(out.String())
	if len(ids) == 0 {
		t.Fatal("no incident ids on the page")
	}
	onInjected := 0
	for _, id := range ids {
		sel := `article[data-alert-id="` + id + `"]`
		kindAttr, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS(sel), "data-kind"))
		if err != nil {
			t.Fatalf("incident %s: %v", id, err)
		}
		kind, scope, remedy := kindAttr.Value, text(sel+" a.scope"), text(sel+" .remedy")
		remedy = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(remedy), "What to do:"))
		key := kind + " " + scopeKey(scope)
		want, ok := printed[key]
		if !ok {
			t.Errorf("the page shows %s (%s), which the demo never printed an alert for; printed: %v", key, id, keys(printed))
			continue
		}
		if remedy != want {
			t.Errorf("incident %s remedy on the page %q, the alert record's %q", key, remedy, want)
		}
		if injected[scopeKey(scope)] {
			onInjected++
		}
	}
	if onInjected == 0 {
		t.Errorf("none of the incidents on the page is on a scope the demo injected a fault in (%v)", injected)
	}
	if err := screenshot(bctx, filepath.Join(shots, "console-overview.png")); err != nil {
		t.Fatal(err)
	}

	// The incident list works without JavaScript: it is in the HTML.
	html := get(t, base+"/")
	if !strings.Contains(html, `data-alert-id="`+ids[0]+`"`) {
		t.Errorf("incident %s not in the server-rendered page", ids[0])
	}

	// Drill down from the first incident to its scope.
	first := `article[data-alert-id="` + ids[0] + `"] a.scope`
	scopeText := text(first)
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(first))); err != nil {
		t.Fatal(err)
	}
	if err := wait(`#incident-`+ids[0], 30*time.Second); err != nil {
		t.Fatalf("drill-down did not list incident %s: %v", ids[0], err)
	}
	h1 := text("h1")
	location, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(h1) != strings.TrimSpace(scopeText) || !strings.Contains(location, "/scope/") {
		t.Errorf("drill-down heading %q at %s, want %q", h1, location, scopeText)
	}
	if charts == 0 {
		t.Error("drill-down has no chart bars")
	}
	if err := screenshot(bctx, filepath.Join(shots, "console-scope.png")); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	for _, u := range fetched {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "data" && p.Host != addr) {
			t.Errorf("the console made the browser fetch %s", u)
		}
	}
	mu.Unlock()

	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exited %d:\n%s", code, out.String())
		}
	case <-ctx.Done():
		t.Fatal("demo did not finish")
	}
	t.Logf("screenshots in %s", shots)
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// printedAlerts maps "kind scope_type=scope_id" to the remedy of the
// demo's ALERT lines ("ALERT    kind scope=id at ...", a summary line,
// then "    -> remedy").
func printedAlerts(out string) map[string]string {
	m := map[string]string{}
	var key string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "ALERT" {
			key = f[1] + " " + f[2]
			continue
		}
		if r, ok := strings.CutPrefix(strings.TrimSpace(line), "-> "); ok && key != "" {
			m[key] = r
			key = ""
		}
	}
	return m
}

// injectedScopes are the "scope=id" of the demo's "incidents to expect".
func injectedScopes(out string) map[string]bool {
	m := map[string]bool{}
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "incidents to expect"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			f := strings.Fields(line)
			m[f[len(f)-1]] = true
		case in:
			in = false
		}
	}
	return m
}

// scopeKey turns the page's "Region 310000" into the records' "region=310000".
func scopeKey(s string) string {
	label, id, _ := strings.Cut(strings.TrimSpace(s), " ")
	names := map[string]string{"Terminal": "terminal", "Merchant": "merchant", "Region": "region", "Carrier": "carrier",
		"Host": "host", "Acquirer": "acquirer", "Issuer": "issuer", "Model/firmware": "model"}
	if label == "Network" {
		_, id, _ = strings.Cut(id, " ")
		return "network=" + id
	}
	return names[label] + "=" + id
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func screenshot(ctx context.Context, path string) error {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, buf, 0o644)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, u string, done <-chan int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d before serving", code)
		default:
		}
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered", u)
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
