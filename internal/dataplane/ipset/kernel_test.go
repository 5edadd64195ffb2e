package ipset

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// newNetns creates a scratch network namespace (ipsets are per namespace)
// deleted when the test ends, or skips the test where that is impossible
// (fails it with MOAT_REQUIRE_KERNEL=1).
func newNetns(t *testing.T) dataplane.Netns {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "ipset", "iptables-nft")
	return netnstest.New(t, "moat-ipset")
}

func TestKernelSteps(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	if _, err := ns.Run(ctx, []byte("create foreign hash:ip family inet\nadd foreign 1.2.3.4\ncreate LIBVIRT-x hash:net\n"), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	runSteps(t, ns, []string{"foreign", "LIBVIRT-x"})
	out, err := ns.Run(ctx, nil, "ipset", "list", "foreign")
	if err != nil || !strings.Contains(string(out), "\n1.2.3.4\n") {
		t.Errorf("foreign set changed: %s %v", out, err)
	}
}

// TestKernelCompiledSets loads the sets of the reference scenarios and
// checks that the kernel prints the members exactly as the compiler spells
// them: after an Apply, a Check finds nothing.
func TestKernelCompiledSets(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	s := NewSyncer(ns)
	sets := []firewall.IPSet{
		v4(setA, "0.0.0.0/1", "128.0.0.0/1"),
		v4(setB, "10.10.0.0/24", "192.168.1.12", "192.168.1.13"),
		v6(set6, "::/1", "2001:db8::/64", "2001:db8::14", "8000::/1", "fe80::f816:3eff:feaa:bbcc"),
	}
	if _, err := s.Apply(ctx, sets); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Check(ctx, sets); err != nil || len(d) > 0 {
		t.Errorf("Check = %q, %v", d, err)
	}
}

// TestKernelInUse checks the order the agent must keep: a set iptables
// still refers to cannot be destroyed; once the rule is gone it can.
func TestKernelInUse(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	s := NewSyncer(ns)
	if _, err := s.Apply(ctx, []firewall.IPSet{v4(setA, "10.0.0.1"), v4(setB)}); err != nil {
		t.Fatal(err)
	}
	rule := []string{"-A", "INPUT", "-m", "set", "--match-set", setA, "src", "-j", "DROP"}
	if _, err := ns.Run(ctx, nil, "iptables-nft", rule...); err != nil {
		t.Fatal(err)
	}
	stale, err := s.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stale, []string{setA, setB}) {
		t.Fatalf("stale %q", stale)
	}
	err = s.Destroy(ctx, stale)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Destroy of a set in use = %v", err)
	}
	t.Logf("expected failure: %v", err)
	if got := kernelState(t, ns); len(got) != 1 {
		t.Errorf("sets %v, want only %s left", got, setA)
	}
	rule[0] = "-D"
	if _, err := ns.Run(ctx, nil, "iptables-nft", rule...); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(ctx, []string{setA}); err != nil {
		t.Fatal(err)
	}
	if got := kernelState(t, ns); len(got) != 0 {
		t.Errorf("sets %v left", got)
	}
}

// TestKernelSwapWhileInUse checks that a bulk change swaps the members of a
// set iptables refers to (a set in use can be swapped, not destroyed).
func TestKernelSwapWhileInUse(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	s := NewSyncer(ns)
	if _, err := s.Apply(ctx, []firewall.IPSet{v4(setA, hosts(0, 10)...)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Run(ctx, nil, "iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", setA, "src", "-j", "DROP"); err != nil {
		t.Fatal(err)
	}
	want := []firewall.IPSet{v4(setA, hosts(100, 50)...)}
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	if st := s.LastStats(); st.Swapped != 1 {
		t.Errorf("stats %+v, want a swap", st)
	}
	assertSets(t, ns, want)
}
