package console

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moat-sg/moat/internal/testenv"
)

// chromiumPath is Debian's chromium (the Makefile's TEST_PACKAGES).
const chromiumPath = "/usr/bin/chromium"

// artifactDir is where the browser test keeps its screenshots: $MOAT_ARTIFACTS
// (CI keeps it), or the test's temporary directory.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("MOAT_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives the console in a real Chromium: sign in (Keystone),
// create a group, add a rule through the form, trace a packet to the hop
// where it stops, allow it with one click and see it pass. Any JavaScript
// error or console error fails the test.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.CLI.Missing(t, "the browser test needs Debian's chromium (%v); install it with `apt-get install -y chromium`", err)
	}
	ks := startKeystone(t)
	s := startServer(t, ks, nil)
	shots := artifactDir(t)
	t.Logf("screenshots in %s", shots)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser, which lives as long as its
	// context: the timeout goes on the steps after it.
	messages := chromedp.Console(bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var jsErrors []string
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				jsErrors = append(jsErrors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	fail := func(step string, err error) {
		t.Helper()
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("%s: %v\nat %s\n%s", step, err, loc, html)
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("read "+sel, err)
		}
		return s
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			fail("evaluate "+js, err)
		}
		return n
	}
	// change fires the event a user's choice fires (SetValue does not).
	change := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).dispatchEvent(new Event("change"))`, sel))(ctx, tg)
			return err
		})
	}

	do("sign in",
		chromedp.Navigate(s.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		shot("01-sign-in"),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice-pw"),
		// Enter in the last field signs in, as a keyboard user would.
		chromedp.SendKeys(chromedp.CSS("#project"), "alpha\r"),
		chromedp.WaitVisible(chromedp.CSS("#create-group")),
	)
	do("create a group",
		chromedp.SendKeys(chromedp.CSS("#sg-name"), "web"),
		chromedp.SendKeys(chromedp.CSS("#sg-description"), "front ends"),
		chromedp.Click(chromedp.CSS("#create-group button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#add-rule")),
	)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		fail("location", err)
	}
	groupID := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], s.URL+"/ui/security-groups/")
	do("choose Other Protocol", chromedp.SetValue(chromedp.CSS("#rule"), "custom"), change("#rule"))
	protoVisible := eval(`document.getElementById("ip_protocol").closest("[hidden]") === null ? 1 : 0`)
	do("choose SSH", chromedp.SetValue(chromedp.CSS("#rule"), "ssh"), change("#rule"))
	portHidden := eval(`document.getElementById("port").closest("[hidden]") !== null ? 1 : 0`)
	if protoVisible != 1 || portHidden != 1 {
		t.Errorf("the Add Rule form: IP Protocol visible for Other Protocol %d (want 1), Port hidden for SSH %d (want 1)", protoVisible, portHidden)
	}
	do("add an SSH rule",
		chromedp.SetValue(chromedp.CSS("#cidr"), "10.0.0.0/8"),
		chromedp.Click(chromedp.CSS("#add-rule button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
		shot("02-group"),
	)
	if rules := text("#rules tbody"); !strings.Contains(rules, "Ingress") || !strings.Contains(rules, "22") || !strings.Contains(rules, "10.0.0.0/8") {
		t.Errorf("the rules table after Add: %q", rules)
	}

	// Nova would create the port; here the admin does, bound to host1.
	portID, portIP := adminPort(t, s.URL, ks, groupID)

	do("trace a packet that is dropped",
		chromedp.Navigate(s.URL+"/ui/trace"),
		chromedp.WaitVisible(chromedp.CSS("#trace-form")),
		chromedp.SetValue(chromedp.CSS("#t-port"), portID),
		chromedp.SetValue(chromedp.CSS("#t-direction"), "ingress"),
		chromedp.Clear(chromedp.CSS("#t-protocol")),
		chromedp.SendKeys(chromedp.CSS("#t-protocol"), "tcp"),
		chromedp.SendKeys(chromedp.CSS("#t-src"), "198.51.100.7"),
		chromedp.SendKeys(chromedp.CSS("#t-dport"), "443"),
		chromedp.Click(chromedp.CSS("#trace-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#trace-result")),
		chromedp.ScrollIntoView(chromedp.CSS("#trace-result")),
		shot("03-trace-stopped"),
	)
	verdict := text("#verdict")
	if stops := eval(`document.querySelectorAll('li.hop-stop[data-hop="qbr"]').length`); !strings.Contains(verdict, "DROP") || stops != 1 {
		t.Fatalf("the trace to %s: verdict %q, %d stops at qbr; want DROP at qbr", portIP, verdict, stops)
	}
	do("allow it with one click (the keyboard's: focus and Enter)",
		chromedp.Focus(chromedp.CSS("#allow button[type=submit]")),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
		chromedp.WaitVisible(chromedp.CSS("#trace-result")),
		shot("04-trace-allowed"), // docs/console.png

	)
	verdict = text("#verdict")
	if blocked := eval(`document.querySelectorAll("li.hop-stop, li.hop-unreached").length`); !strings.Contains(verdict, "ACCEPT") || blocked != 0 {
		t.Errorf("after Allow it: verdict %q, %d hops stopped or not reached; want ACCEPT through every hop", verdict, blocked)
	}
	do("the port's page",
		chromedp.Navigate(s.URL+"/ui/ports/"+portID),
		chromedp.WaitVisible(chromedp.CSS("#compiled-rules")),
		shot("05-port"),
	)
	// This server asks no agent: the page says why there are no counters.
	if note := text("#counters-note"); !strings.Contains(note, "Hit counters are not shown") {
		t.Errorf("the port page's counters note: %q", note)
	}
	// A last round trip, so that the messages of the last page are in.
	eval(`1`)
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrors) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(jsErrors, "\n"))
	}
}

// adminPort creates, with the Keystone admin's token, a network, a subnet
// and a port of project p-alpha in group gid, bound to host1.
func adminPort(t *testing.T, base, keystone, gid string) (id, ip string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, keystone+"/auth/tokens", strings.NewReader(
		`{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "root", "password": "root-pw"}}}, "scope": {"project": {"name": "admin"}}}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok := resp.Header.Get("X-Subject-Token")
	var n struct {
		Network struct{ ID string } `json:"network"`
	}
	apiDo(t, base, http.MethodPost, "networks", tok, `{"network": {"name": "net", "project_id": "p-alpha"}}`, &n)
	apiDo(t, base, http.MethodPost, "subnets", tok, fmt.Sprintf(`{"subnet": {"network_id": %q, "cidr": "10.0.0.0/24", "ip_version": 4, "project_id": "p-alpha"}}`, n.Network.ID), nil)
	var p struct {
		Port struct {
			ID       string
			FixedIPs []struct {
				IPAddress string `json:"ip_address"`
			} `json:"fixed_ips"`
		} `json:"port"`
	}
	apiDo(t, base, http.MethodPost, "ports", tok, fmt.Sprintf(`{"port": {"network_id": %q, "name": "vm1", "project_id": "p-alpha", "binding:host_id": "host1", "security_groups": [%q]}}`, n.Network.ID, gid), &p)
	return p.Port.ID, p.Port.FixedIPs[0].IPAddress
}
