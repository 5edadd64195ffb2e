package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAddressGroups walks the address-group extension as Neutron 21
// answers it (recorded against the reference server): create with
// normalised addresses, bad input, add and remove with their errors, who
// may see and change a group across projects, sharing through RBAC, rules
// naming a group, and the delete of a group in use.
func TestAddressGroups(t *testing.T) {
	srv := newTestServer(t, HeaderAuth{})
	projA := map[string]string{"X-User-Id": "a", "X-Project-Id": "pa", "X-Roles": "member", "Content-Type": "application/json"}
	projB := map[string]string{"X-User-Id": "b", "X-Project-Id": "pb", "X-Roles": "member", "Content-Type": "application/json"}
	admin := map[string]string{"X-User-Id": "adm", "X-Project-Id": "padm", "X-Roles": "admin,member", "Content-Type": "application/json"}
	ids := map[string]string{}
	expand := func(s string) string {
		for k, v := range ids {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	steps := []struct {
		name         string
		who          map[string]string
		method, path string
		body         string
		status       int
		// want are substrings of the answer; save names the id to keep
		// from it (by the answer's top-level key).
		want []string
		save string
	}{
		{"create normalises and dedups", projA, "POST", "/v2.0/address-groups",
			`{"address_group": {"name": "ag1", "description": "d", "addresses": ["10.0.0.1/24", "10.0.0.0/24", "2001:db8::1/64", "192.168.0.0/24"]}}`,
			201, []string{`"addresses":["10.0.0.0/24","192.168.0.0/24","2001:db8::/64"]`, `"name":"ag1"`, `"tenant_id":"pa"`}, "ag"},
		{"create without addresses", projA, "POST", "/v2.0/address-groups", `{"address_group": {"name": "empty"}}`,
			201, []string{`"addresses":[]`}, "empty"},
		{"create with null addresses", projA, "POST", "/v2.0/address-groups", `{"address_group": {"name": "n", "addresses": null}}`,
			201, []string{`"addresses":[]`}, ""},
		{"bulk create", projA, "POST", "/v2.0/address-groups", `{"address_groups": [{"name": "b1"}, {"name": "b2", "addresses": ["1.2.3.4/32"]}]}`,
			201, []string{`"name":"b1"`, `"1.2.3.4/32"`}, ""},
		{"a bare address", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["10.0.0.5"]}}`,
			400, []string{`Invalid input for addresses. Reason: '10.0.0.5' isn't a recognized IP subnet cidr, '10.0.0.5/32' is recommended.`}, ""},
		{"not a subnet", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["bad"]}}`,
			400, []string{`'bad' is not a valid IP subnet.`}, ""},
		{"a prefix too long", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["10.0.0.0/33"]}}`,
			400, []string{`'10.0.0.0/33' is not a valid IP subnet.`}, ""},
		{"duplicates", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["10.0.0.0/24", "10.0.0.0/24"]}}`,
			400, []string{`Duplicate items in the list: '10.0.0.0/24'.`}, ""},
		{"not a list", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": "10.0.0.0/24"}}`,
			400, []string{`'10.0.0.0/24' is not a list.`}, ""},
		{"not a string", projA, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": [7]}}`,
			400, []string{`'7' is not a valid IP subnet.`}, ""},
		{"shared is not for POST", projA, "POST", "/v2.0/address-groups", `{"address_group": {"shared": true}}`,
			400, []string{`Attribute 'shared' not allowed in POST`}, ""},
		{"a description too long", projA, "POST", "/v2.0/address-groups", `{"address_group": {"description": "` + strings.Repeat("x", 1025) + `"}}`,
			400, []string{`Invalid input for description.`}, ""},
		{"another project's owner", projA, "POST", "/v2.0/address-groups", `{"address_group": {"project_id": "pb"}}`,
			400, []string{`requires admin or advsvc privileges`}, ""},
		{"filter on addresses", projA, "GET", "/v2.0/address-groups?addresses=10.0.0.0/24", "",
			400, []string{`['addresses'] is invalid attribute for filtering`}, ""},
		{"filter on shared", projA, "GET", "/v2.0/address-groups?shared=true", "",
			400, []string{`['shared'] is invalid attribute for filtering`}, ""},
		{"show hides shared and standard attributes", projA, "GET", "/v2.0/address-groups/{ag}", "",
			200, []string{`{"address_group":{"id":"{ag}","name":"ag1","project_id":"pa","addresses":["10.0.0.0/24","192.168.0.0/24","2001:db8::/64"],"description":"d","tenant_id":"pa"}}`}, ""},
		{"update name", projA, "PUT", "/v2.0/address-groups/{ag}", `{"address_group": {"name": "ag1b", "description": "e"}}`,
			200, []string{`"name":"ag1b"`, `"description":"e"`}, ""},
		{"addresses are not for PUT", projA, "PUT", "/v2.0/address-groups/{ag}", `{"address_group": {"addresses": []}}`,
			400, []string{`Cannot update read-only attribute addresses`}, ""},
		{"add", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": ["10.2.0.1/16", "1.1.1.1/32"]}`,
			200, []string{`"addresses":["1.1.1.1/32","10.0.0.0/24","10.2.0.0/16","192.168.0.0/24","2001:db8::/64"]`, `"shared":false`, `"revision_number":`}, ""},
		{"add what is there", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": ["10.2.0.0/16", "9.9.9.9/32"]}`,
			400, []string{`"AddressesAlreadyExist"`, `Addresses ['10.2.0.0/16'] already exist in the address group {ag}.`}, ""},
		{"add garbage", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": ["bad"]}`,
			400, []string{`"AddrFormatError"`, `invalid IPNetwork bad`}, ""},
		{"add without addresses", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{}`,
			400, []string{`'addresses' not specified`}, ""},
		{"add a string", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": "1.1.1.2/32"}`,
			400, []string{`is not a list`}, ""},
		{"add without a body", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", ``,
			400, nil, ""},
		{"add nothing", projA, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": []}`,
			200, []string{`"1.1.1.1/32"`}, ""},
		{"POST is not the action's method", projA, "POST", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": []}`,
			405, nil, ""},
		{"no such action", projA, "PUT", "/v2.0/address-groups/{ag}/frobnicate", `{}`,
			404, nil, ""},
		{"remove what is not there", projA, "PUT", "/v2.0/address-groups/{ag}/remove_addresses", `{"addresses": ["1.1.1.1/32", "9.9.9.9/32", "8.8.8.8/32"]}`,
			404, []string{`"AddressesNotFound"`, `Addresses ['8.8.8.8/32', '9.9.9.9/32'] not found in the address group {ag}.`}, ""},
		{"remove", projA, "PUT", "/v2.0/address-groups/{ag}/remove_addresses", `{"addresses": ["1.1.1.1/32"]}`,
			200, []string{`"addresses":["10.0.0.0/24","10.2.0.0/16","192.168.0.0/24","2001:db8::/64"]`}, ""},
		{"missing group", projA, "GET", "/v2.0/address-groups/00000000-0000-0000-0000-000000000000", "",
			404, []string{`Address group 00000000-0000-0000-0000-000000000000 could not be found.`}, ""},
		{"add to a missing group", projA, "PUT", "/v2.0/address-groups/00000000-0000-0000-0000-000000000000/add_addresses", `{"addresses": []}`,
			404, []string{`"AddressGroupNotFound"`}, ""},

		// Another project sees nothing until the group is shared with it.
		{"B cannot see", projB, "GET", "/v2.0/address-groups/{ag}", "", 404, []string{`"AddressGroupNotFound"`}, ""},
		{"B lists nothing", projB, "GET", "/v2.0/address-groups", "", 200, []string{`{"address_groups":[]}`}, ""},
		{"B cannot add", projB, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": ["3.3.3.3/32"]}`, 404, []string{`"AddressGroupNotFound"`}, ""},
		{"B cannot delete", projB, "DELETE", "/v2.0/address-groups/{ag}", "", 404, []string{`"AddressGroupNotFound"`}, ""},
		{"B's group", projB, "POST", "/v2.0/security-groups", `{"security_group": {"name": "sgb"}}`, 201, nil, "sg"},
		{"B's rule cannot name A's group", projB, "POST", "/v2.0/security-group-rules",
			`{"security_group_rule": {"security_group_id": "{sg}", "direction": "ingress", "remote_address_group_id": "{ag}"}}`,
			404, []string{`Address group {ag} could not be found.`}, ""},
		{"B cannot share A's group", projB, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "{ag}", "action": "access_as_shared", "target_tenant": "pb"}}`,
			400, []string{`Only admins can manipulate policies on objects they do not own`}, ""},
		{"a bad action", projA, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "{ag}", "action": "access_as_external", "target_tenant": "pb"}}`,
			400, []string{`Invalid action 'access_as_external' for object type 'address_group'.`}, ""},
		{"A shares with B", projA, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "{ag}", "action": "access_as_shared", "target_tenant": "pb"}}`,
			201, []string{`"object_type":"address_group"`}, "rbac"},
		{"sharing twice", projA, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "{ag}", "action": "access_as_shared", "target_tenant": "pb"}}`,
			409, []string{`"DuplicateRbacPolicy"`}, ""},
		{"B sees", projB, "GET", "/v2.0/address-groups/{ag}", "", 200, []string{`"name":"ag1b"`}, ""},
		{"B lists it", projB, "GET", "/v2.0/address-groups?fields=id", "", 200, []string{`"id":"{ag}"`}, ""},
		{"B cannot rename", projB, "PUT", "/v2.0/address-groups/{ag}", `{"address_group": {"name": "z"}}`, 404, []string{`"HTTPNotFound"`}, ""},
		{"B cannot add now either", projB, "PUT", "/v2.0/address-groups/{ag}/add_addresses", `{"addresses": ["3.3.3.3/32"]}`,
			403, []string{`rule:add_addresses is disallowed by policy`}, ""},
		{"B cannot remove", projB, "PUT", "/v2.0/address-groups/{ag}/remove_addresses", `{"addresses": ["10.0.0.0/24"]}`,
			403, []string{`rule:remove_addresses is disallowed by policy`}, ""},
		{"B cannot delete a shared group", projB, "DELETE", "/v2.0/address-groups/{ag}", "",
			403, []string{`rule:delete_address_group is disallowed by policy`}, ""},
		{"B's rule names the shared group", projB, "POST", "/v2.0/security-group-rules",
			`{"security_group_rule": {"security_group_id": "{sg}", "direction": "ingress", "protocol": "tcp", "remote_address_group_id": "{ag}"}}`,
			201, []string{`"remote_address_group_id":"{ag}"`}, "rule"},
		{"a rule with two remotes", projB, "POST", "/v2.0/security-group-rules",
			`{"security_group_rule": {"security_group_id": "{sg}", "direction": "ingress", "remote_address_group_id": "{ag}", "remote_ip_prefix": "1.0.0.0/8"}}`,
			400, []string{`"SecurityGroupMultipleRemoteEntites"`}, ""},
		{"unsharing while B's rule uses it", projA, "DELETE", "/v2.0/rbac-policies/{rbac}", "",
			409, []string{`"RbacPolicyInUse"`, `project_id=pb`}, ""},
		{"deleting while B's rule uses it", projA, "DELETE", "/v2.0/address-groups/{ag}", "",
			409, []string{`"AddressGroupInUse"`, `Address group {ag} is in use on one or more security group rules.`}, ""},
		{"B's rule goes", projB, "DELETE", "/v2.0/security-group-rules/{rule}", "", 204, nil, ""},
		{"unsharing", projA, "DELETE", "/v2.0/rbac-policies/{rbac}", "", 204, nil, ""},
		{"B sees it no more", projB, "GET", "/v2.0/address-groups/{ag}", "", 404, nil, ""},

		// Admins see and use everything.
		{"admin sees", admin, "GET", "/v2.0/address-groups/{ag}", "", 200, nil, ""},
		{"admin shares with everyone", admin, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "{empty}", "action": "access_as_shared", "target_tenant": "*"}}`,
			201, nil, ""},
		{"B sees what is shared with all", projB, "GET", "/v2.0/address-groups/{empty}", "", 200, nil, ""},
		{"admin shares a missing group", admin, "POST", "/v2.0/rbac-policies",
			`{"rbac_policy": {"object_type": "address_group", "object_id": "00000000-0000-0000-0000-000000000000", "action": "access_as_shared", "target_tenant": "pb"}}`,
			404, []string{`"AddressGroupNotFound"`}, ""},
		{"delete", projA, "DELETE", "/v2.0/address-groups/{ag}", "", 204, nil, ""},
		{"gone", projA, "GET", "/v2.0/address-groups/{ag}", "", 404, nil, ""},
		{"deleting shared group drops its policies", projA, "DELETE", "/v2.0/address-groups/{empty}", "", 204, nil, ""},
		{"no policy left on it", admin, "GET", "/v2.0/rbac-policies?object_type=address_group", "", 200, []string{`{"rbac_policies":[]}`}, ""},
		{"extensions", projA, "GET", "/v2.0/extensions/address-group", "", 200, []string{`"name":"Address group"`}, ""},
		{"rbac extension", projA, "GET", "/v2.0/extensions/rbac-address-group", "", 200, []string{`"updated":"2021-01-20T00:00:00-00:00"`}, ""},
	}
	for _, st := range steps {
		path, body := expand(st.path), expand(st.body)
		status, resp := do(t, srv, st.method, path, []byte(body), st.who)
		checkAnswer(t, st.method, path, []byte(body), status, resp)
		if status != st.status {
			t.Fatalf("%s: %s %s: status %d, want %d: %s", st.name, st.method, path, status, st.status, resp)
		}
		for _, w := range st.want {
			if w = expand(w); !strings.Contains(string(resp), w) {
				t.Errorf("%s: answer %s lacks %s", st.name, resp, w)
			}
		}
		if st.save != "" {
			var m map[string]map[string]any
			if err := json.Unmarshal(resp, &m); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			for _, obj := range m {
				ids[st.save] = obj["id"].(string)
			}
		}
	}
}
