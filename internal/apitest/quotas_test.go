package apitest

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

func intp(n int) *int { return &n }

func TestQuotas(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	web := createGroup(t, e.a, "web")
	createGroup(t, e.a, "db")
	createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	// Project A: default + 2 groups; 4 + 2×2 + 1 rules.

	q, err := quotas.Get(ctx, e.admin, projectA.project).Extract()
	noErr(t, err, "admin gets A's quota")
	if q.SecurityGroup != 10 || q.SecurityGroupRule != 100 {
		t.Errorf("default quota: security_group %d security_group_rule %d, want 10 and 100", q.SecurityGroup, q.SecurityGroupRule)
	}
	d, err := quotas.GetDetail(ctx, e.admin, projectA.project).Extract()
	noErr(t, err, "admin gets A's quota details")
	if d.SecurityGroup != (quotas.QuotaDetail{Used: 3, Reserved: 0, Limit: 10}) ||
		d.SecurityGroupRule != (quotas.QuotaDetail{Used: 9, Reserved: 0, Limit: 100}) {
		t.Errorf("details: security_group %+v security_group_rule %+v, want used 3/limit 10 and used 9/limit 100",
			d.SecurityGroup, d.SecurityGroupRule)
	}
	// A member reads its own project's quota.
	if own, err := quotas.Get(ctx, e.a, projectA.project).Extract(); err != nil || own.SecurityGroup != 10 {
		t.Errorf("A reads its own quota: %+v %v", own, err)
	}
	if own, err := quotas.GetDetail(ctx, e.a, projectA.project).Extract(); err != nil || own.SecurityGroup.Used != 3 {
		t.Errorf("A reads its own quota details: %+v %v", own, err)
	}

	// The admin lowers A's limits: they apply at once, to A only.
	q, err = quotas.Update(ctx, e.admin, projectA.project, quotas.UpdateOpts{SecurityGroup: intp(4), SecurityGroupRule: intp(12)}).Extract()
	noErr(t, err, "admin updates A's quota")
	if q.SecurityGroup != 4 || q.SecurityGroupRule != 12 {
		t.Errorf("update answered security_group %d security_group_rule %d, want 4 and 12", q.SecurityGroup, q.SecurityGroupRule)
	}
	if q, _ := quotas.Get(ctx, e.admin, projectA.project).Extract(); q == nil || q.SecurityGroup != 4 || q.SecurityGroupRule != 12 {
		t.Errorf("GET after update: %+v", q)
	}
	if q, _ := quotas.Get(ctx, e.admin, projectB.project).Extract(); q == nil || q.SecurityGroup != 10 {
		t.Errorf("project B's quota after A's update: %+v", q)
	}
	// 9 rules used of 12: a group with its 2 egress rules fits, another
	// does not (the group quota has room, the rule quota not).
	g4 := createGroup(t, e.a, "fourth")
	_, err = groups.Create(ctx, e.a, groups.CreateOpts{Name: "fifth"}).Extract()
	wantError(t, err, http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['security_group'].")
	createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g4.ID, Protocol: "udp"})
	_, err = rules.Create(ctx, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g4.ID, Protocol: "tcp"}).Extract()
	wantError(t, err, http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['security_group_rule'].")
	d, _ = quotas.GetDetail(ctx, e.admin, projectA.project).Extract()
	if d == nil || d.SecurityGroup.Used != 4 || d.SecurityGroupRule.Used != 12 {
		t.Errorf("details at the limits: %+v", d)
	}

	// -1 is unlimited.
	_, err = quotas.Update(ctx, e.admin, projectA.project, quotas.UpdateOpts{SecurityGroupRule: intp(-1)}).Extract()
	noErr(t, err, "unlimited rules")
	createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g4.ID, Protocol: "tcp"})

	// DELETE returns A to the defaults; a second DELETE finds nothing.
	noErr(t, quotas.Delete(ctx, e.admin, projectA.project).ExtractErr(), "delete A's quota")
	if q, _ := quotas.Get(ctx, e.admin, projectA.project).Extract(); q == nil || q.SecurityGroup != 10 || q.SecurityGroupRule != 100 {
		t.Errorf("GET after delete: %+v, want the defaults", q)
	}
	wantError(t, quotas.Delete(ctx, e.admin, projectA.project).ExtractErr(), http.StatusNotFound, "TenantQuotaNotFound",
		fmt.Sprintf("Quota for tenant %s could not be found.", projectA.project))
	createGroup(t, e.a, "fifth")
}

func TestQuotaErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	tests := []struct {
		name    string
		call    func() error
		status  int
		typ     string
		message string
	}{
		{"member reads another project's quota", func() error {
			_, err := quotas.Get(ctx, e.a, projectB.project).Extract()
			return err
		}, 403, "PolicyNotAuthorized", "rule:get_quota is disallowed by policy"},
		{"member reads another project's details", func() error {
			_, err := quotas.GetDetail(ctx, e.a, projectB.project).Extract()
			return err
		}, 403, "AdminRequired", "User does not have admin privileges: Only admin is authorized to access quotas for another project."},
		{"member updates its own quota", func() error {
			_, err := quotas.Update(ctx, e.a, projectA.project, quotas.UpdateOpts{SecurityGroup: intp(100)}).Extract()
			return err
		}, 403, "PolicyNotAuthorized", "rule:update_quota is disallowed by policy"},
		{"member deletes its own quota", func() error {
			return quotas.Delete(ctx, e.a, projectA.project).ExtractErr()
		}, 403, "PolicyNotAuthorized", "rule:delete_quota is disallowed by policy"},
		{"limit below -1", func() error {
			_, err := quotas.Update(ctx, e.admin, projectA.project, quotas.UpdateOpts{SecurityGroup: intp(-2)}).Extract()
			return err
		}, 400, "HTTPBadRequest", "Invalid input for security_group. Reason: '-2' is too small - must be at least '-1'."},
		{"limit not a number", func() error {
			return rawRequest(t, e.admin, http.MethodPut, "quotas/"+projectA.project,
				map[string]any{"quota": map[string]any{"security_group": "abc"}}, nil, nil, 200)
		}, 400, "InvalidInput", "Invalid input for operation: 'abc' is not an integer."},
		{"unknown resource", func() error {
			return rawRequest(t, e.admin, http.MethodPut, "quotas/"+projectA.project,
				map[string]any{"quota": map[string]any{"bogus": 1}}, nil, nil, 200)
		}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'bogus'"},
		{"delete a project without overrides", func() error {
			return quotas.Delete(ctx, e.admin, "0123456789abcdef0123456789abcdef").ExtractErr()
		}, 404, "TenantQuotaNotFound", "Quota for tenant 0123456789abcdef0123456789abcdef could not be found."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, tc.call(), tc.status, tc.typ, tc.message)
		})
	}
	if q, _ := quotas.Get(ctx, e.admin, projectA.project).Extract(); q == nil || q.SecurityGroup != 10 {
		t.Errorf("refused updates changed the quota: %+v", q)
	}
}
