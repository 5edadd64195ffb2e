package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestMultiHost runs the seed's cloud with real packets: two hosts, each
// with its own agent (following the server over its watch, never the
// database) and Open vSwitch, VMs on both, the lab network a provider
// VLAN (102) on physnet1 carried between the hosts' br-eth1 by a switch
// namespace. Per backend of Neutron's layout and of moat's nftables.
func TestMultiHost(t *testing.T) {
	needRoot(t)
	apitest.LookCLI(t)
	for _, backend := range []string{"iptables-nft", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newHostsEnv(t, backend, 3, 2)
			e.multiHost(t)
		})
	}
}

// TestServerReplicas: two moat servers on one PostgreSQL, each host's
// agent following one and knowing both. A replica killed mid-stream: its
// agents move to the other, and a change made there reaches both hosts;
// then the other way round.
func TestServerReplicas(t *testing.T) {
	needRoot(t)
	testenv.RequireTools(t, "/usr/lib/postgresql/15/bin/initdb", "runuser")
	e := newReplicasEnv(t, "nftables", 2, 2, 2)
	vm1, vm2 := e.vm[0], e.vm[1]
	if len(e.lab.Replicas) != 2 {
		t.Fatalf("lab replicas %v, want 2", e.lab.Replicas)
	}
	if err := ping(vm1.Netns, vm2.IP); err == nil {
		t.Fatalf("%s -> %s answered without a rule", vm1.Name, vm2.Name)
	}
	// host2's agent follows replica 2 first (the lab spreads them).
	e.killPidFile(t, lab.ReplicaPidFile(e.lab.StateDir, 2), "server replica 2")
	icmp := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp")) // through replica 1
	if !poll(15*time.Second, func() bool { return ping(vm1.Netns, vm2.IP) == nil && ping(vm2.Netns, vm1.IP) == nil }) {
		t.Fatalf("with replica 2 dead, a rule created through replica 1 is not enforced on both hosts")
	}
	if err := lab.StartReplica(t.Context(), e.cfg, 2); err != nil {
		t.Fatal(err)
	}
	e.killPidFile(t, lab.ReplicaPidFile(e.lab.StateDir, 1), "server replica 1")
	e.api.Close()
	e.api = lab.NewClient(e.apiNS, lab.ReplicaURL(2))
	e.call(t, "DELETE", "/v2.0/security-group-rules/"+icmp, nil, nil)
	if !poll(15*time.Second, func() bool { return ping(vm1.Netns, vm2.IP) != nil && ping(vm2.Netns, vm1.IP) != nil }) {
		t.Fatalf("with replica 1 dead, a rule deleted through replica 2 still lets the ping through")
	}
	if err := lab.StartReplica(t.Context(), e.cfg, 1); err != nil {
		t.Fatal(err)
	}
}

func (e *env) multiHost(t *testing.T) {
	vm1, vm2, vm3 := e.vm[0], e.vm[1], e.vm[2]
	host1, host2 := e.lab.Hosts[0].Netns, e.lab.Hosts[1].Netns
	if vm1.Host != host1 || vm2.Host != host2 || vm3.Host != host1 {
		t.Fatalf("VMs on %s, %s, %s; want them spread over %s and %s", vm1.Host, vm2.Host, vm3.Host, host1, host2)
	}
	answered := func(from, to lab.VM) bool {
		t.Helper()
		return poll(deliverTimeout, func() bool { return ping(from.Netns, to.IP) == nil })
	}
	droppedPing := func(step string, from, to lab.VM) {
		t.Helper()
		if err := ping(from.Netns, to.IP); err == nil {
			t.Errorf("%s: %s (%s) -> %s (%s) answered, want dropped", step, from.Name, from.Host, to.Name, to.Host)
		}
	}

	// 1. The whitelist between hosts: nothing until a rule; then the
	//    rule created with the openstack CLI lets the ping through, on
	//    the wire as VLAN 102.
	droppedPing("no ingress rule", vm1, vm2)
	droppedPing("no ingress rule", vm2, vm1)
	onWire := tcpdump(t, host1, lab.Uplink, fmt.Sprintf("vlan %d and icmp and host %s", lab.SegmentationID, vm2.IP))
	var r cliRule
	e.cli(t, &r, "security", "group", "rule", "create", lab.GroupName, "--ingress", "--protocol", "icmp")
	if !answered(vm1, vm2) {
		t.Fatalf("%s -> %s not answered after `openstack security group rule create %s --protocol icmp`", vm1.Name, vm2.Name, lab.GroupName)
	}
	if line, err := onWire.first(5 * time.Second); err != nil {
		t.Errorf("no ICMP on VLAN %d on %s's %s: %v", lab.SegmentationID, host1, lab.Uplink, err)
	} else {
		t.Logf("on %s's uplink: %s", host1, line)
	}
	e.call(t, "DELETE", "/v2.0/security-group-rules/"+r.ID, nil, nil)
	if !poll(dropTimeout, func() bool { return ping(vm1.Netns, vm2.IP) != nil }) {
		t.Fatalf("%s -> %s still answered after the rule was deleted", vm1.Name, vm2.Name)
	}

	// 2. A remote group whose members live on the other host: vm2 (host2)
	//    lets in ICMP from group web; vm1 (host1) joining web opens it,
	//    leaving closes it, and host2's rules are not rewritten for it.
	web := e.createGroup(t, "web", true)
	e.createRule(t, ingress(web, "protocol", "icmp", "remote_group_id", web))
	e.setGroups(t, vm2, e.lab.SecurityGroupID, web)
	var before string
	if !poll(dropTimeout, func() bool {
		before = e.portRules(t, host2, vm2)
		return strings.Contains(before, "@") || strings.Contains(before, "--match-set")
	}) {
		t.Fatalf("no remote-group rule in vm2's ingress on %s:\n%s", host2, before)
	}
	droppedPing("vm1 not in web", vm1, vm2)
	e.setGroups(t, vm1, e.lab.SecurityGroupID, web)
	if !answered(vm1, vm2) {
		t.Errorf("%s -> %s not answered once %s (on %s) joined web", vm1.Name, vm2.Name, vm1.Name, host1)
	}
	if after := e.portRules(t, host2, vm2); after != before {
		t.Errorf("vm1 joining web rewrote vm2's rules on %s:\nbefore:\n%s\nafter:\n%s", host2, before, after)
	}
	e.setGroups(t, vm1, e.lab.SecurityGroupID)
	if !poll(dropTimeout, func() bool { return ping(vm1.Netns, vm2.IP) != nil }) {
		t.Errorf("%s -> %s still answered after %s left web", vm1.Name, vm2.Name, vm1.Name)
	}
	e.setGroups(t, vm2, e.lab.SecurityGroupID)

	// 3. The seed's IPIP tunnel between hosts: dropped until a rule
	//    allows IP protocol 4.
	tag := newTag()
	got := listenIP(t, vm2.Netns, 4, carrying(tag))
	sendIPIP := func() {
		sendIP(t, vm1.Netns, 4, vm2.IP, probes, func(i int) []byte { return ipipInner(tag, uint16(i)) })
	}
	notDelivered := func(step string) {
		t.Helper()
		r0 := got.count()
		sendIPIP()
		time.Sleep(time.Second)
		if d := got.count() - r0; d != 0 {
			t.Errorf("%s: %d IPIP packets delivered, want none", step, d)
		}
	}
	notDelivered("no rule")
	proto4 := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "4"))
	if !poll(deliverTimeout, func() bool {
		r0 := got.count()
		sendIPIP()
		return got.wait(r0+probes, time.Second)-r0 == probes
	}) {
		t.Errorf("IPIP %s -> %s not delivered with --protocol 4", vm1.Name, vm2.Name)
	}
	e.call(t, "DELETE", "/v2.0/security-group-rules/"+proto4, nil, nil)
	if !poll(dropTimeout, func() bool {
		r0 := got.count()
		sendIPIP()
		time.Sleep(300 * time.Millisecond)
		return got.count() == r0
	}) {
		t.Fatalf("IPIP still delivered after the protocol-4 rule was deleted")
	}

	// 4. host2's agent killed: its rules stay (what was dropped stays
	//    dropped), a change made meanwhile is enforced once it is back
	//    (it resumes its watch).
	icmp := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	if !answered(vm1, vm2) {
		t.Fatalf("%s -> %s not answered with the ICMP rule back", vm1.Name, vm2.Name)
	}
	e.killAgent(t, 2)
	r0 := got.count()
	e.call(t, "DELETE", "/v2.0/security-group-rules/"+icmp, nil, nil)
	sendIPIP()
	if !answered(vm1, vm2) {
		t.Errorf("with host2's agent dead, its rules went: %s -> %s not answered", vm1.Name, vm2.Name)
	}
	if err := lab.StartAgent(e.cfg, 2); err != nil {
		t.Fatal(err)
	}
	if !poll(15*time.Second, func() bool { return ping(vm1.Netns, vm2.IP) != nil }) {
		t.Errorf("the rule deleted while host2's agent was dead is still enforced after its restart")
	}
	sendIPIP()
	time.Sleep(300 * time.Millisecond)
	if d := got.count() - r0; d != 0 {
		t.Errorf("%d IPIP packets crossed to vm2 around its agent's restart, want none", d)
	}

	// 5. The server killed and restarted: the agents reconnect and
	//    enforce the next change.
	e.killPidFile(t, lab.PidFile(e.lab.StateDir), "server")
	if err := lab.StartServer(t.Context(), e.cfg); err != nil {
		t.Fatal(err)
	}
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	if !poll(20*time.Second, func() bool { return ping(vm1.Netns, vm2.IP) == nil && ping(vm2.Netns, vm3.IP) == nil }) {
		t.Errorf("after the server's restart a new rule is not enforced on both hosts")
	}
}

// portRules is what host holds for vm's ingress: the rules of its chain
// without counters (nftables: with their handles, which a rewrite
// changes; iptables: as iptables-save prints them).
func (e *env) portRules(t *testing.T, host string, vm lab.VM) string {
	t.Helper()
	if e.cfg.Backend == "nftables" {
		out, err := nsRun(context.Background(), host, "nft", "-a", "list", "chain", "ip", "moat", nftrender.InChain(vm.PortID))
		if err != nil {
			t.Fatal(err)
		}
		return nftCounterRE.ReplaceAllString(out, "counter")
	}
	out, err := nsRun(context.Background(), host, e.bin(v4, "save"), "-t", "filter")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A "+iChain(vm)+" ") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

var nftCounterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// killAgent kills the i-th host's agent with SIGKILL.
func (e *env) killAgent(t *testing.T, i int) {
	t.Helper()
	e.killPidFile(t, lab.AgentPidFile(e.lab.StateDir, i), fmt.Sprintf("agent of host %d", i))
}

func (e *env) killPidFile(t *testing.T, path, what string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the %s (pid %d): %v", what, pid, err)
	}
	if !poll(10*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("the %s (pid %d) still runs after SIGKILL", what, pid)
	}
	t.Logf("the %s (pid %d) killed", what, pid)
}

// sniffer is a tcpdump -e in a namespace, printing the link-level header
// (the VLAN tag) of what crosses an interface.
type sniffer struct {
	mu    sync.Mutex
	lines []string
	ready chan struct{}
	done  chan struct{}
}

func tcpdump(t *testing.T, ns, dev, filter string) *sniffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tcpdump", "-l", "-nn", "-e", "-i", dev, filter)
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump in %s: %v", ns, err)
	}
	s := &sniffer{ready: make(chan struct{}), done: make(chan struct{})}
	go func() { // "listening on ..." once the capture runs
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(s.ready) })
			}
		}
	}()
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); <-s.done })
	select {
	case <-s.ready:
	case <-time.After(5 * time.Second):
		t.Fatalf("tcpdump on %s in %s did not start", dev, ns)
	}
	return s
}

// first returns the first line captured, waiting up to timeout.
func (s *sniffer) first(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		if len(s.lines) > 0 {
			l := s.lines[0]
			s.mu.Unlock()
			return l, nil
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			return "", fmt.Errorf("nothing captured in %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
