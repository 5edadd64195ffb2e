package apitest

import (
	"fmt"
	"maps"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// Quotas of the network resources: limits, usage details and OverQuota.

// quotaDoc decodes GET /quotas/{id}[/default] as resource: limit.
func quotaDoc(t *testing.T, path string, c *gophercloud.ServiceClient) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, v := range rawGet(t, c, path)["quota"].(map[string]any) {
		var n int64
		if _, err := fmt.Sscan(fmt.Sprint(v), &n); err != nil {
			t.Fatalf("%s: %s = %v is not an integer", path, k, v)
		}
		out[k] = n
	}
	return out
}

func TestNetworkQuotas(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	A := projectA.project
	defaults := map[string]int64{"network": 100, "subnet": 100, "port": 500, "rbac_policy": 10, "security_group": 10, "security_group_rule": 100}
	for _, path := range []string{"quotas/" + A, "quotas/" + A + "/default", "quotas/" + A + ".json"} {
		if got := quotaDoc(t, path, e.a); !maps.Equal(got, defaults) {
			t.Errorf("GET %s = %v, want %v", path, got, defaults)
		}
	}
	q, err := quotas.Get(ctx, e.admin, A).Extract()
	noErr(t, err, "admin gets A's quota")
	if *q != (quotas.Quota{Network: 100, Subnet: 100, Port: 500, RBACPolicy: 10, SecurityGroup: 10, SecurityGroupRule: 100}) {
		t.Errorf("quota %+v", q)
	}

	q, err = quotas.Update(ctx, e.admin, A, quotas.UpdateOpts{Network: intp(2), Subnet: intp(2), Port: intp(3), RBACPolicy: intp(1)}).Extract()
	noErr(t, err, "admin lowers A's network quotas")
	if *q != (quotas.Quota{Network: 2, Subnet: 2, Port: 3, RBACPolicy: 1, SecurityGroup: 10, SecurityGroupRule: 100}) {
		t.Errorf("updated quota %+v", q)
	}
	// The defaults stay what they were.
	if got := quotaDoc(t, "quotas/"+A+"/default", e.admin); !maps.Equal(got, defaults) {
		t.Errorf("defaults after the update: %v", got)
	}

	n1 := newNetwork(t, e.a, "n1")
	// The DHCP port is the network's project's port, as in Neutron.
	newSubnet(t, e.a, n1.ID, "10.0.0.0/24")
	createPort(t, e.a, ports.CreateOpts{NetworkID: n1.ID})
	createPort(t, e.a, ports.CreateOpts{NetworkID: n1.ID})
	_, err = ports.Create(ctx, e.a, ports.CreateOpts{NetworkID: n1.ID}).Extract()
	wantError(t, err, 409, "OverQuota", "Quota exceeded for resources: ['port'].")
	n2 := newNetwork(t, e.a, "n2")
	_, err = networks.Create(ctx, e.a, networks.CreateOpts{Name: "n3"}).Extract()
	wantError(t, err, 409, "OverQuota", "Quota exceeded for resources: ['network'].")
	newSubnetNoDHCP(t, e.a, n2.ID, "10.1.0.0/24")
	_, err = subnets.Create(ctx, e.a, subnets.CreateOpts{NetworkID: n2.ID, CIDR: "10.2.0.0/24", IPVersion: 4}).Extract()
	wantError(t, err, 409, "OverQuota", "Quota exceeded for resources: ['subnet'].")
	web := createGroup(t, e.a, "web")
	_, err = rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectB.project)).Extract()
	noErr(t, err, "share web with B")
	_, err = rbacpolicies.Create(ctx, e.a, shareGroup(web.ID, projectC.project)).Extract()
	wantError(t, err, 409, "OverQuota", "Quota exceeded for resources: ['rbac_policy'].")
	// Another project's limits are untouched.
	createPort(t, e.b, ports.CreateOpts{NetworkID: newNetwork(t, e.b, "b").ID})

	want := quotas.QuotaDetailSet{
		Network: quotas.QuotaDetail{Used: 2, Limit: 2}, Subnet: quotas.QuotaDetail{Used: 2, Limit: 2},
		Port: quotas.QuotaDetail{Used: 3, Limit: 3}, RBACPolicy: quotas.QuotaDetail{Used: 1, Limit: 1},
		SecurityGroup: quotas.QuotaDetail{Used: 2, Limit: 10}, SecurityGroupRule: quotas.QuotaDetail{Used: 6, Limit: 100},
	}
	for _, c := range []*gophercloud.ServiceClient{e.admin, e.a} {
		d, err := quotas.GetDetail(ctx, c, A).Extract()
		noErr(t, err, "quota details")
		if *d != want {
			t.Errorf("details\n got %+v\nwant %+v", *d, want)
		}
	}
	raw := rawGet(t, e.a, "quotas/"+A+"/details.json")["quota"].(map[string]any)
	if len(raw) != 6 || fmt.Sprint(raw["port"]) != "map[limit:3 reserved:0 used:3]" {
		t.Errorf("details.json: %v", raw)
	}
	_, err = quotas.GetDetail(ctx, e.b, A).Extract()
	wantError(t, err, 403, "AdminRequired", "User does not have admin privileges: Only admin is authorized to access quotas for another project.")
	_, err = quotas.Get(ctx, e.b, A).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized", "rule:get_quota is disallowed by policy")

	// DELETE returns A to the defaults; what A has stays.
	noErr(t, quotas.Delete(ctx, e.admin, A).ExtractErr(), "delete A's quota")
	if got := quotaDoc(t, "quotas/"+A, e.a); !maps.Equal(got, defaults) {
		t.Errorf("after DELETE: %v", got)
	}
	createPort(t, e.a, ports.CreateOpts{NetworkID: n1.ID})
	newNetwork(t, e.a, "n3")
	d, err := quotas.GetDetail(ctx, e.a, A).Extract()
	noErr(t, err, "details after DELETE")
	if d.Port != (quotas.QuotaDetail{Used: 4, Limit: 500}) || d.Network != (quotas.QuotaDetail{Used: 3, Limit: 100}) {
		t.Errorf("details after DELETE: port %+v network %+v", d.Port, d.Network)
	}
	// A limit below the use is refused with check_limit.
	err = rawRequest(t, e.admin, "PUT", "quotas/"+A, map[string]any{"quota": map[string]any{"port": 1, "check_limit": true}}, nil, nil, 200)
	wantError(t, err, 400, "HTTPBadRequest", "Quota limit 1 for port must be greater than or equal to already used 4")
}
