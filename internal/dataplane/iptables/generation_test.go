package iptables

import (
	"context"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/netnstest"
)

// TestKernelGeneration checks what the drift check relies on: the nf_tables
// generation of a namespace moves by one per committed table transaction,
// not on reads, and not in another namespace.
func TestKernelGeneration(t *testing.T) {
	needKernel(t, NFT)
	ns := netnstest.New(t, "moat-ipt")
	other := netnstest.New(t, "moat-ipt")
	ctx := context.Background()
	gen, genOther := NFTGeneration(ns.Name), NFTGeneration(other.Name)
	read := func(g GenerationFunc) uint32 {
		t.Helper()
		v, err := g(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	g0, o0 := read(gen), read(genOther)
	netnstest.Run(t, ns, "*filter\n:neutron-openvswi-a - [0:0]\n-A neutron-openvswi-a -j RETURN\nCOMMIT\n*raw\n:neutron-openvswi-b - [0:0]\nCOMMIT\n", "iptables-nft-restore", "--noflush")
	if g := read(gen); g-g0 != 2 {
		t.Errorf("two table transactions moved the generation by %d", g-g0)
	}
	g1 := read(gen)
	netnstest.Run(t, ns, "", "iptables-nft-save")
	netnstest.Run(t, ns, "", "iptables-nft", "-S", "neutron-openvswi-a")
	if g := read(gen); g != g1 {
		t.Errorf("reads moved the generation by %d", g-g1)
	}
	netnstest.Run(t, ns, "", "ip6tables-nft", "-N", "x")
	if g := read(gen); g-g1 != 1 {
		t.Errorf("an ip6tables-nft -N moved the generation by %d", g-g1)
	}
	if o := read(genOther); o != o0 {
		t.Errorf("another namespace's generation moved by %d", o-o0)
	}
	if _, err := NFTGeneration("moat-no-such-namespace")(ctx); err == nil {
		t.Error("generation of a missing namespace")
	}
}

// TestKernelCheckByGeneration checks that with iptables-nft a Check after
// the syncer's own Apply runs no command, and one after a foreign write
// reads the tables and finds the drift.
func TestKernelCheckByGeneration(t *testing.T) {
	needKernel(t, NFT)
	ns := netnstest.New(t, "moat-ipt")
	ctx := context.Background()
	rec := &iptablestest.Recorder{Exec: ns}
	s := NewSyncer(rec, NFT)
	s.SetGeneration(NFTGeneration(ns.Name))
	b := appliedBench(t, ns, s, 10)
	rec.Reset()
	if d, err := s.Check(ctx, b.rs); err != nil || len(d) > 0 {
		t.Errorf("Check = %q, %v", d, err)
	}
	if ok, err := s.CanaryPresent(ctx); err != nil || !ok {
		t.Errorf("CanaryPresent = %v, %v", ok, err)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("Check after Apply ran %v", calls)
	}
	port := "neutron-openvswi-o" + b.State.Ports[4].ID[:10]
	netnstest.Run(t, ns, "", "iptables-nft", "-D", port, "-m", "state", "--state", "INVALID", "-m", "comment", "--comment",
		"Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack.", "-j", "DROP")
	d, err := s.Check(ctx, b.rs)
	if err != nil || len(d) != 1 || !strings.Contains(d[0], port) {
		t.Errorf("Check = %q, %v, want %s", d, err, port)
	}
	st, err := s.Apply(ctx, b.rs)
	if err != nil || st.Saved || st.ChainsPatched != 1 || st.RulesWritten != 1 {
		t.Errorf("repair: %+v, %v", st, err)
	}
	rec.Reset()
	if d, err := s.Check(ctx, b.rs); err != nil || len(d) > 0 || len(rec.Calls()) != 0 {
		t.Errorf("after repair: Check = %q, %v, ran %v", d, err, rec.Calls())
	}
}
