package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/testenv"
)

// refusingNFT fails every nft transaction that mentions refuse, without
// running it (nft transactions are atomic: a refused one applies nothing,
// which is what the kernel does too).
type refusingNFT struct {
	dataplane.Netns
	mu      sync.Mutex
	refuse  string
	refused int
}

func (e *refusingNFT) set(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refuse = s
}

func (e *refusingNFT) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	e.mu.Lock()
	refuse := e.refuse
	if refuse != "" && name == "nft" && strings.Contains(string(stdin), refuse) {
		e.refused++
		e.mu.Unlock()
		return nil, &dataplane.CommandError{Cmd: "nft -f -", Err: errors.New("exit status 1"), Stderr: "-:1:1-1: Error: refused by the test"}
	}
	e.mu.Unlock()
	return e.Netns.Run(ctx, stdin, name, args...)
}

// TestKernelNFTables runs the agent on the nftables backend against a
// real kernel: a tap joins its bridge only after a transaction holding
// its port's chains committed; a restarted agent learns the zones from
// moat's tables; the canary notices a deleted table.
func TestKernelNFTables(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft", "ping")
	testenv.RequireBrNetfilter(t)
	ctx := context.Background()
	ns := netnstest.New(t, "moat-agn")
	host := ns.Name
	nsRun(t, host, "ip", "link", "set", "lo", "up")
	nsRun(t, host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeLinux, Netns: host, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ex := &refusingNFT{Netns: ns}

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
	syncer := nftables.NewSyncer(ex)
	syncer.SetGeneration(iptables.NFTGeneration(host)) // ex is no dataplane.Netns: say where to look
	rules := NFTables(syncer)
	a := New(cfg, feed, rules, NoSets(), Wire(w), &conntrack.Recorder{})
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

	// B arrives; its transaction is refused: its tap stays out.
	chainB := nftrender.InChain(portB)
	ex.set(chainB)
	feed.update(func(s *store.HostSnapshot) { s.Ports = append(s.Ports, pb) })
	if err := a.Sync(ctx); err == nil {
		t.Fatal("sync succeeded although nft refused the transaction")
	}
	if ex.refused == 0 {
		t.Fatal("no transaction named B's chain: the test did not test anything")
	}
	if out := nsRun(t, host, "nft", "list", "table", "ip", "moat"); strings.Contains(out, chainB) {
		t.Fatalf("the refused transaction left B's chain:\n%s", out)
	}
	for i := 0; i < 3; i++ {
		a.attachTaps(ctx)
	}
	if got := master(t, host, tapB); got != "" {
		t.Fatalf("B's tap is in %s although its rules were refused", got)
	}
	cannotPing(t, vmA, vmB)

	ex.set("")
	mustSync(t, a)
	if got := master(t, host, tapB); got != qbrB {
		t.Fatalf("B's tap in %q after its rules were applied, want %s", got, qbrB)
	}
	canPing(t, vmA, vmB)
	canPing(t, vmB, vmA)

	// A new agent (a restart) reads the zones back from the kernel.
	zones, err := NFTables(nftables.NewSyncer(ns)).InstalledZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(zones) != 2 || !maps.Equal(zones, a.zones) {
		t.Errorf("installed zones %v, want the agent's %v", zones, a.zones)
	}

	// The canary: present, then gone with the table.
	if ok, err := rules.CanaryPresent(ctx); err != nil || !ok {
		t.Fatalf("canary present = %v, %v; want true", ok, err)
	}
	nsRun(t, host, "nft", "delete", "table", "ip", "moat")
	if ok, err := rules.CanaryPresent(ctx); err != nil || ok {
		t.Fatalf("canary present = %v, %v after the table was deleted; want false", ok, err)
	}
	rules.Invalidate()
	mustSync(t, a)
	canPing(t, vmA, vmB)
}

// TestKernelSwitchBackends switches a live host from iptables-nft to
// nftables and back: each agent takes the zones of the previous backend,
// removes its rules only after its own are in, and a ping running across
// both switches loses no packet.
func TestKernelSwitchBackends(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft", "ping", "ipset", "iptables-nft", "iptables-nft-save")
	testenv.RequireBrNetfilter(t)
	ctx := context.Background()
	ns := netnstest.New(t, "moat-ags")
	host := ns.Name
	nsRun(t, host, "ip", "link", "set", "lo", "up")
	nsRun(t, host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeLinux, Netns: host, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	const sg = sgWeb
	group := &neutron.SecurityGroup{ID: sg, Stateful: true, Rules: []neutron.SecurityGroupRule{
		{Direction: "egress", Ethertype: "IPv4"},
		{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: ptr(sg)},
	}}
	pa, pb := port(portA, "192.168.1.12", sg), port(portB, "192.168.1.13", sg)
	feed := &fakeFeed{ev: &events{}, changed: make(chan struct{}), snap: &store.HostSnapshot{
		Revision: 1, Host: "h1", Ports: []neutron.Port{pa, pb},
		Networks: map[string]*neutron.Network{netA: {ID: netA, MTU: 1450}},
		Groups:   map[string]*neutron.SecurityGroup{sg: group},
		Members:  map[string][]string{sg: {"192.168.1.12", "192.168.1.13"}},
	}}
	vmA, vmB := addKernelVM(t, host, pa), addKernelVM(t, host, pb)
	start := func(b Backend) *Agent {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Logger = logger
		cfg.Previous = b.Previous(ns)
		rules, sets, err := b.Kernel(ns)
		if err != nil {
			t.Fatal(err)
		}
		a := New(cfg, feed, rules, sets, Wire(w), &conntrack.Recorder{})
		if err := a.recover(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	iptablesHolds := func() bool {
		return strings.Contains(nsRun(t, host, "iptables-nft-save"), ":neutron-openvswi-")
	}
	nftHolds := func() bool {
		_, err := ns.Run(ctx, nil, "nft", "list", "table", "ip", "moat")
		return err == nil
	}

	a1 := start(IPTablesNFT)
	mustSync(t, a1)
	canPing(t, vmA, vmB)
	zones := maps.Clone(a1.zones)
	if !iptablesHolds() || nftHolds() {
		t.Fatalf("after the iptables agent: iptables %v, nftables %v", iptablesHolds(), nftHolds())
	}

	// A flow runs across both switches.
	done := make(chan string, 1)
	go func() {
		out, _ := dataplane.Netns{Name: vmA.ns}.Run(ctx, nil, "ping", "-n", "-q", "-c", "60", "-i", "0.05", "-W", "1", vmB.ip)
		done <- string(out)
	}()

	a2 := start(NFTablesLayout)
	if !maps.Equal(a2.zones, zones) {
		t.Errorf("the nftables agent took zones %v, the iptables agent had %v", a2.zones, zones)
	}
	mustSync(t, a2)
	if iptablesHolds() || !nftHolds() {
		t.Errorf("after the switch to nftables: iptables holds moat's chains %v, nftables its tables %v", iptablesHolds(), nftHolds())
	}
	canPing(t, vmA, vmB)

	a3 := start(IPTablesNFT)
	if !maps.Equal(a3.zones, zones) {
		t.Errorf("the iptables agent took zones %v, want %v", a3.zones, zones)
	}
	mustSync(t, a3)
	if !iptablesHolds() || nftHolds() {
		t.Errorf("after the switch back: iptables %v, nftables %v", iptablesHolds(), nftHolds())
	}
	canPing(t, vmA, vmB)
	if out := <-done; !strings.Contains(out, " 0% packet loss") {
		t.Errorf("the flow lost packets across the switches:\n%s", out)
	}
}
