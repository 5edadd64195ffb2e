package apitest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// Networks: attributes, provider segments allocated from the configured
// ranges, who may see and set them. Messages are those of the real
// Neutron 21 where it supports the case (its ML2 has no VLAN ranges and no
// local type, so those answers follow its type drivers' code).

// memberNetworkKeys are the attributes a member sees on GET (no provider:*).
var memberNetworkKeys = []string{
	"admin_state_up", "availability_zone_hints", "availability_zones", "created_at", "description", "id",
	"ipv4_address_scope", "ipv6_address_scope", "mtu", "name", "port_security_enabled", "project_id",
	"revision_number", "router:external", "shared", "status", "subnets", "tags", "tenant_id", "updated_at",
}

func TestNetworkDefaults(t *testing.T) {
	e := newEnvConfig(t, Config{Networks: labNetworks()})
	n := newNetwork(t, e.a, "net1")
	if n.ID == "" || n.Name != "net1" || !n.AdminStateUp || n.Status != "ACTIVE" || n.Shared ||
		len(n.Subnets) != 0 || n.Subnets == nil || !n.PortSecurityEnabled ||
		n.ProjectID != projectA.project || n.TenantID != projectA.project || n.RevisionNumber != 1 ||
		n.Description != "" || n.Tags == nil || len(n.Tags) != 0 {
		t.Errorf("created network: %+v", n)
	}
	// A member does not see provider attributes, not even in the create
	// answer.
	if n.NetworkType != "" || n.SegmentationID != "" {
		t.Errorf("a member saw provider attributes: %+v", n.NetworkProviderExt)
	}
	if got := rawKeys(t, e.a, "networks/"+n.ID, "network"); !slices.Equal(got, memberNetworkKeys) {
		t.Errorf("member GET keys\n got %q\nwant %q", got, memberNetworkKeys)
	}
	adminKeys := append(slices.Clone(memberNetworkKeys), "provider:network_type", "provider:physical_network", "provider:segmentation_id")
	slices.Sort(adminKeys)
	if got := rawKeys(t, e.admin, "networks/"+n.ID, "network"); !slices.Equal(got, adminKeys) {
		t.Errorf("admin GET keys\n got %q\nwant %q", got, adminKeys)
	}
	raw := rawGet(t, e.admin, "networks/"+n.ID)["network"].(map[string]any)
	if fmt.Sprint(raw["mtu"]) != "1450" || raw["provider:network_type"] != "vxlan" || raw["provider:physical_network"] != nil ||
		fmt.Sprint(raw["provider:segmentation_id"]) != "10" || raw["router:external"] != false {
		t.Errorf("admin sees mtu %v type %v physnet %v segment %v router:external %v, want 1450 vxlan null 10 false",
			raw["mtu"], raw["provider:network_type"], raw["provider:physical_network"], raw["provider:segmentation_id"], raw["router:external"])
	}
	// Lists hide them from members too.
	pages, err := networks.List(e.a, networks.ListOpts{}).AllPages(t.Context())
	noErr(t, err, "list networks")
	var listed []network
	noErr(t, networks.ExtractNetworksInto(pages, &listed), "extract networks")
	if len(listed) != 1 || listed[0].ID != n.ID || listed[0].NetworkType != "" {
		t.Errorf("member list: %+v", listed)
	}

	// Updates of the mutable attributes.
	var u network
	noErr(t, networks.Update(t.Context(), e.a, n.ID, networks.UpdateOpts{Name: ptr("net1b"), AdminStateUp: gophercloud.Disabled}).ExtractInto(&u), "update")
	if u.Name != "net1b" || u.AdminStateUp || u.RevisionNumber != 2 {
		t.Errorf("updated: name %q admin_state_up %v revision %d", u.Name, u.AdminStateUp, u.RevisionNumber)
	}
	noErr(t, networks.Update(t.Context(), e.a, n.ID, portsecurity.NetworkUpdateOptsExt{
		UpdateOptsBuilder: networks.UpdateOpts{}, PortSecurityEnabled: gophercloud.Disabled}).ExtractInto(&u), "disable port security")
	if u.PortSecurityEnabled {
		t.Errorf("port_security_enabled still true")
	}
	err = rawRequest(t, e.a, http.MethodPut, "networks/"+n.ID, map[string]any{"network": map[string]any{"mtu": 1400}}, nil, nil, 200)
	noErr(t, err, "lower the MTU")
	if got := getNetwork(t, e.a, n.ID); got.MTU != 1400 {
		t.Errorf("mtu after update = %d, want 1400", got.MTU)
	}
	err = rawRequest(t, e.a, http.MethodPut, "networks/"+n.ID, map[string]any{"network": map[string]any{"mtu": 9000}}, nil, nil, 200)
	wantError(t, err, 400, "InvalidInput", "Invalid input for operation: Requested MTU is too big, maximum is 1450.")

	// Another project neither sees nor changes it.
	_, err = networks.Get(t.Context(), e.b, n.ID).Extract()
	wantError(t, err, 404, "NetworkNotFound", "Network "+n.ID+" could not be found.")
	_, err = networks.Update(t.Context(), e.b, n.ID, networks.UpdateOpts{Name: ptr("x")}).Extract()
	wantError(t, err, 404, "NetworkNotFound", "Network "+n.ID+" could not be found.")
	wantError(t, networks.Delete(t.Context(), e.b, n.ID).ExtractErr(), 404, "NetworkNotFound", "Network "+n.ID+" could not be found.")
}

// segment is what the admin sees of a network's segment.
type segment struct {
	typ, physnet, id string
	mtu              int
}

func segmentOf(n *network) segment {
	return segment{n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.MTU}
}

func TestNetworkSegments(t *testing.T) {
	e := newEnvConfig(t, Config{Networks: labNetworks()})
	ctx := t.Context()
	create := func(who *gophercloud.ServiceClient, name, typ, physnet string, seg *int) (*network, error) {
		var n network
		err := networks.Create(ctx, who, providerOpts{networks.CreateOpts{Name: name}, typ, physnet, seg}).ExtractInto(&n)
		if err != nil {
			return nil, err
		}
		// The admin's view of the stored network, not only the answer.
		return getNetwork(t, e.admin, n.ID), nil
	}
	type step struct {
		name          string
		who           *gophercloud.ServiceClient
		typ, physnet  string
		seg           *int
		want          segment // when the create succeeds
		status        int     // when it fails
		errType, mesg string
	}
	vx := func(id, mtu int) segment { return segment{"vxlan", "", strconv.Itoa(id), mtu} }
	vlan := func(physnet string, id int) segment { return segment{"vlan", physnet, strconv.Itoa(id), 1500} }
	noNet := "Unable to create the network. No tenant network is available for allocation."
	created := map[string]*network{}
	run := func(t *testing.T, steps []step) {
		t.Helper()
		for _, s := range steps {
			n, err := create(s.who, s.name, s.typ, s.physnet, s.seg)
			if s.status != 0 {
				wantError(t, err, s.status, s.errType, s.mesg)
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := segmentOf(n); got != s.want {
				t.Errorf("%s: segment %+v, want %+v", s.name, got, s.want)
			}
			created[s.name] = n
		}
	}

	t.Run("vxlan", func(t *testing.T) {
		run(t, []step{
			// Tenant networks take the lowest free VNI of 10:12.
			{name: "t1", who: e.a, want: vx(10, 1450)},
			{name: "t2", who: e.b, want: vx(11, 1450)},
			{name: "p12", who: e.admin, typ: "vxlan", seg: intp(12), want: vx(12, 1450)},
			{name: "t3", who: e.a, status: 503, errType: "NoNetworkAvailable", mesg: noNet},
			{name: "p12 again", who: e.admin, typ: "vxlan", seg: intp(12), status: 409, errType: "TunnelIdInUse",
				mesg: "Unable to create the network. The tunnel ID 12 is in use."},
			{name: "t1 again", who: e.admin, typ: "vxlan", seg: intp(10), status: 409, errType: "TunnelIdInUse",
				mesg: "Unable to create the network. The tunnel ID 10 is in use."},
			// A provider network may use an id outside the tenant ranges.
			{name: "p5000", who: e.admin, typ: "vxlan", seg: intp(5000), want: vx(5000, 1450)},
			{name: "vxlan physnet", who: e.admin, typ: "vxlan", physnet: "physnet1", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: provider:physical_network specified for vxlan network."},
		})
		// Deleting a network frees its id for the next tenant network.
		noErr(t, networks.Delete(ctx, e.a, created["t1"].ID).ExtractErr(), "delete t1")
		run(t, []step{{name: "t4", who: e.a, want: vx(10, 1450)}})
	})

	t.Run("vlan", func(t *testing.T) {
		run(t, []step{
			{name: "v-auto1", who: e.admin, typ: "vlan", want: vlan("physnet1", 100)},
			{name: "v102", who: e.admin, typ: "vlan", physnet: "physnet1", seg: intp(102), want: vlan("physnet1", 102)},
			{name: "v-auto2", who: e.admin, typ: "vlan", physnet: "physnet1", want: vlan("physnet1", 101)},
			{name: "v-auto3", who: e.admin, typ: "vlan", status: 503, errType: "NoNetworkAvailable", mesg: noNet},
			{name: "v101", who: e.admin, typ: "vlan", physnet: "physnet1", seg: intp(101), status: 409, errType: "VlanIdInUse",
				mesg: "Unable to create the network. The VLAN 101 on physical network physnet1 is in use."},
			// physnet2 has no tenant range: provider networks only.
			{name: "p2-7", who: e.admin, typ: "vlan", physnet: "physnet2", seg: intp(7), want: vlan("physnet2", 7)},
			{name: "p2-auto", who: e.admin, typ: "vlan", physnet: "physnet2", status: 503, errType: "NoNetworkAvailable", mesg: noNet},
			// The same id on another physical network is another segment.
			{name: "p2-100", who: e.admin, typ: "vlan", physnet: "physnet2", seg: intp(100), want: vlan("physnet2", 100)},
			{name: "v4095", who: e.admin, typ: "vlan", physnet: "physnet1", seg: intp(4095), status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: segmentation_id out of range (1 through 4094)."},
			{name: "physnet9", who: e.admin, typ: "vlan", physnet: "physnet9", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: physical_network 'physnet9' unknown for VLAN provider network."},
			{name: "seg without physnet", who: e.admin, typ: "vlan", seg: intp(100), status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: segmentation_id requires physical_network for VLAN provider network."},
		})
		noErr(t, networks.Delete(ctx, e.admin, created["v-auto2"].ID).ExtractErr(), "delete VLAN 101")
		run(t, []step{{name: "v-auto4", who: e.admin, typ: "vlan", want: vlan("physnet1", 101)}})
	})

	t.Run("flat and local", func(t *testing.T) {
		run(t, []step{
			{name: "flat", who: e.admin, typ: "flat", physnet: "public", want: segment{"flat", "public", "", 1500}},
			{name: "flat again", who: e.admin, typ: "flat", physnet: "public", status: 409, errType: "FlatNetworkInUse",
				mesg: "Unable to create the flat network. Physical network public is in use."},
			{name: "flat other", who: e.admin, typ: "flat", physnet: "other", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: physical_network 'other' unknown for flat provider network."},
			{name: "flat without physnet", who: e.admin, typ: "flat", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: physical_network required for flat provider network."},
			{name: "flat with segment", who: e.admin, typ: "flat", physnet: "public", seg: intp(3), status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: segmentation_id prohibited for flat provider network."},
			{name: "local", who: e.admin, typ: "local", want: segment{"local", "", "", 1500}},
			{name: "local2", who: e.admin, typ: "local", want: segment{"local", "", "", 1500}},
			{name: "gre", who: e.admin, typ: "gre", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: network_type value 'gre' not supported."},
			{name: "physnet without type", who: e.admin, physnet: "public", status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: network_type required."},
			{name: "segment without type", who: e.admin, seg: intp(7), status: 400, errType: "InvalidInput",
				mesg: "Invalid input for operation: network_type required."},
		})
		noErr(t, networks.Delete(ctx, e.admin, created["flat"].ID).ExtractErr(), "delete the flat network")
		run(t, []step{{name: "flat after delete", who: e.admin, typ: "flat", physnet: "public", want: segment{"flat", "public", "", 1500}}})
	})

	t.Run("failed creates left nothing behind", func(t *testing.T) {
		pages, err := networks.List(e.admin, networks.ListOpts{}).AllPages(ctx)
		noErr(t, err, "list")
		all, err := networks.ExtractNetworks(pages)
		noErr(t, err, "extract")
		// t2 p12 p5000 t4; v-auto1 v102 p2-7 p2-100 v-auto4; local local2 and
		// the second flat network.
		if len(all) != 12 {
			var names []string
			for _, n := range all {
				names = append(names, n.Name)
			}
			t.Errorf("%d networks %q, want 12", len(all), names)
		}
	})
}

func TestProviderAttributesAreAdminOnly(t *testing.T) {
	e := newEnvConfig(t, Config{Networks: labNetworks()})
	ctx := t.Context()
	tests := []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"network_type", map[string]any{"provider:network_type": "vxlan"},
			"(rule:create_network and rule:create_network:provider:network_type) is disallowed by policy"},
		{"segmentation_id", map[string]any{"provider:segmentation_id": 9},
			"(rule:create_network and rule:create_network:provider:segmentation_id) is disallowed by policy"},
		{"physical_network", map[string]any{"provider:physical_network": "physnet1"},
			"(rule:create_network and rule:create_network:provider:physical_network) is disallowed by policy"},
		{"shared", map[string]any{"shared": true},
			"(rule:create_network and rule:create_network:shared) is disallowed by policy"},
		{"shared and type", map[string]any{"shared": true, "provider:network_type": "vxlan"},
			"((rule:create_network and rule:create_network:shared) and rule:create_network:provider:network_type) is disallowed by policy"},
	}
	for _, tc := range tests {
		t.Run("create "+tc.name, func(t *testing.T) {
			body := map[string]any{"name": "m"}
			for k, v := range tc.body {
				body[k] = v
			}
			err := rawRequest(t, e.a, http.MethodPost, "networks", map[string]any{"network": body}, nil, nil, 201)
			wantError(t, err, 403, "PolicyNotAuthorized", tc.msg)
		})
	}
	n := newNetwork(t, e.a, "mine")
	put := func(c *gophercloud.ServiceClient, attrs map[string]any) error {
		return rawRequest(t, c, http.MethodPut, "networks/"+n.ID, map[string]any{"network": attrs}, nil, nil, 200)
	}
	wantError(t, put(e.a, map[string]any{"provider:segmentation_id": 12}), 403, "PolicyNotAuthorized",
		"(rule:update_network and rule:update_network:provider:segmentation_id) is disallowed by policy")
	wantError(t, put(e.a, map[string]any{"shared": true}), 403, "PolicyNotAuthorized",
		"(rule:update_network and rule:update_network:shared) is disallowed by policy")
	// An admin cannot change a segment either (one message for every
	// attribute: docs/compatibility.md).
	wantError(t, put(e.admin, map[string]any{"provider:segmentation_id": 12}), 400, "InvalidInput",
		"Invalid input for operation: Plugin does not support updating provider attributes.")
	if got := segmentOf(getNetwork(t, e.admin, n.ID)); got != (segment{"vxlan", "", "10", 1450}) {
		t.Errorf("segment after refused updates: %+v", got)
	}
	// The admin may share it; then B sees it (still without provider
	// attributes) and may put ports on it, but not change it.
	noErr(t, put(e.admin, map[string]any{"shared": true}), "admin shares the network")
	seen := getNetwork(t, e.b, n.ID)
	if !seen.Shared || seen.NetworkType != "" {
		t.Errorf("B sees shared=%v type=%q", seen.Shared, seen.NetworkType)
	}
	if got := rawKeys(t, e.b, "networks/"+n.ID, "network"); !slices.Equal(got, memberNetworkKeys) {
		t.Errorf("B's GET keys %q", got)
	}
	wantError(t, put(e.b, map[string]any{"name": "x"}), 403, "PolicyNotAuthorized", "rule:update_network is disallowed by policy")
	wantError(t, networks.Delete(ctx, e.b, n.ID).ExtractErr(), 403, "PolicyNotAuthorized", "rule:delete_network is disallowed by policy")
	// Members filter on what they may see.
	pages, err := networks.List(e.b, networks.ListOpts{Shared: ptr(true)}).AllPages(ctx)
	noErr(t, err, "B lists shared networks")
	shared, err := networks.ExtractNetworks(pages)
	noErr(t, err, "extract")
	if len(shared) != 1 || shared[0].ID != n.ID {
		t.Errorf("B's shared networks: %+v", shared)
	}
}

func TestNetworkDelete(t *testing.T) {
	e := newEnvConfig(t, Config{Networks: labNetworks()})
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	sn := newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	p1 := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, Name: "p1"})
	p2 := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, Name: "p2"})
	inUse := []string{p1.ID, p2.ID}
	slices.Sort(inUse)
	// The DHCP port does not keep the network; user ports do, by id.
	wantError(t, networks.Delete(ctx, e.a, n.ID).ExtractErr(), 409, "NetworkInUse",
		"Unable to complete operation on network "+n.ID+". There are one or more ports still in use on the network, id for these ports is: "+
			inUse[0]+","+inUse[1]+".")
	noErr(t, ports.Delete(ctx, e.a, p1.ID).ExtractErr(), "delete p1")
	noErr(t, ports.Delete(ctx, e.a, p2.ID).ExtractErr(), "delete p2")
	if dhcpPort(t, e.a, n.ID) == nil {
		t.Fatalf("no DHCP port before the network's deletion")
	}
	noErr(t, networks.Delete(ctx, e.a, n.ID).ExtractErr(), "delete the network")
	_, err := subnets.Get(ctx, e.a, sn.ID).Extract()
	wantError(t, err, 404, "SubnetNotFound", "Subnet "+sn.ID+" could not be found.")
	if left := listPorts(t, e.admin, ports.ListOpts{NetworkID: n.ID}); len(left) != 0 {
		t.Errorf("ports left after the network's deletion: %v", portIDs(left))
	}
	wantError(t, networks.Delete(ctx, e.a, n.ID).ExtractErr(), 404, "NetworkNotFound", "Network "+n.ID+" could not be found.")
}
