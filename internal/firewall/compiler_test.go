package firewall_test

import (
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

// TestBenchRuleCounts checks the compiler against the rule counts Neutron's
// own benchmark reports for 500 ports after its two rule changes
// (numbers-to-beat.md): 16,560 IPv4 and 14,010 IPv6 -A lines.
func TestBenchRuleCounts(t *testing.T) {
	b := workload.NewBench(500)
	b.AddRule(b.Common, 5555)
	b.AddRule(b.Apps[0], 5556)
	rs, err := firewall.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	v4 := rs.IPv4.Filter.RuleCount() + rs.IPv4.Raw.RuleCount()
	v6 := rs.IPv6.Filter.RuleCount() + rs.IPv6.Raw.RuleCount()
	if v4 != 16560 || v6 != 14010 {
		t.Errorf("%d IPv4 and %d IPv6 rules, Neutron has 16560 and 14010", v4, v6)
	}
	if len(rs.IPSets) != 22 {
		t.Errorf("%d ipsets, Neutron has 22", len(rs.IPSets))
	}
}

// TestIncrementalCompile shows that the work of a compile follows what
// changed, and that the result is always what a fresh compile gives.
func TestIncrementalCompile(t *testing.T) {
	const n = 200
	b := workload.NewBench(n)
	c := firewall.NewCompiler()
	// Zones are fed back from one compile to the next, as an agent does.
	compile := func() {
		t.Helper()
		rs, err := c.Compile(b.State)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := firewall.Compile(b.State)
		if err != nil {
			t.Fatal(err)
		}
		assertSameRuleset(t, rs, fresh)
		b.State.Zones = rs.ZoneAssignments
	}
	steps := []struct {
		name   string
		change func()
		want   firewall.Stats
	}{
		{"first compile", func() {},
			firewall.Stats{Ports: n, PortsRebuilt: n, PortsRecompiled: n, GroupsRendered: 11, CombosBuilt: 10, AddressListsBuilt: 11}},
		{"nothing changed", func() {},
			firewall.Stats{Ports: n}},
		{"rule added to the common group", func() { b.AddRule(b.Common, 5555) },
			firewall.Stats{Ports: n, PortsRecompiled: n, GroupsRendered: 1, CombosBuilt: 10}},
		{"rule added to one app group", func() { b.AddRule(b.Apps[3], 5556) },
			firewall.Stats{Ports: n, PortsRecompiled: n / 10, GroupsRendered: 1, CombosBuilt: 1}},
		{"member joins a group elsewhere", func() {
			b.State.GroupMembers[b.Apps[3]] = append(b.State.GroupMembers[b.Apps[3]], "172.31.0.1")
		}, firewall.Stats{Ports: n, AddressListsBuilt: 1}},
		{"member order changes", func() { slices.Reverse(b.State.GroupMembers[b.Common]) },
			firewall.Stats{Ports: n}},
		{"one port gets another address", func() {
			b.State.Ports[7].FixedIPs = append(b.State.Ports[7].FixedIPs, "2001:db8::7")
		}, firewall.Stats{Ports: n, PortsRebuilt: 1, PortsRecompiled: 1}},
		{"a port leaves", func() { b.State.Ports = b.State.Ports[1:] },
			firewall.Stats{Ports: n - 1}},
	}
	for _, s := range steps {
		s.change()
		compile()
		if got := c.Stats(); got != s.want {
			t.Errorf("%s: stats %+v, want %+v", s.name, got, s.want)
		}
	}
}

// TestMemberChangeWithoutIPSet: without ipsets members are rules, so a
// membership change re-assembles exactly the ports whose rules name the
// group.
func TestMemberChangeWithoutIPSet(t *testing.T) {
	const n = 100
	b := workload.NewBench(n)
	b.State.Options.EnableIPSet = false
	c := firewall.NewCompiler()
	if _, err := c.Compile(b.State); err != nil {
		t.Fatal(err)
	}
	b.State.GroupMembers[b.Apps[2]] = append(b.State.GroupMembers[b.Apps[2]], "172.31.0.9")
	rs, err := c.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().PortsRecompiled; got != n/10 {
		t.Errorf("%d ports recompiled, want %d", got, n/10)
	}
	fresh, err := firewall.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	assertSameRuleset(t, rs, fresh)
}

// TestZonesStayStable: a port keeps its zone when others come and go, and
// new ports count up from the highest zone in use.
func TestZonesStayStable(t *testing.T) {
	b := workload.NewBench(3)
	c := firewall.NewCompiler()
	rs, err := c.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	first := zonesByPort(rs)
	if got := sortedZones(first); !slices.Equal(got, []int{4097, 4098, 4099}) {
		t.Fatalf("zones %v", got)
	}
	// Port 0 leaves, a new port arrives; zones are fed back.
	gone := b.State.Ports[0]
	b.State.Ports = append(b.State.Ports[1:], workload.NewBench(4).State.Ports[3])
	b.State.Zones = rs.ZoneAssignments
	rs, err = c.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	second := zonesByPort(rs)
	for id, z := range second {
		if old, ok := first[id]; ok && old != z {
			t.Errorf("port %s moved from zone %d to %d", id, old, z)
		}
	}
	if _, ok := second[gone.ID]; ok {
		t.Errorf("port that left still has a zone")
	}
	if z := second[b.State.Ports[2].ID]; z != 4100 {
		t.Errorf("new port got zone %d, want 4100 (the old port's 4097 stays reserved)", z)
	}
}

func zonesByPort(rs *firewall.Ruleset) map[string]int {
	m := map[string]int{}
	for _, pz := range rs.PortZones {
		m[pz.PortID] = pz.Zone
	}
	return m
}

func sortedZones(m map[string]int) []int {
	var zs []int
	for _, z := range m {
		zs = append(zs, z)
	}
	slices.Sort(zs)
	return zs
}

func assertSameRuleset(t *testing.T, got, want *firewall.Ruleset) {
	t.Helper()
	for _, p := range []struct {
		name      string
		got, want *firewall.Table
	}{
		{"ipv4 filter", &got.IPv4.Filter, &want.IPv4.Filter},
		{"ipv4 raw", &got.IPv4.Raw, &want.IPv4.Raw},
		{"ipv6 filter", &got.IPv6.Filter, &want.IPv6.Filter},
		{"ipv6 raw", &got.IPv6.Raw, &want.IPv6.Raw},
	} {
		if !sameChains(p.got.Builtins, p.want.Builtins) || !sameChains(p.got.Chains, p.want.Chains) {
			t.Fatalf("%s: incremental result differs from a fresh compile", p.name)
		}
	}
	if !slices.EqualFunc(got.IPSets, want.IPSets, func(a, b firewall.IPSet) bool {
		return a.Name == b.Name && a.Family == b.Family && slices.Equal(a.Members, b.Members)
	}) {
		t.Fatalf("ipsets: incremental result differs from a fresh compile")
	}
	if !slices.Equal(got.PortZones, want.PortZones) {
		t.Fatalf("zones: incremental result differs from a fresh compile")
	}
}

func sameChains(a, b []firewall.Chain) bool {
	return slices.EqualFunc(a, b, func(x, y firewall.Chain) bool { return x.Equal(y) })
}
