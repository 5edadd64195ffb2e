// Package watchbench measures the server's watch streams with many agents
// (`moat bench watch`): N agents — the real agent loop and watch client,
// with fake dataplanes — follow R server replicas in this process through
// a small load balancer, over one database. It times an API change to the
// moment every interested agent has applied it, counts the bytes each
// host receives (those whose rules the change does not touch should get
// none), the heap per watch, a restart of every agent at once (snapshots
// counted) and a replica killed under the agents (they resume elsewhere
// without a snapshot).
package watchbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/apibench"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// Config is one run.
type Config struct {
	Agents   int // hosts, one agent each (default 100)
	Replicas int // servers over DB (default 1; more need PostgreSQL)
	DB       string
	Ports    int // ports per host (default 5)
	Groups   int // security groups; the hosts of group G-1 get no change (default 10)
	Changes  int // rules created, one at a time (default 100)
	// Timeout bounds the wait for one change on every interested host.
	Timeout time.Duration
	Log     func(format string, args ...any)
}

// Result is the JSON `moat bench watch` prints.
type Result struct {
	Agents   int    `json:"agents"`
	Replicas int    `json:"replicas"`
	DB       string `json:"db"`
	Ports    int    `json:"ports"`
	Groups   int    `json:"groups"`
	Changes  int    `json:"changes"`

	SetupSeconds    float64 `json:"setup_s"`
	FirstSyncSecond float64 `json:"first_sync_all_s"` // every agent's snapshot applied
	HeapPerWatchKB  float64 `json:"heap_per_watch_kb"`

	// API change (request sent) -> applied by an interested agent.
	ChangeP50Ms float64 `json:"change_p50_ms"`
	ChangeP99Ms float64 `json:"change_p99_ms"`
	ChangeMaxMs float64 `json:"change_max_ms"`
	// Pairs (change, interested host) not applied within Timeout.
	Missed int `json:"missed"`
	// Bytes a host received per change: hosts the change concerns, and
	// the hosts of the last group, which no change concerns.
	BytesPerChangeInterested   float64 `json:"bytes_per_change_interested_host"`
	BytesPerChangeUninterested float64 `json:"bytes_per_change_uninterested_host"`
	InterestedHostsPerChange   float64 `json:"interested_hosts_per_change"`

	// Every agent restarted at once: time until all have applied the
	// latest revision again, and the snapshots that took.
	RestartAllSeconds float64 `json:"restart_all_s"`
	RestartSnapshots  int     `json:"restart_snapshots"`

	// A replica killed (R > 1): its agents' reconnects, resumes and
	// snapshots, and a change made after it applied everywhere.
	KillReplicaResumes   int     `json:"kill_replica_resumes,omitempty"`
	KillReplicaSnapshots int     `json:"kill_replica_snapshots,omitempty"`
	AfterKillMaxMs       float64 `json:"after_kill_max_ms,omitempty"`

	// One host of group 0 stops reading its stream (connection open)
	// while group 0 changes: the p99 of the other hosts of group 0 then
	// (a stuck reader must hold up nobody), and once it reads again, how
	// long until it enforces the last change and the snapshots it took.
	StalledOthersP99Ms   float64 `json:"stalled_others_p99_ms"`
	StalledCaughtUpMs    float64 `json:"stalled_caught_up_ms"`
	StalledSnapshots     int     `json:"stalled_snapshots"`
	StalledChangesMissed int     `json:"stalled_changes_missed_by_others"`

	// One host cut off while its group changes and the change log is
	// compacted below its revision: the resyncs it made when back, and
	// how long until it enforced the latest revision again.
	CompactResyncs    int     `json:"compact_resyncs"`
	CompactRecoveredS float64 `json:"compact_recovered_s"`

	// Writers committing rules concurrently with random delays inside
	// their transactions (commit order differs from start order): hosts
	// whose view then differs from the database's (a lost revision).
	ConcurrentWrites int `json:"concurrent_writes"`
	LostHosts        int `json:"lost_hosts"`
}

func (c *Config) defaults() error {
	if c.Agents == 0 {
		c.Agents = 100
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Ports == 0 {
		c.Ports = 5
	}
	if c.Groups == 0 {
		c.Groups = 10
	}
	if c.Changes == 0 {
		c.Changes = 100
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	switch {
	case c.Agents < 1 || c.Agents > 5000:
		return fmt.Errorf("--agents %d: want 1..5000", c.Agents)
	case c.Groups < 2 || c.Groups > c.Agents:
		return fmt.Errorf("--groups %d: want 2..agents (%d)", c.Groups, c.Agents)
	case c.Ports < 1 || c.Agents*c.Ports > 60000:
		return fmt.Errorf("--ports %d per host: want 1.. and at most 60000 in all", c.Ports)
	case c.Changes < 1:
		return fmt.Errorf("--changes %d: want at least 1", c.Changes)
	}
	return nil
}

// host is one agent and what the bench knows of it.
type host struct {
	name   string
	group  int
	client *watch.Client
	net    *countingTransport
	bytes  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	applied int64
	wake    chan struct{}
}

func (h *host) appliedRev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applied
}

// waitRule waits until the host's agent has applied a view holding the
// rule; it returns when. (On PostgreSQL revisions are numbered after
// commit, so the change's revision is not known when its request returns:
// the rule's arrival in the watch client's view tells it — the view's
// revision then, which the agent must have applied.)
func (h *host) waitRule(groupID, ruleID string, deadline time.Time) (time.Time, bool) {
	var arrived int64 = -1
	for {
		if arrived < 0 {
			if rev, ok := h.holds(groupID, ruleID); ok {
				arrived = rev
			}
		}
		if arrived >= 0 && h.appliedRev() >= arrived {
			return time.Now(), true
		}
		select {
		case <-h.wake:
		case <-h.client.Changed():
		case <-time.After(min(5*time.Millisecond, time.Until(deadline))):
			if time.Now().After(deadline) {
				return time.Time{}, false
			}
		}
	}
}

// holds reports whether the watch client's view has the rule, and the
// view's revision.
func (h *host) holds(groupID, ruleID string) (int64, bool) {
	ctx := context.Background()
	rev, _ := h.client.LatestRevision(ctx)
	view, err := h.client.Snapshot(ctx)
	if err != nil || view == nil {
		return 0, false
	}
	if g := view.Groups[groupID]; g != nil {
		for _, r := range g.Rules {
			if r.ID == ruleID {
				return rev, true
			}
		}
	}
	return 0, false
}

// waitSynced waits until the host's agent has synced once since it started.
func (h *host) waitSynced(deadline time.Time) bool {
	for {
		if h.appliedRev() >= 0 {
			return true
		}
		select {
		case <-h.wake:
		case <-time.After(time.Until(deadline)):
			return h.appliedRev() >= 0
		}
	}
}

// countingTransport counts the response bytes of one host's requests,
// and can cut the host off the network (partition).
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64

	mu      sync.Mutex
	blocked bool
	open    map[io.ReadCloser]bool
	gate    chan struct{} // non-nil: reads wait until it closes (a stalled reader)
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	blocked := c.blocked
	c.mu.Unlock()
	if blocked {
		return nil, errors.New("partitioned")
	}
	resp, err := c.rt.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		if c.open == nil {
			c.open = map[io.ReadCloser]bool{}
		}
		c.open[resp.Body] = true
		c.mu.Unlock()
		resp.Body = countingBody{resp.Body, c}
	}
	return resp, err
}

// partition cuts the host's streams and fails its requests until heal.
func (c *countingTransport) partition() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = true
	for b := range c.open {
		b.Close()
	}
	c.open = nil
}

func (c *countingTransport) heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = false
}

// stall makes the host's agent stop reading its streams (an agent stuck,
// its connection open) until unstall.
func (c *countingTransport) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gate = make(chan struct{})
}

func (c *countingTransport) unstall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
}

type countingBody struct {
	io.ReadCloser
	t *countingTransport
}

func (b countingBody) Read(p []byte) (int, error) {
	b.t.mu.Lock()
	gate := b.t.gate
	b.t.mu.Unlock()
	if gate != nil {
		<-gate
	}
	n, err := b.ReadCloser.Read(p)
	b.t.n.Add(int64(n))
	return n, err
}

// balancer sends each request to the next live replica (streams stay on
// the replica they started on until it goes).
type balancer struct {
	mu    sync.Mutex
	next  int
	alive []bool
	urls  []*url.URL
}

func (b *balancer) pick() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.urls {
		i := b.next % len(b.urls)
		b.next++
		if b.alive[i] {
			return b.urls[i]
		}
	}
	return b.urls[0]
}

func (b *balancer) kill(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.alive[i] = false
}

// nopRules and nopSets are dataplanes that accept everything.
type nopRules struct{}

func (nopRules) Apply(context.Context, *firewall.Ruleset) error { return nil }
func (nopRules) Check(context.Context, *firewall.Ruleset) ([]string, error) {
	return nil, nil
}
func (nopRules) CanaryPresent(context.Context) (bool, error) { return true, nil }
func (nopRules) Invalidate()                                 {}
func (nopRules) InstalledZones(context.Context) (map[string]int, error) {
	return map[string]int{}, nil
}

type nopSets struct{}

func (nopSets) Apply(context.Context, []firewall.IPSet) ([]string, error) { return nil, nil }
func (nopSets) Destroy(context.Context, []string) error                   { return nil }
func (nopSets) Check(context.Context, []firewall.IPSet) ([]string, error) { return nil, nil }
func (nopSets) Invalidate()                                               {}

type bench struct {
	cfg      Config
	servers  []*apibench.Server
	lb       *balancer
	front    *httptest.Server
	hc       *http.Client
	hosts    []*host
	tokens   map[string]string
	quiet    *slog.Logger
	groupIDs []string
}

// Run runs the bench and returns its result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, tokens: map[string]string{}, hc: &http.Client{Timeout: 30 * time.Second},
		quiet: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := 0; i < cfg.Agents; i++ {
		name := fmt.Sprintf("bench-host-%04d", i)
		b.tokens[name] = fmt.Sprintf("token-%04d-%d", i, time.Now().UnixNano())
		b.hosts = append(b.hosts, &host{name: name, group: i % cfg.Groups})
	}
	servers, err := apibench.StartWatchReplicas(ctx, cfg.DB, cfg.Replicas, nil, b.tokens)
	if err != nil {
		return nil, err
	}
	b.servers = servers
	defer func() {
		for _, s := range b.servers {
			if s != nil {
				s.Close()
			}
		}
	}()
	b.lb = &balancer{alive: make([]bool, len(servers))}
	for i, s := range servers {
		u, _ := url.Parse(s.URL)
		b.lb.urls = append(b.lb.urls, u)
		b.lb.alive[i] = true
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(b.lb.pick()) },
		FlushInterval: -1, // the watch streams: every frame at once
		ErrorLog:      nil,
	}
	b.front = httptest.NewServer(proxy)
	defer b.front.Close()
	res := &Result{Agents: cfg.Agents, Replicas: cfg.Replicas, DB: store.Redact(servers[0].DB), Ports: cfg.Ports, Groups: cfg.Groups, Changes: cfg.Changes}

	t0 := time.Now()
	cfg.Log("watch bench: %d hosts x %d ports in %d groups, through %d replica(s)", cfg.Agents, cfg.Ports, cfg.Groups, cfg.Replicas)
	if err := b.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	res.SetupSeconds = since(t0)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t1 := time.Now()
	for _, h := range b.hosts {
		if err := b.startAgent(ctx, h); err != nil {
			return nil, err
		}
	}
	defer b.stopAgents()
	if err := b.waitAll(cfg.Timeout + time.Duration(cfg.Agents)*100*time.Millisecond); err != nil {
		return nil, fmt.Errorf("first sync: %w", err)
	}
	res.FirstSyncSecond = since(t1)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.HeapPerWatchKB = round(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(cfg.Agents)/1024, 1)
	cfg.Log("watch bench: %d agents synced in %.2fs", cfg.Agents, res.FirstSyncSecond)

	if err := b.changes(ctx, res); err != nil {
		return nil, err
	}
	if err := b.stalledReader(ctx, res); err != nil {
		return nil, err
	}
	if err := b.restartAll(ctx, res); err != nil {
		return nil, err
	}
	if cfg.Replicas > 1 {
		if err := b.killReplica(ctx, res); err != nil {
			return nil, err
		}
	}
	if err := b.compaction(ctx, res); err != nil {
		return nil, err
	}
	if err := b.writers(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

func since(t time.Time) float64 { return round(time.Since(t).Seconds(), 3) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

// call makes an admin API call through the balancer.
func (b *bench) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.front.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", "bench-admin")
	req.Header.Set("X-Project-Id", "bench-project")
	req.Header.Set("X-Roles", "admin")
	resp, err := b.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// setup creates a network, a /16 subnet, the groups (each with a rule
// whose remote is the group itself: members matter) and the ports.
func (b *bench) setup(ctx context.Context) error {
	// Neutron's default quotas (10 groups, 100 rules, 500 ports) are
	// below a bench's size: unlimited for its project.
	if err := b.call(ctx, "PUT", "/v2.0/quotas/bench-project", map[string]any{"quota": map[string]any{
		"security_group": -1, "security_group_rule": -1, "port": -1, "network": -1, "subnet": -1}}, nil); err != nil {
		return err
	}
	var nw struct {
		Network struct{ ID string } `json:"network"`
	}
	if err := b.call(ctx, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "watch-bench"}}, &nw); err != nil {
		return err
	}
	if err := b.call(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": nw.Network.ID, "cidr": "10.0.0.0/16", "ip_version": 4}}, nil); err != nil {
		return err
	}
	groups := make([]string, b.cfg.Groups)
	for g := range groups {
		var r struct {
			G struct{ ID string } `json:"security_group"`
		}
		if err := b.call(ctx, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": fmt.Sprintf("bench-%d", g)}}, &r); err != nil {
			return err
		}
		groups[g] = r.G.ID
		if err := b.call(ctx, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": r.G.ID, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
			"port_range_min": 22, "port_range_max": 22, "remote_group_id": r.G.ID}}, nil); err != nil {
			return err
		}
	}
	b.groupIDs = groups
	n := 0
	for _, h := range b.hosts {
		for p := 0; p < b.cfg.Ports; p++ {
			if err := b.call(ctx, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
				"network_id": nw.Network.ID, "security_groups": []string{groups[h.group]},
				"binding:host_id": h.name, "device_owner": "compute:bench"}}, nil); err != nil {
				return err
			}
			n++
		}
		if n%500 == 0 {
			b.cfg.Log("watch bench: %d/%d ports", n, b.cfg.Agents*b.cfg.Ports)
		}
	}
	return nil
}

func (b *bench) liveServer() *apibench.Server {
	b.lb.mu.Lock()
	defer b.lb.mu.Unlock()
	for i, s := range b.servers {
		if b.lb.alive[i] && s != nil {
			return s
		}
	}
	return b.servers[0]
}

func (b *bench) startAgent(ctx context.Context, h *host) error {
	h.mu.Lock()
	h.applied, h.wake = -1, make(chan struct{}, 1)
	h.mu.Unlock()
	h.net = &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone(), n: &h.bytes}
	hc := &http.Client{Transport: h.net}
	c, err := watch.NewClient(watch.ClientConfig{URL: b.front.URL, Host: h.name, Token: b.tokens[h.name], HTTPClient: hc,
		Logger: b.quiet, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		return err
	}
	h.client = c
	acfg := agent.DefaultConfig()
	acfg.Logger = b.quiet
	acfg.CheckInterval, acfg.TapInterval = time.Hour, time.Hour
	acfg.OnSynced = func(rev int64) {
		h.mu.Lock()
		h.applied = rev
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	a := agent.New(acfg, c, nopRules{}, nopSets{}, agent.Wire(wiring.NewFake(wiring.KindOVS)), &conntrack.Recorder{})
	actx, cancel := context.WithCancel(ctx)
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { _ = c.Run(actx) }()
	go func() { defer close(h.done); _ = a.Run(actx) }()
	return nil
}

func (b *bench) stopAgents() {
	for _, h := range b.hosts {
		if h.cancel != nil {
			h.cancel()
			<-h.done
			h.cancel = nil
		}
	}
}

// waitAll waits until every agent has synced (its snapshot) since it
// started.
func (b *bench) waitAll(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, h := range b.hosts {
		if !h.waitSynced(deadline) {
			return fmt.Errorf("host %s has not synced within %s", h.name, timeout)
		}
	}
	return nil
}

// changes creates rules one at a time in the groups 0..G-2 (group G-1's
// hosts are never concerned) and times each until every host with a
// port in that group applied it.
func (b *bench) changes(ctx context.Context, res *Result) error {
	cfg := b.cfg
	bytes0 := make([]int64, len(b.hosts))
	for i, h := range b.hosts {
		bytes0[i] = h.bytes.Load()
	}
	var lat []time.Duration
	pairs := 0
	for i := 0; i < cfg.Changes; i++ {
		g := i % (cfg.Groups - 1)
		start := time.Now()
		id, err := b.ruleIn(ctx, g, 1000+i)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(cfg.Timeout)
		for _, h := range b.hosts {
			if h.group != g {
				continue
			}
			pairs++
			at, ok := h.waitRule(b.groupIDs[g], id, deadline)
			if !ok {
				res.Missed++
				continue
			}
			lat = append(lat, at.Sub(start))
		}
		if (i+1)%25 == 0 {
			cfg.Log("watch bench: %d/%d changes, p99 so far %.1f ms", i+1, cfg.Changes, ms(apibench.Percentile(lat, 99)))
		}
	}
	// Let the last frames arrive before counting.
	time.Sleep(200 * time.Millisecond)
	var interested, uninterested int64
	quiet := 0
	for i, h := range b.hosts {
		d := h.bytes.Load() - bytes0[i]
		if h.group == cfg.Groups-1 {
			uninterested += d
			quiet++
		} else {
			interested += d
		}
	}
	res.ChangeP50Ms = ms(apibench.Percentile(lat, 50))
	res.ChangeP99Ms = ms(apibench.Percentile(lat, 99))
	res.ChangeMaxMs = ms(apibench.Percentile(lat, 100))
	res.InterestedHostsPerChange = round(float64(pairs)/float64(cfg.Changes), 2)
	if pairs > 0 {
		res.BytesPerChangeInterested = round(float64(interested)/float64(pairs), 1)
	}
	if quiet > 0 {
		res.BytesPerChangeUninterested = round(float64(uninterested)/float64(quiet)/float64(cfg.Changes), 1)
	}
	return nil
}

func (b *bench) snapshots() (snaps, resumes int) {
	for _, h := range b.hosts {
		s := h.client.Stats()
		snaps += s.Snapshots
		resumes += s.Resumes
	}
	return
}

// restartAll stops every agent and starts new ones at once.
func (b *bench) restartAll(ctx context.Context, res *Result) error {
	b.stopAgents()
	t := time.Now()
	for _, h := range b.hosts {
		if err := b.startAgent(ctx, h); err != nil {
			return err
		}
	}
	if err := b.waitAll(b.cfg.Timeout + time.Duration(b.cfg.Agents)*100*time.Millisecond); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	res.RestartAllSeconds = since(t)
	res.RestartSnapshots, _ = b.snapshots()
	b.cfg.Log("watch bench: %d agents restarted at once, synced again in %.2fs", b.cfg.Agents, res.RestartAllSeconds)
	return nil
}

// killReplica closes replica 0 under its agents; they reconnect through
// the balancer to another and resume. A change made then must reach
// every interested host.
func (b *bench) killReplica(ctx context.Context, res *Result) error {
	snaps0, resumes0 := b.snapshots()
	b.lb.kill(0)
	if err := b.servers[0].Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		b.cfg.Log("watch bench: closing replica 0: %v", err)
	}
	b.servers[0] = nil
	start := time.Now()
	g := 0
	id, err := b.ruleIn(ctx, g, 999)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(b.cfg.Timeout)
	var worst time.Duration
	for _, h := range b.hosts {
		if h.group != g {
			continue
		}
		at, ok := h.waitRule(b.groupIDs[g], id, deadline)
		if !ok {
			res.Missed++
			continue
		}
		worst = max(worst, at.Sub(start))
	}
	// Let every agent of the closed replica reconnect (backoff ≤ 1 s).
	time.Sleep(1500 * time.Millisecond)
	snaps, resumes := b.snapshots()
	res.KillReplicaSnapshots, res.KillReplicaResumes = snaps-snaps0, resumes-resumes0
	res.AfterKillMaxMs = ms(worst)
	b.cfg.Log("watch bench: replica 0 killed: %d resumes, %d snapshots; the next change applied within %.1f ms", res.KillReplicaResumes, res.KillReplicaSnapshots, res.AfterKillMaxMs)
	return nil
}

// stalledReader stops one host of group 0 reading while 20 rules are
// created in group 0, timing them on the other hosts of the group; then
// lets it read and times its catching up.
func (b *bench) stalledReader(ctx context.Context, res *Result) error {
	const changes = 20
	stuck := b.hosts[0]
	snaps0 := stuck.client.Stats().Snapshots
	stuck.net.stall()
	defer stuck.net.unstall()
	var lat []time.Duration
	var last string
	for i := 0; i < changes; i++ {
		start := time.Now()
		id, err := b.ruleIn(ctx, 0, 3000+i)
		if err != nil {
			return err
		}
		last = id
		deadline := time.Now().Add(b.cfg.Timeout)
		for _, h := range b.hosts[1:] {
			if h.group != 0 {
				continue
			}
			at, ok := h.waitRule(b.groupIDs[0], id, deadline)
			if !ok {
				res.StalledChangesMissed++
				continue
			}
			lat = append(lat, at.Sub(start))
		}
	}
	res.StalledOthersP99Ms = ms(apibench.Percentile(lat, 99))
	start := time.Now()
	stuck.net.unstall()
	if _, ok := stuck.waitRule(b.groupIDs[0], last, time.Now().Add(b.cfg.Timeout)); !ok {
		return fmt.Errorf("host %s did not catch up after reading again (applied %d)", stuck.name, stuck.appliedRev())
	}
	res.StalledCaughtUpMs = ms(time.Since(start))
	res.StalledSnapshots = stuck.client.Stats().Snapshots - snaps0
	b.cfg.Log("watch bench: one reader stalled for %d changes: the others' p99 %.1f ms; it caught up %.1f ms after reading again, %d snapshot(s)",
		changes, res.StalledOthersP99Ms, res.StalledCaughtUpMs, res.StalledSnapshots)
	return nil
}

// ruleIn creates a UDP rule for port in group g through the API and
// returns its id.
func (b *bench) ruleIn(ctx context.Context, g, port int) (string, error) {
	var r struct {
		R struct{ ID string } `json:"security_group_rule"`
	}
	err := b.call(ctx, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": b.groupIDs[g], "direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
		"port_range_min": port, "port_range_max": port}}, &r)
	return r.R.ID, err
}

// compaction cuts one host of group 0 off, changes group 0, compacts the
// change log to its latest revision and lets the host back: it must
// resync (a snapshot) and enforce the latest revision.
func (b *bench) compaction(ctx context.Context, res *Result) error {
	h := b.hosts[0]
	before := h.client.Stats().Resyncs
	h.net.partition()
	var last string
	for i := 0; i < 5; i++ {
		id, err := b.ruleIn(ctx, 0, 2000+i)
		if err != nil {
			return err
		}
		last = id
	}
	// The log dates changes to the second: let this one end, so that a
	// retention of 0 removes all but the latest change.
	time.Sleep(1100 * time.Millisecond)
	if _, err := b.liveServer().Watch().Compact(ctx, 0); err != nil {
		return fmt.Errorf("compact the change log: %w", err)
	}
	start := time.Now()
	h.net.heal()
	if _, ok := h.waitRule(b.groupIDs[0], last, time.Now().Add(b.cfg.Timeout)); !ok {
		return fmt.Errorf("host %s did not get the changes made while it was away past the compaction (applied %d)", h.name, h.appliedRev())
	}
	res.CompactRecoveredS = since(start)
	res.CompactResyncs = h.client.Stats().Resyncs - before
	b.cfg.Log("watch bench: a host away past the compacted log: %d resync(s), back in %.2fs", res.CompactResyncs, res.CompactRecoveredS)
	return nil
}

// writers runs 4 writers, each committing 10 rules on the live replicas'
// stores with a random delay inside the transaction, so that revisions
// are taken in one order and committed in another; then every host's
// view must equal the database's.
func (b *bench) writers(ctx context.Context, res *Result) error {
	const writers, each = 4, 10
	var live []*apibench.Server
	for _, s := range b.servers {
		if s != nil {
			live = append(live, s)
		}
	}
	errc := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			st := live[w%len(live)].Store()
			for i := 0; i < each; i++ {
				g := (w + i) % (b.cfg.Groups - 1)
				proto, port := "udp", 3000+w*100+i
				delay := time.Duration(rand.IntN(50)) * time.Millisecond
				err := st.WriteConcurrent(ctx, func(tx *store.Tx) error {
					if err := tx.CreateRules(ctx, []*neutron.SecurityGroupRule{{ProjectID: "bench-project", SecurityGroupID: b.groupIDs[g],
						Direction: "ingress", Ethertype: "IPv4", Protocol: &proto, PortRangeMin: &port, PortRangeMax: &port}}); err != nil {
						return err
					}
					time.Sleep(delay) // commit late
					return nil
				})
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errc; err != nil {
			return fmt.Errorf("concurrent writer: %w", err)
		}
	}
	res.ConcurrentWrites = writers * each
	// A host's agent applies only the revisions that concern it: wait
	// (bounded) until every view equals the database's, then count those
	// that do not.
	deadline := time.Now().Add(b.cfg.Timeout)
	for {
		res.LostHosts = 0
		var differ []string
		for _, h := range b.hosts {
			same, err := b.viewMatches(ctx, h)
			if err != nil {
				return err
			}
			if !same {
				res.LostHosts++
				differ = append(differ, h.name)
			}
		}
		if res.LostHosts == 0 || time.Now().After(deadline) {
			if len(differ) > 0 {
				b.cfg.Log("watch bench: hosts whose view differs from the database after the concurrent writes: %v", differ)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.cfg.Log("watch bench: %d concurrent writes with commit delays: %d host(s) lost a revision", res.ConcurrentWrites, res.LostHosts)
	return nil
}

// viewMatches compares the host's view with the database's.
func (b *bench) viewMatches(ctx context.Context, h *host) (bool, error) {
	view, err := h.client.Snapshot(ctx)
	if err != nil {
		return false, err
	}
	var want *store.HostSnapshot
	if err := b.liveServer().Store().Read(ctx, func(tx *store.Tx) (err error) {
		want, err = tx.HostSnapshot(ctx, h.name)
		return err
	}); err != nil {
		return false, err
	}
	return sameRules(view, want), nil
}

// sameRules compares the rule ids of every group two snapshots hold.
func sameRules(a, b *store.HostSnapshot) bool {
	ids := func(s *store.HostSnapshot) map[string]bool {
		m := map[string]bool{}
		for gid, g := range s.Groups {
			for _, r := range g.Rules {
				m[gid+"/"+r.ID] = true
			}
		}
		return m
	}
	x, y := ids(a), ids(b)
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}
