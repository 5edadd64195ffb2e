package apitest

import (
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// TestChangeLog drives objects through the HTTP API and reads the change
// log behind it after every request: each create, update and delete, and
// each change of a group's members (a port joining, leaving, or changing
// its addresses), is logged by the request's own transaction, and a
// refused request logs nothing.
func TestChangeLog(t *testing.T) {
	e := newEnvConfig(t, Config{Networks: labNetworks()})
	ctx := t.Context()
	st := e.srv.Store
	defaultGroup(t, e.a, projectA.project)
	web := createGroup(t, e.a, "web")
	db := createGroup(t, e.a, "db")
	sl := createGroupOpts(t, e.a, groups.CreateOpts{Name: "sl", Stateful: ptr(false)})
	const (
		network = "network"
		subnet  = "subnet"
		portK   = "port"
		group   = "security_group"
		rule    = "security_group_rule"
		member  = "security_group_member"
		rbac    = "rbac_policy"
		create  = "create"
		update  = "update"
		del     = "delete"
	)
	// members are the member entries of groups, in id order as logged.
	members := func(ids ...string) []change {
		var out []change
		for _, id := range sortedIDs(ids...) {
			out = append(out, change{member, update, id})
		}
		return out
	}
	rev := latestRevision(t, st)
	// logged checks the entries since the previous check.
	logged := func(what string, want ...change) {
		t.Helper()
		entries := changesAfter(t, st, rev)
		got := make([]change, len(entries))
		for i, c := range entries {
			got[i] = change{c.Kind, c.Op, c.ObjectID}
			if c.ProjectID != projectA.project {
				t.Errorf("%s: entry %v of project %q", what, got[i], c.ProjectID)
			}
			if c.Revision <= rev || (i > 0 && c.Revision <= entries[i-1].Revision) {
				t.Errorf("%s: revision %d out of order", what, c.Revision)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: change log\n got %v\nwant %v", what, got, want)
		}
		if len(entries) > 0 {
			rev = entries[len(entries)-1].Revision
		}
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded, want a refusal", what)
		}
		logged(what + " (refused)")
	}

	n := newNetwork(t, e.a, "n")
	logged("network create", change{network, create, n.ID})
	_, err := networks.Create(ctx, e.admin, providerOpts{networks.CreateOpts{Name: "x", ProjectID: projectA.project}, "vxlan", "", intp(10)}).Extract()
	refused("network with a VNI in use", err)

	sn := newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	dhcp := dhcpPort(t, e.a, n.ID)
	logged("subnet create", change{subnet, create, sn.ID}, change{portK, create, dhcp.ID})
	_, err = subnets.Create(ctx, e.a, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.0.0.0/25", IPVersion: 4}).Extract()
	refused("overlapping subnet", err)

	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(web.ID)})
	logged("port create", append([]change{{portK, create, p.ID}}, members(web.ID)...)...)
	_, err = ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{IPAddress: "10.0.0.3"}}}).Extract()
	refused("port with an address in use", err)
	_, err = ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID, sl.ID)}).Extract()
	refused("stateful and stateless groups", err)
	refused("delete a group in use", groups.Delete(ctx, e.a, web.ID).ExtractErr())

	updatePort(t, e.a, p.ID, ports.UpdateOpts{Name: ptr("renamed")})
	logged("port rename: members unchanged", change{portK, update, p.ID})
	updatePort(t, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID, db.ID)})
	logged("port joins db", append([]change{{portK, update, p.ID}}, members(db.ID)...)...)
	updatePort(t, e.a, p.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{IPAddress: "10.0.0.50"}}})
	logged("port changes its address", append([]change{{portK, update, p.ID}}, members(web.ID, db.ID)...)...)
	updatePort(t, e.a, p.ID, ports.UpdateOpts{AllowedAddressPairs: &[]ports.AddressPair{{IPAddress: "10.0.0.60"}}})
	logged("port gets an address pair", append([]change{{portK, update, p.ID}}, members(web.ID, db.ID)...)...)
	updatePort(t, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(db.ID)})
	logged("port leaves web", append([]change{{portK, update, p.ID}}, members(web.ID)...)...)
	setPortStatus(t, st, p.ID, "ACTIVE")
	logged("agent reports the port wired", change{portK, update, p.ID})

	updateGroup(t, e.a, web.ID, groups.UpdateOpts{Name: "web2"})
	logged("group update", change{group, update, web.ID})
	r := createRule(t, e.a, rules.CreateOpts{SecGroupID: db.ID, Direction: "ingress", EtherType: "IPv4", Protocol: "tcp", PortRangeMin: 5432, PortRangeMax: 5432})
	logged("rule create", change{rule, create, r.ID})

	pol, err := rbacpolicies.Create(ctx, e.a, shareGroup(db.ID, projectB.project)).Extract()
	noErr(t, err, "share db")
	logged("rbac create", change{rbac, create, pol.ID})
	_, err = rbacpolicies.Create(ctx, e.a, shareGroup(db.ID, projectB.project)).Extract()
	refused("duplicate rbac policy", err)
	noErr(t, rbacpolicies.Delete(ctx, e.a, pol.ID).ExtractErr(), "unshare db")
	logged("rbac delete", change{rbac, del, pol.ID})

	noErr(t, ports.Delete(ctx, e.a, p.ID).ExtractErr(), "delete the port")
	logged("port delete", append([]change{{portK, del, p.ID}}, members(db.ID)...)...)
	noErr(t, subnets.Delete(ctx, e.a, sn.ID).ExtractErr(), "delete the subnet")
	// The subnet's DHCP server goes first, then the subnet.
	logged("subnet delete", change{portK, del, dhcp.ID}, change{subnet, del, sn.ID})
	noErr(t, networks.Delete(ctx, e.a, n.ID).ExtractErr(), "delete the network")
	logged("network delete", change{network, del, n.ID})

	// A group goes with its rules and the policies that share it, each
	// logged.
	pol2, err := rbacpolicies.Create(ctx, e.a, shareGroup(db.ID, projectB.project)).Extract()
	noErr(t, err, "share db again")
	logged("rbac create", change{rbac, create, pol2.ID})
	noErr(t, groups.Delete(ctx, e.a, db.ID).ExtractErr(), "delete db")
	var want []change
	for _, r := range db.Rules { // the default egress rules, in creation order
		want = append(want, change{rule, del, r.ID})
	}
	want = append(want, change{rule, del, r.ID}, change{rbac, del, pol2.ID}, change{group, del, db.ID})
	logged("group delete", want...)
}
