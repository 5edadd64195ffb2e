package agent

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/testenv"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// TestKernelCounters: on a real kernel, pings from A to B raise the
// packets counter of the ICMP rule in B's i chain as the agent reads it
// for a counters request, and every rule it reads is, at its chain and
// position, the rule the console compiles for the port — the same text
// on iptables, the same origin on nftables — so the console shows its
// counters.
func TestKernelCounters(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			if backend == NFTablesLayout {
				testenv.RequireNetns(t)
				testenv.RequireTools(t, "nft", "ping")
				testenv.RequireBrNetfilter(t)
			} else {
				needKernel(t, iptables.Backend(backend))
			}
			testKernelCounters(t, backend)
		})
	}
}

func testKernelCounters(t *testing.T, backend Backend) {
	ctx := context.Background()
	ns := netnstest.New(t, "moat-agc")
	host := ns.Name
	nsRun(t, host, "ip", "link", "set", "lo", "up")
	nsRun(t, host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeLinux, Netns: host, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	group := &neutron.SecurityGroup{ID: sgWeb, Stateful: true, Rules: []neutron.SecurityGroupRule{
		{Direction: "egress", Ethertype: "IPv4"},
		{Direction: "ingress", Ethertype: "IPv4", Protocol: ptr("icmp"), RemoteIPPrefix: ptr("192.168.1.0/24")},
	}}
	pa, pb := port(portA, "192.168.1.12", sgWeb), port(portB, "192.168.1.13", sgWeb)
	snap := &store.HostSnapshot{
		Revision: 1, Host: "h1", Ports: []neutron.Port{pa, pb},
		Networks: map[string]*neutron.Network{netA: {ID: netA, MTU: 1450}},
		Groups:   map[string]*neutron.SecurityGroup{sgWeb: group},
	}
	feed := &fakeFeed{ev: &events{}, changed: make(chan struct{}), snap: snap}
	cfg := DefaultConfig()
	cfg.Logger = logger
	rules, sets, err := backend.Kernel(ns)
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, feed, rules, sets, Wire(w), &conntrack.Recorder{})
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	vmA, vmB := addKernelVM(t, host, pa), addKernelVM(t, host, pb)
	mustSync(t, a)
	canPing(t, vmA, vmB)

	in := hybrid.PortChain(hybrid.ChainIn, portB)
	icmp := func() uint64 {
		t.Helper()
		ans := a.Counters(ctx, []string{portB})
		if ans.Error != "" || ans.Errors[portB] != "" {
			t.Fatalf("counters: %+v", ans)
		}
		for _, r := range ans.Ports[portB] {
			if r.Family == "IPv4" && r.Chain == in && (strings.Contains(r.Rule, "-p icmp") || strings.HasPrefix(r.Origin, "sgr ")) {
				return r.Packets
			}
		}
		t.Fatalf("no ICMP rule in %s among %+v", in, ans.Ports[portB])
		return 0
	}
	before := icmp()
	// Only a flow's first echo request meets the ICMP rule (the rest are
	// ESTABLISHED and return earlier in the chain): each ping is one
	// process, a new ICMP id, a new flow.
	const n = 5
	for i := 0; i < n; i++ {
		if !pings(vmA, vmB, 1) {
			t.Fatalf("ping %d from A to B did not pass", i+1)
		}
	}
	if after := icmp(); after < before+n {
		t.Errorf("ICMP rule's packets %d -> %d after %d pings, want %d more", before, after, n, n)
	}

	// The texts match what the console compiles, rule by rule.
	h, err := moatrules.Host(HostState(snap, cfg.Options, nil))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := h.Explain(portB, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, r := range ex.Rows {
		w := r.Rule
		if backend == NFTablesLayout {
			w = nftrender.OriginTag(&hybrid.Origin{Kind: hybrid.OriginKind(r.Kind), Rules: r.Rules})
		}
		want[r.Family+" "+r.Chain+" "+strconv.Itoa(r.Number)] = w
	}
	ans := a.Counters(ctx, []string{portB})
	fams := map[string]int{}
	for _, r := range ans.Ports[portB] {
		fams[r.Family]++
		k := r.Family + " " + r.Chain + " " + strconv.Itoa(r.Number)
		got := r.Rule
		if backend == NFTablesLayout {
			got = r.Origin
		}
		if w, ok := want[k]; !ok || (w != got && hybrid.RestoreRule(w) != hybrid.RestoreRule(got)) {
			t.Errorf("%s: the kernel holds %q, the console compiles %q", k, got, w)
		}
	}
	if fams["IPv4"] == 0 || fams["IPv6"] == 0 {
		t.Errorf("rules read per family %v, want both", fams)
	}
}
