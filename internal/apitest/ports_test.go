package apitest

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// Ports: attributes, IPAM, MACs, allowed address pairs, port security and
// bindings. Messages are the real Neutron 21's.

var macRE = regexp.MustCompile(`^fa:16:3e(:[0-9a-f]{2}){3}$`)

// memberPortKeys are the attributes a member sees on GET (no binding:*
// details but the vNIC type).
var memberPortKeys = []string{
	"admin_state_up", "allowed_address_pairs", "binding:vnic_type", "created_at", "description", "device_id",
	"device_owner", "extra_dhcp_opts", "fixed_ips", "id", "mac_address", "name", "network_id", "port_security_enabled",
	"project_id", "revision_number", "security_groups", "status", "tags", "tenant_id", "updated_at",
}

func TestPortDefaults(t *testing.T) {
	e := newEnv(t, nil)
	n := newNetwork(t, e.a, "n")
	sn := newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	def := defaultGroup(t, e.a, projectA.project)
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, Name: "p1"})
	for _, got := range []*port{p, getPort(t, e.a, p.ID)} {
		// 10.0.0.2 is the DHCP server's.
		if got.Name != "p1" || got.NetworkID != n.ID || !got.AdminStateUp || got.Status != "DOWN" || got.DeviceID != "" ||
			got.DeviceOwner != "" || got.ProjectID != projectA.project || got.TenantID != projectA.project ||
			!slices.Equal(ips(got.FixedIPs), []string{ip(sn.ID, "10.0.0.3")}) ||
			!slices.Equal(got.SecurityGroups, []string{def.ID}) || !got.PortSecurityEnabled ||
			got.AllowedAddressPairs == nil || len(got.AllowedAddressPairs) != 0 || got.VNICType != "normal" ||
			got.RevisionNumber != 1 || got.Tags == nil || len(got.Tags) != 0 || !macRE.MatchString(got.MACAddress) {
			t.Errorf("port: %+v", got)
		}
		// Bindings are the admin's business.
		if got.HostID != "" || got.VIFType != "" || got.VIFDetails != nil {
			t.Errorf("a member saw binding details: %+v", got.PortsBindingExt)
		}
	}
	if got := rawKeys(t, e.a, "ports/"+p.ID, "port"); !slices.Equal(got, memberPortKeys) {
		t.Errorf("member GET keys\n got %q\nwant %q", got, memberPortKeys)
	}
	a := getPort(t, e.admin, p.ID)
	if a.HostID != "" || a.VIFType != "unbound" || len(a.VIFDetails) != 0 || a.VIFDetails == nil || a.Profile == nil || len(a.Profile) != 0 {
		t.Errorf("admin sees binding host %q vif %q details %v profile %v", a.HostID, a.VIFType, a.VIFDetails, a.Profile)
	}
	// Updates of plain attributes bump the revision.
	u := updatePort(t, e.a, p.ID, ports.UpdateOpts{Name: ptr("p1b"), AdminStateUp: gophercloud.Disabled, DeviceID: ptr("vm-1"), DeviceOwner: ptr("compute:nova")})
	if u.Name != "p1b" || u.AdminStateUp || u.DeviceID != "vm-1" || u.DeviceOwner != "compute:nova" || u.RevisionNumber != 2 ||
		!slices.Equal(u.SecurityGroups, []string{def.ID}) {
		t.Errorf("updated port: %+v", u)
	}
}

func TestPortIPAM(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	// 10.5.0.0/29 without DHCP: gateway .1, pool .2-.6.
	sn := newSubnetNoDHCP(t, e.a, n.ID, "10.5.0.0/29")
	other := newNetwork(t, e.a, "other")
	otherSub := newSubnetNoDHCP(t, e.a, other.ID, "10.6.0.0/24")
	mk := func(fixed any) (*port, error) {
		var p port
		err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: fixed}).ExtractInto(&p)
		if err != nil {
			return nil, err
		}
		return &p, nil
	}
	// want creates a port asking for fixed and checks its addresses.
	want := func(fixed any, addrs ...string) *port {
		t.Helper()
		p, err := mk(fixed)
		noErr(t, err, "create port")
		var w []string
		for _, a := range addrs {
			w = append(w, ip(sn.ID, a))
		}
		if !slices.Equal(ips(p.FixedIPs), w) {
			t.Errorf("port addresses %v, want %v", ips(p.FixedIPs), w)
		}
		return p
	}
	// The lowest free address of the pool, explicit addresses anywhere in
	// it, a subnet alone gets the lowest free one.
	p2 := want(nil, "10.5.0.2")
	p5 := want([]ports.IP{{IPAddress: "10.5.0.5"}}, "10.5.0.5")
	want(nil, "10.5.0.3")
	want([]ports.IP{{SubnetID: sn.ID}}, "10.5.0.4")
	want(nil, "10.5.0.6")
	exhausted := "No more IP addresses available on network " + n.ID + "."
	_, err := mk(nil)
	wantError(t, err, 409, "IpAddressGenerationFailure", exhausted)
	_, err = mk([]ports.IP{{SubnetID: sn.ID}})
	wantError(t, err, 409, "IpAddressGenerationFailure", exhausted)
	// A freed address is reused.
	noErr(t, ports.Delete(ctx, e.a, p5.ID).ExtractErr(), "delete the .5 port")
	want(nil, "10.5.0.5")
	// The gateway's address may be requested (Neutron allows it).
	gw := want([]ports.IP{{IPAddress: "10.5.0.1"}}, "10.5.0.1")

	tests := []struct {
		name         string
		fixed        any
		status       int
		typ, message string
	}{
		{"address taken", []ports.IP{{IPAddress: "10.5.0.2"}}, 409, "IpAddressAlreadyAllocated",
			"IP address 10.5.0.2 already allocated in subnet " + sn.ID},
		{"address taken, with subnet", []ports.IP{{SubnetID: sn.ID, IPAddress: "10.5.0.5"}}, 409, "IpAddressAlreadyAllocated",
			"IP address 10.5.0.5 already allocated in subnet " + sn.ID},
		{"network address", []ports.IP{{IPAddress: "10.5.0.0"}}, 400, "InvalidIpForNetwork",
			"IP address 10.5.0.0 is not a valid IP for any of the subnets on the specified network."},
		{"broadcast address", []ports.IP{{IPAddress: "10.5.0.7"}}, 400, "InvalidIpForNetwork",
			"IP address 10.5.0.7 is not a valid IP for any of the subnets on the specified network."},
		{"broadcast address, with subnet", []ports.IP{{SubnetID: sn.ID, IPAddress: "10.5.0.7"}}, 400, "InvalidIpForSubnet",
			"IP address 10.5.0.7 is not a valid IP for the specified subnet."},
		{"address of no subnet", []ports.IP{{IPAddress: "10.6.0.3"}}, 400, "InvalidIpForNetwork",
			"IP address 10.6.0.3 is not a valid IP for any of the subnets on the specified network."},
		{"address outside the named subnet", []ports.IP{{SubnetID: sn.ID, IPAddress: "2001:db8:5::5"}}, 400, "InvalidIpForSubnet",
			"IP address 2001:db8:5::5 is not a valid IP for the specified subnet."},
		{"unknown subnet", []ports.IP{{SubnetID: "00000000-0000-0000-0000-000000000000"}}, 404, "SubnetNotFound",
			"Subnet 00000000-0000-0000-0000-000000000000 could not be found."},
		{"subnet of another network", []ports.IP{{SubnetID: otherSub.ID}}, 400, "InvalidInput",
			"Invalid input for operation: Failed to create port on network " + n.ID + ", because fixed_ips included invalid subnet " + otherSub.ID + "."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mk(tc.fixed)
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}

	// An update moves a port to an explicit address; its old one is free
	// again, its own address may be kept.
	noErr(t, ports.Delete(ctx, e.a, gw.ID).ExtractErr(), "delete the gateway port")
	u := updatePort(t, e.a, p2.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{IPAddress: "10.5.0.2"}, {IPAddress: "10.5.0.1"}}})
	if !slices.Equal(ips(u.FixedIPs), []string{ip(sn.ID, "10.5.0.2"), ip(sn.ID, "10.5.0.1")}) {
		t.Errorf("after update: %v", ips(u.FixedIPs))
	}
	u = updatePort(t, e.a, p2.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{IPAddress: "10.5.0.1"}}})
	if !slices.Equal(ips(u.FixedIPs), []string{ip(sn.ID, "10.5.0.1")}) {
		t.Errorf("after update: %v", ips(u.FixedIPs))
	}
	want(nil, "10.5.0.2")
	_, err = ports.Update(ctx, e.a, p2.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{IPAddress: "10.5.0.3"}}}).Extract()
	wantError(t, err, 409, "IpAddressAlreadyAllocated", "IP address 10.5.0.3 already allocated in subnet "+sn.ID)

	t.Run("two addresses on one subnet", func(t *testing.T) {
		n := newNetwork(t, e.a, "two")
		sn := newSubnetNoDHCP(t, e.a, n.ID, "10.7.0.0/24")
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{SubnetID: sn.ID}, {SubnetID: sn.ID}}})
		if !slices.Equal(ips(p.FixedIPs), []string{ip(sn.ID, "10.7.0.2"), ip(sn.ID, "10.7.0.3")}) {
			t.Errorf("addresses %v", ips(p.FixedIPs))
		}
	})

	t.Run("a /30 with DHCP has no address left for ports", func(t *testing.T) {
		n := newNetwork(t, e.a, "tiny")
		sn := newSubnet(t, e.a, n.ID, "10.8.0.0/30")
		if d := dhcpPort(t, e.a, n.ID); d == nil || !slices.Equal(ips(d.FixedIPs), []string{ip(sn.ID, "10.8.0.2")}) {
			t.Fatalf("DHCP port %+v", d)
		}
		_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID}).Extract()
		wantError(t, err, 409, "IpAddressGenerationFailure", "No more IP addresses available on network "+n.ID+".")
		// Without DHCP the single address is the port's.
		n2 := newNetwork(t, e.a, "tiny2")
		sn2 := newSubnetNoDHCP(t, e.a, n2.ID, "10.8.0.4/30")
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n2.ID})
		if !slices.Equal(ips(p.FixedIPs), []string{ip(sn2.ID, "10.8.0.6")}) {
			t.Errorf("addresses %v", ips(p.FixedIPs))
		}
		_, err = ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n2.ID}).Extract()
		wantError(t, err, 409, "IpAddressGenerationFailure", "No more IP addresses available on network "+n2.ID+".")
	})

	t.Run("network without subnets", func(t *testing.T) {
		n := newNetwork(t, e.a, "bare")
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID})
		if len(p.FixedIPs) != 0 || p.FixedIPs == nil {
			t.Errorf("addresses %v on a network without subnets", p.FixedIPs)
		}
		_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{IPAddress: "10.0.0.5"}}}).Extract()
		wantError(t, err, 400, "InvalidInput", "Invalid input for operation: IP allocation requires subnets for network.")
	})
}

func TestPortSLAAC(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "dual")
	v4 := newSubnetNoDHCP(t, e.a, n.ID, "10.5.0.0/24")
	// A port made before the SLAAC subnet gets its address when the
	// subnet comes.
	early := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:07"})
	v6 := createSubnet(t, e.a, subnets.CreateOpts{NetworkID: n.ID, CIDR: "2001:db8:5::/64", IPVersion: gophercloud.IPv6,
		IPv6AddressMode: "slaac", IPv6RAMode: "slaac"})
	if got := getPort(t, e.a, early.ID); !slices.Equal(ips(got.FixedIPs), []string{ip(v4.ID, "10.5.0.2"), ip(v6.ID, "2001:db8:5:0:f816:3eff:fe00:7")}) {
		t.Errorf("existing port after a SLAAC subnet: %v", ips(got.FixedIPs))
	}
	// The EUI-64 address of the MAC, as Neutron computes it.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:01"})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(v4.ID, "10.5.0.3"), ip(v6.ID, "2001:db8:5:0:f816:3eff:fe00:1")}) {
		t.Errorf("dual-stack port: %v", ips(p.FixedIPs))
	}
	// The SLAAC address comes even when only the IPv4 subnet is asked for,
	// or no address at all.
	p = createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:02", FixedIPs: []ports.IP{{SubnetID: v4.ID}}})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(v4.ID, "10.5.0.4"), ip(v6.ID, "2001:db8:5:0:f816:3eff:fe00:2")}) {
		t.Errorf("port asking for IPv4: %v", ips(p.FixedIPs))
	}
	p = createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:ab:cd:ef", FixedIPs: []ports.IP{}})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(v6.ID, "2001:db8:5:0:f816:3eff:feab:cdef")}) {
		t.Errorf("port asking for no address: %v", ips(p.FixedIPs))
	}
	// Deleting the SLAAC subnet takes the automatic addresses back.
	noErr(t, subnets.Delete(ctx, e.a, v6.ID).ExtractErr(), "delete the SLAAC subnet")
	if got := getPort(t, e.a, early.ID); !slices.Equal(ips(got.FixedIPs), []string{ip(v4.ID, "10.5.0.2")}) {
		t.Errorf("after the SLAAC subnet's deletion: %v", ips(got.FixedIPs))
	}
	if got := getPort(t, e.a, p.ID); len(got.FixedIPs) != 0 {
		t.Errorf("after the SLAAC subnet's deletion: %v", ips(got.FixedIPs))
	}

	t.Run("dhcpv6-stateful allocates from the pool", func(t *testing.T) {
		n := newNetwork(t, e.a, "stateful")
		sn := createSubnet(t, e.a, subnets.CreateOpts{NetworkID: n.ID, CIDR: "2001:db8:3::/64", IPVersion: gophercloud.IPv6,
			IPv6AddressMode: "dhcpv6-stateful", IPv6RAMode: "dhcpv6-stateful"})
		// ::1 is the DHCPv6 server's.
		if d := dhcpPort(t, e.a, n.ID); d == nil || !slices.Equal(ips(d.FixedIPs), []string{ip(sn.ID, "2001:db8:3::1")}) {
			t.Errorf("DHCP port %+v", d)
		}
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID})
		if !slices.Equal(ips(p.FixedIPs), []string{ip(sn.ID, "2001:db8:3::2")}) {
			t.Errorf("stateful port: %v", ips(p.FixedIPs))
		}
	})
}

func TestPortMAC(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	n2 := newNetwork(t, e.a, "n2")
	// Generated MACs are Neutron's fa:16:3e prefix and unique per network.
	seen := map[string]bool{}
	for i := range 20 {
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, Name: fmt.Sprint(i)})
		if !macRE.MatchString(p.MACAddress) || seen[p.MACAddress] {
			t.Errorf("port %d: MAC %s (seen before: %v)", i, p.MACAddress, seen[p.MACAddress])
		}
		seen[p.MACAddress] = true
	}
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:01"})
	if p.MACAddress != "fa:16:3e:00:00:01" {
		t.Errorf("MAC %s", p.MACAddress)
	}
	inUse := "Unable to complete operation for network " + n.ID + ". The mac address fa:16:3e:00:00:01 is in use."
	_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:01"}).Extract()
	wantError(t, err, 409, "MacAddressInUse", inUse)
	// Another network may use the same MAC.
	if p2 := createPort(t, e.a, ports.CreateOpts{NetworkID: n2.ID, MACAddress: "fa:16:3e:00:00:01"}); p2.MACAddress != "fa:16:3e:00:00:01" {
		t.Errorf("MAC on the second network: %s", p2.MACAddress)
	}
	// Only an admin changes a MAC, and not to one in use.
	other := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:02"})
	_, err = ports.Update(ctx, e.a, other.ID, ports.UpdateOpts{MACAddress: ptr("fa:16:3e:00:00:03")}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "(rule:update_port and rule:update_port:mac_address) is disallowed by policy")
	_, err = ports.Update(ctx, e.admin, other.ID, ports.UpdateOpts{MACAddress: ptr("fa:16:3e:00:00:01")}).Extract()
	wantError(t, err, 409, "MacAddressInUse", inUse)
	if u := updatePort(t, e.admin, other.ID, ports.UpdateOpts{MACAddress: ptr("fa:16:3e:00:00:03")}); u.MACAddress != "fa:16:3e:00:00:03" {
		t.Errorf("MAC after the admin's update: %s", u.MACAddress)
	}
	// The zero and broadcast MACs are not port MACs.
	for _, bad := range []string{"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "fa:16:3e:00:00"} {
		_, err = ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: bad}).Extract()
		wantError(t, err, 400, "HTTPBadRequest", "Invalid input for mac_address. Reason: '"+bad+"' is not a valid MAC address.")
	}
}

func TestAllowedAddressPairs(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	mac := "fa:16:3e:00:00:02"
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: mac, AllowedAddressPairs: []ports.AddressPair{
		{IPAddress: "10.9.0.0/24"}, {IPAddress: "10.9.1.1", MACAddress: "fa:16:3e:00:00:09"}, {IPAddress: "2001:db8::1"}}})
	// A pair without MAC gets the port's.
	wantPairs := []string{"10.9.0.0/24@" + mac, "10.9.1.1@fa:16:3e:00:00:09", "2001:db8::1@" + mac}
	if got := pairs(getPort(t, e.a, p.ID).AllowedAddressPairs); !slices.Equal(got, wantPairs) {
		t.Errorf("pairs %v, want %v", got, wantPairs)
	}
	ten := make([]ports.AddressPair, 10)
	for i := range ten {
		ten[i] = ports.AddressPair{IPAddress: fmt.Sprintf("10.9.0.%d", i)}
	}
	if u := updatePort(t, e.a, p.ID, ports.UpdateOpts{AllowedAddressPairs: &ten}); len(u.AllowedAddressPairs) != 10 {
		t.Errorf("%d pairs after setting 10", len(u.AllowedAddressPairs))
	}
	eleven := append(slices.Clone(ten), ports.AddressPair{IPAddress: "10.9.0.10"})
	tests := []struct {
		name         string
		pairs        []ports.AddressPair
		status       int
		typ, message string
	}{
		{"eleven pairs", eleven, 400, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum 10."},
		{"duplicate", []ports.AddressPair{{IPAddress: "10.9.0.1"}, {IPAddress: "10.9.0.1"}}, 400, "DuplicateAddressPairInRequest",
			"Request contains duplicate address pair: mac_address None ip_address 10.9.0.1."},
		{"duplicate with MAC", []ports.AddressPair{{IPAddress: "10.9.0.1", MACAddress: mac}, {IPAddress: "10.9.0.1", MACAddress: mac}}, 400,
			"DuplicateAddressPairInRequest", "Request contains duplicate address pair: mac_address " + mac + " ip_address 10.9.0.1."},
		{"no address", []ports.AddressPair{{MACAddress: mac}}, 400, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address"},
		{"bad CIDR", []ports.AddressPair{{IPAddress: "10.0.0.0/33"}}, 400, "HTTPBadRequest", "'10.0.0.0/33' is not a valid IP subnet"},
		{"bad address", []ports.AddressPair{{IPAddress: "10.0.0.300"}}, 400, "HTTPBadRequest", "'10.0.0.300' is not a valid IP address"},
		{"CIDR not canonical", []ports.AddressPair{{IPAddress: "10.9/16"}}, 400, "HTTPBadRequest",
			"'10.9/16' isn't a recognized IP subnet cidr, '10.9.0.0/16' is recommended"},
		{"bad MAC", []ports.AddressPair{{IPAddress: "10.0.0.1", MACAddress: "zz"}}, 400, "HTTPBadRequest", "'zz' is not a valid MAC address"},
	}
	for _, tc := range tests {
		t.Run("create "+tc.name, func(t *testing.T) {
			_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, AllowedAddressPairs: tc.pairs}).Extract()
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
		t.Run("update "+tc.name, func(t *testing.T) {
			_, err := ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{AllowedAddressPairs: &tc.pairs}).Extract()
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}
	// Shapes gophercloud cannot send.
	for _, tc := range []struct {
		pairs   any
		typ     string
		message string
	}{
		{"x", "HTTPBadRequest", "Allowed address pairs must be a list."},
		{[]any{"x"}, "HTTPBadRequest", "Invalid input for allowed_address_pairs. Reason: 'x' is not a dictionary."},
		{[]any{map[string]any{"ip_address": "10.0.0.1", "foo": 1}}, "HTTPBadRequest", "Unrecognized attribute(s) 'foo'"},
	} {
		err := rawRequest(t, e.a, http.MethodPost, "ports", map[string]any{"port": map[string]any{"network_id": n.ID, "allowed_address_pairs": tc.pairs}}, nil, nil, 201)
		wantError(t, err, 400, tc.typ, tc.message)
	}
	// A pair without MAC is the same as one with the port's MAC.
	same := []ports.AddressPair{{IPAddress: "10.9.0.1"}, {IPAddress: "10.9.0.1", MACAddress: "fa:16:3e:00:00:05"}}
	_, err := ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:00:00:05", AllowedAddressPairs: same}).Extract()
	wantError(t, err, 400, "DuplicateAddressPairInRequest", "Request contains duplicate address pair: mac_address fa:16:3e:00:00:05 ip_address 10.9.0.1.")
	same = []ports.AddressPair{{IPAddress: "10.9.0.1", MACAddress: mac}, {IPAddress: "10.9.0.1"}}
	_, err = ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{AllowedAddressPairs: &same}).Extract()
	wantError(t, err, 400, "DuplicateAddressPairInRequest", "Request contains duplicate address pair: mac_address "+mac+" ip_address 10.9.0.1.")
	if got := getPort(t, e.a, p.ID); len(got.AllowedAddressPairs) != 10 {
		t.Errorf("refused updates changed the pairs: %v", pairs(got.AllowedAddressPairs))
	}
	// Pairs need port security.
	_, err = ports.Create(ctx, e.a, portsecurity.PortCreateOptsExt{
		CreateOptsBuilder:   ports.CreateOpts{NetworkID: n.ID, AllowedAddressPairs: []ports.AddressPair{{IPAddress: "10.9.0.1"}}, SecurityGroups: sgIDs()},
		PortSecurityEnabled: gophercloud.Disabled}).Extract()
	wantError(t, err, 409, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	_, err = ports.Update(ctx, e.a, p.ID, portsecurity.PortUpdateOptsExt{
		UpdateOptsBuilder: ports.UpdateOpts{SecurityGroups: sgIDs()}, PortSecurityEnabled: gophercloud.Disabled}).Extract()
	wantError(t, err, 409, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	// Clearing them.
	if u := updatePort(t, e.a, p.ID, ports.UpdateOpts{AllowedAddressPairs: &[]ports.AddressPair{}}); len(u.AllowedAddressPairs) != 0 {
		t.Errorf("pairs after clearing: %v", pairs(u.AllowedAddressPairs))
	}
}

func TestPortSecurity(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	sn := newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	def := defaultGroup(t, e.a, projectA.project)
	web := createGroup(t, e.a, "web")
	psec := func(opts ports.CreateOpts, enabled bool) portsecurity.PortCreateOptsExt {
		return portsecurity.PortCreateOptsExt{CreateOptsBuilder: opts, PortSecurityEnabled: &enabled}
	}
	noSecurity := "Port security must be enabled and port must have an IP address in order to use security groups."

	// Off: no groups.
	off := createPort(t, e.a, psec(ports.CreateOpts{NetworkID: n.ID}, false))
	if off.PortSecurityEnabled || len(off.SecurityGroups) != 0 {
		t.Errorf("port without port security: enabled %v groups %v", off.PortSecurityEnabled, off.SecurityGroups)
	}
	_, err := ports.Create(ctx, e.a, psec(ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(web.ID)}, false)).Extract()
	wantError(t, err, 400, "PortSecurityAndIPRequiredForSecurityGroups", noSecurity)
	// Groups need port security, not an address: ML2 gives groups to a
	// port without addresses (neutron-tempest-plugin's RBAC tests create
	// such ports on a network without subnets).
	noIP := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{}, SecurityGroups: sgIDs(web.ID)})
	if len(noIP.FixedIPs) != 0 || !slices.Equal(noIP.SecurityGroups, []string{web.ID}) || !noIP.PortSecurityEnabled {
		t.Errorf("port without addresses, with a group: %+v", noIP)
	}
	if got := getPort(t, e.a, noIP.ID); !slices.Equal(got.SecurityGroups, []string{web.ID}) {
		t.Errorf("port without addresses shows groups %v", got.SecurityGroups)
	}
	// Without an address and without groups is fine.
	bare := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{}, SecurityGroups: sgIDs()})
	if len(bare.FixedIPs) != 0 || len(bare.SecurityGroups) != 0 || !bare.PortSecurityEnabled {
		t.Errorf("bare port: %+v", bare)
	}

	// On, with a group: port security cannot go while the group stays.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(web.ID)})
	if !slices.Equal(p.SecurityGroups, []string{web.ID}) {
		t.Errorf("groups %v", p.SecurityGroups)
	}
	_, err = ports.Update(ctx, e.a, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, PortSecurityEnabled: gophercloud.Disabled}).Extract()
	wantError(t, err, 409, "PortSecurityPortHasSecurityGroup",
		"Port has security group associated. Cannot disable port security or IP address until security group is removed.")
	// Removing the groups in the same update works.
	u := updatePort(t, e.a, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{SecurityGroups: sgIDs()}, PortSecurityEnabled: gophercloud.Disabled})
	if u.PortSecurityEnabled || len(u.SecurityGroups) != 0 {
		t.Errorf("after disabling: enabled %v groups %v", u.PortSecurityEnabled, u.SecurityGroups)
	}
	// Adding a group to a port without port security is refused...
	_, err = ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID)}).Extract()
	wantError(t, err, 400, "PortSecurityAndIPRequiredForSecurityGroups", noSecurity)
	// ...unless port security comes back with it.
	u = updatePort(t, e.a, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{SecurityGroups: sgIDs(web.ID, def.ID)}, PortSecurityEnabled: gophercloud.Enabled})
	if !u.PortSecurityEnabled || !slices.Equal(u.SecurityGroups, sortedIDs(web.ID, def.ID)) {
		t.Errorf("after enabling: enabled %v groups %v", u.PortSecurityEnabled, u.SecurityGroups)
	}
	// A port may lose its addresses and keep its groups (as in Neutron).
	u = updatePort(t, e.a, p.ID, ports.UpdateOpts{FixedIPs: []ports.IP{}})
	if len(u.FixedIPs) != 0 || len(u.SecurityGroups) != 2 {
		t.Errorf("after removing the addresses: %v %v", ips(u.FixedIPs), u.SecurityGroups)
	}
	// ...and change them without one.
	u = updatePort(t, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID)})
	if len(u.FixedIPs) != 0 || !slices.Equal(u.SecurityGroups, []string{web.ID}) {
		t.Errorf("groups changed without addresses: %v %v", ips(u.FixedIPs), u.SecurityGroups)
	}

	t.Run("network without port security", func(t *testing.T) {
		n := createNetwork(t, e.a, portsecurity.NetworkCreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "open"}, PortSecurityEnabled: gophercloud.Disabled})
		if n.PortSecurityEnabled {
			t.Fatalf("network port_security_enabled = true")
		}
		newSubnetNoDHCP(t, e.a, n.ID, "10.1.0.0/24")
		p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID})
		if p.PortSecurityEnabled || len(p.SecurityGroups) != 0 {
			t.Errorf("port on an open network: enabled %v groups %v", p.PortSecurityEnabled, p.SecurityGroups)
		}
		// The port may still ask for it.
		p = createPort(t, e.a, psec(ports.CreateOpts{NetworkID: n.ID}, true))
		if !p.PortSecurityEnabled || !slices.Equal(p.SecurityGroups, []string{def.ID}) {
			t.Errorf("port asking for port security: enabled %v groups %v", p.PortSecurityEnabled, p.SecurityGroups)
		}
	})

	t.Run("trusted device owners", func(t *testing.T) {
		// network:* ports are trusted: no default group, no port security.
		for _, owner := range []string{"network:router_interface", "network:dhcp"} {
			p := createPort(t, e.a, psec(ports.CreateOpts{NetworkID: n.ID, DeviceOwner: owner, FixedIPs: []ports.IP{{SubnetID: sn.ID}}}, true))
			if p.PortSecurityEnabled || len(p.SecurityGroups) != 0 || p.DeviceOwner != owner {
				t.Errorf("%s port: enabled %v groups %v", owner, p.PortSecurityEnabled, p.SecurityGroups)
			}
		}
		// Other owners are not.
		for _, owner := range []string{"compute:nova", "neutron:LOADBALANCERV2"} {
			p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, DeviceOwner: owner})
			if !p.PortSecurityEnabled || !slices.Equal(p.SecurityGroups, []string{def.ID}) {
				t.Errorf("%s port: enabled %v groups %v", owner, p.PortSecurityEnabled, p.SecurityGroups)
			}
		}
	})
}

func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// TestPortPolicy: what a member may set on ports of a network it does not
// own (a shared one), with Neutron's exact policy expressions.
func TestPortPolicy(t *testing.T) {
	e := newEnv(t, nil)
	shared := createNetwork(t, e.admin, networks.CreateOpts{Name: "shared", Shared: ptr(true)})
	sn := newSubnet(t, e.admin, shared.ID, "10.7.0.0/24")
	create := func(attrs map[string]any) error {
		body := map[string]any{"network_id": shared.ID}
		maps.Copy(body, attrs)
		return rawRequest(t, e.a, http.MethodPost, "ports", map[string]any{"port": body}, nil, nil, 201)
	}
	tests := []struct {
		name  string
		attrs map[string]any
		msg   string
	}{
		{"disable port security", map[string]any{"port_security_enabled": false},
			"(rule:create_port and rule:create_port:port_security_enabled) is disallowed by policy"},
		{"enable port security", map[string]any{"port_security_enabled": true},
			"(rule:create_port and rule:create_port:port_security_enabled) is disallowed by policy"},
		{"explicit address", map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.7.0.9"}}},
			"(rule:create_port and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:ip_address))) is disallowed by policy"},
		{"explicit address on a subnet", map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": "10.7.0.9"}}},
			"(rule:create_port and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:subnet_id and rule:create_port:fixed_ips:ip_address))) is disallowed by policy"},
		{"subnet and port security", map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": sn.ID}}, "port_security_enabled": false},
			"((rule:create_port and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:subnet_id))) and rule:create_port:port_security_enabled) is disallowed by policy"},
		{"address pairs", map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "1.2.3.4"}}},
			"(rule:create_port and (rule:create_port:allowed_address_pairs and (rule:create_port:allowed_address_pairs:ip_address))) is disallowed by policy"},
		{"MAC", map[string]any{"mac_address": "fa:16:3e:11:11:11"},
			"(rule:create_port and rule:create_port:mac_address) is disallowed by policy"},
		{"network device owner", map[string]any{"device_owner": "network:router_interface"},
			"(rule:create_port and rule:create_port:device_owner) is disallowed by policy"},
		{"binding host", map[string]any{"binding:host_id": "h1"},
			"(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy"},
		{"binding host and port security", map[string]any{"binding:host_id": "h", "port_security_enabled": false},
			"((rule:create_port and rule:create_port:binding:host_id) and rule:create_port:port_security_enabled) is disallowed by policy"},
		{"everything", map[string]any{"binding:profile": map[string]any{"a": 1}, "binding:host_id": "h",
			"allowed_address_pairs": []any{map[string]any{"ip_address": "1.2.3.4", "mac_address": "fa:16:3e:00:00:05"}},
			"port_security_enabled": true, "device_owner": "network:foo", "fixed_ips": []any{map[string]any{"subnet_id": sn.ID}},
			"mac_address": "fa:16:3e:00:00:04"},
			"(((((((rule:create_port and rule:create_port:mac_address) and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:subnet_id))) and " +
				"rule:create_port:device_owner) and (rule:create_port:allowed_address_pairs and (rule:create_port:allowed_address_pairs:ip_address and " +
				"rule:create_port:allowed_address_pairs:mac_address))) and rule:create_port:binding:host_id) and rule:create_port:binding:profile) and " +
				"rule:create_port:port_security_enabled) is disallowed by policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, create(tc.attrs), 403, "PolicyNotAuthorized", tc.msg)
		})
	}
	// A subnet alone, or several, is fine on a shared network.
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: shared.ID, FixedIPs: []ports.IP{{SubnetID: sn.ID}, {SubnetID: sn.ID}}})
	if !slices.Equal(ips(p.FixedIPs), []string{ip(sn.ID, "10.7.0.3"), ip(sn.ID, "10.7.0.4")}) {
		t.Errorf("addresses %v", ips(p.FixedIPs))
	}
	update := func(attrs map[string]any) error {
		return rawRequest(t, e.a, http.MethodPut, "ports/"+p.ID, map[string]any{"port": attrs}, nil, nil, 200)
	}
	wantError(t, update(map[string]any{"port_security_enabled": false}), 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:port_security_enabled) is disallowed by policy")
	wantError(t, update(map[string]any{"security_groups": []any{}, "port_security_enabled": false}), 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:port_security_enabled) is disallowed by policy")
	wantError(t, update(map[string]any{"binding:host_id": "h1"}), 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy")
	if got := getPort(t, e.a, p.ID); !got.PortSecurityEnabled || got.RevisionNumber != 1 {
		t.Errorf("refused updates changed the port: %+v", got)
	}
	// The network's owner may do all of it.
	q := createPort(t, e.admin, portsecurity.PortCreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: shared.ID,
		FixedIPs: []ports.IP{{IPAddress: "10.7.0.9"}}, SecurityGroups: sgIDs()}, PortSecurityEnabled: gophercloud.Disabled})
	if q.PortSecurityEnabled || !slices.Equal(ips(q.FixedIPs), []string{ip(sn.ID, "10.7.0.9")}) {
		t.Errorf("admin's port: %+v", q)
	}
}

func TestPortBinding(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	vifDetails := map[string]any{"port_filter": true, "ovs_hybrid_plug": true, "connectivity": "l2", "datapath_type": "system", "bridge_name": "br-int"}

	// Members cannot bind.
	_, err := ports.Create(ctx, e.a, portsbinding.CreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID}, HostID: "h1"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy")
	p := createPort(t, e.a, portsbinding.CreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID}, VNICType: "direct"})
	if p.VNICType != "direct" {
		t.Errorf("vnic_type %q", p.VNICType)
	}
	_, err = ports.Update(ctx, e.a, p.ID, portsbinding.UpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, HostID: ptr("h1")}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy")
	err = rawRequest(t, e.a, http.MethodPost, "ports", map[string]any{"port": map[string]any{"network_id": n.ID, "binding:vnic_type": "foo"}}, nil, nil, 201)
	wantError(t, err, 400, "HTTPBadRequest", "Invalid input for binding:vnic_type. Reason: foo is not in valid_values.")

	// The admin binds A's port to a host: the OVS hybrid binding at once,
	// DOWN until the host's agent reports the port wired.
	b := updatePort(t, e.admin, p.ID, portsbinding.UpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, HostID: ptr("h1")})
	if b.HostID != "h1" || b.VIFType != "ovs" || !maps.Equal(b.VIFDetails, vifDetails) || b.Status != "DOWN" {
		t.Errorf("bound: host %q vif %q details %v status %s", b.HostID, b.VIFType, b.VIFDetails, b.Status)
	}
	setPortStatus(t, e.srv.Store, p.ID, "ACTIVE")
	if got := getPort(t, e.a, p.ID); got.Status != "ACTIVE" {
		t.Errorf("status after the agent's report: %s", got.Status)
	}
	// Moving to another host: DOWN again until that host reports.
	b = updatePort(t, e.admin, p.ID, portsbinding.UpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, HostID: ptr("h2")})
	if b.HostID != "h2" || b.VIFType != "ovs" || b.Status != "DOWN" {
		t.Errorf("moved: host %q vif %q status %s", b.HostID, b.VIFType, b.Status)
	}
	// Unbinding.
	b = updatePort(t, e.admin, p.ID, portsbinding.UpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, HostID: ptr("")})
	if b.HostID != "" || b.VIFType != "unbound" || len(b.VIFDetails) != 0 || b.Status != "DOWN" {
		t.Errorf("unbound: host %q vif %q details %v status %s", b.HostID, b.VIFType, b.VIFDetails, b.Status)
	}
	// Created bound, with a profile.
	c := createPort(t, e.admin, portsbinding.CreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID}, HostID: "h1",
		Profile: map[string]any{"local_link_information": "x"}})
	if c.HostID != "h1" || c.VIFType != "ovs" || !maps.Equal(c.VIFDetails, vifDetails) || c.Status != "DOWN" || c.Profile["local_link_information"] != "x" {
		t.Errorf("created bound: %+v", c.PortsBindingExt)
	}
	// The admin filters ports by host.
	if got := listPorts(t, e.admin, ports.ListOpts{}); len(got) != 3 {
		t.Errorf("admin lists %d ports, want 3", len(got))
	}
	pages, err := ports.List(e.admin, listByHost("h1")).AllPages(ctx)
	noErr(t, err, "list by host")
	var onH1 []port
	noErr(t, ports.ExtractPortsInto(pages, &onH1), "extract")
	if len(onH1) != 1 || onH1[0].ID != c.ID {
		t.Errorf("ports on h1: %v", portIDs(onH1))
	}
}

// listByHost filters ports by binding:host_id.
type listByHost string

func (h listByHost) ToPortListQuery() (string, error) { return "?binding%3Ahost_id=" + string(h), nil }
