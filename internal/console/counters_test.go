package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// startCountersServer is startServer (noauth) with a console that asks
// counters of fn; fn gets the console, to compile what the host would hold.
func startCountersServer(t *testing.T, fn func(c *Console, host string, ports []string) (*hostview.CountersAnswer, error)) *testServer {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	h := api.New(api.Options{Store: st, Auth: api.NoAuth{}, Logger: log})
	var c *Console
	c, err = New(Options{API: h, Store: st, Auth: "noauth", Logger: log,
		Counters: func(ctx context.Context, host string, ports []string) (*hostview.CountersAnswer, error) {
			return fn(c, host, ports)
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Mount(h, c))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return &testServer{URL: srv.URL, Store: st}
}

var packetsCell = regexp.MustCompile(`<td class="num packets">(\d+)</td>`)

// TestPortPageCounters: the port page shows the packets and bytes the
// host's agent reports for the port's own chains, with the host and the
// time they were read; a rule the host holds otherwise is "differs"; an
// agent that is not connected, does not answer or reads no counters gives
// a note, never an error page.
func TestPortPageCounters(t *testing.T) {
	readAt := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var mode string
	var asked []string
	s := startCountersServer(t, func(c *Console, host string, ports []string) (*hostview.CountersAnswer, error) {
		asked = append([]string{host}, ports...)
		switch mode {
		case "not connected":
			return nil, fmt.Errorf("%w: host %s", watch.ErrHostNotConnected, host)
		case "timeout":
			return nil, fmt.Errorf("%w (2s, host %s)", watch.ErrCountersTimeout, host)
		case "nft":
			return &hostview.CountersAnswer{Error: "counters not available on the nftables backend"}, nil
		case "failed":
			return nil, fmt.Errorf("database <b>down</b>")
		}
		h, _, err := c.compileHost(context.Background(), ports[0])
		if err != nil {
			return nil, err
		}
		ex, err := h.Explain(ports[0], "")
		if err != nil {
			return nil, err
		}
		a := &hostview.CountersAnswer{ReadAt: readAt, Ports: map[string][]hostview.RuleCounter{ports[0]: {}}}
		for _, r := range ex.Rows {
			if !strings.HasPrefix(r.Chain, "neutron-openvswi-i") {
				continue
			}
			rc := hostview.RuleCounter{Family: r.Family, Table: r.Table, Chain: r.Chain, Rule: r.Rule,
				Number: r.Number, Packets: uint64(1000 + r.Number), Bytes: uint64(84000 + r.Number)}
			switch {
			case mode == "differs" && r.Number == 1:
				rc.Rule = "-j ACCEPT"
			case mode == "nftables":
				rc.Rule, rc.Origin = "", nftrender.OriginTag(&hybrid.Origin{Kind: hybrid.OriginKind(r.Kind), Rules: r.Rules})
				if r.Number == 1 {
					rc.Origin = "default-drop" // another rule at this place
				}
			}
			a.Ports[ports[0]] = append(a.Ports[ports[0]], rc)
		}
		return a, nil
	})
	_, pid, _ := fixture(t, s.URL, "web", "vm1", "host1")
	b := newBrowser(t, s.URL)
	page := func() string {
		t.Helper()
		code, _, body := b.get("/ui/ports/" + pid)
		if code != http.StatusOK {
			t.Fatalf("port page (%s): %d\n%s", mode, code, body)
		}
		return body
	}

	body := page()
	if len(asked) != 2 || asked[0] != "host1" || asked[1] != pid {
		t.Errorf("asked %v, want host1 and the port", asked)
	}
	cells := packetsCell.FindAllStringSubmatch(body, -1)
	if len(cells) < 2 || cells[0][1] != "1001" || !strings.Contains(body, `<td class="num bytes">84001</td>`) {
		t.Errorf("packets cells %v, want the i chain's rules from 1001", cells)
	}
	for _, want := range []string{"<th scope=\"col\">Packets</th>", "read by the agent of host host1 at 2026-12-03T10:00:00Z", "<td class=\"num\">-</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the port page lacks %q", want)
		}
	}

	mode = "differs"
	body = page()
	if !strings.Contains(body, ">differs</td>") || !strings.Contains(body, "rule(s) differ from the host") || strings.Contains(body, ">1001<") {
		t.Errorf("a rule the host holds otherwise: no 'differs'")
	}
	// The nftables backend: matched by position and origin.
	mode = "nftables"
	body = page()
	cells = packetsCell.FindAllStringSubmatch(body, -1)
	if len(cells) < 2 || cells[0][1] != "1002" || !strings.Contains(body, ">differs</td>") {
		t.Errorf("nftables: packets cells %v, want rule 1 'differs' and the next ones counted", cells)
	}
	for m, want := range map[string]string{
		"not connected": "the agent of host host1 is not connected to this server",
		"timeout":       "did not answer within 2s",
		"nft":           "counters not available on the nftables backend",
		"failed":        "the request failed",
	} {
		mode = m
		body = page()
		if !strings.Contains(body, want) || packetsCell.MatchString(body) {
			t.Errorf("%s: the page lacks %q (or shows counters)", m, want)
		}
		if strings.Contains(body, "<b>down</b>") {
			t.Errorf("%s: an error reached the page unescaped", m)
		}
	}
}
