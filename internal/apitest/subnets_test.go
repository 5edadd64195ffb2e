package apitest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// Subnets: Neutron's defaults and validation (answers of the real Neutron
// 21), and the network:dhcp port moat keeps for DHCP-enabled subnets.

func TestSubnetDefaults(t *testing.T) {
	e := newEnv(t, nil)
	v6 := gophercloud.IPv6
	tests := []struct {
		name    string
		opts    subnets.CreateOpts
		cidr    string
		gateway string
		pools   string
		dhcp    bool
		ra, am  string
	}{
		{name: "v4", opts: subnets.CreateOpts{CIDR: "10.0.0.0/24", IPVersion: gophercloud.IPv4},
			cidr: "10.0.0.0/24", gateway: "10.0.0.1", pools: "10.0.0.2-10.0.0.254", dhcp: true},
		{name: "v4 host bits cleared", opts: subnets.CreateOpts{CIDR: "10.1.0.5/24", IPVersion: gophercloud.IPv4},
			cidr: "10.1.0.0/24", gateway: "10.1.0.1", pools: "10.1.0.2-10.1.0.254", dhcp: true},
		{name: "v4 /30", opts: subnets.CreateOpts{CIDR: "10.2.0.0/30", IPVersion: gophercloud.IPv4},
			cidr: "10.2.0.0/30", gateway: "10.2.0.1", pools: "10.2.0.2-10.2.0.2", dhcp: true},
		{name: "v4 without gateway or DHCP", opts: subnets.CreateOpts{CIDR: "10.3.0.0/24", IPVersion: gophercloud.IPv4,
			GatewayIP: ptr(""), EnableDHCP: gophercloud.Disabled},
			cidr: "10.3.0.0/24", gateway: "", pools: "10.3.0.1-10.3.0.254"},
		{name: "v4 gateway inside", opts: subnets.CreateOpts{CIDR: "10.4.0.0/24", IPVersion: gophercloud.IPv4, GatewayIP: ptr("10.4.0.100")},
			cidr: "10.4.0.0/24", gateway: "10.4.0.100", pools: "10.4.0.1-10.4.0.99 10.4.0.101-10.4.0.254", dhcp: true},
		{name: "v4 gateway outside the CIDR", opts: subnets.CreateOpts{CIDR: "10.5.0.0/24", IPVersion: gophercloud.IPv4, GatewayIP: ptr("10.9.0.1")},
			cidr: "10.5.0.0/24", gateway: "10.9.0.1", pools: "10.5.0.1-10.5.0.254", dhcp: true},
		{name: "v4 explicit pools", opts: subnets.CreateOpts{CIDR: "10.6.0.0/24", IPVersion: gophercloud.IPv4,
			AllocationPools: []subnets.AllocationPool{{Start: "10.6.0.10", End: "10.6.0.20"}, {Start: "10.6.0.30", End: "10.6.0.40"}}},
			cidr: "10.6.0.0/24", gateway: "10.6.0.1", pools: "10.6.0.10-10.6.0.20 10.6.0.30-10.6.0.40", dhcp: true},
		// IPv6: the gateway is the subnet-router anycast address ::, the
		// pool starts at ::1.
		{name: "v6 slaac", opts: subnets.CreateOpts{CIDR: "2001:db8:1::/64", IPVersion: v6, IPv6AddressMode: "slaac", IPv6RAMode: "slaac"},
			cidr: "2001:db8:1::/64", gateway: "2001:db8:1::", pools: "2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff", dhcp: true, ra: "slaac", am: "slaac"},
		{name: "v6 dhcpv6-stateful", opts: subnets.CreateOpts{CIDR: "2001:db8:3::/64", IPVersion: v6, IPv6AddressMode: "dhcpv6-stateful"},
			cidr: "2001:db8:3::/64", gateway: "2001:db8:3::", pools: "2001:db8:3::1-2001:db8:3:0:ffff:ffff:ffff:ffff", dhcp: true, am: "dhcpv6-stateful"},
		{name: "v6 dhcpv6-stateless", opts: subnets.CreateOpts{CIDR: "2001:db8:4::/64", IPVersion: v6, IPv6AddressMode: "dhcpv6-stateless", IPv6RAMode: "dhcpv6-stateless"},
			cidr: "2001:db8:4::/64", gateway: "2001:db8:4::", pools: "2001:db8:4::1-2001:db8:4:0:ffff:ffff:ffff:ffff", dhcp: true,
			ra: "dhcpv6-stateless", am: "dhcpv6-stateless"},
		{name: "v6 /120 without modes", opts: subnets.CreateOpts{CIDR: "2001:db8:5::/120", IPVersion: v6},
			cidr: "2001:db8:5::/120", gateway: "2001:db8:5::", pools: "2001:db8:5::1-2001:db8:5::ff", dhcp: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetwork(t, e.a, tc.name)
			tc.opts.NetworkID = n.ID
			tc.opts.Name = tc.name
			sn := createSubnet(t, e.a, tc.opts)
			for _, s := range []*subnets.Subnet{sn, getSubnet(t, e.a, sn.ID)} {
				if s.CIDR != tc.cidr || s.GatewayIP != tc.gateway || poolsOf(s.AllocationPools) != tc.pools || s.EnableDHCP != tc.dhcp ||
					s.IPv6RAMode != tc.ra || s.IPv6AddressMode != tc.am || s.NetworkID != n.ID || s.Name != tc.name {
					t.Errorf("subnet: cidr %s gateway %q pools %q dhcp %v ra %q address %q network %s name %q\n"+
						"      want: cidr %s gateway %q pools %q dhcp %v ra %q address %q",
						s.CIDR, s.GatewayIP, poolsOf(s.AllocationPools), s.EnableDHCP, s.IPv6RAMode, s.IPv6AddressMode, s.NetworkID, s.Name,
						tc.cidr, tc.gateway, tc.pools, tc.dhcp, tc.ra, tc.am)
				}
				if s.ProjectID != projectA.project || s.RevisionNumber != 0 || len(s.DNSNameservers) != 0 || len(s.HostRoutes) != 0 ||
					s.SubnetPoolID != "" || s.Tags == nil || len(s.Tags) != 0 {
					t.Errorf("subnet: project %s revision %d dns %v routes %v pool %q tags %v", s.ProjectID, s.RevisionNumber,
						s.DNSNameservers, s.HostRoutes, s.SubnetPoolID, s.Tags)
				}
			}
			// The network lists its subnet.
			if got := getNetwork(t, e.a, n.ID).Subnets; !slices.Equal(got, []string{sn.ID}) {
				t.Errorf("network subnets = %v, want [%s]", got, sn.ID)
			}
			// A null gateway is JSON null, not "".
			raw := rawGet(t, e.a, "subnets/"+sn.ID)["subnet"].(map[string]any)
			if tc.gateway == "" && raw["gateway_ip"] != nil {
				t.Errorf("gateway_ip = %#v, want null", raw["gateway_ip"])
			}
			if tc.ra == "" && raw["ipv6_ra_mode"] != nil || tc.am == "" && raw["ipv6_address_mode"] != nil {
				t.Errorf("ipv6 modes %#v %#v, want null", raw["ipv6_ra_mode"], raw["ipv6_address_mode"])
			}
		})
	}

	t.Run("dns and host routes", func(t *testing.T) {
		n := newNetwork(t, e.a, "dns")
		sn := createSubnet(t, e.a, subnets.CreateOpts{NetworkID: n.ID, CIDR: "192.168.5.0/24", IPVersion: gophercloud.IPv4,
			DNSNameservers: []string{"8.8.8.8", "1.1.1.1"},
			HostRoutes:     []subnets.HostRoute{{DestinationCIDR: "172.16.0.0/12", NextHop: "192.168.5.254"}}})
		got := getSubnet(t, e.a, sn.ID)
		if !slices.Equal(got.DNSNameservers, []string{"8.8.8.8", "1.1.1.1"}) ||
			!slices.Equal(got.HostRoutes, []subnets.HostRoute{{DestinationCIDR: "172.16.0.0/12", NextHop: "192.168.5.254"}}) {
			t.Errorf("dns %v routes %+v", got.DNSNameservers, got.HostRoutes)
		}
	})
}

func getSubnet(t *testing.T, c *gophercloud.ServiceClient, id string) *subnets.Subnet {
	t.Helper()
	sn, err := subnets.Get(t.Context(), c, id).Extract()
	noErr(t, err, "get subnet "+id)
	return sn
}

func TestSubnetErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	nb := newNetwork(t, e.b, "b's")
	v4 := func(cidr string) map[string]any {
		return map[string]any{"network_id": n.ID, "cidr": cidr, "ip_version": 4}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	pool := func(start, end string) map[string]any { return map[string]any{"start": start, "end": end} }
	routes := make([]any, 21)
	for i := range routes {
		routes[i] = map[string]any{"destination": fmt.Sprintf("10.%d.0.0/16", 100+i), "nexthop": "10.1.0.9"}
	}
	overlap := func(cidr string) string {
		return "Invalid input for operation: Requested subnet with cidr: " + cidr + " for network: " + n.ID + " overlaps with another subnet."
	}
	tests := []struct {
		name    string
		body    map[string]any
		status  int
		typ     string
		message string
	}{
		{"overlap inside", v4("10.0.0.128/25"), 400, "InvalidInput", overlap("10.0.0.128/25")},
		{"overlap around", v4("10.0.0.0/16"), 400, "InvalidInput", overlap("10.0.0.0/16")},
		{"cidr of the other family", with(v4("10.1.0.0/24"), "ip_version", 6), 400, "InvalidInput",
			"Invalid input for operation: cidr '10.1.0.0/24' does not match the ip_version '6'."},
		{"pool beyond the cidr", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.10", "10.2.0.20")}), 400, "OutOfBoundsAllocationPool",
			"The allocation pool 10.1.0.10-10.2.0.20 spans beyond the subnet cidr 10.1.0.0/24."},
		{"pool from the network address", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.0", "10.1.0.20")}), 400, "OutOfBoundsAllocationPool",
			"The allocation pool 10.1.0.0-10.1.0.20 spans beyond the subnet cidr 10.1.0.0/24."},
		{"pool to the broadcast address", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.10", "10.1.0.255")}), 400, "OutOfBoundsAllocationPool",
			"The allocation pool 10.1.0.10-10.1.0.255 spans beyond the subnet cidr 10.1.0.0/24."},
		{"pool reversed", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.20", "10.1.0.10")}), 400, "InvalidAllocationPool",
			"The allocation pool {'start': '10.1.0.20', 'end': '10.1.0.10'} is not valid."},
		{"pool of two families", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.20", "2001:db8::1")}), 400, "InvalidAllocationPool",
			"The allocation pool {'start': '10.1.0.20', 'end': '2001:db8::1'} is not valid."},
		{"pools overlap", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.10", "10.1.0.20"), pool("10.1.0.15", "10.1.0.30")}),
			409, "OverlappingAllocationPools", "Found overlapping allocation pools: 10.1.0.10-10.1.0.20 10.1.0.15-10.1.0.30 for subnet 10.1.0.0/24."},
		{"gateway in a pool", with(v4("10.1.0.0/24"), "gateway_ip", "10.1.0.15", "allocation_pools", []any{pool("10.1.0.10", "10.1.0.20")}),
			409, "GatewayConflictWithAllocationPools", "Gateway ip 10.1.0.15 conflicts with allocation pool 10.1.0.10-10.1.0.20."},
		{"default gateway in a pool", with(v4("10.1.0.0/24"), "allocation_pools", []any{pool("10.1.0.1", "10.1.0.20")}),
			409, "GatewayConflictWithAllocationPools", "Gateway ip 10.1.0.1 conflicts with allocation pool 10.1.0.1-10.1.0.20."},
		{"gateway is the network address", with(v4("10.1.0.0/24"), "gateway_ip", "10.1.0.0"), 400, "InvalidInput",
			"Invalid input for operation: Gateway is not valid on subnet."},
		{"gateway is the broadcast address", with(v4("10.1.0.0/24"), "gateway_ip", "10.1.0.255"), 400, "InvalidInput",
			"Invalid input for operation: Gateway is not valid on subnet."},
		{"gateway of the other family", with(v4("10.1.0.0/24"), "gateway_ip", "fe80::1"), 400, "InvalidInput",
			"Invalid input for operation: gateway_ip 'fe80::1' does not match the ip_version '4'."},
		{"DHCP on a /31", v4("10.1.0.0/31"), 400, "InvalidInput",
			"Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP service enabled."},
		{"ipv6_address_mode on IPv4", with(v4("10.1.0.0/24"), "ipv6_address_mode", "slaac"), 400, "InvalidInput",
			"Invalid input for operation: ipv6_address_mode is not valid when ip_version is 4."},
		{"ipv6_ra_mode on IPv4", with(v4("10.1.0.0/24"), "ipv6_ra_mode", "slaac", "ipv6_address_mode", "slaac"), 400, "InvalidInput",
			"Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4."},
		{"IPv6 modes differ", with(v4("2001:db8:2::/64"), "ip_version", 6, "ipv6_address_mode", "slaac", "ipv6_ra_mode", "dhcpv6-stateful"), 400, "InvalidInput",
			"Invalid input for operation: ipv6_ra_mode set to 'dhcpv6-stateful' with ipv6_address_mode set to 'slaac' is not valid. If both attributes are set, they must be the same value."},
		{"IPv6 modes without DHCP", with(v4("2001:db8:9::/64"), "ip_version", 6, "ipv6_address_mode", "slaac", "enable_dhcp", false), 400, "InvalidInput",
			"Invalid input for operation: ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False."},
		{"IPv6 gateway of the other family", with(v4("2001:db8:9::/64"), "ip_version", 6, "gateway_ip", "10.0.0.1"), 400, "InvalidInput",
			"Invalid input for operation: gateway_ip '10.0.0.1' does not match the ip_version '6'."},
		{"IPv6 pool from the anycast address", with(v4("2001:db8:9::/64"), "ip_version", 6, "allocation_pools", []any{pool("2001:db8:9::", "2001:db8:9::10")}),
			400, "OutOfBoundsAllocationPool", "The allocation pool 2001:db8:9::-2001:db8:9::10 spans beyond the subnet cidr 2001:db8:9::/64."},
		{"six DNS servers", with(v4("10.1.0.0/24"), "dns_nameservers", []any{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"}),
			400, "DNSNameServersExhausted", "Unable to complete operation for new subnet. The number of DNS nameservers exceeds the limit 5."},
		{"duplicate DNS server", with(v4("10.1.0.0/24"), "dns_nameservers", []any{"1.1.1.1", "1.1.1.1"}), 400, "HTTPBadRequest",
			"Invalid input for dns_nameservers. Reason: Duplicate nameserver '1.1.1.1'."},
		{"21 host routes", with(v4("10.1.0.0/24"), "host_routes", routes), 400, "HostRoutesExhausted",
			"Unable to complete operation for new subnet. The number of host routes exceeds the limit 20."},
		{"DHCP on 0.0.0.0/8", v4("0.0.0.0/8"), 400, "InvalidInput",
			"Invalid input for operation: First IP '0.0.0.0' of network is not supported if enable_dhcp is True.."},
		{"DHCP on multicast", v4("224.0.0.0/24"), 400, "InvalidInput",
			"Invalid input for operation: Multicast IP subnet is not supported if enable_dhcp is True."},
		{"DHCP on IPv6 multicast", with(v4("ff00::/64"), "ip_version", 6), 400, "InvalidInput",
			"Invalid input for operation: Multicast IP subnet is not supported if enable_dhcp is True."},
		{"DHCP on loopback", v4("127.0.0.0/24"), 400, "InvalidInput",
			"Invalid input for operation: Loopback IP subnet is not supported if enable_dhcp is True."},
		{"prefix length 0", with(v4("::/0"), "ip_version", 6, "enable_dhcp", false), 400, "InvalidInput",
			"Invalid input for operation: 0 is not allowed as CIDR prefix length."},
		{"DNS server of the other family", with(v4("10.1.0.0/24"), "dns_nameservers", []any{"2001:DB8::1"}), 400, "InvalidInput",
			"Invalid input for operation: dns_nameserver '2001:DB8::1' does not match the ip_version '4'."},
		{"route next hop of the other family", with(v4("10.1.0.0/24"), "host_routes", []any{map[string]any{"destination": "2001:db8::/64", "nexthop": "2001:db8::1"}}),
			400, "InvalidInput", "Invalid input for operation: nexthop '2001:db8::1' does not match the ip_version '4'."},
		{"route destination of the other family", with(v4("10.1.0.0/24"), "host_routes", []any{map[string]any{"destination": "2001:db8::/64", "nexthop": "10.1.0.9"}}),
			400, "InvalidInput", "Invalid input for operation: destination '2001:db8::/64' does not match the ip_version '4'."},
		{"unknown network", with(v4("10.1.0.0/24"), "network_id", "00000000-0000-0000-0000-000000000000"), 404, "NetworkNotFound",
			"Network 00000000-0000-0000-0000-000000000000 could not be found."},
		{"another project's network", with(v4("10.1.0.0/24"), "network_id", nb.ID), 404, "NetworkNotFound",
			"Network " + nb.ID + " could not be found."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := rawRequest(t, e.a, http.MethodPost, "subnets", map[string]any{"subnet": tc.body}, nil, nil, 201)
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}
	// Nothing was created by the refused requests.
	pages, err := subnets.List(e.a, subnets.ListOpts{}).AllPages(ctx)
	noErr(t, err, "list subnets")
	all, err := subnets.ExtractSubnets(pages)
	noErr(t, err, "extract subnets")
	if len(all) != 1 {
		t.Errorf("%d subnets after refused creates, want 1", len(all))
	}
}

func TestSubnetUpdate(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	sn := newSubnet(t, e.a, n.ID, "10.8.0.0/24")
	update := func(opts subnets.UpdateOpts) (*subnets.Subnet, error) {
		return subnets.Update(ctx, e.a, sn.ID, opts).Extract()
	}
	_, err := update(subnets.UpdateOpts{GatewayIP: ptr("10.8.0.5")})
	wantError(t, err, 409, "GatewayConflictWithAllocationPools", "Gateway ip 10.8.0.5 conflicts with allocation pool 10.8.0.2-10.8.0.254.")
	got, err := update(subnets.UpdateOpts{Name: ptr("renamed"), AllocationPools: []subnets.AllocationPool{{Start: "10.8.0.100", End: "10.8.0.200"}}})
	noErr(t, err, "update pools")
	if got.Name != "renamed" || poolsOf(got.AllocationPools) != "10.8.0.100-10.8.0.200" || got.GatewayIP != "10.8.0.1" || got.RevisionNumber != 1 {
		t.Errorf("after update: name %q pools %q gateway %s revision %d", got.Name, poolsOf(got.AllocationPools), got.GatewayIP, got.RevisionNumber)
	}
	// The gateway may now move below the pool.
	got, err = update(subnets.UpdateOpts{GatewayIP: ptr("10.8.0.5")})
	noErr(t, err, "move the gateway")
	if got.GatewayIP != "10.8.0.5" || poolsOf(got.AllocationPools) != "10.8.0.100-10.8.0.200" {
		t.Errorf("gateway %s pools %s", got.GatewayIP, poolsOf(got.AllocationPools))
	}
	six := []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"}
	_, err = update(subnets.UpdateOpts{DNSNameservers: &six})
	wantError(t, err, 400, "DNSNameServersExhausted",
		"Unable to complete operation for "+sn.ID+". The number of DNS nameservers exceeds the limit 5.")
	var routes []subnets.HostRoute
	for i := range 21 {
		routes = append(routes, subnets.HostRoute{DestinationCIDR: fmt.Sprintf("10.%d.0.0/16", 100+i), NextHop: "10.8.0.9"})
	}
	_, err = update(subnets.UpdateOpts{HostRoutes: &routes})
	wantError(t, err, 400, "HostRoutesExhausted",
		"Unable to complete operation for "+sn.ID+". The number of host routes exceeds the limit 20.")
	_, err = update(subnets.UpdateOpts{DNSNameservers: &[]string{"2001:db8::1"}})
	wantError(t, err, 400, "InvalidInput", "Invalid input for operation: dns_nameserver '2001:db8::1' does not match the ip_version '4'.")
	got, err = update(subnets.UpdateOpts{DNSNameservers: ptr(six[:5]), HostRoutes: ptr(routes[:20])})
	noErr(t, err, "five servers and twenty routes")
	if len(got.DNSNameservers) != 5 || len(got.HostRoutes) != 20 {
		t.Errorf("dns %d routes %d", len(got.DNSNameservers), len(got.HostRoutes))
	}
	// Turning DHCP on checks the range as a create does.
	n2 := newNetwork(t, e.a, "n2")
	small := newSubnetNoDHCP(t, e.a, n2.ID, "10.9.0.0/30")
	_, err = subnets.Update(ctx, e.a, small.ID, subnets.UpdateOpts{EnableDHCP: ptr(true)}).Extract()
	noErr(t, err, "DHCP on a /30")
	tiny := createSubnet(t, e.a, subnets.CreateOpts{NetworkID: n2.ID, CIDR: "10.9.1.0/31", IPVersion: 4, EnableDHCP: ptr(false), GatewayIP: ptr("")})
	_, err = subnets.Update(ctx, e.a, tiny.ID, subnets.UpdateOpts{EnableDHCP: ptr(true)}).Extract()
	wantError(t, err, 400, "InvalidInput", "Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP service enabled.")
	// B cannot see or change A's subnet.
	_, err = subnets.Update(ctx, e.b, sn.ID, subnets.UpdateOpts{Name: ptr("x")}).Extract()
	wantError(t, err, 404, "SubnetNotFound", "Subnet "+sn.ID+" could not be found.")
	// A port with an address keeps the subnet.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID})
	wantError(t, subnets.Delete(ctx, e.a, sn.ID).ExtractErr(), 409, "SubnetInUse",
		"Unable to complete operation on subnet "+sn.ID+": One or more ports have an IP allocation from this subnet.")
	noErr(t, ports.Delete(ctx, e.a, p.ID).ExtractErr(), "delete the port")
	noErr(t, subnets.Delete(ctx, e.a, sn.ID).ExtractErr(), "delete the subnet")
	if got := getNetwork(t, e.a, n.ID).Subnets; len(got) != 0 {
		t.Errorf("network subnets after delete: %v", got)
	}
}

func TestSharedNetworkSubnets(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := createNetwork(t, e.admin, networks.CreateOpts{Name: "shared", Shared: ptr(true)})
	sn := newSubnet(t, e.admin, n.ID, "10.7.0.0/24")
	// Members see the subnets of shared networks but cannot change them.
	if got := getSubnet(t, e.a, sn.ID); got.ID != sn.ID {
		t.Fatalf("A cannot see the shared subnet")
	}
	_, err := subnets.Update(ctx, e.a, sn.ID, subnets.UpdateOpts{Name: ptr("x")}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "rule:update_subnet is disallowed by policy")
	wantError(t, subnets.Delete(ctx, e.a, sn.ID).ExtractErr(), 403, "PolicyNotAuthorized", "rule:delete_subnet is disallowed by policy")
	// A port of A on it, which B does not see.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(sn.ID, "10.7.0.3")}) {
		t.Errorf("A's port on the shared network: %v", ips(p.FixedIPs))
	}
	_, err = ports.Get(ctx, e.b, p.ID).Extract()
	wantError(t, err, 404, "PortNotFound", "Port "+p.ID+" could not be found.")
	wantError(t, ports.Delete(ctx, e.b, p.ID).ExtractErr(), 404, "PortNotFound", "Port "+p.ID+" could not be found.")
	// The network's owner (the admin) sees every port on it.
	if got := listPorts(t, e.admin, ports.ListOpts{NetworkID: n.ID}); len(got) != 2 {
		t.Errorf("admin sees %d ports on the shared network, want A's and the DHCP port", len(got))
	}
	if got := listPorts(t, e.b, ports.ListOpts{NetworkID: n.ID}); len(got) != 0 {
		t.Errorf("B sees ports %v on the shared network", portIDs(got))
	}
}

func TestDHCPPort(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	// No DHCP, no port.
	plain := newSubnetNoDHCP(t, e.a, n.ID, "10.9.0.0/24")
	if p := dhcpPort(t, e.admin, n.ID); p != nil {
		t.Fatalf("a subnet without DHCP got a DHCP port %+v", p)
	}
	// The first DHCP subnet creates the port with the first pool address.
	s1 := newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	d := dhcpPort(t, e.a, n.ID)
	if d == nil {
		t.Fatalf("no network:dhcp port after a DHCP subnet")
	}
	if d.DeviceID != "dhcp-"+n.ID || d.ProjectID != projectA.project || d.Status != "ACTIVE" || !d.AdminStateUp ||
		len(d.SecurityGroups) != 0 || d.PortSecurityEnabled || len(d.AllowedAddressPairs) != 0 ||
		!slices.Equal(ips(d.FixedIPs), []string{ip(s1.ID, "10.0.0.2")}) {
		t.Errorf("DHCP port: device_id %s project %s status %s groups %v port security %v addresses %v",
			d.DeviceID, d.ProjectID, d.Status, d.SecurityGroups, d.PortSecurityEnabled, ips(d.FixedIPs))
	}
	// Its address is taken: a user port gets the next one, and the
	// server's address cannot be requested.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{SubnetID: s1.ID}}})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(s1.ID, "10.0.0.3")}) {
		t.Errorf("user port: %v, want 10.0.0.3", ips(p.FixedIPs))
	}
	_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{IPAddress: "10.0.0.2"}}}).Extract()
	wantError(t, err, 409, "IpAddressAlreadyAllocated", "IP address 10.0.0.2 already allocated in subnet "+s1.ID)

	// A second DHCP subnet adds an address to the same port; a SLAAC
	// subnet does not (hosts configure themselves there).
	s2 := newSubnet(t, e.a, n.ID, "10.1.0.0/24")
	createSubnet(t, e.a, subnets.CreateOpts{NetworkID: n.ID, CIDR: "2001:db8::/64", IPVersion: gophercloud.IPv6, IPv6AddressMode: "slaac", IPv6RAMode: "slaac"})
	d = dhcpPort(t, e.a, n.ID)
	// (In subnet id order.)
	if got := ips(d.FixedIPs); !slices.Equal(got, sortedIDs(ip(s1.ID, "10.0.0.2"), ip(s2.ID, "10.1.0.2"))) {
		t.Errorf("DHCP port on two subnets: %v", ips(d.FixedIPs))
	}
	dhcpID := d.ID
	// Turning DHCP off on a subnet releases the server's address there.
	_, err = subnets.Update(ctx, e.a, s1.ID, subnets.UpdateOpts{EnableDHCP: gophercloud.Disabled}).Extract()
	noErr(t, err, "disable DHCP on s1")
	d = dhcpPort(t, e.a, n.ID)
	if d == nil || d.ID != dhcpID || !slices.Equal(ips(d.FixedIPs), []string{ip(s2.ID, "10.1.0.2")}) {
		t.Errorf("DHCP port after disabling DHCP on s1: %+v", d)
	}
	// Deleting the last DHCP subnet removes the port.
	noErr(t, subnets.Delete(ctx, e.a, s2.ID).ExtractErr(), "delete s2")
	if d := dhcpPort(t, e.admin, n.ID); d != nil {
		t.Errorf("DHCP port left after the last DHCP subnet: %v", ips(d.FixedIPs))
	}
	_, err = ports.Get(ctx, e.a, dhcpID).Extract()
	wantError(t, err, 404, "PortNotFound", "Port "+dhcpID+" could not be found.")
	// Re-enabling DHCP brings a port back, at the lowest free address.
	_, err = subnets.Update(ctx, e.a, plain.ID, subnets.UpdateOpts{EnableDHCP: gophercloud.Enabled}).Extract()
	noErr(t, err, "enable DHCP on the plain subnet")
	if d := dhcpPort(t, e.a, n.ID); d == nil || !slices.Equal(ips(d.FixedIPs), []string{ip(plain.ID, "10.9.0.2")}) {
		t.Errorf("DHCP port after enabling DHCP: %+v", d)
	}
}
