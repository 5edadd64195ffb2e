package hostview

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func ptr[T any](v T) *T { return &v }

// base is a host with two ports: p1 in web (which admits db's members on
// 5432) and p2 in db, on network n1.
func base() *View {
	v := New("h1")
	v.Revision = 10
	v.Ports["p1"] = &Port{ID: "p1", MAC: "fa:16:3e:00:00:01", NetworkID: "n1", FixedIPs: []string{"10.0.0.1"},
		PortSecurity: true, SecurityGroups: []string{"web"}}
	v.Ports["p2"] = &Port{ID: "p2", MAC: "fa:16:3e:00:00:02", NetworkID: "n1", FixedIPs: []string{"10.0.0.2"},
		PortSecurity: true, SecurityGroups: []string{"db"}}
	v.Networks["n1"] = &Network{ID: "n1", MTU: 1450, NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 102}
	v.Groups["web"] = &Group{ID: "web", Stateful: true, Rules: []Rule{
		{ID: "r1", Direction: "ingress", Ethertype: "IPv4", Protocol: "tcp", PortRangeMin: ptr(5432), PortRangeMax: ptr(5432), RemoteGroupID: "db"},
	}}
	v.Groups["db"] = &Group{ID: "db", Stateful: true, Rules: []Rule{{ID: "r2", Direction: "egress", Ethertype: "IPv4"}}}
	v.Members["db"] = &Members{Group: "db", IPv4: []string{"10.0.0.2", "10.0.1.9"}, IPv6: []string{}}
	return v
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v *View)
		want Delta
	}{
		{"nothing", func(*View) {}, Delta{}},
		{"port address", func(v *View) {
			p := *v.Ports["p1"]
			p.FixedIPs = []string{"10.0.0.5"}
			v.Ports["p1"] = &p
		}, Delta{Ports: []Port{{ID: "p1", MAC: "fa:16:3e:00:00:01", NetworkID: "n1", FixedIPs: []string{"10.0.0.5"},
			PortSecurity: true, SecurityGroups: []string{"web"}}}}},
		{"port gone, its group and the members only its group needed", func(v *View) {
			delete(v.Ports, "p1")
			v.Prune()
		}, Delta{RemovedPorts: []string{"p1"}, RemovedGroups: []string{"web"}, RemovedMembers: []string{"db"}}},
		{"member joins", func(v *View) {
			v.Members["db"] = &Members{Group: "db", IPv4: []string{"10.0.0.2", "10.0.1.9", "10.0.2.1"}, IPv6: []string{"fd00::1"}}
		}, Delta{Members: []Members{{Group: "db", IPv4: []string{"10.0.0.2", "10.0.1.9", "10.0.2.1"}, IPv6: []string{"fd00::1"}}}}},
		{"rule removed: the group travels whole", func(v *View) {
			v.Groups["db"] = &Group{ID: "db", Stateful: true, Rules: []Rule{}}
		}, Delta{Groups: []Group{{ID: "db", Stateful: true, Rules: []Rule{}}}}},
		{"segment changes", func(v *View) {
			v.Networks["n1"] = &Network{ID: "n1", MTU: 1450, NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 103}
		}, Delta{Networks: []Network{{ID: "n1", MTU: 1450, NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 103}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := base()
			new := old.Clone()
			tc.edit(new)
			got := Diff(old, new)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff:\n got %+v\nwant %+v", got, tc.want)
			}
			applied := old.Clone()
			applied.Apply(&got)
			if !Equal(applied, new) || !Equal(new, applied) {
				t.Errorf("old + Diff(old, new) != new:\n got %+v\nwant %+v", applied, new)
			}
		})
	}
}

func TestDiffFromNothingIsEverything(t *testing.T) {
	v := base()
	d := Diff(nil, v)
	if len(d.Ports) != 2 || len(d.Groups) != 2 || len(d.Networks) != 1 || len(d.Members) != 1 || len(d.RemovedPorts) != 0 {
		t.Fatalf("Diff(nil, v) = %+v", d)
	}
	got := New("h1")
	got.Apply(&d)
	if !Equal(got, v) {
		t.Errorf("applied snapshot differs: %+v", got)
	}
}

// TestResume: an agent that held the view at an older revision and gets
// Resume(now, what the log says changed since) ends with exactly now,
// though the server never knew its old view.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		// edit turns the old view into now; ch is what the change log
		// records for it.
		edit func(v *View)
		ch   func(c *Changed)
		// wantPorts bounds what the resume sends (the ports' ids).
		wantPorts []string
	}{
		{"nothing", func(*View) {}, func(*Changed) {}, nil},
		{"a port bound here carrying a group the host did not have, naming a new remote group",
			func(v *View) {
				v.Ports["p3"] = &Port{ID: "p3", MAC: "fa:16:3e:00:00:03", NetworkID: "n2", SecurityGroups: []string{"ssh"}, PortSecurity: true}
				v.Networks["n2"] = &Network{ID: "n2", MTU: 1500, NetworkType: "flat", PhysicalNetwork: "physnet2"}
				// ssh existed before, unchanged: only the port's change is logged.
				v.Groups["ssh"] = &Group{ID: "ssh", Rules: []Rule{{ID: "r9", Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: "admins"}}}
				v.Members["admins"] = &Members{Group: "admins", IPv4: []string{"192.0.2.1"}, IPv6: []string{}}
			},
			func(c *Changed) { c.Ports["p3"] = true }, []string{"p3"}},
		{"a port moved away: its group and members fall out of use",
			func(v *View) { delete(v.Ports, "p1"); v.Prune() },
			func(c *Changed) { c.Ports["p1"] = true }, nil},
		{"a rule deleted from a group (the log names only the rule)",
			func(v *View) {
				v.Groups["web"] = &Group{ID: "web", Stateful: true, Rules: []Rule{}}
				v.Prune()
			},
			func(c *Changed) { c.AllGroups = true }, nil},
		{"a rule created naming a remote group the host did not need",
			func(v *View) {
				v.Groups["db"] = &Group{ID: "db", Stateful: true, Rules: []Rule{{ID: "r2", Direction: "egress", Ethertype: "IPv4"},
					{ID: "r3", Direction: "ingress", Ethertype: "IPv6", RemoteGroupID: "web"}}}
				v.Members["web"] = &Members{Group: "web", IPv4: []string{"10.0.0.1"}, IPv6: []string{}}
			},
			func(c *Changed) { c.Groups["db"] = true }, nil},
		{"a member on another host changes address",
			func(v *View) {
				v.Members["db"] = &Members{Group: "db", IPv4: []string{"10.0.0.2", "10.0.1.10"}, IPv6: []string{}}
			},
			func(c *Changed) { c.Members["db"] = true }, nil},
		{"changes elsewhere only",
			func(*View) {},
			func(c *Changed) { c.Ports["elsewhere"] = true; c.Groups["other"] = true; c.Members["other"] = true }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := base()
			now := old.Clone()
			tc.edit(now)
			ch := NewChanged()
			tc.ch(&ch)
			d := Resume(now, ch)
			var ports []string
			for _, p := range d.Ports {
				ports = append(ports, p.ID)
			}
			if !slices.Equal(ports, tc.wantPorts) {
				t.Errorf("resume sends ports %v, want %v", ports, tc.wantPorts)
			}
			got := old.Clone()
			got.Apply(&d)
			if !Equal(got, now) || !Equal(now, got) {
				t.Errorf("old + Resume != now:\n got %s\nwant %s", dump(got), dump(now))
			}
		})
	}
}

func dump(v *View) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRoute(t *testing.T) {
	change := func(kind, id, op string) store.Change { return store.Change{Kind: kind, ObjectID: id, Op: op} }
	look := Lookup{PortHost: map[string]string{"p1": "h1", "p9": "h2", "new": "h1"}, RuleGroup: map[string]string{"r7": "web", "r8": "other"}}
	for _, tc := range []struct {
		name     string
		changes  []store.Change
		relevant bool
	}{
		{"a port of another host, not in the view", []store.Change{change(store.KindPort, "p9", store.OpUpdate)}, false},
		{"a port bound here now", []store.Change{change(store.KindPort, "new", store.OpCreate)}, true},
		{"a port of the view moved away", []store.Change{change(store.KindPort, "p2", store.OpUpdate)}, true},
		{"a port of another host deleted", []store.Change{change(store.KindPort, "p9", store.OpDelete)}, false},
		{"members of a remote group here", []store.Change{change(store.KindSecurityGroupMember, "db", store.OpUpdate)}, true},
		{"members of a group no rule here names", []store.Change{change(store.KindSecurityGroupMember, "other", store.OpUpdate)}, false},
		{"a rule created in a group here", []store.Change{change(store.KindSecurityGroupRule, "r7", store.OpCreate)}, true},
		{"a rule created in another group", []store.Change{change(store.KindSecurityGroupRule, "r8", store.OpCreate)}, false},
		{"a rule of the view deleted", []store.Change{change(store.KindSecurityGroupRule, "r1", store.OpDelete)}, true},
		{"a rule elsewhere deleted", []store.Change{change(store.KindSecurityGroupRule, "rX", store.OpDelete)}, false},
		{"the network", []store.Change{change(store.KindNetwork, "n1", store.OpUpdate)}, true},
		{"subnets, quotas, RBAC", []store.Change{change(store.KindSubnet, "s1", store.OpCreate), change(store.KindQuota, "p", store.OpUpdate),
			change(store.KindRBAC, "x", store.OpCreate)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, relevant := Route(base(), "h1", tc.changes, look)
			if relevant != tc.relevant {
				t.Errorf("relevant = %v, want %v", relevant, tc.relevant)
			}
			// Without a view (a resume) everything that may concern the
			// host counts, except ports deleted or bound elsewhere that
			// it cannot have had... which it may have had: they count too.
			if _, any := Route(nil, "h1", tc.changes, look); !any && tc.relevant {
				t.Errorf("Route(nil) missed a change the view needs")
			}
		})
	}
	ch, _ := Route(nil, "h1", []store.Change{change(store.KindSecurityGroupRule, "rX", store.OpDelete)}, look)
	if !ch.AllGroups {
		t.Errorf("a deleted rule on resume must mark every group changed")
	}
	ports, rules := Needs([]store.Change{change(store.KindPort, "a", store.OpUpdate), change(store.KindPort, "a", store.OpCreate),
		change(store.KindPort, "b", store.OpDelete), change(store.KindSecurityGroupRule, "r", store.OpCreate)})
	if !slices.Equal(ports, []string{"a"}) || !slices.Equal(rules, []string{"r"}) {
		t.Errorf("Needs = %v, %v", ports, rules)
	}
}

func TestSplitBoundsFrames(t *testing.T) {
	big := New("h1")
	for i := range 1234 {
		id := fmt.Sprintf("p%04d", i)
		big.Ports[id] = &Port{ID: id, NetworkID: "n1", SecurityGroups: []string{"g"}}
	}
	rules := make([]Rule, 700)
	for i := range rules {
		rules[i] = Rule{ID: fmt.Sprintf("r%d", i), Direction: "ingress", Ethertype: "IPv4"}
	}
	big.Groups["g"] = &Group{ID: "g", Rules: rules}
	big.Networks["n1"] = &Network{ID: "n1", MTU: 1500}
	for _, tc := range []struct {
		name  string
		d     Delta
		max   int
		heavy int // frames allowed over max (an object heavier than max)
	}{
		{"empty", Delta{}, 500, 0},
		{"a big host with a heavy group", Diff(nil, big), 500, 1},
		{"removals", Delta{RemovedPorts: make([]string, 5000)}, 100, 0},
		{"tiny frames: the two groups weigh 2 each", Diff(nil, base()), 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := Split(tc.d, tc.max)
			var merged Delta
			over := 0
			for _, f := range frames {
				if f.Weight() > tc.max {
					over++
				}
				merged.Merge(&f)
			}
			if over > tc.heavy {
				t.Errorf("%d frames over the bound %d", over, tc.max)
			}
			if merged.Weight() != tc.d.Weight() || len(merged.Ports) != len(tc.d.Ports) || len(merged.RemovedPorts) != len(tc.d.RemovedPorts) ||
				len(merged.Groups) != len(tc.d.Groups) || len(merged.Networks) != len(tc.d.Networks) || len(merged.Members) != len(tc.d.Members) {
				t.Errorf("frames lose objects: %d frames, merged weight %d, want %d", len(frames), merged.Weight(), tc.d.Weight())
			}
			if len(frames) == 0 {
				t.Errorf("no frame at all")
			}
		})
	}
}

// TestSnapshotRoundTrip: the agent compiles from view.Snapshot() what it
// compiled from the store's snapshot, field for field that it reads.
func TestSnapshotRoundTrip(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	snap := &store.HostSnapshot{Revision: 7, Host: "h1",
		Ports: []neutron.Port{{ID: "p1", MACAddress: "fa:16:3e:00:00:01", NetworkID: "n1", PortSecurityEnabled: true,
			SecurityGroups: []string{"g"}, DeviceOwner: "compute:nova", HostID: "h1",
			FixedIPs:            []neutron.FixedIP{{IPAddress: netip.MustParseAddr("10.0.0.1")}, {IPAddress: netip.MustParseAddr("fd00::1")}, {}},
			AllowedAddressPairs: []neutron.AddressPair{{IPAddress: "10.9.0.0/24", MACAddress: "fa:16:3e:00:00:09"}},
			StandardAttrs:       neutron.StandardAttrs{CreatedAt: created}}},
		Networks: map[string]*neutron.Network{"n1": {ID: "n1", MTU: 1450, NetworkType: "vlan", PhysicalNetwork: ptr("physnet1"), SegmentationID: ptr(102)}},
		Groups: map[string]*neutron.SecurityGroup{"g": {ID: "g", Stateful: true, Rules: []neutron.SecurityGroupRule{
			{ID: "r1", SecurityGroupID: "g", Direction: "ingress", Ethertype: "IPv4", Protocol: ptr("tcp"), PortRangeMin: ptr(22), PortRangeMax: ptr(22),
				RemoteIPPrefix: ptr("10.1.2.3/8")},
			{ID: "r2", SecurityGroupID: "g", Direction: "ingress", Ethertype: "IPv6", RemoteGroupID: ptr("g")},
		}}},
		Members:    map[string][]string{"g": {"10.0.0.1", "fd00::1", "10.9.0.0/24"}},
		PortErrors: map[string]string{"p1": "its network does not read"},
	}
	v := FromSnapshot(snap)
	if got := v.Members["g"]; !slices.Equal(got.IPv4, []string{"10.0.0.1", "10.9.0.0/24"}) || !slices.Equal(got.IPv6, []string{"fd00::1"}) {
		t.Errorf("members by family: %+v", got)
	}
	if got := v.Groups["g"].Rules[0].NormalizedCIDR; got != "10.0.0.0/8" {
		t.Errorf("normalised prefix %q", got)
	}
	// Through JSON, as the stream carries it.
	b, err := json.Marshal(Event{Type: EventSnapshot, Revision: v.Revision, Delta: Diff(nil, v)})
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	back := New("h1")
	back.Revision = ev.Revision
	back.Apply(&ev.Delta)
	got := back.Snapshot()
	p, want := got.Ports[0], snap.Ports[0]
	if p.ID != want.ID || p.MACAddress != want.MACAddress || p.NetworkID != want.NetworkID || !p.CreatedAt.Equal(created) ||
		p.PortSecurityEnabled != want.PortSecurityEnabled || p.DeviceOwner != want.DeviceOwner ||
		!slices.Equal(p.SecurityGroups, want.SecurityGroups) || !reflect.DeepEqual(p.AllowedAddressPairs, want.AllowedAddressPairs) {
		t.Errorf("port:\n got %+v\nwant %+v", p, want)
	}
	for i, ip := range p.FixedIPs {
		if ip.IPAddress != want.FixedIPs[i].IPAddress {
			t.Errorf("fixed IP %d: %v, want %v", i, ip.IPAddress, want.FixedIPs[i].IPAddress)
		}
	}
	if got.PortErrors["p1"] != "its network does not read" || got.Revision != 7 {
		t.Errorf("port errors %v, revision %d", got.PortErrors, got.Revision)
	}
	n := got.Networks["n1"]
	if n.MTU != 1450 || *n.PhysicalNetwork != "physnet1" || *n.SegmentationID != 102 || n.NetworkType != "vlan" {
		t.Errorf("network %+v", n)
	}
	for i, r := range got.Groups["g"].Rules {
		w := snap.Groups["g"].Rules[i]
		if !reflect.DeepEqual(r, w) {
			t.Errorf("rule %d:\n got %+v\nwant %+v", i, r, w)
		}
	}
	if !slices.Equal(got.Members["g"], []string{"10.0.0.1", "10.9.0.0/24", "fd00::1"}) {
		t.Errorf("members %v", got.Members["g"])
	}
}

// partOf is what store.HostPart returns for ch when the host's state is
// now: the changed ports still here, the networks and groups asked for and
// those of the ports read, the members asked for and of the groups read.
func partOf(now *View, ch Changed) *View {
	part := New(now.Host)
	want := Want(ch)
	ports, nets, groups, members, ags := want.Ports, want.Networks, want.Groups, want.Members, want.AddressGroups
	for _, id := range ports {
		if p := now.Ports[id]; p != nil {
			part.Ports[id] = p
			nets = append(nets, p.NetworkID)
			groups = append(groups, p.SecurityGroups...)
		}
	}
	for _, id := range nets {
		if n := now.Networks[id]; n != nil {
			part.Networks[id] = n
		}
	}
	for _, id := range groups {
		if g := now.Groups[id]; g != nil {
			part.Groups[id] = g
			for _, r := range g.Rules {
				if r.RemoteGroupID != "" {
					members = append(members, r.RemoteGroupID)
				}
				if r.RemoteAddressGroupID != "" {
					ags = append(ags, r.RemoteAddressGroupID)
				}
			}
		}
	}
	for _, id := range ags {
		if ag := now.AddressGroups[id]; ag != nil {
			part.AddressGroups[id] = ag
		}
	}
	for _, id := range members {
		if m := now.Members[id]; m != nil {
			part.Members[id] = m
		} else {
			part.Members[id] = &Members{Group: id, IPv4: []string{}, IPv6: []string{}}
		}
	}
	return part
}

// TestPatch: a live stream reads only what the routed changes name and
// patches its view; the result is the host's state, and the delta brings
// the agent there.
func TestPatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v *View)
		ch   func(c *Changed)
	}{
		{"a port's address", func(v *View) {
			p := *v.Ports["p1"]
			p.FixedIPs = []string{"10.0.0.9"}
			v.Ports["p1"] = &p
		}, func(c *Changed) { c.Ports["p1"] = true }},
		{"a port leaves: its group and the members only it needed go", func(v *View) { delete(v.Ports, "p1"); v.Prune() },
			func(c *Changed) { c.Ports["p1"] = true }},
		{"a port arrives with a group and remote group new here", func(v *View) {
			v.Ports["p3"] = &Port{ID: "p3", NetworkID: "n2", SecurityGroups: []string{"ssh"}}
			v.Networks["n2"] = &Network{ID: "n2", MTU: 1500}
			v.Groups["ssh"] = &Group{ID: "ssh", Rules: []Rule{{ID: "r9", Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: "admins"}}}
			v.Members["admins"] = &Members{Group: "admins", IPv4: []string{"192.0.2.1"}, IPv6: []string{}}
		}, func(c *Changed) { c.Ports["p3"] = true }},
		{"a rule naming a new remote group", func(v *View) {
			v.Groups["db"] = &Group{ID: "db", Stateful: true, Rules: []Rule{{ID: "r3", Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: "web"}}}
			v.Members["web"] = &Members{Group: "web", IPv4: []string{"10.0.0.1"}, IPv6: []string{}}
		}, func(c *Changed) { c.Groups["db"] = true }},
		{"the remote rule removed", func(v *View) {
			v.Groups["web"] = &Group{ID: "web", Stateful: true, Rules: []Rule{}}
			v.Prune()
		}, func(c *Changed) { c.Groups["web"] = true }},
		{"members elsewhere", func(v *View) {
			v.Members["db"] = &Members{Group: "db", IPv4: []string{"10.0.0.2"}, IPv6: []string{"fd00::2"}}
		}, func(c *Changed) { c.Members["db"] = true }},
		{"the network's segment", func(v *View) {
			v.Networks["n1"] = &Network{ID: "n1", MTU: 1400, NetworkType: "vlan", SegmentationID: 7}
		},
			func(c *Changed) { c.Networks["n1"] = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := base()
			want := old.Clone()
			tc.edit(want)
			ch := NewChanged()
			tc.ch(&ch)
			now, d := Patch(old, partOf(want, ch), ch)
			if !Equal(now, want) || !Equal(want, now) {
				t.Errorf("patched view:\n got %s\nwant %s", dump(now), dump(want))
			}
			agent := old.Clone()
			agent.Apply(&d)
			if !Equal(agent, want) || !Equal(want, agent) {
				t.Errorf("agent after the delta:\n got %s\nwant %s", dump(agent), dump(want))
			}
			if full := Diff(old, want); !reflect.DeepEqual(d, full) {
				t.Errorf("delta %+v, want %+v", d, full)
			}
		})
	}
}

func bigView(n int) *View {
	v := New("h1")
	for i := range n {
		id := fmt.Sprintf("p%05d", i)
		v.Ports[id] = &Port{ID: id, MAC: "fa:16:3e:00:00:01", NetworkID: "n1", FixedIPs: []string{fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)},
			PortSecurity: true, SecurityGroups: []string{"g"}}
	}
	v.Networks["n1"] = &Network{ID: "n1", MTU: 1500}
	v.Groups["g"] = &Group{ID: "g", Rules: []Rule{}}
	return v
}

func BenchmarkSnapshot5000(b *testing.B) {
	v := bigView(5000)
	for b.Loop() {
		v.Snapshot()
	}
}

// withAddressGroup is base with web also admitting address group ag1.
func withAddressGroup() *View {
	v := base()
	web := *v.Groups["web"]
	web.Rules = append(slices.Clone(web.Rules), Rule{ID: "r3", Direction: "ingress", Ethertype: "IPv4", Protocol: "tcp", RemoteAddressGroupID: "ag1"})
	v.Groups["web"] = &web
	v.AddressGroups["ag1"] = &AddressGroup{ID: "ag1", Name: "office", IPv4: []string{"192.0.2.0/24"}, IPv6: []string{}}
	return v
}

// TestAddressGroupChange: a change of an address group's addresses
// concerns exactly the hosts whose rules name it, and reaches them as the
// address group alone; the rules naming it do not travel again.
func TestAddressGroupChange(t *testing.T) {
	changes := []store.Change{{Kind: store.KindAddressGroup, ObjectID: "ag1", Op: store.OpUpdate}}
	if _, relevant := Route(base(), "h1", changes, Lookup{}); relevant {
		t.Errorf("a host whose rules do not name the address group is concerned")
	}
	old := withAddressGroup()
	ch, relevant := Route(old, "h1", changes, Lookup{})
	if !relevant || !ch.AddressGroups["ag1"] || len(ch.Groups)+len(ch.Members)+len(ch.Ports) != 0 {
		t.Fatalf("Route = %+v, %v; want the address group alone", ch, relevant)
	}
	if w := Want(ch); !slices.Equal(w.AddressGroups, []string{"ag1"}) || len(w.Groups)+len(w.Ports)+len(w.Members)+len(w.Networks) != 0 {
		t.Errorf("Want = %+v", w)
	}
	now := withAddressGroup()
	now.AddressGroups["ag1"] = &AddressGroup{ID: "ag1", Name: "office", IPv4: []string{"192.0.2.0/24", "198.51.100.0/24"}, IPv6: []string{}}
	got, d := Patch(old, partOf(now, ch), ch)
	want := Delta{AddressGroups: []AddressGroup{*now.AddressGroups["ag1"]}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Patch's delta:\n got %+v\nwant %+v", d, want)
	}
	if !Equal(got, now) {
		t.Errorf("Patch: got %+v, want %+v", got, now)
	}
	applied := old.Clone()
	applied.Apply(&d)
	if !Equal(applied, now) {
		t.Errorf("old + delta != now")
	}
	// Resuming from an older revision brings it too.
	r := Resume(now, ch)
	if !reflect.DeepEqual(r.AddressGroups, want.AddressGroups) {
		t.Errorf("Resume: %+v", r)
	}
	// The rule that named it goes: so does the address group.
	gone := now.Clone()
	gone.Groups["web"] = base().Groups["web"]
	gone.Prune()
	if d := Diff(now, gone); !slices.Equal(d.RemovedAddressGroups, []string{"ag1"}) {
		t.Errorf("Diff after the rule went: %+v", d)
	}
	// A snapshot carries the address group's addresses and name both ways.
	s := now.Snapshot()
	if ag := s.AddressGroups["ag1"]; ag == nil || ag.Name != "office" || !slices.Equal(ag.Addresses, []string{"192.0.2.0/24", "198.51.100.0/24"}) {
		t.Errorf("Snapshot's address group: %+v", s.AddressGroups["ag1"])
	}
	if back := FromSnapshot(s); !Equal(back, now) {
		t.Errorf("FromSnapshot(Snapshot()) != view")
	}
	// Split keeps it.
	for _, f := range Split(d, 1) {
		if len(f.AddressGroups) == 0 && !f.Empty() {
			t.Errorf("a frame without the address group: %+v", f)
		}
	}
}
