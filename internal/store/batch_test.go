package store

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

// fixture is a small world with several networks, subnets, groups and
// ports on two hosts, for comparing the batched reads with per-item ones.
type fixture struct {
	nets   []*neutron.Network
	groups []*neutron.SecurityGroup
	ports  []*neutron.Port
}

func buildFixture(t *testing.T, s *Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{}
	err := s.Write(ctx, func(tx *Tx) error {
		// Networks with 3, 0 and 1 subnets.
		for i, nsub := range []int{3, 0, 1} {
			n := &neutron.Network{ProjectID: "p1", Name: fmt.Sprint("net", i), AdminStateUp: true, Status: "ACTIVE",
				MTU: 1450, PortSecurityEnabled: true, NetworkType: neutron.NetTypeLocal}
			if err := tx.CreateNetwork(ctx, n); err != nil {
				return err
			}
			for j := 0; j < nsub; j++ {
				sn := &neutron.Subnet{ProjectID: "p1", NetworkID: n.ID, Name: fmt.Sprint("sub", i, j), IPVersion: 4,
					CIDR: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i, j)), EnableDHCP: true}
				if err := tx.CreateSubnet(ctx, sn); err != nil {
					return err
				}
			}
			if err := tx.SetTags(ctx, TagTarget{Kind: KindNetwork, ID: n.ID, ProjectID: "p1", StandardAttrID: n.StandardAttrID},
				[]string{fmt.Sprint("t", i)}); err != nil {
				return err
			}
			f.nets = append(f.nets, n)
		}
		for i := 0; i < 3; i++ {
			g := &neutron.SecurityGroup{ProjectID: "p1", Name: fmt.Sprint("g", i), Stateful: i != 2}
			if err := tx.CreateSecurityGroup(ctx, g, neutron.DefaultRules("", "p1", false), false); err != nil {
				return err
			}
			f.groups = append(f.groups, g)
		}
		// g0 admits members of g2: g2's members are part of a snapshot.
		tcp := "tcp"
		if err := tx.CreateRules(ctx, []*neutron.SecurityGroupRule{{ProjectID: "p1", SecurityGroupID: f.groups[0].ID,
			Direction: "ingress", Ethertype: "IPv4", Protocol: &tcp, RemoteGroupID: &f.groups[2].ID}}); err != nil {
			return err
		}
		subs, err := tx.SubnetsOfNetwork(ctx, f.nets[0].ID)
		if err != nil {
			return err
		}
		last, err := tx.SubnetsOfNetwork(ctx, f.nets[2].ID)
		if err != nil {
			return err
		}
		type spec struct {
			host   string
			net    int
			subnet string
			groups []int
		}
		for i, p := range []spec{
			{"h1", 0, subs[0].ID, []int{0, 1}},
			{"h1", 2, last[0].ID, []int{1}},
			{"h1", 0, subs[2].ID, nil},
			{"h2", 0, subs[1].ID, []int{2}},
			{"h1", 2, last[0].ID, []int{0}},
			{"h2", 1, "", []int{2}},
		} {
			port := &neutron.Port{ProjectID: "p1", NetworkID: f.nets[p.net].ID, Name: fmt.Sprint("port", i),
				MACAddress: fmt.Sprintf("fa:16:3e:00:00:%02x", i), AdminStateUp: true, Status: neutron.PortStatusDown,
				PortSecurityEnabled: true, HostID: p.host, VNICType: "normal", VIFType: neutron.VIFTypeOVS,
				FixedIPs: []neutron.FixedIP{}, SecurityGroups: []string{},
				AllowedAddressPairs: []neutron.AddressPair{{IPAddress: fmt.Sprintf("192.168.0.%d", i), MACAddress: "fa:16:3e:00:01:00"}}}
			if p.subnet != "" {
				port.FixedIPs = append(port.FixedIPs, neutron.FixedIP{SubnetID: p.subnet,
					IPAddress: netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", p.net, i%3, 10+i))})
			}
			for _, g := range p.groups {
				port.SecurityGroups = append(port.SecurityGroups, f.groups[g].ID)
			}
			port.SecurityGroups = neutron.SortedIDs(port.SecurityGroups)
			if err := tx.CreatePort(ctx, port); err != nil {
				return err
			}
			f.ports = append(f.ports, port)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestListNetworksFillsSubnetsOfEachNetwork(t *testing.T) {
	onBoth(t, testListNetworksFillsSubnetsOfEachNetwork)
}

func testListNetworksFillsSubnetsOfEachNetwork(t *testing.T, s *Store) {
	ctx := context.Background()
	f := buildFixture(t, s)
	err := s.Read(ctx, func(tx *Tx) error {
		nets, err := tx.ListNetworks(ctx, ListQuery{})
		if err != nil {
			return err
		}
		if len(nets) != len(f.nets) {
			t.Fatalf("listed %d networks, want %d", len(nets), len(f.nets))
		}
		for _, n := range nets {
			want, err := tx.stringColumn(ctx, `SELECT id FROM subnets WHERE network_id = ? ORDER BY id`, n.ID)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(n.Subnets, want) {
				t.Errorf("network %s: subnets %v, want %v", n.Name, n.Subnets, want)
			}
			if len(n.Tags) != 1 {
				t.Errorf("network %s: tags %v, want one", n.Name, n.Tags)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestListPortsPagesFilledPorts(t *testing.T) { onBoth(t, testListPortsPagesFilledPorts) }

func testListPortsPagesFilledPorts(t *testing.T, s *Store) {
	ctx := context.Background()
	f := buildFixture(t, s)
	err := s.Read(ctx, func(tx *Tx) error {
		all, err := tx.ListPorts(ctx, ListQuery{})
		if err != nil {
			return err
		}
		if len(all) != len(f.ports) {
			t.Fatalf("listed %d ports, want %d", len(all), len(f.ports))
		}
		page, err := tx.ListPorts(ctx, ListQuery{Limit: 2, Marker: all[1].ID})
		if err != nil {
			return err
		}
		if len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
			t.Fatalf("page after %s: got %d ports, want %s and %s", all[1].ID, len(page), all[2].ID, all[3].ID)
		}
		for _, got := range append(all, page...) {
			want, err := tx.GetPort(ctx, got.ID)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, *want) {
				t.Errorf("listed port %s:\n%+v\nGetPort:\n%+v", got.Name, got, *want)
			}
			if got.SecurityGroups == nil || got.FixedIPs == nil || got.AllowedAddressPairs == nil || got.Tags == nil {
				t.Errorf("listed port %s is not filled: %+v", got.Name, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHostSnapshotMatchesPerItemReads(t *testing.T) {
	onBoth(t, testHostSnapshotMatchesPerItemReads)
}

func testHostSnapshotMatchesPerItemReads(t *testing.T, s *Store) {
	ctx := context.Background()
	f := buildFixture(t, s)
	// g1 admits an address group's addresses: the address group is part
	// of h1's snapshot, another one is not.
	err := s.Write(ctx, func(tx *Tx) error {
		ag := &neutron.AddressGroup{ProjectID: "p1", Name: "ag", Addresses: []string{"10.9.0.0/16", "2001:db8::/64"}}
		unused := &neutron.AddressGroup{ProjectID: "p1", Name: "unused", Addresses: []string{"10.8.0.0/16"}}
		for _, g := range []*neutron.AddressGroup{ag, unused} {
			if err := tx.CreateAddressGroup(ctx, g); err != nil {
				return err
			}
		}
		return tx.CreateRules(ctx, []*neutron.SecurityGroupRule{{ProjectID: "p1", SecurityGroupID: f.groups[1].ID,
			Direction: "ingress", Ethertype: "IPv4", RemoteAddressGroupID: &ag.ID}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"h1", "h2", "nowhere"} {
		var got, want *HostSnapshot
		err := s.Read(ctx, func(tx *Tx) error {
			var err error
			if got, err = tx.HostSnapshot(ctx, host); err != nil {
				return err
			}
			want, err = perItemSnapshot(ctx, tx, host)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("snapshot of %s:\n%+v\nper-item reads:\n%+v", host, got, want)
		}
	}
	var h1 *HostSnapshot
	s.Read(ctx, func(tx *Tx) (err error) { h1, err = tx.HostSnapshot(ctx, "h1"); return err })
	if ag := h1.AddressGroups; len(ag) != 1 {
		t.Errorf("h1's address groups: %v, want one", ag)
	} else {
		for _, g := range ag {
			if g.Name != "ag" || !slices.Equal(g.Addresses, []string{"10.9.0.0/16", "2001:db8::/64"}) {
				t.Errorf("h1's address group: %+v", g)
			}
		}
	}
	if len(h1.Ports) != 4 || len(h1.Networks) != 2 || len(h1.Groups) != 2 || len(h1.Members) != 1 {
		t.Errorf("snapshot of h1: %d ports, %d networks, %d groups, %d remote groups; want 4, 2, 2, 1",
			len(h1.Ports), len(h1.Networks), len(h1.Groups), len(h1.Members))
	}
}

// perItemSnapshot builds a host snapshot one network and one group at a
// time, the straightforward way HostSnapshot must agree with.
func perItemSnapshot(ctx context.Context, tx *Tx, host string) (*HostSnapshot, error) {
	rev, err := tx.LatestRevision(ctx)
	if err != nil {
		return nil, err
	}
	snap := &HostSnapshot{Revision: rev, Host: host, PortErrors: map[string]string{}, Networks: map[string]*neutron.Network{},
		Groups: map[string]*neutron.SecurityGroup{}}
	if snap.Ports, err = tx.PortsOnHost(ctx, host); err != nil {
		return nil, err
	}
	groupIDs := map[string]bool{}
	for _, p := range snap.Ports {
		n, err := tx.GetNetwork(ctx, p.NetworkID)
		if err != nil {
			return nil, err
		}
		snap.Networks[n.ID] = n
		for _, g := range p.SecurityGroups {
			groupIDs[g] = true
		}
	}
	var groups []neutron.SecurityGroup
	for _, id := range sortedKeys(groupIDs) {
		g, err := tx.GetSecurityGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		groups = append(groups, *g)
	}
	if err := tx.LoadRules(ctx, groups); err != nil {
		return nil, err
	}
	remote := map[string]bool{}
	snap.AddressGroups = map[string]*neutron.AddressGroup{}
	for i := range groups {
		snap.Groups[groups[i].ID] = &groups[i]
		for _, r := range groups[i].Rules {
			if r.RemoteGroupID != nil {
				remote[*r.RemoteGroupID] = true
			}
			if id := r.RemoteAddressGroupID; id != nil {
				ag, err := tx.GetAddressGroup(ctx, *id)
				if err != nil {
					return nil, err
				}
				snap.AddressGroups[*id] = ag
			}
		}
	}
	snap.Members, err = tx.GroupMembers(ctx, sortedKeys(remote))
	return snap, err
}

func TestInOrder(t *testing.T) {
	type item struct{ id string }
	found := []item{{"c"}, {"a"}, {"b"}}
	got := inOrder(found, func(x *item) string { return x.id }, []string{"a", "gone", "b", "c"})
	if !reflect.DeepEqual(got, []item{{"a"}, {"b"}, {"c"}}) {
		t.Fatalf("inOrder = %v, want [{a} {b} {c}]", got)
	}
}
