package apitest

import (
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// Security groups on ports: in use, stateful/stateless, other projects'
// groups, and membership following the ports (answers of Neutron 21).

const statefulConflict = "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation."

func TestPortGroups(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	n := newNetwork(t, e.a, "n")
	newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	web := createGroup(t, e.a, "web")
	db := createGroup(t, e.a, "db")
	sl := createGroupOpts(t, e.a, groups.CreateOpts{Name: "sl", Stateful: ptr(false)})
	sl2 := createGroupOpts(t, e.a, groups.CreateOpts{Name: "sl2", Stateful: ptr(false)})
	bweb := createGroup(t, e.b, "bweb")
	nb := newNetwork(t, e.b, "nb")
	newSubnet(t, e.b, nb.ID, "10.1.0.0/24")
	inUse := func(id string) string { return "Security Group " + id + " in use." }

	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(web.ID)})

	t.Run("a group on a port is in use", func(t *testing.T) {
		wantError(t, groups.Delete(ctx, e.a, web.ID).ExtractErr(), 409, "SecurityGroupInUse", inUse(web.ID))
		_, err := groups.Update(ctx, e.a, web.ID, groups.UpdateOpts{Stateful: ptr(false)}).Extract()
		wantError(t, err, 409, "SecurityGroupInUse", inUse(web.ID))
		// Other changes, and a PUT of the same stateful value, are fine.
		if g := updateGroup(t, e.a, web.ID, groups.UpdateOpts{Name: "web2", Stateful: ptr(true)}); g.Name != "web2" || !g.Stateful {
			t.Errorf("updated group: %+v", g)
		}
	})

	t.Run("stateful and stateless do not mix", func(t *testing.T) {
		_, err := ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID, sl.ID)}).Extract()
		wantError(t, err, 409, "SecurityGroupConflict", statefulConflict)
		_, err = ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(sl.ID, db.ID)}).Extract()
		wantError(t, err, 409, "SecurityGroupConflict", statefulConflict)
		// Stateless groups together are fine.
		q := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(sl.ID, sl2.ID)})
		if !slices.Equal(q.SecurityGroups, sortedIDs(sl.ID, sl2.ID)) {
			t.Errorf("groups %v", q.SecurityGroups)
		}
		// A stateless group in use cannot become stateful either.
		_, err = groups.Update(ctx, e.a, sl.ID, groups.UpdateOpts{Stateful: ptr(true)}).Extract()
		wantError(t, err, 409, "SecurityGroupInUse", inUse(sl.ID))
		noErr(t, ports.Delete(ctx, e.a, q.ID).ExtractErr(), "delete the stateless port")
	})

	t.Run("another project's group is not found", func(t *testing.T) {
		_, err := ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(bweb.ID)}).Extract()
		wantError(t, err, 404, "SecurityGroupNotFound", "Security group "+bweb.ID+" does not exist")
		missing := "00000000-0000-0000-0000-000000000000"
		_, err = ports.Update(ctx, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(bweb.ID, missing)}).Extract()
		wantError(t, err, 404, "SecurityGroupNotFound", "Security group "+bweb.ID+", "+missing+" does not exist")
		_, err = ports.Create(ctx, e.b, ports.CreateOpts{NetworkID: nb.ID, SecurityGroups: sgIDs(web.ID)}).Extract()
		wantError(t, err, 404, "SecurityGroupNotFound", "Security group "+web.ID+" does not exist")
		if got := getPort(t, e.a, p.ID).SecurityGroups; !slices.Equal(got, []string{web.ID}) {
			t.Errorf("refused updates changed the groups: %v", got)
		}
		// The admin may put any project's group on any port.
		u := updatePort(t, e.admin, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID, bweb.ID)})
		if !slices.Equal(u.SecurityGroups, sortedIDs(web.ID, bweb.ID)) {
			t.Errorf("groups after the admin's update: %v", u.SecurityGroups)
		}
		wantError(t, groups.Delete(ctx, e.b, bweb.ID).ExtractErr(), 409, "SecurityGroupInUse", inUse(bweb.ID))
		updatePort(t, e.admin, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs(web.ID)})
	})

	t.Run("membership follows the ports", func(t *testing.T) {
		members := func(g string) []string {
			t.Helper()
			return portIDs(listPorts(t, e.a, ports.ListOpts{SecurityGroups: []string{g}}))
		}
		q := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, SecurityGroups: sgIDs(web.ID, db.ID)})
		if got := members(web.ID); !slices.Equal(got, sortedIDs(p.ID, q.ID)) {
			t.Errorf("web's ports %v", got)
		}
		if got := members(db.ID); !slices.Equal(got, []string{q.ID}) {
			t.Errorf("db's ports %v", got)
		}
		updatePort(t, e.a, q.ID, ports.UpdateOpts{SecurityGroups: sgIDs(db.ID)})
		if got := members(web.ID); !slices.Equal(got, []string{p.ID}) {
			t.Errorf("web's ports after q left: %v", got)
		}
		noErr(t, ports.Delete(ctx, e.a, q.ID).ExtractErr(), "delete q")
		if got := members(db.ID); len(got) != 0 {
			t.Errorf("db's ports after q's deletion: %v", got)
		}
		// db is free again: it can be deleted and toggled.
		if g := updateGroup(t, e.a, db.ID, groups.UpdateOpts{Stateful: ptr(false)}); g.Stateful {
			t.Errorf("db still stateful")
		}
		noErr(t, groups.Delete(ctx, e.a, db.ID).ExtractErr(), "delete db")
	})

	t.Run("a port without groups frees them", func(t *testing.T) {
		u := updatePort(t, e.a, p.ID, ports.UpdateOpts{SecurityGroups: sgIDs()})
		if len(u.SecurityGroups) != 0 || !u.PortSecurityEnabled {
			t.Errorf("port after removing its groups: %v %v", u.SecurityGroups, u.PortSecurityEnabled)
		}
		if g := updateGroup(t, e.a, web.ID, groups.UpdateOpts{Stateful: ptr(false)}); g.Stateful {
			t.Errorf("web still stateful")
		}
		noErr(t, groups.Delete(ctx, e.a, web.ID).ExtractErr(), "delete web")
	})
}
