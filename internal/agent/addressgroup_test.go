package agent

import (
	"net"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// TestAddressGroupFlowsToForget: an address leaving an address group
// forgets the flows it established with the ports whose rules name the
// group (a prefix: its whole range), with ipsets and without; an address
// joining forgets nothing.
func TestAddressGroupFlowsToForget(t *testing.T) {
	const port, ag = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d", "a9e1c0de-7a11-4b2c-9d3e-4f5a6b7c8d9e"
	rules := []firewall.Rule{{ID: "r1", Direction: "ingress", Ethertype: "IPv4", Protocol: "tcp", RemoteAddressGroupID: ag}}
	state := func(ipset bool, addrs ...string) *firewall.HostState {
		return &firewall.HostState{
			Options:        firewall.Options{EnableIPSet: ipset, CommentRules: true},
			Ports:          []firewall.Port{{ID: port, MAC: "fa:16:3e:00:00:01", FixedIPs: []string{"10.0.0.5"}, SecurityGroups: []string{"g"}}},
			SecurityGroups: []firewall.SecurityGroup{{ID: "g", Rules: rules}},
			AddressGroups:  []firewall.AddressGroup{{ID: ag, Name: "office", Addresses: addrs}},
			Zones:          map[string]int{port: 4097},
		}
	}
	portAddrs := map[string][]*net.IPNet{port: {parseNet("10.0.0.5")}}
	for _, c := range []struct {
		name     string
		old, cur *firewall.HostState
		want     []string
	}{
		{"address removed", state(true, "192.0.2.0/24", "198.51.100.7/32"), state(true, "198.51.100.7/32"),
			[]string{"ipv4 zone=4097 proto=6 src=192.0.2.0/24 dst=10.0.0.5/32"}},
		{"address removed without ipsets", state(false, "192.0.2.0/24", "198.51.100.7/32"), state(false, "198.51.100.7/32"),
			[]string{"ipv4 zone=4097 proto=6 src=192.0.2.0/24 dst=10.0.0.5/32"}},
		{"address added", state(true, "198.51.100.7/32"), state(true, "192.0.2.0/24", "198.51.100.7/32"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, err := firewall.Compile(c.old)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := firewall.Compile(c.cur)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range flowsToForget(old, cur, func() map[string][]*net.IPNet { return portAddrs }) {
				got = append(got, f.String())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("filters %q, want %q", got, c.want)
			}
		})
	}
}

// TestHostStateCarriesAddressGroups: the compiler's input holds the
// snapshot's address groups, sorted by id, with their names.
func TestHostStateCarriesAddressGroups(t *testing.T) {
	snap := &store.HostSnapshot{AddressGroups: map[string]*neutron.AddressGroup{
		"b": {ID: "b", Name: "second", Addresses: []string{"10.0.0.0/8"}},
		"a": {ID: "a", Name: "first", Addresses: []string{"192.0.2.0/24", "2001:db8::/64"}},
	}}
	hs := HostState(snap, firewall.Options{}, nil)
	want := []firewall.AddressGroup{
		{ID: "a", Name: "first", Addresses: []string{"192.0.2.0/24", "2001:db8::/64"}},
		{ID: "b", Name: "second", Addresses: []string{"10.0.0.0/8"}},
	}
	if len(hs.AddressGroups) != 2 || hs.AddressGroups[0].ID != "a" || hs.AddressGroups[1].Name != "second" ||
		!slices.Equal(hs.AddressGroups[0].Addresses, want[0].Addresses) {
		t.Errorf("address groups %+v, want %+v", hs.AddressGroups, want)
	}
}
