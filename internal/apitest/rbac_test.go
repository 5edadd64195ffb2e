package apitest

import (
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// RBAC: sharing a security group with another project (access_as_shared)
// so that its ports may use the group. Answers of Neutron 21 except where
// docs/compatibility.md says otherwise.

// rbacCreateDenied is the policy expression Neutron prints when a member
// may not create a policy (sharing with "*").
const rbacCreateDenied = "((((rule:create_rbac_policy and rule:create_rbac_policy:object_type) and rule:create_rbac_policy:object_id) and " +
	"rule:create_rbac_policy:target_tenant) and rule:create_rbac_policy:action) is disallowed by policy"

func shareGroup(groupID, target string) rbacpolicies.CreateOpts {
	return rbacpolicies.CreateOpts{ObjectType: "security_group", ObjectID: groupID, Action: rbacpolicies.ActionAccessShared, TargetTenant: target}
}

// sharedFlags lists the groups c sees as name: shared (gophercloud's
// SecGroup has no shared field).
func sharedFlags(t *testing.T, c *gophercloud.ServiceClient) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, g := range rawGet(t, c, "security-groups?fields=name&fields=shared")["security_groups"].([]any) {
		m := g.(map[string]any)
		out[m["name"].(string)] = m["shared"].(bool)
	}
	return out
}

// groupShared is the shared flag of a group as c sees it.
func groupShared(t *testing.T, c *gophercloud.ServiceClient, id string) bool {
	t.Helper()
	return rawGet(t, c, "security-groups/"+id)["security_group"].(map[string]any)["shared"].(bool)
}

func TestRBACShareGroup(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	c := newClient(t, e.srv, projectC)
	shared := createNetwork(t, e.admin, networks.CreateOpts{Name: "shared", Shared: ptr(true)})
	newSubnet(t, e.admin, shared.ID, "10.7.0.0/24")
	web := createGroup(t, e.a, "web")
	createGroup(t, e.b, "bweb")
	groupMissing := "Security group " + web.ID + " does not exist"

	// Before sharing B neither sees nor uses A's group.
	_, err := groups.Get(ctx, e.b, web.ID).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound", groupMissing)

	pol, err := rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectB.project)).Extract()
	noErr(t, err, "A shares web with B")
	if pol.ObjectType != "security_group" || pol.ObjectID != web.ID || pol.Action != rbacpolicies.ActionAccessShared ||
		pol.TargetTenant != projectB.project || pol.ProjectID != projectA.project || pol.TenantID != projectA.project || pol.ID == "" {
		t.Errorf("policy: %+v", pol)
	}
	if got, err := rbacpolicies.Get(ctx, e.a, pol.ID).Extract(); err != nil || !reflect.DeepEqual(got, pol) {
		t.Errorf("GET policy: %+v %v", got, err)
	}
	_, err = rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectB.project)).Extract()
	wantError(t, err, 409, "DuplicateRbacPolicy", "An RBAC policy already exists with those values.")

	// B sees it, shared; A (the owner) does not see it as shared; C does
	// not see it at all.
	if got := sharedFlags(t, e.b); !got["web"] || got["bweb"] || got["default"] || len(got) != 3 {
		t.Errorf("B's groups (name: shared): %v", got)
	}
	if got := getGroup(t, e.b, web.ID); !groupShared(t, e.b, web.ID) || got.ProjectID != projectA.project || len(got.Rules) != 2 {
		t.Errorf("B's view of web: %+v", got)
	}
	if got := sharedFlags(t, e.a); got["web"] {
		t.Errorf("A's groups (name: shared): %v", got)
	}
	_, err = groups.Get(ctx, c, web.ID).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound", groupMissing)
	// B does not see A's policies.
	pages, err := rbacpolicies.List(e.b, rbacpolicies.ListOpts{}).AllPages(ctx)
	noErr(t, err, "B lists policies")
	bPolicies, err := rbacpolicies.ExtractRBACPolicies(pages)
	noErr(t, err, "extract")
	if len(bPolicies) != 0 {
		t.Errorf("B sees policies %+v", bPolicies)
	}
	_, err = rbacpolicies.Get(ctx, e.b, pol.ID).Extract()
	wantError(t, err, 404, "RbacPolicyNotFound", "RBAC policy of type unknown with ID "+pol.ID+" not found")

	// B uses it on its ports, on the shared network and on its own.
	pb := createPort(t, e.b, ports.CreateOpts{NetworkID: shared.ID, SecurityGroups: sgIDs(web.ID)})
	if !slices.Equal(pb.SecurityGroups, []string{web.ID}) || pb.ProjectID != projectB.project {
		t.Errorf("B's port: groups %v project %s", pb.SecurityGroups, pb.ProjectID)
	}
	// ...but does not control it (adding rules is a deliberate
	// difference: Neutron lets B open A's ports).
	_, err = groups.Update(ctx, e.b, web.ID, groups.UpdateOpts{Name: "mine"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "rule:update_security_group is disallowed by policy")
	wantError(t, groups.Delete(ctx, e.b, web.ID).ExtractErr(), 403, "PolicyNotAuthorized", "rule:delete_security_group is disallowed by policy")
	_, err = rules.Create(ctx, e.b, rules.CreateOpts{SecGroupID: web.ID, Direction: "ingress", EtherType: "IPv4"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "rule:create_security_group_rule is disallowed by policy")
	if got := getGroup(t, e.a, web.ID); got.Name != "web" || len(got.Rules) != 2 {
		t.Errorf("web after B's attempts: name %q, %d rules", got.Name, len(got.Rules))
	}

	// While B's port uses it, A can neither unshare nor retarget it, nor
	// delete the group.
	inUse := "RBAC policy on object " + web.ID + " cannot be removed because other objects depend on it.\nDetails: project_id=" + projectB.project
	wantError(t, rbacpolicies.Delete(ctx, e.a, pol.ID).ExtractErr(), 409, "RbacPolicyInUse", inUse)
	_, err = rbacpolicies.Update(ctx, e.a, pol.ID, rbacpolicies.UpdateOpts{TargetTenant: projectC.project}).Extract()
	wantError(t, err, 409, "RbacPolicyInUse", inUse)
	wantError(t, groups.Delete(ctx, e.a, web.ID).ExtractErr(), 409, "SecurityGroupInUse", "Security Group "+web.ID+" in use.")
	// Only admins share with everyone.
	_, err = rbacpolicies.Update(ctx, e.a, pol.ID, rbacpolicies.UpdateOpts{TargetTenant: "*"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "(rule:update_rbac_policy and rule:update_rbac_policy:target_tenant) is disallowed by policy")
	_, err = rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, "*")).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", rbacCreateDenied)

	// Once B's port is gone the group can be taken back.
	noErr(t, ports.Delete(ctx, e.b, pb.ID).ExtractErr(), "B deletes its port")
	noErr(t, rbacpolicies.Delete(ctx, e.a, pol.ID).ExtractErr(), "A unshares web")
	_, err = groups.Get(ctx, e.b, web.ID).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound", groupMissing)
	_, err = ports.Create(ctx, e.b, ports.CreateOpts{NetworkID: shared.ID, SecurityGroups: sgIDs(web.ID)}).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound", groupMissing)

	t.Run("shared with everyone by an admin", func(t *testing.T) {
		all, err := rbacpolicies.Create(ctx, e.admin, shareGroup(web.ID, "*")).Extract()
		noErr(t, err, "admin shares web with everyone")
		if all.ProjectID != admin.project || all.TargetTenant != "*" {
			t.Errorf("policy project %s", all.ProjectID)
		}
		if !groupShared(t, c, web.ID) {
			t.Errorf("C does not see web as shared")
		}
		pc := createPort(t, c, ports.CreateOpts{NetworkID: shared.ID, SecurityGroups: sgIDs(web.ID)})
		// A policy for B alone is not in use by C's port while "*" stays.
		one, err := rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectB.project)).Extract()
		noErr(t, err, "A shares web with B too")
		noErr(t, rbacpolicies.Delete(ctx, e.a, one.ID).ExtractErr(), "A removes the policy for B")
		wantError(t, rbacpolicies.Delete(ctx, e.admin, all.ID).ExtractErr(), 409, "RbacPolicyInUse",
			"RBAC policy on object "+web.ID+" cannot be removed because other objects depend on it.\nDetails: project_id=*")
		noErr(t, ports.Delete(ctx, c, pc.ID).ExtractErr(), "C deletes its port")
		noErr(t, rbacpolicies.Delete(ctx, e.admin, all.ID).ExtractErr(), "admin unshares web")
	})

	t.Run("errors", func(t *testing.T) {
		bweb := listGroups(t, e.b, groups.ListOpts{Name: "bweb"})[0]
		// A shares web with B: B still may not share it on.
		toB, err := rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectB.project)).Extract()
		noErr(t, err, "A shares web with B")
		defer func() { noErr(t, rbacpolicies.Delete(ctx, e.a, toB.ID).ExtractErr(), "A unshares web") }()
		notOwner := "Invalid input for operation: Only admins can manipulate policies on objects they do not own."
		missing := "00000000-0000-0000-0000-000000000000"
		tests := []struct {
			name         string
			who          *gophercloud.ServiceClient
			body         map[string]any
			status       int
			typ, message string
		}{
			{"unknown action", e.a, map[string]any{"object_type": "security_group", "object_id": web.ID, "action": "access_as_external", "target_tenant": projectB.project},
				400, "InvalidActionForType", "Invalid action 'access_as_external' for object type 'security_group'. Valid actions: ('access_as_shared',)"},
			{"unknown type", e.a, map[string]any{"object_type": "foo", "object_id": web.ID, "action": "access_as_shared", "target_tenant": projectB.project},
				400, "InvalidInput", "Invalid input for operation: 'foo' is not a valid RBAC object type."},
			// Neutron wraps this message in its callback's name (see
			// docs/compatibility.md).
			{"another project's group", e.a, map[string]any{"object_type": "security_group", "object_id": bweb.ID, "action": "access_as_shared", "target_tenant": projectC.project},
				400, "InvalidInput", notOwner},
			{"a group shared with the caller", e.b, map[string]any{"object_type": "security_group", "object_id": web.ID, "action": "access_as_shared", "target_tenant": projectC.project},
				400, "InvalidInput", notOwner},
			{"a missing group", e.a, map[string]any{"object_type": "security_group", "object_id": missing, "action": "access_as_shared", "target_tenant": projectC.project},
				400, "InvalidInput", notOwner},
			{"a missing group, by an admin", e.admin, map[string]any{"object_type": "security_group", "object_id": missing, "action": "access_as_shared", "target_tenant": projectC.project},
				404, "SecurityGroupNotFound", "Security group " + missing + " does not exist"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := rawRequest(t, tc.who, http.MethodPost, "rbac-policies", map[string]any{"rbac_policy": tc.body}, nil, nil, 201)
				wantError(t, err, tc.status, tc.typ, tc.message)
			})
		}
		// Nothing was created: B has no policy of its own.
		pages, err := rbacpolicies.List(e.b, rbacpolicies.ListOpts{}).AllPages(ctx)
		noErr(t, err, "B lists policies")
		if got, err := rbacpolicies.ExtractRBACPolicies(pages); err != nil || len(got) != 0 {
			t.Errorf("B's policies: %+v %v", got, err)
		}
		_, err = rbacpolicies.Get(ctx, e.a, missing).Extract()
		wantError(t, err, 404, "RbacPolicyNotFound", "RBAC policy of type unknown with ID "+missing+" not found")
		wantError(t, rbacpolicies.Delete(ctx, e.a, missing).ExtractErr(), 404, "RbacPolicyNotFound", "RBAC policy of type unknown with ID "+missing+" not found")
	})
}
