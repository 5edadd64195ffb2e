// Package apibench is a load generator for Neutron-compatible security group
// APIs (moat or the real neutron-server): it measures rule creates per
// second and list latency at many rules, using X-User-Id/X-Project-Id/X-Roles
// header identity (moat --auth headers, Neutron's keystone pipeline without
// keystonemiddleware). `moat bench api` is its command line.
package apibench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-sg/moat/internal/cputime"
)

// Config is one benchmark run.
type Config struct {
	// URL is the API endpoint, e.g. http://127.0.0.1:9696 (no /v2.0).
	URL string
	// ReplicaURLs are more endpoints of the same API (server replicas on
	// one database): the timed creates go round-robin over URL and these.
	ReplicaURLs []string
	// Target names the endpoint in the results (e.g. "moat-sqlite").
	Target string
	// Rules is how many rules are created one POST each (the timed phase).
	Rules int
	// ListRules is how many rules the bench creates in total before the
	// list phase; the ones beyond Rules are created with bulk POSTs of
	// BulkBatch rules. Zero means Rules.
	ListRules int
	BulkBatch int
	// Concurrency is the number of clients creating rules at once.
	Concurrency int
	// Groups is how many security groups the rules are spread over.
	Groups int
	// ListRepeat is how many times each list is timed.
	ListRepeat int
	// Project is the project (tenant) the rules belong to; empty means a
	// fresh random one, so runs against a shared server do not collide.
	Project string
	// ServerPIDs are processes whose CPU time (with all their descendants)
	// is reported as server_cpu_s, e.g. neutron-server and the PostgreSQL
	// postmaster.
	ServerPIDs []int
	// Timeout bounds each HTTP request.
	Timeout time.Duration
	// Progress receives progress lines and error details (nil: discarded).
	Progress io.Writer
	// ProgressEvery is how many creates pass between progress lines.
	ProgressEvery int
	// Cleanup deletes the bench's groups (and so their rules) at the end.
	Cleanup bool
}

// Result is one measurement, printed as one JSON line. Field order is fixed.
type Result struct {
	Bench       string `json:"bench"`
	Target      string `json:"target"`
	Case        string `json:"case"`
	Requests    int    `json:"requests"`
	Concurrency int    `json:"concurrency"`
	// Rules is the number of rules created (create cases) or returned by
	// the list (list cases, embedded rules for list_groups).
	Rules int `json:"rules"`
	// Groups is the number of groups the rules were spread over (create
	// cases) or returned by the list.
	Groups int     `json:"groups"`
	WallS  float64 `json:"wall_s"`
	// RulesPerS is rules created per second of wall time (create cases).
	RulesPerS float64 `json:"rules_per_s,omitempty"`
	// P50Ms, P99Ms and MaxMs are per-request latencies.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Bytes is the size of a list response body.
	Bytes  int64 `json:"bytes,omitempty"`
	Errors int   `json:"errors"`
	// Replicas is the number of API endpoints the creates went to (absent
	// for one).
	// CPUS is this process's CPU time during the case: the client, and the
	// server too when it runs in-process.
	CPUS float64 `json:"cpu_s"`
	// ServerCPUS is the CPU time of Config.ServerPIDs and their
	// descendants during the case (absent without ServerPIDs).
	ServerCPUS *float64 `json:"server_cpu_s,omitempty"`
	Replicas   int      `json:"replicas,omitempty"`
}

// Case names.
const (
	CaseRuleCreate = "rule_create"
	CaseBulkFill   = "rule_bulk_fill"
	CaseListRules  = "list_rules"
	CaseListGroups = "list_groups"
)

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("no API URL")
	}
	c.URL = strings.TrimRight(c.URL, "/")
	for i, u := range c.ReplicaURLs {
		c.ReplicaURLs[i] = strings.TrimRight(u, "/")
	}
	if c.Target == "" {
		c.Target = c.URL
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Groups <= 0 {
		c.Groups = 1
	}
	if c.Rules < 0 || c.ListRules < 0 || c.ListRepeat < 0 {
		return errors.New("rule and repeat counts must not be negative")
	}
	if c.ListRules < c.Rules {
		c.ListRules = c.Rules
	}
	if c.ListRules > c.Groups*maxRulesPerGroup {
		return fmt.Errorf("%d rules do not fit in %d groups (at most %d distinct rules per group); raise the number of groups",
			c.ListRules, c.Groups, maxRulesPerGroup)
	}
	if c.BulkBatch <= 0 {
		c.BulkBatch = 500
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 1000
	}
	if c.Project == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("random project id: %w", err)
		}
		c.Project = hex.EncodeToString(b[:])
	}
	return nil
}

// ruleProtocols are the protocols with port ranges; the bench's rules
// differ by port first, then by protocol.
var ruleProtocols = []string{"tcp", "udp", "sctp", "dccp", "udplite"}

const maxRulesPerGroup = 65535 * 5

// ruleSpec is the i-th rule of the bench: its group (index), protocol and
// port. Rules go round-robin over the groups, so every group gets the same
// share, and no two rules of a group are equal.
func ruleSpec(i, groups int) (group int, proto string, port int) {
	k := i / groups
	return i % groups, ruleProtocols[k/65535], k%65535 + 1
}

type ruleBody struct {
	SecurityGroupID string `json:"security_group_id"`
	Direction       string `json:"direction"`
	Ethertype       string `json:"ethertype"`
	Protocol        string `json:"protocol"`
	PortRangeMin    int    `json:"port_range_min"`
	PortRangeMax    int    `json:"port_range_max"`
	RemoteIPPrefix  string `json:"remote_ip_prefix"`
}

// identity is who a request runs as, in keystonemiddleware's headers.
type identity struct{ user, project, roles string }

// bench is one run in progress.
type bench struct {
	cfg    Config
	hc     *http.Client
	member identity
	admin  identity
	groups []string // ids of the bench's groups

	errMu     sync.Mutex
	errShown  int
	progMu    sync.Mutex
	emit      func(Result)
	serverCPU bool
}

const maxErrorsShown = 10

func newBench(cfg Config, emit func(Result)) (*bench, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback benchmarks never go through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        (cfg.Concurrency + 4) * (1 + len(cfg.ReplicaURLs)),
		MaxIdleConnsPerHost: cfg.Concurrency + 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if emit == nil {
		emit = func(Result) {}
	}
	return &bench{
		cfg:       cfg,
		hc:        &http.Client{Transport: tr, Timeout: cfg.Timeout},
		member:    identity{user: "bench-user", project: cfg.Project, roles: "member,reader"},
		admin:     identity{user: "bench-admin", project: "bench-admin", roles: "admin,member,reader"},
		emit:      emit,
		serverCPU: len(cfg.ServerPIDs) > 0,
	}, nil
}

func (b *bench) close() { b.hc.CloseIdleConnections() }

// Run measures the API at cfg.URL, calling emit with each result as soon as
// it is known (rule_create, rule_bulk_fill if ListRules > Rules, list_rules,
// list_groups, in that order). A run with request errors still emits its
// results and then returns an error.
func Run(ctx context.Context, cfg Config, emit func(Result)) error {
	b, err := newBench(cfg, emit)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return err
	}
	var failed []string
	note := func(r Result) {
		if r.Errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors", r.Case, r.Errors))
		}
		b.emit(r)
	}
	r, err := b.createPhase(ctx)
	if err != nil {
		return err
	}
	note(r)
	if b.cfg.ListRules > b.cfg.Rules {
		r, err := b.bulkFill(ctx)
		if err != nil {
			return err
		}
		note(r)
	}
	for _, c := range []string{CaseListRules, CaseListGroups} {
		r, err := b.listPhase(ctx, c)
		if err != nil {
			return err
		}
		note(r)
	}
	if b.cfg.Cleanup {
		if err := b.cleanup(ctx); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("requests failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// response is an HTTP answer, read in full.
type response struct {
	status int
	body   []byte
}

func (b *bench) do(ctx context.Context, method, path string, who identity, body []byte) (response, error) {
	return b.doAt(ctx, b.cfg.URL, method, path, who, body)
}

// endpoint is the URL the i-th create goes to: round-robin over the
// replicas.
func (b *bench) endpoint(i int) string {
	if n := len(b.cfg.ReplicaURLs); n > 0 && i%(n+1) > 0 {
		return b.cfg.ReplicaURLs[i%(n+1)-1]
	}
	return b.cfg.URL
}

func (b *bench) doAt(ctx context.Context, base, method, path string, who identity, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who.user != "" {
		req.Header.Set("X-User-Id", who.user)
		req.Header.Set("X-Project-Id", who.project)
		req.Header.Set("X-Roles", who.roles)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	return response{status: resp.StatusCode, body: data}, nil
}

// unexpected describes an answer with the wrong status.
func unexpected(method, path string, r response) error {
	body := strings.TrimSpace(string(r.body))
	if len(body) > 400 {
		body = body[:400] + "..."
	}
	return fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, r.status, http.StatusText(r.status), body)
}

const headersHint = "run moat with --auth headers, Neutron with NEUTRON_AUTH=headers"

// setup checks the endpoint, lifts the project's quotas and creates the
// groups.
func (b *bench) setup(ctx context.Context) error {
	r, err := b.do(ctx, http.MethodGet, "/", identity{}, nil)
	if err != nil {
		return fmt.Errorf("cannot reach the Neutron API at %s (is the server running?): %w", b.cfg.URL, err)
	}
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"versions"`)) {
		return fmt.Errorf("%s does not look like a Neutron API (GET / should list versions): %w", b.cfg.URL,
			unexpected(http.MethodGet, "/", r))
	}
	path := "/v2.0/quotas/" + b.cfg.Project
	quota := []byte(`{"quota": {"security_group": -1, "security_group_rule": -1}}`)
	r, err = b.do(ctx, http.MethodPut, path, b.admin, quota)
	if err != nil {
		return fmt.Errorf("lift quotas: %w", err)
	}
	switch r.status {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("the server refused header identity (HTTP 401): %s", headersHint)
	default:
		return fmt.Errorf("lift quotas as admin: %w", unexpected(http.MethodPut, path, r))
	}
	fmt.Fprintf(b.cfg.Progress, "%s: project %s, %d groups, %d rules created one by one by %d clients, %d in all before listing\n",
		b.cfg.Target, b.cfg.Project, b.cfg.Groups, b.cfg.Rules, b.cfg.Concurrency, b.cfg.ListRules)
	for g := 0; g < b.cfg.Groups; g++ {
		body, _ := json.Marshal(map[string]any{"security_group": map[string]string{
			"name": fmt.Sprintf("bench-%03d", g), "description": "moat bench api"}})
		r, err := b.do(ctx, http.MethodPost, "/v2.0/security-groups", b.member, body)
		if err != nil {
			return fmt.Errorf("create group %d: %w", g, err)
		}
		if r.status != http.StatusCreated {
			err := unexpected(http.MethodPost, "/v2.0/security-groups", r)
			if bytes.Contains(r.body, []byte("without keystone")) {
				return fmt.Errorf("create group %d: %w\nthe server is in noauth mode and ignores X-Project-Id: %s", g, err, headersHint)
			}
			return fmt.Errorf("create group %d: %w", g, err)
		}
		var out struct {
			SG struct {
				ID        string `json:"id"`
				ProjectID string `json:"project_id"`
			} `json:"security_group"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			return fmt.Errorf("create group %d: decode answer: %w", g, err)
		}
		if out.SG.ProjectID != b.cfg.Project {
			return fmt.Errorf("created group belongs to project %q, not %q: the server ignores X-Project-Id: %s",
				out.SG.ProjectID, b.cfg.Project, headersHint)
		}
		b.groups = append(b.groups, out.SG.ID)
	}
	return nil
}

// ruleJSON is the body of a single-rule create of the bench's i-th rule.
func (b *bench) ruleJSON(i int) []byte {
	body, _ := json.Marshal(map[string]ruleBody{"security_group_rule": b.rule(i)})
	return body
}

func (b *bench) rule(i int) ruleBody {
	g, proto, port := ruleSpec(i, len(b.groups))
	return ruleBody{SecurityGroupID: b.groups[g], Direction: "ingress", Ethertype: "IPv4",
		Protocol: proto, PortRangeMin: port, PortRangeMax: port, RemoteIPPrefix: "0.0.0.0/0"}
}

// reportError prints the first few failures in full.
func (b *bench) reportError(what string, err error) {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	b.errShown++
	switch {
	case b.errShown <= maxErrorsShown:
		fmt.Fprintf(b.cfg.Progress, "%s: error: %s: %v\n", b.cfg.Target, what, err)
	case b.errShown == maxErrorsShown+1:
		fmt.Fprintf(b.cfg.Progress, "%s: more errors; not showing them\n", b.cfg.Target)
	}
}

// cpuMark is a CPU reading at the start of a case.
type cpuMark struct{ self, server time.Duration }

func (b *bench) cpuNow() (cpuMark, error) {
	var m cpuMark
	var err error
	if m.self, err = cputime.Self(); err != nil {
		return m, err
	}
	if b.serverCPU {
		if m.server, err = cputime.Tree(b.cfg.ServerPIDs); err != nil {
			return m, fmt.Errorf("server CPU time: %w", err)
		}
	}
	return m, nil
}

// finish fills the CPU and latency fields of r.
func (b *bench) finish(r *Result, start cpuMark, wall time.Duration, lat []time.Duration) error {
	end, err := b.cpuNow()
	if err != nil {
		return err
	}
	r.Bench, r.Target = "api", b.cfg.Target
	r.WallS = round(wall.Seconds(), 3)
	r.CPUS = round((end.self - start.self).Seconds(), 3)
	if b.serverCPU {
		s := round((end.server - start.server).Seconds(), 3)
		r.ServerCPUS = &s
	}
	r.P50Ms = ms(Percentile(lat, 50))
	r.P99Ms = ms(Percentile(lat, 99))
	r.MaxMs = ms(Percentile(lat, 100))
	return nil
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

// Percentile is the nearest-rank p-th percentile of lat (0 if empty); it
// sorts a copy.
func Percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// parallel runs work(i) for i in [0,n) on conc goroutines and returns each
// call's latency. It stops early when ctx ends.
func parallel(ctx context.Context, n, conc int, work func(i int)) []time.Duration {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, max(n, 1)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				work(i)
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	return lat
}

// createPhase creates Rules rules, one POST each, with Concurrency clients.
func (b *bench) createPhase(ctx context.Context) (Result, error) {
	n := b.cfg.Rules
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = b.ruleJSON(i)
	}
	var errs, done atomic.Int64
	start, err := b.cpuNow()
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	const path = "/v2.0/security-group-rules"
	lat := parallel(ctx, n, b.cfg.Concurrency, func(i int) {
		r, err := b.doAt(ctx, b.endpoint(i), http.MethodPost, path, b.member, bodies[i])
		if err == nil && r.status != http.StatusCreated {
			err = unexpected(http.MethodPost, path, r)
		}
		if err != nil && ctx.Err() == nil {
			errs.Add(1)
			b.reportError(fmt.Sprintf("rule %d", i), err)
		}
		if d := done.Add(1); d%int64(b.cfg.ProgressEvery) == 0 {
			b.progress(d, n, t0, start, errs.Load())
		}
	})
	wall := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("rule creates interrupted: %w", err)
	}
	res := Result{Case: CaseRuleCreate, Requests: n, Concurrency: b.cfg.Concurrency, Rules: n,
		Groups: len(b.groups), Errors: int(errs.Load())}
	if len(b.cfg.ReplicaURLs) > 0 {
		res.Replicas = len(b.cfg.ReplicaURLs) + 1
	}
	if wall > 0 {
		res.RulesPerS = round(float64(n)/wall.Seconds(), 1)
	}
	return res, b.finish(&res, start, wall, lat)
}

// progress prints how far the create phase is, with the CPU time spent.
func (b *bench) progress(done int64, n int, t0 time.Time, start cpuMark, errs int64) {
	b.progMu.Lock()
	defer b.progMu.Unlock()
	el := time.Since(t0)
	cpu := ""
	if now, err := b.cpuNow(); err == nil {
		cpu = fmt.Sprintf(", CPU %.1fs", (now.self - start.self).Seconds())
		if b.serverCPU {
			cpu += fmt.Sprintf(", server CPU %.1fs", (now.server - start.server).Seconds())
		}
	}
	fmt.Fprintf(b.cfg.Progress, "%s: %d/%d rules created in %.1fs (%.0f/s)%s, %d errors\n",
		b.cfg.Target, done, n, el.Seconds(), float64(done)/el.Seconds(), cpu, errs)
}

// bulkFill creates rules Rules..ListRules-1 with bulk POSTs, each of at most
// BulkBatch rules of one group (Neutron refuses bulk creates spanning
// groups).
func (b *bench) bulkFill(ctx context.Context) (Result, error) {
	var batches [][]int
	perGroup := make([][]int, len(b.groups))
	for i := b.cfg.Rules; i < b.cfg.ListRules; i++ {
		g, _, _ := ruleSpec(i, len(b.groups))
		perGroup[g] = append(perGroup[g], i)
	}
	for _, idx := range perGroup {
		for len(idx) > 0 {
			k := min(len(idx), b.cfg.BulkBatch)
			batches = append(batches, idx[:k])
			idx = idx[k:]
		}
	}
	bodies := make([][]byte, len(batches))
	for j, batch := range batches {
		rules := make([]ruleBody, len(batch))
		for k, i := range batch {
			rules[k] = b.rule(i)
		}
		bodies[j], _ = json.Marshal(map[string][]ruleBody{"security_group_rules": rules})
	}
	fmt.Fprintf(b.cfg.Progress, "%s: bulk-creating %d more rules in %d requests\n",
		b.cfg.Target, b.cfg.ListRules-b.cfg.Rules, len(batches))
	var errs atomic.Int64
	start, err := b.cpuNow()
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	const path = "/v2.0/security-group-rules"
	lat := parallel(ctx, len(batches), b.cfg.Concurrency, func(j int) {
		r, err := b.do(ctx, http.MethodPost, path, b.member, bodies[j])
		if err == nil && r.status != http.StatusCreated {
			err = unexpected(http.MethodPost, path, r)
		}
		if err != nil && ctx.Err() == nil {
			errs.Add(1)
			b.reportError(fmt.Sprintf("bulk request %d (%d rules)", j, len(batches[j])), err)
		}
	})
	wall := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("bulk creates interrupted: %w", err)
	}
	n := b.cfg.ListRules - b.cfg.Rules
	res := Result{Case: CaseBulkFill, Requests: len(batches), Concurrency: b.cfg.Concurrency, Rules: n,
		Groups: len(b.groups), Errors: int(errs.Load())}
	if wall > 0 {
		res.RulesPerS = round(float64(n)/wall.Seconds(), 1)
	}
	return res, b.finish(&res, start, wall, lat)
}

// listPhase times ListRepeat admin GETs of all rules or all groups (with
// their embedded rules), one at a time, after one untimed warm-up GET whose
// answer is decoded to count what the list holds.
func (b *bench) listPhase(ctx context.Context, c string) (Result, error) {
	path := "/v2.0/security-group-rules"
	if c == CaseListGroups {
		path = "/v2.0/security-groups"
	}
	res := Result{Case: c, Requests: b.cfg.ListRepeat, Concurrency: 1}
	r, err := b.do(ctx, http.MethodGet, path, b.admin, nil)
	if err != nil {
		return res, fmt.Errorf("warm-up list: %w", err)
	}
	if r.status != http.StatusOK {
		return res, fmt.Errorf("warm-up list: %w", unexpected(http.MethodGet, path, r))
	}
	if c == CaseListGroups {
		var out struct {
			SGs []struct {
				Rules []json.RawMessage `json:"security_group_rules"`
			} `json:"security_groups"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			return res, fmt.Errorf("decode %s: %w", path, err)
		}
		res.Groups = len(out.SGs)
		for _, g := range out.SGs {
			res.Rules += len(g.Rules)
		}
	} else {
		var out struct {
			Rules []json.RawMessage `json:"security_group_rules"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			return res, fmt.Errorf("decode %s: %w", path, err)
		}
		res.Rules = len(out.Rules)
	}
	res.Bytes = int64(len(r.body))
	fmt.Fprintf(b.cfg.Progress, "%s: GET %s: %d rules, %d bytes; timing %d GETs\n",
		b.cfg.Target, path, res.Rules, res.Bytes, b.cfg.ListRepeat)
	start, err := b.cpuNow()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	var errs atomic.Int64
	lat := parallel(ctx, b.cfg.ListRepeat, 1, func(int) {
		r, err := b.do(ctx, http.MethodGet, path, b.admin, nil)
		if err == nil && r.status != http.StatusOK {
			err = unexpected(http.MethodGet, path, r)
		}
		if err != nil && ctx.Err() == nil {
			errs.Add(1)
			b.reportError("list", err)
		}
	})
	wall := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("lists interrupted: %w", err)
	}
	res.Errors = int(errs.Load())
	return res, b.finish(&res, start, wall, lat)
}

// cleanup deletes the bench's groups and with them their rules.
func (b *bench) cleanup(ctx context.Context) error {
	for _, id := range b.groups {
		path := "/v2.0/security-groups/" + id
		r, err := b.do(ctx, http.MethodDelete, path, b.member, nil)
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		if r.status != http.StatusNoContent {
			return fmt.Errorf("cleanup: %w", unexpected(http.MethodDelete, path, r))
		}
	}
	return nil
}

// Summarize writes a short human summary of results.
func Summarize(w io.Writer, results []Result) {
	for _, r := range results {
		srv := ""
		if r.ServerCPUS != nil {
			srv = fmt.Sprintf(", server CPU %.2fs", *r.ServerCPUS)
		}
		switch r.Case {
		case CaseRuleCreate, CaseBulkFill:
			fmt.Fprintf(w, "%s %-14s %6d rules %8.1f rules/s  p50 %8.2f ms  p99 %8.2f ms  errors %d  CPU %.2fs%s\n",
				r.Target, r.Case, r.Rules, r.RulesPerS, r.P50Ms, r.P99Ms, r.Errors, r.CPUS, srv)
		default:
			fmt.Fprintf(w, "%s %-14s %6d rules %8d bytes   p50 %8.2f ms  p99 %8.2f ms  errors %d  CPU %.2fs%s\n",
				r.Target, r.Case, r.Rules, r.Bytes, r.P50Ms, r.P99Ms, r.Errors, r.CPUS, srv)
		}
	}
}
