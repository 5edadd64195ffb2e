// Package agentbench measures how long an API call takes to be enforced
// in the kernel: a moat API server and a host agent (real iptables and
// ipset in a scratch network namespace, wiring faked) that follows the
// server's watch stream as `moat agent` does (or, with FeedStore, reads
// the shared store directly); a rule is created over HTTP and the clock
// stops when the agent's apply of that revision has returned.
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
	"slices"
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
	"github.com/moat-sg/moat/internal/watch"
)

// Options configure a run.
type Options struct {
	Backend agent.Backend
	Ports   int
	// Changes is how many rule creations are timed.
	Changes int
	// Feed is FeedWatch (the default: the watch stream over HTTP, as
	// `moat agent --server` and `moat allinone` run) or FeedStore (the
	// deprecated `moat agent --db`: the whole host re-read per change).
	Feed string
	Log  func(format string, args ...any)
}

// The agent's feeds.
const (
	FeedWatch = "watch"
	FeedStore = "store"
)

// Result is one run's latencies.
type Result struct {
	Backend   string  `json:"backend"`
	Feed      string  `json:"feed"`
	Ports     int     `json:"ports"`
	Changes   int     `json:"changes"`
	P50ms     float64 `json:"api_to_kernel_p50_ms"`
	P99ms     float64 `json:"api_to_kernel_p99_ms"`
	MaxMs     float64 `json:"api_to_kernel_max_ms"`
	InitialMs float64 `json:"initial_sync_ms"`
	RulesIPv4 int     `json:"rules_ipv4"`
	// The latency's two halves: from the API call until the agent's sync
	// began (the server's commit and, with the watch, the delta's
	// delivery), and the sync itself (compile, ipset, iptables).
	// The floor, iptables backends only: after the changes, bare
	// iptables-restore --noflush runs in the same namespace, each the
	// median of a few: an empty filter transaction, one rule appended to
	// one port chain, and the last change again as the agent wrote it (one
	// -I per port chain of the group, after a -D of the same rules).
	BareEmptyMs  float64 `json:"bare_empty_restore_ms,omitempty"`
	BareOneMs    float64 `json:"bare_one_rule_restore_ms,omitempty"`
	BareChangeMs float64 `json:"bare_change_restore_ms,omitempty"`
	BareChains   int     `json:"bare_change_chains,omitempty"`
	// CallP50ms and CallP99ms are the API call's own response time (its
	// validation and durable commit), part of the time to the sync.
	CallP50ms   float64 `json:"call_p50_ms"`
	CallP99ms   float64 `json:"call_p99_ms"`
	ToSyncP50ms float64 `json:"to_sync_p50_ms"`
	ToSyncP99ms float64 `json:"to_sync_p99_ms"`
	SyncP50ms   float64 `json:"sync_p50_ms"`
	SyncP99ms   float64 `json:"sync_p99_ms"`
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
	groups, portIDs, err := seed(c, opt.Ports)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}

	var mu sync.Mutex
	applied := int64(-1)
	var syncStart, appliedStart time.Time // the last sync's start, the start of the one that applied
	wake := make(chan struct{}, 1)
	mark := func() {
		mu.Lock()
		syncStart = time.Now()
		mu.Unlock()
	}
	cfg := agent.DefaultConfig()
	cfg.Logger = quiet
	cfg.CheckInterval = time.Hour
	cfg.OnSynced = func(rev int64) {
		mu.Lock()
		applied, appliedStart = rev, syncStart
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
	if opt.Feed == "" {
		opt.Feed = FeedWatch
	}
	var feed agent.Feed
	var follow func(context.Context) error
	switch opt.Feed {
	case FeedStore:
		feed = timedStore{agent.StoreFeed{Store: st, Host: host}, mark}
	case FeedWatch:
		wc, err := watch.NewClient(watch.ClientConfig{URL: c.base, Host: host, Logger: quiet,
			HTTPClient: &http.Client{Transport: adminTransport{http.DefaultTransport}}})
		if err != nil {
			return nil, err
		}
		feed, follow = timedWatch{wc, mark}, wc.Run
	default:
		return nil, fmt.Errorf("feed %q: want %s or %s", opt.Feed, FeedWatch, FeedStore)
	}
	// Every port's VM is running: its tap joins the bridge once the
	// port's rules are in, as on a real host.
	wire := wiring.NewFake(wiring.KindOVS)
	for _, id := range portIDs {
		wire.AddTap(id)
	}
	a := agent.New(cfg, feed, rules, sets, agent.Wire(wire), &conntrack.Recorder{})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	following := make(chan struct{})
	go func() {
		defer close(following)
		if follow != nil {
			_ = follow(actx)
		}
	}()
	defer func() { cancel(); <-following }()

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
	res := &Result{Backend: string(opt.Backend), Feed: opt.Feed, Ports: opt.Ports, Changes: opt.Changes,
		InitialMs: float64(time.Since(start).Microseconds()) / 1000}
	logf("agent bench: initial sync of %d ports took %.0f ms; timing %d rule changes", opt.Ports, res.InitialMs, opt.Changes)

	var lat, calls, toSync, syncs []time.Duration
	for i := 0; i < opt.Changes; i++ {
		g := groups[i%len(groups)]
		t0 := time.Now()
		body := fmt.Sprintf(`{"security_group_rule": {"security_group_id": %q, "direction": "ingress", "protocol": "tcp", "port_range_min": %d, "port_range_max": %d}}`,
			g, 20000+i, 20000+i)
		if err := c.do("POST", "/v2.0/security-group-rules", body, http.StatusCreated, nil); err != nil {
			return nil, err
		}
		calls = append(calls, time.Since(t0))
		rev, err := latest()
		if err != nil {
			return nil, err
		}
		if err := waitFor(rev, time.Minute); err != nil {
			return nil, err
		}
		end := time.Now()
		mu.Lock()
		began := appliedStart
		mu.Unlock()
		if began.Before(t0) {
			began = t0
		}
		lat, toSync, syncs = append(lat, end.Sub(t0)), append(toSync, began.Sub(t0)), append(syncs, end.Sub(began))
	}
	cancel()
	<-done
	res.P50ms, res.P99ms, res.MaxMs = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)
	res.CallP50ms, res.CallP99ms = percentile(calls, 0.5), percentile(calls, 0.99)
	res.ToSyncP50ms, res.ToSyncP99ms = percentile(toSync, 0.5), percentile(toSync, 0.99)
	res.SyncP50ms, res.SyncP99ms = percentile(syncs, 0.5), percentile(syncs, 0.99)
	res.RulesIPv4 = countRules(ctx, ns, opt.Backend)
	if opt.Backend != agent.NFTablesLayout && opt.Changes > 0 {
		if err := bareRestores(ctx, ns, iptables.Backend(opt.Backend), 20000+opt.Changes-1, res); err != nil {
			return nil, fmt.Errorf("bare restores: %w", err)
		}
	}
	return res, nil
}

// bareRestores times bare iptables-restore runs into the namespace the
// agent left (see Result.BareEmptyMs): what the kernel and the tool cost
// on this ruleset without the agent around them. The last change is the
// rule for port; the agent is stopped, and every run is undone.
func bareRestores(ctx context.Context, ns dataplane.Exec, b iptables.Backend, port int, res *Result) error {
	save, err := ns.Run(ctx, nil, b.Command(iptables.IPv4, "save"), "-t", "filter")
	if err != nil {
		return err
	}
	// The change's rules and their positions, and a port chain to append to.
	want := fmt.Sprintf(" -p tcp -m tcp --dport %d -j RETURN", port)
	var ins, del bytes.Buffer
	count := map[string]int{}
	appendTo := ""
	for _, line := range strings.Split(string(save), "\n") {
		rest, ok := strings.CutPrefix(line, "-A ")
		if !ok {
			continue
		}
		chain, spec, _ := strings.Cut(rest, " ")
		count[chain]++
		if strings.HasSuffix(line, want) {
			fmt.Fprintf(&ins, "-I %s %d %s\n", chain, count[chain], spec)
			fmt.Fprintf(&del, "-D %s %d\n", chain, count[chain])
			res.BareChains++
			appendTo = chain
		}
	}
	if res.BareChains == 0 {
		return fmt.Errorf("no rule for port %d in the filter table", port)
	}
	args := []string{"--noflush"}
	if b == iptables.Legacy {
		args = append([]string{"-w"}, args...)
	}
	restore := func(body string) (time.Duration, error) {
		t0 := time.Now()
		_, err := ns.Run(ctx, []byte("*filter\n"+body+"COMMIT\n"), b.Command(iptables.IPv4, "restore"), args...)
		return time.Since(t0), err
	}
	const reps = 7
	var empty, one, change []time.Duration
	for range reps {
		d, err := restore("")
		if err != nil {
			return err
		}
		empty = append(empty, d)
		if d, err = restore("-A " + appendTo + " -p tcp -m tcp --dport 1 -j RETURN\n"); err != nil {
			return err
		}
		one = append(one, d)
		if _, err := restore(fmt.Sprintf("-D %s %d\n", appendTo, count[appendTo]+1)); err != nil {
			return err
		}
		if _, err := restore(del.String()); err != nil {
			return err
		}
		if d, err = restore(ins.String()); err != nil {
			return err
		}
		change = append(change, d)
	}
	res.BareEmptyMs, res.BareOneMs, res.BareChangeMs = percentile(empty, 0.5), percentile(one, 0.5), percentile(change, 0.5)
	return nil
}

// percentile is sample ⌊p·(n−1)⌋ of the sorted samples, in ms.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
}

// timedStore and timedWatch are the agent's feeds, marking when a sync
// begins (each sync starts by taking the host's snapshot).
type timedStore struct {
	agent.StoreFeed
	mark func()
}

func (f timedStore) Snapshot(ctx context.Context) (*store.HostSnapshot, error) {
	f.mark()
	return f.StoreFeed.Snapshot(ctx)
}

type timedWatch struct {
	*watch.Client
	mark func()
}

func (f timedWatch) Snapshot(ctx context.Context) (*store.HostSnapshot, error) {
	f.mark()
	return f.Client.Snapshot(ctx)
}

// adminTransport sends the bench's admin headers (the server
// authenticates by headers) with the watch client's requests.
type adminTransport struct{ rt http.RoundTripper }

func (t adminTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range admin {
		if r.Header.Get(k) == "" {
			r.Header[k] = v
		}
	}
	return t.rt.RoundTrip(r)
}

// seed creates a network, a subnet, a common group and ten app groups
// with a few rules, and ports bound to the bench host, each in common and
// one app group (the compiler benchmark's shape). It returns the app
// groups and the ports.
func seed(c *client, ports int) (apps, ids []string, err error) {
	var net struct{ Network struct{ ID string } }
	if err := c.do("POST", "/v2.0/networks", `{"network": {"name": "bench"}}`, http.StatusCreated, &net); err != nil {
		return nil, nil, err
	}
	if err := c.do("POST", "/v2.0/subnets", fmt.Sprintf(`{"subnet": {"network_id": %q, "ip_version": 4, "cidr": "10.0.0.0/16", "enable_dhcp": false}}`, net.Network.ID), http.StatusCreated, nil); err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	for i := 0; i < 10; i++ {
		g, err := mkGroup(fmt.Sprintf("app%d", i))
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, g)
	}
	for start := 0; start < ports; start += 500 {
		var items []string
		for i := start; i < start+500 && i < ports; i++ {
			items = append(items, fmt.Sprintf(`{"network_id": %q, "binding:host_id": %q, "security_groups": [%q, %q]}`,
				net.Network.ID, host, common, apps[i%10]))
		}
		var created struct{ Ports []struct{ ID string } }
		if err := c.do("POST", "/v2.0/ports", `{"ports": [`+strings.Join(items, ", ")+`]}`, http.StatusCreated, &created); err != nil {
			return nil, nil, err
		}
		for _, p := range created.Ports {
			ids = append(ids, p.ID)
		}
	}
	return apps, ids, nil
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
