// Package agentbench measures how long an API call takes to be enforced
// in the kernel: a moat API server and a host agent (real iptables and
// ipset in a scratch network namespace, wiring faked) share a store; a
// rule is created over HTTP and the clock stops when the agent's apply of
// that revision has returned.
package agentbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/scratchns"
	"github.com/moat-sg/moat/internal/store"
)

// Options configure a run.
type Options struct {
	Backend agent.Backend
	Ports   int
	// Changes is how many rule creations are timed.
	Changes int
	Log     func(format string, args ...any)
}

// Result is one run's latencies.
type Result struct {
	Backend   string  `json:"backend"`
	Ports     int     `json:"ports"`
	Changes   int     `json:"changes"`
	P50ms     float64 `json:"api_to_kernel_p50_ms"`
	P99ms     float64 `json:"api_to_kernel_p99_ms"`
	MaxMs     float64 `json:"api_to_kernel_max_ms"`
	InitialMs float64 `json:"initial_sync_ms"`
	RulesIPv4 int     `json:"rules_ipv4"`
}

const host = "bench-host"

var admin = http.Header{"X-User-Id": {"bench"}, "X-Project-Id": {"benchproject"}, "X-Roles": {"admin"}, "Content-Type": {"application/json"}}

// Run measures API-to-kernel latency for one backend and host size.
func Run(ctx context.Context, opt Options) (*Result, error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	scratch, err := scratchns.New("mbench")
	if err != nil {
		return nil, err
	}
	defer scratch.Delete()
	ns := scratch.Netns
	dir, err := os.MkdirTemp("", "moat-agentbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "moat.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	quotas := map[string]int64{}
	for _, r := range api.QuotaResourceNames() {
		quotas[r] = -1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: api.New(api.Options{Store: st, Auth: api.HeaderAuth{}, Quotas: quotas, Logger: quiet})}
	go srv.Serve(ln)
	defer srv.Close()
	c := &client{base: "http://" + ln.Addr().String(), http: &http.Client{Timeout: time.Minute}}

	logf("agent bench: %s, %d ports: creating ports through the API", opt.Backend, opt.Ports)
	groups, err := seed(c, opt.Ports)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}

	var mu sync.Mutex
	applied := int64(-1)
	wake := make(chan struct{}, 1)
	cfg := agent.DefaultConfig()
	cfg.Logger = quiet
	cfg.CheckInterval = time.Hour
	cfg.OnSynced = func(rev int64) {
		mu.Lock()
		applied = rev
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	rules, sets, err := opt.Backend.Kernel(ns)
	if err != nil {
		return nil, err
	}
	a := agent.New(cfg, agent.StoreFeed{Store: st, Host: host}, rules, sets,
		agent.Wire(wiring.NewFake(wiring.KindOVS)), &conntrack.Recorder{})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()

	waitFor := func(rev int64, timeout time.Duration) error {
		deadline := time.After(timeout)
		for {
			mu.Lock()
			got := applied
			mu.Unlock()
			if got >= rev {
				return nil
			}
			select {
			case <-wake:
			case <-deadline:
				return fmt.Errorf("agent did not apply revision %d within %s (applied %d)", rev, timeout, got)
			case err := <-done:
				return fmt.Errorf("agent stopped: %v", err)
			}
		}
	}
	latest := func() (int64, error) {
		var rev int64
		err := st.Read(ctx, func(tx *store.Tx) error {
			var err error
			rev, err = tx.LatestRevision(ctx)
			return err
		})
		return rev, err
	}
	start := time.Now()
	rev, err := latest()
	if err != nil {
		return nil, err
	}
	if err := waitFor(rev, 10*time.Minute); err != nil {
		return nil, err
	}
	res := &Result{Backend: string(opt.Backend), Ports: opt.Ports, Changes: opt.Changes,
		InitialMs: float64(time.Since(start).Microseconds()) / 1000}
	logf("agent bench: initial sync of %d ports took %.0f ms; timing %d rule changes", opt.Ports, res.InitialMs, opt.Changes)

	var lat []time.Duration
	for i := 0; i < opt.Changes; i++ {
		g := groups[i%len(groups)]
		t0 := time.Now()
		body := fmt.Sprintf(`{"security_group_rule": {"security_group_id": %q, "direction": "ingress", "protocol": "tcp", "port_range_min": %d, "port_range_max": %d}}`,
			g, 20000+i, 20000+i)
		if err := c.do("POST", "/v2.0/security-group-rules", body, http.StatusCreated, nil); err != nil {
			return nil, err
		}
		rev, err := latest()
		if err != nil {
			return nil, err
		}
		if err := waitFor(rev, time.Minute); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	cancel()
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	res.P50ms, res.P99ms, res.MaxMs = pct(0.5), pct(0.99), pct(1)
	res.RulesIPv4 = countRules(ctx, ns, opt.Backend)
	return res, nil
}

// seed creates a network, a subnet, a common group and ten app groups
// with a few rules, and ports bound to the bench host, each in common and
// one app group (the compiler benchmark's shape). It returns the app groups.
func seed(c *client, ports int) ([]string, error) {
	var net struct{ Network struct{ ID string } }
	if err := c.do("POST", "/v2.0/networks", `{"network": {"name": "bench"}}`, http.StatusCreated, &net); err != nil {
		return nil, err
	}
	if err := c.do("POST", "/v2.0/subnets", fmt.Sprintf(`{"subnet": {"network_id": %q, "ip_version": 4, "cidr": "10.0.0.0/16", "enable_dhcp": false}}`, net.Network.ID), http.StatusCreated, nil); err != nil {
		return nil, err
	}
	mkGroup := func(name string) (string, error) {
		var g struct {
			SecurityGroup struct{ ID string } `json:"security_group"`
		}
		if err := c.do("POST", "/v2.0/security-groups", fmt.Sprintf(`{"security_group": {"name": %q}}`, name), http.StatusCreated, &g); err != nil {
			return "", err
		}
		var rules []string
		for i := 0; i < 8; i++ {
			rules = append(rules, fmt.Sprintf(`{"security_group_id": %q, "direction": "ingress", "protocol": "tcp", "port_range_min": %d, "port_range_max": %d}`, g.SecurityGroup.ID, 1000+i, 1000+i))
		}
		rules = append(rules, fmt.Sprintf(`{"security_group_id": %q, "direction": "ingress", "remote_group_id": %q}`, g.SecurityGroup.ID, g.SecurityGroup.ID))
		body := `{"security_group_rules": [` + strings.Join(rules, ", ") + `]}`
		return g.SecurityGroup.ID, c.do("POST", "/v2.0/security-group-rules", body, http.StatusCreated, nil)
	}
	common, err := mkGroup("common")
	if err != nil {
		return nil, err
	}
	var apps []string
	for i := 0; i < 10; i++ {
		g, err := mkGroup(fmt.Sprintf("app%d", i))
		if err != nil {
			return nil, err
		}
		apps = append(apps, g)
	}
	for start := 0; start < ports; start += 500 {
		var items []string
		for i := start; i < start+500 && i < ports; i++ {
			items = append(items, fmt.Sprintf(`{"network_id": %q, "binding:host_id": %q, "security_groups": [%q, %q]}`,
				net.Network.ID, host, common, apps[i%10]))
		}
		if err := c.do("POST", "/v2.0/ports", `{"ports": [`+strings.Join(items, ", ")+`]}`, http.StatusCreated, nil); err != nil {
			return nil, err
		}
	}
	return apps, nil
}

type client struct {
	base string
	http *http.Client
}

func (c *client) do(method, path, body string, want int, out any) error {
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header = admin.Clone()
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// countRules counts the IPv4 rules in the namespace: iptables-save's -A
// lines, or the rules of nftables' ip table (`nft -a` numbers each rule
// with a handle; chain and set lines carry theirs at the head).
func countRules(ctx context.Context, ns dataplane.Exec, b agent.Backend) int {
	if b == agent.NFTablesLayout {
		out, err := ns.Run(ctx, nil, "nft", "-a", "list", "table", "ip", "moat")
		if err != nil {
			return 0
		}
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			if strings.Contains(line, "# handle ") && !strings.HasPrefix(line, "chain ") && !strings.HasPrefix(line, "set ") &&
				!strings.HasPrefix(line, "map ") && !strings.HasPrefix(line, "table ") {
				n++
			}
		}
		return n
	}
	out, err := ns.Run(ctx, nil, iptables.Backend(b).Command(iptables.IPv4, "save"))
	if err != nil {
		return 0
	}
	return bytes.Count(out, []byte("\n-A "))
}
