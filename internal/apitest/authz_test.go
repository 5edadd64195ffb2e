package apitest

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// Regression tests for the holes of issue 9's audit, with Neutron 21's
// exact answers; TestIsolationMatrix covers every caller and verb.

// wantNeutronError checks a status and a NeutronError's type and message.
func wantNeutronError(t *testing.T, what string, status int, body []byte, wantStatus int, typ, message string) {
	t.Helper()
	var e struct {
		NeutronError struct{ Type, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || status != wantStatus || e.NeutronError.Type != typ || e.NeutronError.Message != message {
		t.Errorf("%s: %d %s\nwant %d %s: %s", what, status, body, wantStatus, typ, message)
	}
}

// TestNetworkOwnerCannotChangeOthersPorts is the audit's repro: B owns the
// shared network s, A has a port pa on it with group g. B sees pa but may
// neither open it (port security off, no groups, a trusted device owner)
// nor retag it; it may delete it (delete_port: admin_owner_or_network_owner).
func TestNetworkOwnerCannotChangeOthersPorts(t *testing.T) {
	f := newFixture(t)
	pa := "ports/" + f.id["pa"]
	before := f.must(t, callerAdmin, http.MethodGet, pa, nil, 200)
	for _, tc := range []struct {
		attrs   map[string]any
		message string
	}{
		{map[string]any{"port_security_enabled": false, "security_groups": []string{}},
			"(rule:update_port and rule:update_port:port_security_enabled) is disallowed by policy"},
		{map[string]any{"device_owner": "network:router_interface"},
			"(rule:update_port and rule:update_port:device_owner) is disallowed by policy"},
		{map[string]any{"security_groups": []string{}}, "rule:update_port is disallowed by policy"},
		{map[string]any{"name": "mine"}, "rule:update_port is disallowed by policy"},
	} {
		status, b := f.call(t, callerB, http.MethodPut, pa, map[string]any{"port": tc.attrs})
		wantNeutronError(t, "B updates A's port", status, b, 403, "PolicyNotAuthorized", tc.message)
	}
	status, b := f.call(t, callerB, http.MethodPut, pa+"/tags/x", nil)
	wantNeutronError(t, "B tags A's port", status, b, 403, "PolicyNotAuthorized", "rule:update_ports_tags is disallowed by policy")
	status, b = f.call(t, callerB, http.MethodPut, pa+"/tags", map[string]any{"tags": []string{}})
	wantNeutronError(t, "B replaces the tags of A's port", status, b, 403, "PolicyNotAuthorized", "rule:update_ports_tags is disallowed by policy")
	status, b = f.call(t, callerB, http.MethodDelete, pa+"/tags", nil)
	wantNeutronError(t, "B removes the tags of A's port", status, b, 403, "PolicyNotAuthorized", "rule:delete_ports_tags is disallowed by policy")
	if status, b := f.call(t, callerB, http.MethodGet, pa+"/tags", nil); status != 200 || string(b) != `{"tags":["t1"]}` {
		t.Errorf("B reads the tags of A's port: %d %s", status, b)
	}
	after := f.must(t, callerAdmin, http.MethodGet, pa, nil, 200)
	if after["revision_number"] != before["revision_number"] || after["port_security_enabled"] != true ||
		!slices.Equal(after["security_groups"].([]any), []any{f.id["g"]}) || after["device_owner"] != "" {
		t.Errorf("pa after B's attempts: %v", after)
	}
	// A itself may change its groups, not its port security: s is B's.
	status, b = f.call(t, callerA, http.MethodPut, pa, map[string]any{"port": map[string]any{"port_security_enabled": false}})
	wantNeutronError(t, "A turns off port security on B's network", status, b, 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:port_security_enabled) is disallowed by policy")
	f.must(t, callerA, http.MethodPut, pa, map[string]any{"port": map[string]any{"name": "mine", "security_groups": []string{}}}, 200)
	f.must(t, callerB, http.MethodDelete, pa, nil, 204)
}

// TestUpdatePolicyChecksExplicitDefaults: on update every attribute the
// body names is checked, even set to its default (Neutron checks
// ATTRIBUTES_TO_UPDATE); defaults are skipped on create only.
func TestUpdatePolicyChecksExplicitDefaults(t *testing.T) {
	f := newFixture(t)
	na, pa := "networks/"+f.id["na"], "ports/"+f.id["pa"]
	status, b := f.call(t, callerA, http.MethodPut, na, map[string]any{"network": map[string]any{"shared": false}})
	wantNeutronError(t, "A sets shared: false", status, b, 403, "PolicyNotAuthorized",
		"(rule:update_network and rule:update_network:shared) is disallowed by policy")
	f.must(t, callerAdmin, http.MethodPut, pa, map[string]any{"port": map[string]any{"binding:host_id": "host-1"}}, 200)
	status, b = f.call(t, callerA, http.MethodPut, pa, map[string]any{"port": map[string]any{"binding:host_id": ""}})
	wantNeutronError(t, "A unbinds its port", status, b, 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy")
	status, b = f.call(t, callerA, http.MethodPut, pa, map[string]any{"port": map[string]any{"binding:profile": map[string]any{}}})
	wantNeutronError(t, "A clears its port's binding profile", status, b, 403, "PolicyNotAuthorized",
		"(rule:update_port and rule:update_port:binding:profile) is disallowed by policy")
	if got := f.must(t, callerAdmin, http.MethodGet, pa, nil, 200); got["binding:host_id"] != "host-1" {
		t.Errorf("pa unbound by A: %v", got)
	}
	// Creates still skip attributes set to their defaults...
	f.create(t, callerA, "networks", "network", map[string]any{"name": "n2", "shared": false})
	f.create(t, callerA, "ports", "port", map[string]any{"network_id": f.id["na"], "binding:vnic_type": "normal"})
	// ...but binding:host_id has none in Neutron (ATTR_NOT_SPECIFIED).
	status, b = f.call(t, callerA, http.MethodPost, "ports", map[string]any{"port": map[string]any{"network_id": f.id["na"], "binding:host_id": ""}})
	wantNeutronError(t, "A creates a port with binding:host_id \"\"", status, b, 403, "PolicyNotAuthorized",
		"(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy")
}

// TestUnshareNetworkInUse: a shared network other projects have ports or
// subnets on cannot be made private (Neutron's InvalidSharedSetting); its
// owner's own ports and the DHCP port do not count.
func TestUnshareNetworkInUse(t *testing.T) {
	f := newFixture(t)
	s := "networks/" + f.id["s"]
	unshare := map[string]any{"network": map[string]any{"shared": false}}
	inUse := "Unable to reconfigure sharing settings for network s. Multiple tenants are using it."
	status, b := f.call(t, callerAdmin, http.MethodPut, s, unshare)
	wantNeutronError(t, "unshare with A's and D's ports", status, b, 409, "InvalidSharedSetting", inUse)
	f.must(t, callerA, http.MethodDelete, "ports/"+f.id["pa"], nil, 204)
	status, b = f.call(t, callerAdmin, http.MethodPut, s, unshare)
	wantNeutronError(t, "unshare with D's port", status, b, 409, "InvalidSharedSetting", inUse)
	f.must(t, callerD, http.MethodDelete, "ports/"+f.id["pd"], nil, 204)
	// A subnet of another project keeps it in use too.
	sub := f.create(t, callerAdmin, "subnets", "subnet", map[string]any{"network_id": f.id["s"], "cidr": "10.8.0.0/24",
		"ip_version": 4, "tenant_id": projectC.project, "enable_dhcp": false})
	status, b = f.call(t, callerAdmin, http.MethodPut, s, unshare)
	wantNeutronError(t, "unshare with C's subnet", status, b, 409, "InvalidSharedSetting", inUse)
	f.must(t, callerAdmin, http.MethodDelete, "subnets/"+sub, nil, 204)
	// Left: B's subnet, its DHCP port and a port of B.
	f.create(t, callerB, "ports", "port", map[string]any{"network_id": f.id["s"]})
	if got := f.must(t, callerAdmin, http.MethodPut, s, unshare, 200); got["shared"] != false {
		t.Errorf("unshared network: %v", got)
	}
	status, b = f.call(t, callerA, http.MethodGet, s, nil)
	wantNeutronError(t, "A after unsharing", status, b, 404, "NetworkNotFound", "Network "+f.id["s"]+" could not be found.")
}

// TestRBACRetargetNeedsObjectOwner: B holds a policy on A's group (an
// admin made it); B may drop it but not hand the group to another project
// ("Only admins can manipulate policies on objects they do not own").
func TestRBACRetargetNeedsObjectOwner(t *testing.T) {
	f := newFixture(t)
	q := "rbac-policies/" + f.id["q"]
	status, b := f.call(t, callerB, http.MethodPut, q, map[string]any{"rbac_policy": map[string]any{"target_tenant": projectC.project}})
	wantNeutronError(t, "B retargets q to C", status, b, 400, "InvalidInput",
		"Invalid input for operation: Only admins can manipulate policies on objects they do not own.")
	status, b = f.call(t, callerC, http.MethodGet, "security-groups/"+f.id["g"], nil)
	wantNeutronError(t, "C looks for g", status, b, 404, "SecurityGroupNotFound", "Security group "+f.id["g"]+" does not exist")
	if got := f.must(t, callerB, http.MethodGet, q, nil, 200); got["target_tenant"] != projectE {
		t.Errorf("q after B's attempt: %v", got)
	}
	f.must(t, callerB, http.MethodDelete, q, nil, 204)
}
