package neutron

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var member = &Context{ProjectID: "p1", UserID: "u1"}

func TestGivenRecordsWhatTheClientNamed(t *testing.T) {
	cases := []struct {
		name string
		body string
		want Given
	}{
		{"defaults sent and not sent", `{"port": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "device_owner": "", "binding:vnic_type": "direct", "name": "x"}}`,
			Given{{Name: "name", AtDefault: false}, {Name: "network_id"}, {Name: "device_owner", AtDefault: true}, {Name: "binding:vnic_type"}}},
		{"fixed_ips sub-keys in declared order", `{"port": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "fixed_ips": [{"ip_address": "10.0.0.5", "subnet_id": "9a8b7c6d-1111-4222-8333-944455556667"}, {"subnet_id": "9a8b7c6d-1111-4222-8333-944455556667"}],
			"allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:01", "ip_address": "10.0.0.9"}]}}`,
			Given{{Name: "network_id"}, {Name: "fixed_ips", Keys: []string{"subnet_id", "ip_address", "subnet_id"}},
				{Name: "allowed_address_pairs", Keys: []string{"ip_address", "mac_address"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reqs, _, err := Ports.Create(member, decodeJSON(t, c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(reqs[0].Given, c.want) {
				t.Fatalf("given %+v\nwant  %+v", reqs[0].Given, c.want)
			}
		})
	}
	nets, _, err := Networks.Create(member, decodeJSON(t, `{"network": {"shared": false, "provider:network_type": null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Given{{Name: "shared", AtDefault: true}, {Name: "provider:network_type", AtDefault: true}}); !reflect.DeepEqual(nets[0].Given, want) {
		t.Fatalf("network given %+v, want %+v", nets[0].Given, want)
	}
	// A default compares as Python prints it: "False" is not false.
	nets, _, _ = Networks.Create(member, decodeJSON(t, `{"network": {"shared": "False"}}`))
	if e, _ := nets[0].Given.Lookup("shared"); e.AtDefault {
		t.Fatalf(`"False" counted as the default false (Neutron compares the printed values)`)
	}
}

func TestPortRequest(t *testing.T) {
	subnet := "9a8b7c6d-1111-4222-8333-944455556667"
	cases := []struct {
		name   string
		create bool
		body   string
		check  func(t *testing.T, r PortRequest)
	}{
		{"create with nothing", true, `{"port": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666"}}`, func(t *testing.T, r PortRequest) {
			if r.ProjectID != "p1" || r.NetworkID != "9a8b7c6d-1111-4222-8333-944455556666" || !r.Name.Set || !r.AdminStateUp.V || r.VNICType.V != VNICNormal ||
				r.MACAddress.Set || r.FixedIPs.Set || r.SecurityGroups.Set || r.PortSecurityEnabled.Set || r.AddressPairs.Set || r.Profile.Set || !r.HostID.Set {
				t.Fatalf("%+v", r)
			}
		}},
		{"create with all", true, `{"port": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "mac_address": "FA:16:3E:00:00:0A",
			"fixed_ips": [{"subnet_id": "` + subnet + `"}, {"ip_address": "2001:DB8::5"}], "security_groups": null,
			"port_security_enabled": "true", "allowed_address_pairs": [{"ip_address": "10.1.2.3/24"}, {"ip_address": "10.0.0.7", "mac_address": "FA:16:3E:00:00:0B"}],
			"binding:host_id": "h1", "binding:profile": {"k": 1}}}`, func(t *testing.T, r PortRequest) {
			wantIPs := []IPRequest{{SubnetID: subnet}, {IP: netip.MustParseAddr("2001:db8::5"), IPText: "2001:DB8::5"}}
			wantPairs := []AddressPair{{IPAddress: "10.1.2.3/24"}, {IPAddress: "10.0.0.7", MACAddress: "fa:16:3e:00:00:0b"}}
			if r.MACAddress != (Opt[string]{"fa:16:3e:00:00:0a", true}) || !reflect.DeepEqual(r.FixedIPs.V, wantIPs) ||
				!r.SecurityGroups.Set || len(r.SecurityGroups.V) != 0 || r.PortSecurityEnabled != (Opt[bool]{true, true}) ||
				!reflect.DeepEqual(r.AddressPairs.V, wantPairs) || r.HostID.V != "h1" || !r.Profile.Set {
				t.Fatalf("%+v", r)
			}
		}},
		{"update names only what it sends", false, `{"port": {"name": "n", "binding:profile": null}}`, func(t *testing.T, r PortRequest) {
			if r.Name != (Opt[string]{"n", true}) || r.Description.Set || r.AdminStateUp.Set || r.HostID.Set || r.VNICType.Set || r.Profile.Set ||
				r.ProjectID != "" {
				t.Fatalf("%+v", r)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r PortRequest
			var err error
			if c.create {
				var reqs []PortRequest
				reqs, _, err = Ports.Create(member, decodeJSON(t, c.body))
				if err == nil {
					r = reqs[0]
				}
			} else {
				r, err = Ports.Update(member, decodeJSON(t, c.body))
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, r)
		})
	}
}

func TestSubnetRequest(t *testing.T) {
	gw := func(r SubnetRequest) string {
		switch {
		case !r.GatewayIP.Set:
			return "unset"
		case r.GatewayIP.V == nil:
			return "none"
		}
		return r.GatewayIP.V.String()
	}
	cases := []struct {
		body string
		want string // gateway, pools, cidr
	}{
		{`{"subnet": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "ip_version": 4, "cidr": "10.0.0.5/24"}}`, "unset [] 10.0.0.0/24"},
		{`{"subnet": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "ip_version": "4", "gateway_ip": null, "allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.30"}]}}`,
			"none [10.0.0.20-10.0.0.30] unset"},
		{`{"subnet": {"network_id": "9a8b7c6d-1111-4222-8333-944455556666", "ip_version": 6, "cidr": "2001:db8::/64", "gateway_ip": "2001:DB8::1"}}`, "2001:db8::1 [] 2001:db8::/64"},
	}
	for _, c := range cases {
		reqs, _, err := Subnets.Create(member, decodeJSON(t, c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		r := reqs[0]
		var pools []string
		for _, p := range r.AllocationPools.V {
			pools = append(pools, p.StartText+"-"+p.EndText)
		}
		cidr := "unset"
		if r.CIDR.Set {
			cidr = FormatCIDR(r.CIDR.V)
		}
		if got := gw(r) + " [" + strings.Join(pools, ", ") + "] " + cidr; got != c.want {
			t.Errorf("%s: got %s, want %s", c.body, got, c.want)
		}
	}
	r, err := Subnets.Update(member, decodeJSON(t, `{"subnet": {"dns_nameservers": ["2001:DB8::53"], "host_routes": [{"destination": "10.9.0.7/16", "nexthop": "10.0.0.1"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.GatewayIP.Set || r.AllocationPools.Set || r.DNSNameservers.V[0] != (Nameserver{netip.MustParseAddr("2001:db8::53"), "2001:DB8::53"}) ||
		r.HostRoutes.V[0].Route() != (HostRoute{"10.9.0.0/16", "10.0.0.1"}) || r.HostRoutes.V[0].DestinationText != "10.9.0.7/16" {
		t.Fatalf("%+v", r)
	}
	if err := CheckSubnetFamilies(4, r.DNSNameservers.V, r.HostRoutes.V); err == nil ||
		err.(*Error).Message != "Invalid input for operation: dns_nameserver '2001:DB8::53' does not match the ip_version '4'." {
		t.Fatalf("family check: %v", err)
	}
}

func TestNetworkRequestProvider(t *testing.T) {
	r, err := Networks.Update(member, decodeJSON(t, `{"network": {"provider:physical_network": null}}`))
	if err != nil || !r.ProviderGiven {
		t.Fatalf("null provider attribute not seen: %+v %v", r, err)
	}
	r, _ = Networks.Update(member, decodeJSON(t, `{"network": {"mtu": "1400"}}`))
	if r.ProviderGiven || r.MTU == nil || *r.MTU != 1400 {
		t.Fatalf("%+v", r)
	}
	reqs, _, err := Networks.Create(member, decodeJSON(t, `{"network": {"provider:network_type": "vlan", "provider:segmentation_id": 102}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := reqs[0].Segment; s.NetworkType != "vlan" || s.PhysicalNetwork != "" || s.SegmentationID == nil || *s.SegmentationID != 102 {
		t.Fatalf("segment %+v", s)
	}
}

func TestBulkAndNotBulk(t *testing.T) {
	reqs, bulk, err := SecurityGroups.Create(member, decodeJSON(t, `{"security_groups": [{"name": "a"}, {"security_group": {"name": "b", "stateful": false}}]}`))
	if err != nil || !bulk || len(reqs) != 2 || reqs[1].Name.V != "b" || reqs[1].Stateful.V || !reqs[0].Stateful.V {
		t.Fatalf("%+v %v %v", reqs, bulk, err)
	}
	_, _, err = RBACPolicies.Create(member, decodeJSON(t, `{"rbac_policies": [{}]}`))
	if err == nil || err.(*Error).Message != "Bulk operation not supported" {
		t.Fatalf("RBAC bulk: %v", err)
	}
}

func TestParseTags(t *testing.T) {
	cases := []struct {
		body string
		msg  string // "" for success
	}{
		{`{"tags": ["a", "b"]}`, ""},
		{`{"tags": "a"}`, "Invalid input for operation: 'a' is not a list."},
		{`{"tags": ["a", 1]}`, "Invalid input for operation: '1' is not a valid string."},
		{`{"tags": ["a", "b", "a"]}`, "Invalid input for operation: Duplicate items in the list: 'a'."},
		{`{"tag": []}`, "Invalid input for operation: Invalid tags body."},
		{`[]`, "Invalid input for operation: Invalid tags body."},
	}
	for _, c := range cases {
		_, err := ParseTags(decodeJSON(t, c.body))
		msg := ""
		if err != nil {
			msg = err.(*Error).Message
		}
		if msg != c.msg {
			t.Errorf("%s: got %q, want %q", c.body, msg, c.msg)
		}
	}
}
