package ipam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

// fakeStore answers Store and MACStore from maps.
type fakeStore struct {
	used    map[string][]string // subnet id -> addresses allocated
	subnets map[string]bool     // subnets of other networks
	macs    map[string]bool
	err     error
}

func (f *fakeStore) UsedAddresses(_ context.Context, subnetID string) (map[netip.Addr]bool, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := map[netip.Addr]bool{}
	for _, a := range f.used[subnetID] {
		out[netip.MustParseAddr(a)] = true
	}
	return out, nil
}

func (f *fakeStore) GetSubnet(_ context.Context, id string) (*neutron.Subnet, error) {
	if f.subnets[id] {
		return &neutron.Subnet{ID: id}, nil
	}
	return nil, nil
}

func (f *fakeStore) MACInUse(_ context.Context, _, mac string) (bool, error) { return f.macs[mac], nil }

func subnet(id, cidr string, pools ...string) neutron.Subnet {
	p := netip.MustParsePrefix(cidr)
	sn := neutron.Subnet{ID: id, NetworkID: "net1", CIDR: p, IPVersion: 4, EnableDHCP: true}
	if p.Addr().Is6() {
		sn.IPVersion = 6
	}
	for _, r := range pools {
		a, b, _ := strings.Cut(r, "-")
		sn.AllocationPools = append(sn.AllocationPools, neutron.Pool{Start: netip.MustParseAddr(a), End: netip.MustParseAddr(b)})
	}
	return sn
}

func slaac(sn neutron.Subnet) neutron.Subnet {
	mode := neutron.IPv6SLAAC
	sn.IPv6AddressMode, sn.IPv6RAMode = &mode, &mode
	return sn
}

func ips(fs []neutron.FixedIP) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.SubnetID+"="+f.IPAddress.String())
	}
	return strings.Join(out, " ")
}

func want(reqs ...neutron.IPRequest) neutron.Opt[[]neutron.IPRequest] {
	return neutron.Opt[[]neutron.IPRequest]{V: reqs, Set: true}
}

func onSubnet(id string) neutron.IPRequest { return neutron.IPRequest{SubnetID: id} }

func addr(subnetID, ip string) neutron.IPRequest {
	return neutron.IPRequest{SubnetID: subnetID, IP: netip.MustParseAddr(ip), IPText: ip}
}

const (
	v4a = "11111111-1111-1111-1111-111111111111"
	v4b = "22222222-2222-2222-2222-222222222222"
	v6s = "33333333-3333-3333-3333-333333333333"
	v6d = "44444444-4444-4444-4444-444444444444"
	far = "55555555-5555-5555-5555-555555555555" // a subnet of another network
	nan = "66666666-6666-6666-6666-666666666666" // no subnet at all
)

func TestAssign(t *testing.T) {
	mac := "fa:16:3e:00:00:01"
	full := subnet(v4a, "10.0.0.0/29", "10.0.0.2-10.0.0.3")
	cases := []struct {
		name    string
		subnets []neutron.Subnet
		used    map[string][]string
		keep    []neutron.FixedIP
		req     neutron.Opt[[]neutron.IPRequest]
		want    string // addresses, or the error's type: message
	}{
		{"automatic: lowest free of the first IPv4 subnet, EUI-64 on SLAAC",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254"), subnet(v4b, "10.1.0.0/24", "10.1.0.2-10.1.0.254"),
				slaac(subnet(v6s, "2001:db8::/64", "2001:db8::1-2001:db8::ffff"))},
			map[string][]string{v4a: {"10.0.0.2"}}, nil, neutron.Opt[[]neutron.IPRequest]{},
			v4a + "=10.0.0.3 " + v6s + "=2001:db8::f816:3eff:fe00:1"},
		{"automatic: a full subnet gives way to the next one",
			[]neutron.Subnet{full, subnet(v4b, "10.1.0.0/24", "10.1.0.2-10.1.0.254")},
			map[string][]string{v4a: {"10.0.0.2", "10.0.0.3"}}, nil, neutron.Opt[[]neutron.IPRequest]{},
			v4b + "=10.1.0.2"},
		{"automatic: no IPv4 room at all",
			[]neutron.Subnet{full}, map[string][]string{v4a: {"10.0.0.2", "10.0.0.3"}}, nil, neutron.Opt[[]neutron.IPRequest]{},
			"IpAddressGenerationFailure: No more IP addresses available on network net1."},
		{"automatic: a full IPv6 subnet is no error",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254"), subnet(v6d, "2001:db9::/126", "2001:db9::1-2001:db9::1")},
			map[string][]string{v6d: {"2001:db9::1"}}, nil, neutron.Opt[[]neutron.IPRequest]{},
			v4a + "=10.0.0.2"},
		{"automatic: no subnets, no addresses", nil, nil, nil, neutron.Opt[[]neutron.IPRequest]{}, ""},
		{"explicit empty list still gets SLAAC",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254"), slaac(subnet(v6s, "2001:db8::/64", "2001:db8::1-2001:db8::ffff"))},
			nil, nil, want(), v6s + "=2001:db8::f816:3eff:fe00:1"},
		{"a subnet alone gets its lowest free address",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254"), subnet(v4b, "10.1.0.0/24", "10.1.0.2-10.1.0.254")},
			map[string][]string{v4b: {"10.1.0.2"}}, nil, want(onSubnet(v4b)), v4b + "=10.1.0.3"},
		{"two addresses on one subnet do not collide",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, nil, nil,
			want(onSubnet(v4a), onSubnet(v4a)), v4a + "=10.0.0.2 " + v4a + "=10.0.0.3"},
		{"a SLAAC subnet named alone gives the EUI-64 address",
			[]neutron.Subnet{slaac(subnet(v6s, "2001:db8::/64", "2001:db8::1-2001:db8::ffff"))}, nil, nil,
			want(onSubnet(v6s)), v6s + "=2001:db8::f816:3eff:fe00:1"},
		{"an address finds its subnet",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254"), subnet(v4b, "10.1.0.0/24", "10.1.0.2-10.1.0.254")},
			nil, nil, want(addr("", "10.1.0.77")), v4b + "=10.1.0.77"},
		{"an address outside the pools is still an address of the subnet",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.100-10.0.0.110")}, nil, nil,
			want(addr(v4a, "10.0.0.7")), v4a + "=10.0.0.7"},
		{"an address taken by another port",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, map[string][]string{v4a: {"10.0.0.9"}}, nil,
			want(addr(v4a, "10.0.0.9")), "IpAddressAlreadyAllocated: IP address 10.0.0.9 already allocated in subnet " + v4a},
		{"an address the port holds already (update)",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, map[string][]string{v4a: {"10.0.0.9"}},
			[]neutron.FixedIP{{SubnetID: v4a, IPAddress: netip.MustParseAddr("10.0.0.9")}},
			want(addr(v4a, "10.0.0.9"), onSubnet(v4a)), v4a + "=10.0.0.9 " + v4a + "=10.0.0.2"},
		{"kept addresses are not handed out again (update)",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, nil,
			[]neutron.FixedIP{{SubnetID: v4a, IPAddress: netip.MustParseAddr("10.0.0.2")}},
			want(onSubnet(v4a)), v4a + "=10.0.0.3"},
		{"the broadcast address",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, nil, nil,
			want(addr(v4a, "10.0.0.255")), "InvalidIpForSubnet: IP address 10.0.0.255 is not a valid IP for the specified subnet."},
		{"an address on no subnet, as the client wrote it",
			[]neutron.Subnet{subnet(v6d, "2001:db8::/64", "2001:db8::1-2001:db8::ffff")}, nil, nil,
			want(neutron.IPRequest{IP: netip.MustParseAddr("2001:db9::1"), IPText: "2001:DB9::1"}),
			"InvalidIpForNetwork: IP address 2001:DB9::1 is not a valid IP for any of the subnets on the specified network."},
		{"a subnet of another network",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, nil, nil, want(onSubnet(far)),
			"InvalidInput: Invalid input for operation: Failed to create port on network net1, because fixed_ips included invalid subnet " + far + "."},
		{"a subnet that does not exist",
			[]neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}, nil, nil, want(onSubnet(nan)),
			"SubnetNotFound: Subnet " + nan + " could not be found."},
		{"a network without subnets",
			nil, nil, nil, want(onSubnet(v4a)), "InvalidInput: Invalid input for operation: IP allocation requires subnets for network."},
		{"a subnet with no room",
			[]neutron.Subnet{full}, map[string][]string{v4a: {"10.0.0.2", "10.0.0.3"}}, nil, want(onSubnet(v4a)),
			"IpAddressGenerationFailure: No more IP addresses available on network net1."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &fakeStore{used: c.used, subnets: map[string]bool{far: true}}
			got, err := Assign(context.Background(), st, c.subnets, Port{NetworkID: "net1", MAC: mac, DeviceOwner: "compute:nova", Keep: c.keep}, c.req)
			s := ips(got)
			if err != nil {
				var ne *neutron.Error
				if !errors.As(err, &ne) {
					t.Fatalf("got %v, want a Neutron error", err)
				}
				s = ne.Type + ": " + ne.Message
			}
			if s != c.want {
				t.Fatalf("got  %s\nwant %s", s, c.want)
			}
		})
	}
}

func TestAssignPassesStoreErrors(t *testing.T) {
	st := &fakeStore{err: errors.New("database gone")}
	subs := []neutron.Subnet{subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")}
	_, err := Assign(context.Background(), st, subs, Port{NetworkID: "net1", MAC: "fa:16:3e:00:00:01"}, want(addr(v4a, "10.0.0.9")))
	if err == nil || err.Error() != "database gone" {
		t.Fatalf("got %v, want the store's error", err)
	}
}

func TestLowestFree(t *testing.T) {
	p := func(a, b string) neutron.Pool {
		return neutron.Pool{Start: netip.MustParseAddr(a), End: netip.MustParseAddr(b)}
	}
	taken := func(as ...string) map[netip.Addr]bool {
		m := map[netip.Addr]bool{}
		for _, a := range as {
			m[netip.MustParseAddr(a)] = true
		}
		return m
	}
	cases := []struct {
		pools []neutron.Pool
		taken map[netip.Addr]bool
		want  string // "" for none
	}{
		{[]neutron.Pool{p("10.0.0.2", "10.0.0.4")}, taken(), "10.0.0.2"},
		{[]neutron.Pool{p("10.0.0.2", "10.0.0.4")}, taken("10.0.0.2", "10.0.0.3"), "10.0.0.4"},
		{[]neutron.Pool{p("10.0.0.2", "10.0.0.3"), p("10.0.0.9", "10.0.0.9")}, taken("10.0.0.2", "10.0.0.3"), "10.0.0.9"},
		{[]neutron.Pool{p("10.0.0.2", "10.0.0.2")}, taken("10.0.0.2"), ""},
		{nil, taken(), ""},
		// The last address of the family ends the walk.
		{[]neutron.Pool{p("255.255.255.254", "255.255.255.255")}, taken("255.255.255.254"), "255.255.255.255"},
	}
	for _, c := range cases {
		got, ok := LowestFree(c.pools, c.taken)
		s := ""
		if ok {
			s = got.String()
		}
		if s != c.want {
			t.Errorf("LowestFree(%v, %v) = %q, want %q", c.pools, c.taken, s, c.want)
		}
	}
}

func TestEUI64MatchesNeutron(t *testing.T) {
	// Addresses the real Neutron gave ports with these MACs on a SLAAC subnet.
	cases := map[string]string{
		"fa:16:3e:86:6c:df": "2001:db8::f816:3eff:fe86:6cdf",
		"fa:16:3e:9e:ba:a3": "2001:db8::f816:3eff:fe9e:baa3",
		"fa:16:3e:00:00:01": "2001:db8::f816:3eff:fe00:1",
	}
	for mac, want := range cases {
		got, err := EUI64(netip.MustParsePrefix("2001:db8::/64"), mac)
		if err != nil || got.String() != want {
			t.Errorf("EUI64(%s) = %s %v, want %s", mac, got, err, want)
		}
	}
}

func TestReaddress(t *testing.T) {
	a := subnet(v4a, "10.0.0.0/24", "10.0.0.2-10.0.0.254")
	b := subnet(v4b, "10.1.0.0/24", "10.1.0.2-10.1.0.254")
	fip := func(sn, ip string) neutron.FixedIP {
		return neutron.FixedIP{SubnetID: sn, IPAddress: netip.MustParseAddr(ip)}
	}
	cases := []struct {
		name    string
		have    []neutron.FixedIP
		want    []*neutron.Subnet
		used    map[string][]string
		ips     string
		changed bool
	}{
		{"new port", nil, []*neutron.Subnet{&a, &b}, map[string][]string{v4a: {"10.0.0.2"}}, v4a + "=10.0.0.3 " + v4b + "=10.1.0.2", true},
		{"nothing to do", []neutron.FixedIP{fip(v4a, "10.0.0.2")}, []*neutron.Subnet{&a}, nil, v4a + "=10.0.0.2", false},
		{"a subnet more", []neutron.FixedIP{fip(v4a, "10.0.0.2")}, []*neutron.Subnet{&a, &b}, nil, v4a + "=10.0.0.2 " + v4b + "=10.1.0.2", true},
		{"a subnet less", []neutron.FixedIP{fip(v4a, "10.0.0.2"), fip(v4b, "10.1.0.2")}, []*neutron.Subnet{&b}, nil, v4b + "=10.1.0.2", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, changed, err := Readdress(context.Background(), &fakeStore{used: c.used}, c.have, c.want)
			if err != nil || ips(got) != c.ips || changed != c.changed {
				t.Fatalf("got %s changed=%v %v, want %s changed=%v", ips(got), changed, err, c.ips, c.changed)
			}
		})
	}
}

func TestDHCPSubnets(t *testing.T) {
	off := subnet(v4b, "10.1.0.0/24")
	off.EnableDHCP = false
	subs := []neutron.Subnet{subnet(v4a, "10.0.0.0/24"), off, slaac(subnet(v6s, "2001:db8::/64")), subnet(v6d, "2001:db9::/64")}
	var got []string
	for _, sn := range DHCPSubnets(subs, v6d) {
		got = append(got, sn.ID)
	}
	if strings.Join(got, " ") != v4a {
		t.Fatalf("got %v, want only %s", got, v4a)
	}
}

func TestAutoAddresses(t *testing.T) {
	fip := func(sn, ip string) neutron.FixedIP {
		return neutron.FixedIP{SubnetID: sn, IPAddress: netip.MustParseAddr(ip)}
	}
	cases := []struct {
		owner string
		gets  bool
		have  []neutron.FixedIP
		left  string
		ok    bool
	}{
		{"compute:nova", true, []neutron.FixedIP{fip(v4a, "10.0.0.2"), fip(v6s, "2001:db8::1")}, v4a + "=10.0.0.2", true},
		{"", true, []neutron.FixedIP{fip(v6s, "2001:db8::1")}, "", true},
		{"compute:nova", true, []neutron.FixedIP{fip(v4a, "10.0.0.2")}, "", false},
		{"network:router_interface", false, []neutron.FixedIP{fip(v6s, "2001:db8::1")}, "", false},
		{"network:router_gateway", true, []neutron.FixedIP{fip(v6s, "2001:db8::1")}, "", true},
		{neutron.DeviceOwnerDHCP, false, []neutron.FixedIP{fip(v6s, "2001:db8::1")}, "", true},
	}
	for _, c := range cases {
		if got := GetsAutoAddress(c.owner); got != c.gets {
			t.Errorf("GetsAutoAddress(%q) = %v, want %v", c.owner, got, c.gets)
		}
		left, ok := WithoutSubnet(&neutron.Port{DeviceOwner: c.owner, FixedIPs: c.have}, v6s)
		if ips(left) != c.left || ok != c.ok || (ok && left == nil) {
			t.Errorf("WithoutSubnet(%q, %s) = %s %v, want %s %v", c.owner, ips(c.have), ips(left), ok, c.left, c.ok)
		}
	}
}

func TestNewMAC(t *testing.T) {
	taken := map[string]bool{"fa:16:3e:00:00:01": true}
	cases := []struct {
		name   string
		random []byte
		want   string
	}{
		{"first draw free", []byte{0xab, 0xcd, 0xef}, "fa:16:3e:ab:cd:ef"},
		{"a collision draws again", []byte{0, 0, 1, 0, 0, 2}, "fa:16:3e:00:00:02"},
		{"always taken: 503 after the last try", bytes.Repeat([]byte{0, 0, 1}, macTries),
			"MacAddressGenerationFailure: Unable to generate unique mac on network net1."},
		{"no randomness", nil, "generate MAC: EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mac, err := NewMAC(context.Background(), &fakeStore{macs: taken}, "net1", bytes.NewReader(c.random))
			got := mac
			var ne *neutron.Error
			switch {
			case errors.As(err, &ne):
				got = fmt.Sprintf("%s: %s", ne.Type, ne.Message)
				if ne.Status != 503 {
					t.Errorf("status %d, want 503", ne.Status)
				}
			case err != nil:
				got = err.Error()
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if err := CheckMAC(context.Background(), &fakeStore{macs: taken}, "net1", "fa:16:3e:00:00:01"); err == nil ||
		err.(*neutron.Error).Type != "MacAddressInUse" {
		t.Fatalf("CheckMAC of a taken MAC: %v", err)
	}
	if err := CheckMAC(context.Background(), &fakeStore{macs: taken}, "net1", "fa:16:3e:00:00:02"); err != nil {
		t.Fatalf("CheckMAC of a free MAC: %v", err)
	}
}
