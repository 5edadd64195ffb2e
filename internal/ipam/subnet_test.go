package ipam

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

func pools(ps []neutron.Pool) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

// Gateway and pool requests as a validated body gives them.
var (
	gwDefault = neutron.Opt[*netip.Addr]{}
	gwNone    = neutron.Opt[*netip.Addr]{Set: true}
)

func gw(s string) neutron.Opt[*netip.Addr] {
	a := netip.MustParseAddr(s)
	return neutron.Opt[*netip.Addr]{V: &a, Set: true}
}

func poolsReq(ranges ...[2]string) neutron.Opt[[]neutron.PoolRequest] {
	var out []neutron.PoolRequest
	for _, r := range ranges {
		out = append(out, neutron.PoolRequest{Start: netip.MustParseAddr(r[0]), End: netip.MustParseAddr(r[1]), StartText: r[0], EndText: r[1]})
	}
	return neutron.Opt[[]neutron.PoolRequest]{V: out, Set: true}
}

func TestBuildSubnet(t *testing.T) {
	ipv6 := func(s string) *string { return &s }
	prefix := netip.MustParsePrefix
	cases := []struct {
		name    string
		req     SubnetSpec
		gateway string // "none" for no gateway
		pools   string
		err     string // error type, or "" for success
		msg     string
	}{
		// The answers of the real Neutron 21 on this machine.
		{"v4 defaults", SubnetSpec{IPVersion: 4, CIDR: prefix("192.0.2.0/24"), GatewayIP: gwDefault, EnableDHCP: true},
			"192.0.2.1", "192.0.2.2-192.0.2.254", "", ""},
		{"v4 /30", SubnetSpec{IPVersion: 4, CIDR: prefix("10.9.0.0/30"), GatewayIP: gwDefault, EnableDHCP: true},
			"10.9.0.1", "10.9.0.2-10.9.0.2", "", ""},
		{"v4 no gateway", SubnetSpec{IPVersion: 4, CIDR: prefix("10.6.0.0/24"), GatewayIP: gwNone, EnableDHCP: true},
			"none", "10.6.0.1-10.6.0.254", "", ""},
		{"v4 gateway in the middle", SubnetSpec{IPVersion: 4, CIDR: prefix("10.6.0.0/24"), GatewayIP: gw("10.6.0.100"), EnableDHCP: true},
			"10.6.0.100", "10.6.0.1-10.6.0.99 10.6.0.101-10.6.0.254", "", ""},
		{"v6 slaac", SubnetSpec{IPVersion: 6, CIDR: prefix("2001:db8::/64"), GatewayIP: gwDefault, EnableDHCP: true, IPv6RAMode: ipv6(neutron.IPv6SLAAC), IPv6AddressMode: ipv6(neutron.IPv6SLAAC)},
			"2001:db8::", "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff", "", ""},
		{"version mismatch", SubnetSpec{IPVersion: 6, CIDR: prefix("10.1.0.0/24"), GatewayIP: gwDefault},
			"", "", "InvalidInput", "Invalid input for operation: cidr '10.1.0.0/24' does not match the ip_version '6'."},
		{"modes differ", SubnetSpec{IPVersion: 6, CIDR: prefix("2001:db8::/64"), GatewayIP: gwDefault, EnableDHCP: true, IPv6RAMode: ipv6(neutron.IPv6SLAAC), IPv6AddressMode: ipv6(neutron.IPv6DHCPv6Stateful)},
			"", "", "InvalidInput", "Invalid input for operation: ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not valid. If both attributes are set, they must be the same value."},
		{"dhcp on /32", SubnetSpec{IPVersion: 4, CIDR: prefix("10.10.0.0/32"), GatewayIP: gwDefault, EnableDHCP: true},
			"", "", "InvalidInput", "Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP service enabled."},
		{"gateway in pool", SubnetSpec{IPVersion: 4, CIDR: prefix("10.3.0.0/24"), GatewayIP: gwDefault, EnableDHCP: true,
			Pools: poolsReq([2]string{"10.3.0.1", "10.3.0.10"})},
			"", "", "GatewayConflictWithAllocationPools", "Gateway ip 10.3.0.1 conflicts with allocation pool 10.3.0.1-10.3.0.10."},
		{"pool outside", SubnetSpec{IPVersion: 4, CIDR: prefix("10.4.0.0/24"), GatewayIP: gwDefault, EnableDHCP: true,
			Pools: poolsReq([2]string{"10.4.1.1", "10.4.1.10"})},
			"", "", "OutOfBoundsAllocationPool", "The allocation pool 10.4.1.1-10.4.1.10 spans beyond the subnet cidr 10.4.0.0/24."},
		{"pools overlap", SubnetSpec{IPVersion: 4, CIDR: prefix("10.5.0.0/24"), GatewayIP: gwDefault, EnableDHCP: true,
			Pools: poolsReq([2]string{"10.5.0.10", "10.5.0.20"}, [2]string{"10.5.0.15", "10.5.0.30"})},
			"", "", "OverlappingAllocationPools", "Found overlapping allocation pools: 10.5.0.10-10.5.0.20 10.5.0.15-10.5.0.30 for subnet 10.5.0.0/24."},
		{"pool reversed", SubnetSpec{IPVersion: 4, CIDR: prefix("10.5.0.0/24"), GatewayIP: gwDefault, EnableDHCP: true,
			Pools: poolsReq([2]string{"10.5.0.20", "10.5.0.10"})},
			"", "", "InvalidAllocationPool", "The allocation pool {'start': '10.5.0.20', 'end': '10.5.0.10'} is not valid."},
		// moat's own cases: the request's text is what the message repeats.
		{"pool reversed, as written", SubnetSpec{IPVersion: 6, CIDR: prefix("2001:db8::/64"), GatewayIP: gwDefault, EnableDHCP: true,
			Pools: poolsReq([2]string{"2001:DB8::20", "2001:db8::10"})},
			"", "", "InvalidAllocationPool", "The allocation pool {'start': '2001:DB8::20', 'end': '2001:db8::10'} is not valid."},
		{"gateway of the other family", SubnetSpec{IPVersion: 4, CIDR: prefix("10.6.0.0/24"), GatewayIP: gw("2001:db8::1"), EnableDHCP: true},
			"", "", "InvalidInput", "Invalid input for operation: gateway_ip '2001:db8::1' does not match the ip_version '4'."},
		{"gateway on the broadcast address", SubnetSpec{IPVersion: 4, CIDR: prefix("10.6.0.0/24"), GatewayIP: gw("10.6.0.255"), EnableDHCP: true},
			"", "", "InvalidInput", "Invalid input for operation: Gateway is not valid on subnet."},
		{"no pools", SubnetSpec{IPVersion: 4, CIDR: prefix("10.6.0.0/24"), GatewayIP: gwNone, Pools: poolsReq()},
			"none", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw, ps, err := BuildSubnet(c.req)
			if c.err != "" {
				e, ok := err.(*neutron.Error)
				if !ok || e.Type != c.err || e.Message != c.msg {
					t.Fatalf("got %v, want %s: %s", err, c.err, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := "none"
			if gw != nil {
				g = gw.String()
			}
			if g != c.gateway || pools(ps) != c.pools {
				t.Fatalf("gateway %s pools %s, want %s and %s", g, pools(ps), c.gateway, c.pools)
			}
		})
	}
}

func TestValidIP(t *testing.T) {
	cases := []struct {
		cidr, ip, owner string
		want            bool
	}{
		{"10.0.0.0/24", "10.0.0.5", "", true},
		{"10.0.0.0/24", "10.0.0.0", "", false},   // network address
		{"10.0.0.0/24", "10.0.0.255", "", false}, // broadcast
		{"10.0.0.0/24", "10.0.1.5", "", false},   // outside
		{"2001:db8::/64", "2001:db8::", "", true},
		{"2001:db8::/64", "2001:db8::", "compute:nova", false}, // subnet-router anycast
		{"2001:db8::/64", "2001:db8::", "network:router_interface", true},
		{"2001:db8::/64", "2001:db8::", "network:router_gateway", true},
		{"2001:db8::/64", "2001:db8::9", "compute:nova", true},
	}
	for _, c := range cases {
		if got := ValidIP(netip.MustParsePrefix(c.cidr), netip.MustParseAddr(c.ip), c.owner); got != c.want {
			t.Errorf("ValidIP(%s, %s, %q) = %v, want %v", c.cidr, c.ip, c.owner, got, c.want)
		}
	}
}
