package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/pidfile"
)

// Chain names of moat's (Neutron's) hybrid layout.
const (
	chainPrefix = hybrid.Wrap
	fallback    = hybrid.ChainFallback
	sgChain     = hybrid.ChainSG
)

func iChain(v lab.VM) string { return hybrid.PortChain(hybrid.ChainIn, v.PortID) }
func oChain(v lab.VM) string { return hybrid.PortChain(hybrid.ChainOut, v.PortID) }
func sChain(v lab.VM) string { return hybrid.PortChain(hybrid.ChainSpoof, v.PortID) }
func qvb(v lab.VM) string    { return hybrid.BridgeVethName(v.PortID) }

// env is one lab (one backend) with its API client.
type env struct {
	backend iptables.Backend
	cfg     lab.Config
	lab     *lab.Lab
	host    string   // the single host's namespace ("" with several)
	vm      []lab.VM // vm[0] is NAME-vm1
	api     *lab.Client
	// apiNS and apiURL reach the server (the host, or NAME-api).
	apiNS, apiURL string
}

// syncProgress is a goroutine-safe buffer for lab.Config.Progress.
type syncProgress struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *syncProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *syncProgress) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// newEnv builds a lab of vms VMs whose agent uses backend, and tears it
// down when t ends (MOAT_E2E_KEEP=1 keeps a failed one for inspection).
func newEnv(t *testing.T, backend string, vms int) *env {
	t.Helper()
	return newHostsEnv(t, backend, vms, 1)
}

// newHostsEnv builds a lab of hosts hosts (more than one: a server in
// NAME-api, an agent per host, a provider VLAN between them).
func newHostsEnv(t *testing.T, backend string, vms, hosts int) *env {
	t.Helper()
	return newReplicasEnv(t, backend, vms, hosts, 1)
}

// newReplicasEnv is newHostsEnv with replicas servers on a PostgreSQL the
// lab starts.
func newReplicasEnv(t *testing.T, backend string, vms, hosts, replicas int) *env {
	t.Helper()
	needRoot(t)
	needBackend(t, backend)
	bin := moatbin.Build(t)
	name := newLabName(t)
	var progress syncProgress
	cfg := lab.Config{Name: name, VMs: vms, Hosts: hosts, Replicas: replicas, Backend: backend, Moat: bin,
		Timeout: 90 * time.Second, Progress: &progress}
	e := &env{backend: iptables.Backend(backend), cfg: cfg, host: lab.HostNetns(name), apiNS: lab.HostNetns(name), apiURL: lab.APIURL}
	if hosts > 1 {
		e.host, e.apiNS, e.apiURL = "", lab.APINetns(name), lab.MultiAPIURL
	}
	t.Cleanup(func() {
		if t.Failed() {
			if tail := lab.LogTail(lab.LogFile(lab.StateDir(name)), 60); tail != "" {
				t.Logf("moat.log of lab %s (last 60 lines):\n%s", name, tail)
			}
			for i := 1; i <= hosts && hosts > 1; i++ {
				if tail := lab.LogTail(lab.AgentLogFile(lab.StateDir(name), i), 40); tail != "" {
					t.Logf("agent log of %s (last 40 lines):\n%s", lab.HostName(name, i), tail)
				}
			}
			if os.Getenv("MOAT_E2E_KEEP") == "1" {
				_ = owners.Release(name) // not for the next run's sweep
				t.Logf("MOAT_E2E_KEEP=1: lab %s left in place; remove it with `moat lab down %s`", name, name)
				return
			}
		}
		if e.api != nil {
			e.api.Close()
		}
		if err := lab.Down(context.Background(), name, ""); err != nil {
			t.Errorf("lab down %s: %v (the next run's TestMain tries again)", name, err)
			return
		}
		_ = owners.Release(name)
	})
	start := time.Now()
	l, err := lab.Up(t.Context(), cfg)
	if err != nil {
		t.Fatalf("lab up %s (%s): %v\nprogress:\n%s", name, backend, err, progress.String())
	}
	t.Logf("lab %s (%s, %d VMs, %d hosts) up in %s", name, backend, vms, hosts, time.Since(start).Round(time.Millisecond))
	e.lab, e.vm = l, l.VMs
	e.api = lab.NewClient(e.apiNS, e.apiURL)
	for _, v := range e.vm {
		t.Logf("  %s %s %s port %s on %s", v.Name, v.IP, v.MAC, v.PortID, v.Host)
	}
	return e
}

// ---- commands in the lab's namespaces ----

// nsRun runs a command inside a namespace and returns its combined output.
func nsRun(ctx context.Context, ns string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s %s: %w: %s", ns, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (e *env) hostRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := nsRun(context.Background(), e.host, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fam is an address family of the iptables backend.
type fam int

const (
	v4 fam = 4
	v6 fam = 6
)

func (e *env) bin(f fam, tool string) string {
	if f == v6 {
		return e.backend.Command(iptables.IPv6, tool)
	}
	return e.backend.Command(iptables.IPv4, tool)
}

// ipt runs the backend's iptables (or ip6tables) in the host namespace,
// waiting for the xtables lock the agent's iptables-legacy takes.
func (e *env) ipt(t *testing.T, f fam, args ...string) {
	t.Helper()
	e.hostRun(t, e.bin(f, ""), append([]string{"-w", "30"}, args...)...)
}

// ---- iptables-save -c ----

type savedRule struct {
	Table, Chain, Spec string // Spec: what follows "-A CHAIN "
	Pkts, Bytes        uint64
}

func (r savedRule) String() string {
	return fmt.Sprintf("[%d:%d] -A %s %s", r.Pkts, r.Bytes, r.Chain, r.Spec)
}

// saved is one `iptables-save -c` of the host namespace.
type saved struct {
	rules  []savedRule
	chains map[string]bool // "table/chain"
	text   string
}

func (e *env) save(t *testing.T, f fam) *saved {
	t.Helper()
	s, err := e.trySave(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) trySave(ctx context.Context, f fam) (*saved, error) {
	tool := e.bin(f, "save")
	out, err := iptables.RetrySave(ctx, func(ctx context.Context) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e.host, tool, "-c")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, &dataplane.CommandError{Cmd: tool + " -c", Err: err, Stderr: stderr.String()}
		}
		if strings.Contains(stderr.String(), "Warning") {
			return nil, fmt.Errorf("%s: %s", tool, stderr.String())
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	s, err := parseSave(string(out))
	if err != nil {
		return nil, fmt.Errorf("%s -c output: %w", tool, err)
	}
	return s, nil
}

// parseSave reads iptables-save -c output with the one reader of that
// text (hybrid.ReadSave).
func parseSave(text string) (*saved, error) {
	s := &saved{chains: map[string]bool{}, text: text}
	err := hybrid.ReadSave(text, func(l *hybrid.SaveLine) error {
		switch l.Kind {
		case hybrid.SaveChain:
			s.chains[l.Table+"/"+l.Chain] = true
		case hybrid.SaveRule:
			s.rules = append(s.rules, savedRule{Table: l.Table, Chain: l.Chain, Spec: l.Rule, Pkts: l.Counters.Packets, Bytes: l.Counters.Bytes})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// chain returns the rules of a chain, in order.
func (s *saved) chain(table, chain string) []savedRule {
	var out []savedRule
	for _, r := range s.rules {
		if r.Table == table && r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// specs returns the rule specs of a chain, in order (no counters).
func (s *saved) specs(table, chain string) []string {
	var out []string
	for _, r := range s.chain(table, chain) {
		out = append(out, r.Spec)
	}
	return out
}

func (s *saved) has(table, chain string) bool { return s.chains[table+"/"+chain] }

// matching returns the rules of a chain whose spec contains every one of
// subs.
func (s *saved) matching(table, chain string, subs ...string) []savedRule {
	var out []savedRule
next:
	for _, r := range s.chain(table, chain) {
		for _, sub := range subs {
			if !strings.Contains(r.Spec, sub) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// one returns the only rule of chain matching subs.
func (s *saved) one(t *testing.T, table, chain string, subs ...string) savedRule {
	t.Helper()
	m := s.matching(table, chain, subs...)
	if len(m) != 1 {
		t.Fatalf("%d rules of %s/%s match %q, want 1; the chain:\n%s", len(m), table, chain, subs, joinRules(s.chain(table, chain)))
	}
	return m[0]
}

func joinRules(rs []savedRule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.String() + "\n")
	}
	return b.String()
}

// exact returns the only rule of chain whose spec is spec.
func (s *saved) exact(t *testing.T, table, chain, spec string) savedRule {
	t.Helper()
	var m []savedRule
	for _, r := range s.chain(table, chain) {
		if r.Spec == spec {
			m = append(m, r)
		}
	}
	if len(m) != 1 {
		t.Fatalf("%d rules of %s/%s are %q, want 1; the chain:\n%s", len(m), table, chain, spec, joinRules(s.chain(table, chain)))
	}
	return m[0]
}

// counter is the packet count of the only rule of chain matching subs.
func (e *env) counter(t *testing.T, f fam, table, chain string, subs ...string) uint64 {
	t.Helper()
	return e.save(t, f).one(t, table, chain, subs...).Pkts
}

// fallbackDrops is the packet count of the IPv4 (or IPv6) sg-fallback DROP.
func (e *env) fallbackDrops(t *testing.T, f fam) uint64 {
	t.Helper()
	return e.counter(t, f, "filter", fallback, "-j DROP")
}

// waitCounter polls a rule's packet counter until it reaches at least
// want, and returns it; it fails the test after timeout.
func (e *env) waitCounter(t *testing.T, f fam, want uint64, timeout time.Duration, table, chain string, subs ...string) uint64 {
	t.Helper()
	var got uint64
	ok := poll(timeout, func() bool {
		got = e.counter(t, f, table, chain, subs...)
		return got >= want
	})
	if !ok {
		s := e.save(t, f)
		t.Fatalf("%s/%s %q: %d packets after %s, want at least %d; the chain:\n%s", table, chain, subs, got, timeout, want, joinRules(s.chain(table, chain)))
	}
	return got
}

// poll calls f every 50 ms until it returns true or timeout passes.
func poll(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRules polls iptables-save until cond holds (the agent applied a
// change) and returns that save; fails after timeout.
func (e *env) waitRules(t *testing.T, f fam, what string, cond func(*saved) bool) *saved {
	t.Helper()
	var s *saved
	start := time.Now()
	if !poll(applyTimeout, func() bool { s = e.save(t, f); return cond(s) }) {
		t.Fatalf("after %s, still not %s; %s:\n%s", applyTimeout, what, e.bin(f, "save"), s.text)
	}
	t.Logf("agent applied: %s (%s)", what, time.Since(start).Round(time.Millisecond))
	return s
}

// applyTimeout bounds the wait for the agent to apply an API change.
const applyTimeout = 20 * time.Second

// ---- the kernel state the agent owns, for baselines ----

// state is moat's rules (both families, no counters) and the ipsets.
func (e *env) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []fam{v4, v6} {
		for _, r := range e.save(t, f).rules {
			fmt.Fprintf(&b, "%d %s -A %s %s\n", f, r.Table, r.Chain, r.Spec)
		}
	}
	b.WriteString(e.ipsets(t))
	return b.String()
}

// ipsets lists the sets and members of the host namespace, sorted.
func (e *env) ipsets(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(e.hostRun(t, "ipset", "save"), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "create":
			lines = append(lines, strings.Join(f[:3], " "))
		case len(f) >= 2 && f[0] == "add":
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// setMembers returns the members of one ipset (nil if it does not exist).
func (e *env) setMembers(t *testing.T, set string) []string {
	t.Helper()
	out, err := nsRun(context.Background(), e.host, "ipset", "list", set)
	if err != nil {
		return nil
	}
	_, members, _ := strings.Cut(out, "Members:\n")
	var m []string
	for _, l := range strings.Split(members, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			m = append(m, l)
		}
	}
	sort.Strings(m)
	return m
}

// baseline records moat's kernel state and, when t ends (after the
// cleanups registered later have restored the API objects), waits until the
// kernel is back to it, so that the next subtest starts from the same state.
func (e *env) baseline(t *testing.T) {
	t.Helper()
	want := e.state(t)
	t.Cleanup(func() {
		var got string
		if !poll(applyTimeout, func() bool { got = e.state(t); return got == want }) {
			t.Errorf("the kernel did not return to the state before the subtest within %s:\n%s", applyTimeout, lineDiff(want, got))
		}
	})
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	in := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l, n := range ma {
		if mb[l] < n {
			out = append(out, "- "+l)
		}
	}
	for l, n := range mb {
		if ma[l] < n {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// ---- the Neutron API, over HTTP inside the host namespace ----

func (e *env) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if err := e.api.Do(context.Background(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// createGroup creates a security group (deleted when t ends) and returns
// its id.
func (e *env) createGroup(t *testing.T, name string, stateful bool) string {
	t.Helper()
	var r struct {
		G struct {
			ID string `json:"id"`
		} `json:"security_group"`
	}
	e.call(t, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{
		"name": name, "stateful": stateful, "description": "e2e"}}, &r)
	t.Cleanup(func() { e.cleanupCall(t, "DELETE", "/v2.0/security-groups/"+r.G.ID, nil) })
	return r.G.ID
}

// groupID finds a group by name.
func (e *env) groupID(t *testing.T, name string) string {
	t.Helper()
	var r struct {
		Gs []struct {
			ID string `json:"id"`
		} `json:"security_groups"`
	}
	e.call(t, "GET", "/v2.0/security-groups?name="+name, nil, &r)
	if len(r.Gs) != 1 {
		t.Fatalf("%d groups named %q", len(r.Gs), name)
	}
	return r.Gs[0].ID
}

// createRule creates a rule (deleted when t ends, unless deleted before)
// and returns its id.
func (e *env) createRule(t *testing.T, rule map[string]any) string {
	t.Helper()
	if _, ok := rule["ethertype"]; !ok {
		rule["ethertype"] = "IPv4"
	}
	var r struct {
		R struct {
			ID string `json:"id"`
		} `json:"security_group_rule"`
	}
	e.call(t, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule}, &r)
	e.cleanupRule(t, r.R.ID)
	return r.R.ID
}

// cleanupRule deletes a rule when t ends, if it still exists.
func (e *env) cleanupRule(t *testing.T, id string) {
	t.Cleanup(func() { e.cleanupCall(t, "DELETE", "/v2.0/security-group-rules/"+id, nil) })
}

func (e *env) deleteRule(t *testing.T, id string) {
	t.Helper()
	e.call(t, "DELETE", "/v2.0/security-group-rules/"+id, nil, nil)
}

// cleanupCall makes an API call in a cleanup; a 404 (already gone) is fine.
func (e *env) cleanupCall(t *testing.T, method, path string, body any) {
	t.Helper()
	if err := e.api.Do(context.Background(), method, path, body, nil); err != nil && !strings.Contains(err.Error(), "404") {
		t.Errorf("cleanup: %v", err)
	}
}

// updatePort changes a port, and puts back the given original attributes
// when t ends.
func (e *env) updatePort(t *testing.T, v lab.VM, change, restore map[string]any) {
	t.Helper()
	if restore != nil {
		t.Cleanup(func() { e.cleanupCall(t, "PUT", "/v2.0/ports/"+v.PortID, map[string]any{"port": restore}) })
	}
	e.call(t, "PUT", "/v2.0/ports/"+v.PortID, map[string]any{"port": change}, nil)
}

// setGroups sets a port's groups; they return to ["lab"] when t ends.
func (e *env) setGroups(t *testing.T, v lab.VM, groups ...string) {
	t.Helper()
	if groups == nil {
		groups = []string{}
	}
	e.updatePort(t, v, map[string]any{"security_groups": groups},
		map[string]any{"security_groups": []string{e.lab.SecurityGroupID}})
}

// ---- the openstack CLI, inside the host namespace ----

// cli runs `openstack --os-auth-type none --os-endpoint URL args... -f
// json` in the host namespace, as an operator on the host would, with a
// clean environment (no clouds.yaml, no OS_* variables), and decodes its
// output into out.
func (e *env) cli(t *testing.T, out any, args ...string) {
	t.Helper()
	home := t.TempDir()
	full := append([]string{"netns", "exec", e.apiNS, "openstack", "--os-auth-type", "none", "--os-endpoint", e.apiURL}, args...)
	full = append(full, "-f", "json")
	cmd := exec.CommandContext(t.Context(), "ip", full...)
	cmd.Dir = home
	cmd.Env = apitest.CLIEnv(home)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("openstack %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("openstack %s (%s)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("openstack %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
}

// cliRule is a rule as `openstack security group rule create -f json`
// prints it.
type cliRule struct {
	ID              string  `json:"id"`
	SecurityGroupID string  `json:"security_group_id"`
	Direction       string  `json:"direction"`
	EtherType       string  `json:"ether_type"`
	Protocol        *string `json:"protocol"`
}

// ---- the lab's moat process ----

// moatPid reads the pid of the lab's moat.
func (e *env) moatPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(lab.PidFile(e.lab.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// stopMoat sends sig to the lab's moat and waits until it is gone.
func (e *env) stopMoat(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pid := e.moatPid(t)
	if !alive(pid) {
		t.Fatalf("moat (pid %d) is not running", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
	if !poll(10*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("moat (pid %d) still runs 10 s after %v", pid, sig)
	}
	t.Logf("moat (pid %d) stopped by %v", pid, sig)
}

// alive reports whether any thread of pid runs: a SIGKILLed moat's
// leader is a zombie before its other threads have exited and its API
// socket is closed (a restart too soon fails with "address already in
// use").
func alive(pid int) bool { return pidfile.Running(pid) }

// startMoat starts the lab's moat again, as `moat lab up` does.
func (e *env) startMoat(t *testing.T) {
	t.Helper()
	if err := lab.Start(t.Context(), e.cfg); err != nil {
		t.Fatalf("restart moat: %v", err)
	}
	t.Logf("moat restarted (pid %d)", e.moatPid(t))
}

// moatLog returns the lab's moat log.
func (e *env) moatLog(t *testing.T) string {
	b, err := os.ReadFile(lab.LogFile(e.lab.StateDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}
