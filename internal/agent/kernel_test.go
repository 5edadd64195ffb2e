package agent

// The agent against a real kernel: the iptables and ipset syncers and the
// Linux-bridge wiring in a scratch network namespace this file creates
// (root only), with VMs as namespaces behind veth "taps". The machine's
// own firewall and links are never touched.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/ipset"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/testenv"
)

// needKernel skips (or, with MOAT_REQUIRE_KERNEL=1, fails) unless the
// test can build namespaces with the backend's tools.
func needKernel(t *testing.T, backend iptables.Backend) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, append(backend.Binaries(), "ipset", "ping")...)
	testenv.RequireBrNetfilter(t)
}

// refusingExec runs commands in the host namespace; while chain is set,
// every iptables-restore input that writes rules to that chain gets one
// more rule the kernel refuses (port 70000), so that the real restore
// fails and its transaction is rolled back.
type refusingExec struct {
	dataplane.Netns
	mu      sync.Mutex
	chain   string
	refused int
}

func (e *refusingExec) refuse(chain string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.chain = chain
}

func (e *refusingExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	e.mu.Lock()
	chain := e.chain
	e.mu.Unlock()
	prefix := []byte("-A " + chain + " ")
	if chain != "" && strings.HasSuffix(name, "-restore") && bytes.Contains(stdin, prefix) {
		var out bytes.Buffer
		done := false
		for _, l := range bytes.SplitAfter(stdin, []byte("\n")) {
			out.Write(l)
			if !done && bytes.HasPrefix(l, prefix) {
				out.WriteString("-A " + chain + " -p tcp -m tcp --dport 70000 -j RETURN\n")
				done = true
			}
		}
		stdin = out.Bytes()
		e.mu.Lock()
		e.refused++
		e.mu.Unlock()
	}
	return e.Netns.Run(ctx, stdin, name, args...)
}

func nsRun(t *testing.T, ns, name string, args ...string) string {
	t.Helper()
	return netnstest.Run(t, dataplane.Netns{Name: ns}, "", name, args...)
}

// kernelVM is a VM: a namespace whose eth0 is the peer of the port's tap
// in the host namespace.
type kernelVM struct{ ns, ip string }

func addKernelVM(t *testing.T, host string, p neutron.Port) kernelVM {
	t.Helper()
	ns := netnstest.New(t, "moat-agvm")
	ip := p.FixedIPs[0].IPAddress.String()
	nsRun(t, host, "ip", "link", "add", hybrid.TapName(p.ID), "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	nsRun(t, ns.Name, "ip", "link", "set", "eth0", "address", p.MACAddress)
	nsRun(t, ns.Name, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	nsRun(t, ns.Name, "ip", "link", "set", "eth0", "up")
	nsRun(t, ns.Name, "ip", "link", "set", "lo", "up")
	return kernelVM{ns: ns.Name, ip: ip}
}

// master is the bridge a link is in ("" for none, or when the link is
// missing).
func master(t *testing.T, ns, link string) string {
	t.Helper()
	out, err := dataplane.Netns{Name: ns}.Run(context.Background(), nil, "ip", "-o", "link", "show", link)
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "master" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func pings(from, to kernelVM, count int) bool {
	_, err := dataplane.Netns{Name: from.ns}.Run(context.Background(), nil,
		"ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", to.ip)
	return err == nil
}

func canPing(t *testing.T, from, to kernelVM) {
	t.Helper()
	for i := 0; i < 10; i++ { // ARP and MAC learning
		if pings(from, to, 1) {
			return
		}
	}
	t.Fatalf("%s cannot ping %s", from.ns, to.ip)
}

func cannotPing(t *testing.T, from, to kernelVM) {
	t.Helper()
	if pings(from, to, 3) {
		t.Fatalf("%s can ping %s, want no frame to pass", from.ns, to.ip)
	}
}

// TestKernelTapJoinsOnlyAfterItsOwnRules (issue 9, findings 2 and 3, on a
// real kernel): B's apply fails because the kernel refuses the restore;
// B's tap stays out of its bridge (also when the tap timer runs) and
// nothing passes between A and B until an apply with B's chains
// succeeds. Then B's MAC turns bad: B is unplugged, its traffic dropped,
// and it comes back when the MAC is fixed.
func TestKernelTapJoinsOnlyAfterItsOwnRules(t *testing.T) {
	for _, backend := range iptables.Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			testKernelTapJoinsOnlyAfterItsOwnRules(t, backend)
		})
	}
}

func testKernelTapJoinsOnlyAfterItsOwnRules(t *testing.T, backend iptables.Backend) {
	ctx := context.Background()
	ns := netnstest.New(t, "moat-agt")
	host := ns.Name
	nsRun(t, ns.Name, "ip", "link", "set", "lo", "up")
	nsRun(t, ns.Name, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeLinux, Netns: ns.Name, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ex := &refusingExec{Netns: ns}

	// Both ports in one group: everything out, everything in from the
	// group's members.
	const sg = sgWeb
	group := &neutron.SecurityGroup{ID: sg, Stateful: true, Rules: []neutron.SecurityGroupRule{
		{Direction: "egress", Ethertype: "IPv4"},
		{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: ptr(sg)},
	}}
	pa, pb := port(portA, "192.168.1.12", sg), port(portB, "192.168.1.13", sg)
	feed := &fakeFeed{ev: &events{}, changed: make(chan struct{}), snap: &store.HostSnapshot{
		Revision: 1, Host: "h1", Ports: []neutron.Port{pa},
		Networks: map[string]*neutron.Network{netA: {ID: netA, MTU: 1450}},
		Groups:   map[string]*neutron.SecurityGroup{sg: group},
		Members:  map[string][]string{sg: {"192.168.1.12", "192.168.1.13"}},
	}}
	cfg := DefaultConfig()
	cfg.Logger = logger
	a := New(cfg, feed, IPTables(iptables.NewSyncer(ex, backend)), ipset.NewSyncer(ns), Wire(w), &conntrack.Recorder{})
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	vmA, vmB := addKernelVM(t, host, pa), addKernelVM(t, host, pb)
	tapA, tapB := hybrid.TapName(portA), hybrid.TapName(portB)
	qbrA, qbrB := hybrid.BridgeName(portA), hybrid.BridgeName(portB)

	mustSync(t, a)
	if got := master(t, host, tapA); got != qbrA {
		t.Fatalf("A's tap in %q, want %s", got, qbrA)
	}

	// B arrives; the kernel refuses the restore that holds B's chains.
	chainB := "neutron-openvswi-i" + portB[:10]
	ex.refuse(chainB)
	feed.update(func(s *store.HostSnapshot) { s.Ports = append(s.Ports, pb) })
	if err := a.Sync(ctx); err == nil {
		t.Fatal("sync succeeded although the kernel refused the restore")
	}
	if ex.refused == 0 {
		t.Fatal("no restore wrote B's chain: the test did not test anything")
	}
	save := nsRun(t, ns.Name, backend.Command(iptables.IPv4, "save"))
	if strings.Contains(save, chainB) {
		t.Fatalf("the refused transaction left B's chain in the kernel:\n%s", save)
	}
	for i := 0; i < 3; i++ {
		a.attachTaps(ctx) // the tap timer
	}
	if got := master(t, host, tapB); got != "" {
		t.Fatalf("B's tap is in %s although its rules were refused", got)
	}
	if got := master(t, host, hybrid.BridgeVethName(portB)); got != qbrB {
		t.Fatalf("B's qvb in %q, want %s (B is plugged, only its tap waits)", got, qbrB)
	}
	cannotPing(t, vmA, vmB)

	// The kernel accepts the next apply: B joins and passes.
	ex.refuse("")
	mustSync(t, a)
	if got := master(t, host, tapB); got != qbrB {
		t.Fatalf("B's tap in %q after its rules were applied, want %s", got, qbrB)
	}
	canPing(t, vmA, vmB)
	canPing(t, vmB, vmA)

	// B's MAC turns bad: B is cut off, A keeps its rules, the FORWARD
	// chain drops B's tap.
	feed.update(func(s *store.HostSnapshot) { s.Ports[1].MACAddress = "fa:16:3e:zz:00:bb" })
	mustSync(t, a)
	if got := master(t, host, tapB); got != "" {
		t.Fatalf("rejected B's tap is in %s", got)
	}
	save = nsRun(t, ns.Name, backend.Command(iptables.IPv4, "save"))
	for _, want := range []string{
		"-A neutron-openvswi-FORWARD -m physdev --physdev-out " + tapB + " --physdev-is-bridged",
		"-A neutron-openvswi-FORWARD -m physdev --physdev-in " + tapB + " --physdev-is-bridged",
		"-A neutron-openvswi-sg-chain -m physdev --physdev-out " + tapA,
	} {
		if !strings.Contains(save, want) {
			t.Errorf("iptables-save lacks %q", want)
		}
	}
	if strings.Contains(save, chainB) {
		t.Errorf("rejected B's chains are still installed")
	}
	cannotPing(t, vmA, vmB)
	if got := feed.ev.take(); !strings.Contains(strings.Join(got, "\n"), `status bbbb ERROR bad MAC "fa:16:3e:zz:00:bb"`) {
		t.Errorf("B not reported ERROR: %v", got)
	}

	// Fixed: B is plugged again and passes.
	feed.update(func(s *store.HostSnapshot) { s.Ports[1].MACAddress = pb.MACAddress })
	mustSync(t, a)
	if got := master(t, host, tapB); got != qbrB {
		t.Fatalf("fixed B's tap in %q, want %s", got, qbrB)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !pings(vmA, vmB, 1) {
		if time.Now().After(deadline) {
			t.Fatal("fixed B unreachable")
		}
	}
}
