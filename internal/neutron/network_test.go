package neutron

import (
	"net/netip"
	"strings"
	"testing"
)

func pools(ps []Pool) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestBuildSubnet(t *testing.T) {
	ipv6 := func(s string) *string { return &s }
	cases := []struct {
		name    string
		req     SubnetRequest
		gateway string // "none" for no gateway
		pools   string
		err     string // error type, or "" for success
		msg     string
	}{
		// The answers of the real Neutron 21 on this machine.
		{"v4 defaults", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("192.0.2.0/24"), GatewayIP: notSpecified, Pools: notSpecified, EnableDHCP: true},
			"192.0.2.1", "192.0.2.2-192.0.2.254", "", ""},
		{"v4 /30", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.9.0.0/30"), GatewayIP: notSpecified, Pools: notSpecified, EnableDHCP: true},
			"10.9.0.1", "10.9.0.2-10.9.0.2", "", ""},
		{"v4 no gateway", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.6.0.0/24"), GatewayIP: nil, Pools: notSpecified, EnableDHCP: true},
			"none", "10.6.0.1-10.6.0.254", "", ""},
		{"v4 gateway in the middle", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.6.0.0/24"), GatewayIP: "10.6.0.100", Pools: notSpecified, EnableDHCP: true},
			"10.6.0.100", "10.6.0.1-10.6.0.99 10.6.0.101-10.6.0.254", "", ""},
		{"v6 slaac", SubnetRequest{IPVersion: 6, CIDR: netip.MustParsePrefix("2001:db8::/64"), GatewayIP: notSpecified, Pools: notSpecified, EnableDHCP: true, IPv6RAMode: ipv6(IPv6SLAAC), IPv6AddressMode: ipv6(IPv6SLAAC)},
			"2001:db8::", "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff", "", ""},
		{"version mismatch", SubnetRequest{IPVersion: 6, CIDR: netip.MustParsePrefix("10.1.0.0/24"), GatewayIP: notSpecified, Pools: notSpecified},
			"", "", "InvalidInput", "Invalid input for operation: cidr '10.1.0.0/24' does not match the ip_version '6'."},
		{"modes differ", SubnetRequest{IPVersion: 6, CIDR: netip.MustParsePrefix("2001:db8::/64"), GatewayIP: notSpecified, Pools: notSpecified, EnableDHCP: true, IPv6RAMode: ipv6(IPv6SLAAC), IPv6AddressMode: ipv6(IPv6DHCPv6Stateful)},
			"", "", "InvalidInput", "Invalid input for operation: ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not valid. If both attributes are set, they must be the same value."},
		{"dhcp on /32", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.10.0.0/32"), GatewayIP: notSpecified, Pools: notSpecified, EnableDHCP: true},
			"", "", "InvalidInput", "Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP service enabled."},
		{"gateway in pool", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.3.0.0/24"), GatewayIP: notSpecified, EnableDHCP: true,
			Pools: []any{map[string]any{"start": "10.3.0.1", "end": "10.3.0.10"}}},
			"", "", "GatewayConflictWithAllocationPools", "Gateway ip 10.3.0.1 conflicts with allocation pool 10.3.0.1-10.3.0.10."},
		{"pool outside", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.4.0.0/24"), GatewayIP: notSpecified, EnableDHCP: true,
			Pools: []any{map[string]any{"start": "10.4.1.1", "end": "10.4.1.10"}}},
			"", "", "OutOfBoundsAllocationPool", "The allocation pool 10.4.1.1-10.4.1.10 spans beyond the subnet cidr 10.4.0.0/24."},
		{"pools overlap", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.5.0.0/24"), GatewayIP: notSpecified, EnableDHCP: true,
			Pools: []any{map[string]any{"start": "10.5.0.10", "end": "10.5.0.20"}, map[string]any{"start": "10.5.0.15", "end": "10.5.0.30"}}},
			"", "", "OverlappingAllocationPools", "Found overlapping allocation pools: 10.5.0.10-10.5.0.20 10.5.0.15-10.5.0.30 for subnet 10.5.0.0/24."},
		{"pool reversed", SubnetRequest{IPVersion: 4, CIDR: netip.MustParsePrefix("10.5.0.0/24"), GatewayIP: notSpecified, EnableDHCP: true,
			Pools: []any{map[string]any{"start": "10.5.0.20", "end": "10.5.0.10"}}},
			"", "", "InvalidAllocationPool", "The allocation pool {'start': '10.5.0.20', 'end': '10.5.0.10'} is not valid."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw, ps, err := BuildSubnet(c.req)
			if c.err != "" {
				e, ok := err.(*Error)
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

func TestValidateSegment(t *testing.T) {
	cfg := DefaultNetworkConfig()
	cfg.VLANRanges = map[string][]Range{"physnet1": {{100, 199}}}
	cfg.FlatNetworks = []string{"public"}
	id := func(i int) *int { return &i }
	cases := []struct {
		req     SegmentRequest
		want    string
		message string
	}{
		{SegmentRequest{}, "vxlan", ""},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: id(102)}, "vlan", ""},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet9"}, "", "Invalid input for operation: physical_network 'physnet9' unknown for VLAN provider network."},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: id(4095)}, "", "Invalid input for operation: segmentation_id out of range (1 through 4094)."},
		{SegmentRequest{NetworkType: "flat", PhysicalNetwork: "public"}, "flat", ""},
		{SegmentRequest{NetworkType: "flat", PhysicalNetwork: "other"}, "", "Invalid input for operation: physical_network 'other' unknown for flat provider network."},
		{SegmentRequest{NetworkType: "vxlan", SegmentationID: id(MaxVNI + 1)}, "", "Invalid input for operation: segmentation_id out of range (1 through 16777215)."},
		{SegmentRequest{NetworkType: "local"}, "local", ""},
		{SegmentRequest{NetworkType: "gre"}, "", "Invalid input for operation: network_type value 'gre' not supported."},
	}
	for _, c := range cases {
		got, err := cfg.ValidateSegment(c.req)
		if c.message != "" {
			if err == nil || err.(*Error).Message != c.message {
				t.Errorf("%+v: got %v, want %s", c.req, err, c.message)
			}
			continue
		}
		if err != nil || got.NetworkType != c.want {
			t.Errorf("%+v: got %+v %v, want type %s", c.req, got, err, c.want)
		}
	}
}

func TestParseVLANRanges(t *testing.T) {
	got, err := ParseVLANRanges("physnet1:100:199, physnet2,physnet1:300:300")
	if err != nil || len(got["physnet1"]) != 2 || got["physnet1"][1] != (Range{300, 300}) || got["physnet2"] != nil {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{":1:2", "p:0:5", "p:5:4", "p:1:5000", "p:x"} {
		if _, err := ParseVLANRanges(bad); err == nil {
			t.Errorf("ParseVLANRanges(%q) accepted", bad)
		}
	}
}
