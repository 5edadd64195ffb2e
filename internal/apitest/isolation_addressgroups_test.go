package apitest

import (
	"fmt"
	"net/http"
	"testing"
)

// TestIsolationAddressGroups is the isolation matrix for address groups:
// A's address group ag, shared with D by A's RBAC policy; B and C have no
// relation to it. Statuses and error types are what Neutron 21 answers
// (recorded against the reference server): who may not see the group
// gets AddressGroupNotFound; D, which sees it, may use it in its rules
// but not change it (update: HTTPNotFound, as Neutron's API layer answers
// an update the policy refuses; delete and the address actions: 403).
// Every refused request leaves the group as it was.
func TestIsolationAddressGroups(t *testing.T) {
	newAG := func(t *testing.T) *fixture {
		f := &fixture{srv: Start(t, Config{Auth: Headers}), id: map[string]string{}}
		f.id["ag"] = f.create(t, callerA, "address-groups", "address_group", map[string]any{"name": "ag",
			"addresses": []string{"10.9.0.0/24", "10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24", "10.9.4.0/24"}})
		f.create(t, callerA, "rbac-policies", "rbac_policy", map[string]any{
			"object_type": "address_group", "object_id": f.id["ag"], "action": "access_as_shared", "target_tenant": projectD.project})
		for c := range nCallers {
			f.id["sg:"+c.String()] = f.create(t, c, "security-groups", "security_group", map[string]any{"name": "mine"})
		}
		return f
	}
	agNotFound := notFound("AddressGroupNotFound")
	seers := callers(callerA, callerD, callerAdmin)
	changers := callers(callerA, callerAdmin)
	// per3: for the callers who may change, who may only see, and the rest.
	per3 := func(change, see, other cell) [nCallers]cell {
		var out [nCallers]cell
		for c := range nCallers {
			switch {
			case changers[c]:
				out[c] = change
			case seers[c]:
				out[c] = see
			default:
				out[c] = other
			}
		}
		return out
	}
	agPath := func(suffix string) func(*fixture, who) string {
		return func(f *fixture, _ who) string { return "address-groups/" + f.id["ag"] + suffix }
	}
	// Each caller names its own address, so that successes do not collide.
	addrOf := func(c who) string { return fmt.Sprintf("10.9.%d.0/24", c) }
	rows := []row{
		{name: "show", method: http.MethodGet, path: agPath(""), want: per(seers, ok200, agNotFound)},
		{name: "update", method: http.MethodPut, path: agPath(""),
			body: body(map[string]any{"address_group": map[string]any{"description": "x"}}),
			want: per3(ok200, notFound("HTTPNotFound"), agNotFound)},
		{name: "add_addresses", method: http.MethodPut, path: agPath("/add_addresses"),
			body: func(_ *fixture, c who) any {
				return map[string]any{"addresses": []string{fmt.Sprintf("10.8.%d.0/24", c)}}
			},
			want: per3(ok200, denied, agNotFound)},
		{name: "remove_addresses", method: http.MethodPut, path: agPath("/remove_addresses"),
			body: func(_ *fixture, c who) any { return map[string]any{"addresses": []string{addrOf(c)}} },
			want: per3(ok200, denied, agNotFound)},
		{name: "a rule in the caller's group naming it", method: http.MethodPost, path: fixed("security-group-rules"),
			body: func(f *fixture, c who) any {
				return map[string]any{"security_group_rule": map[string]any{"security_group_id": f.id["sg:"+c.String()],
					"direction": "ingress", "remote_address_group_id": f.id["ag"]}}
			},
			want: per(seers, created201, agNotFound)},
		{name: "delete", method: http.MethodDelete, path: agPath(""), destructive: true,
			want: per3(noContent204, denied, agNotFound)},
	}
	read := newAG(t)
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) {
			for c := range nCallers {
				f := read
				if rw.destructive {
					f = newAG(t)
				}
				_, before := f.call(t, callerAdmin, http.MethodGet, "address-groups/"+f.id["ag"], nil)
				var b any
				if rw.body != nil {
					b = rw.body(f, c)
				}
				path := rw.path(f, c)
				status, resp := f.call(t, c, rw.method, path, b)
				check(t, c, rw.method, path, rw.want[c], status, resp)
				if status >= 400 {
					if _, after := f.call(t, callerAdmin, http.MethodGet, "address-groups/"+f.id["ag"], nil); string(after) != string(before) {
						t.Errorf("%s %s as %s was refused but changed the group:\n%s\n%s", rw.method, path, c, before, after)
					}
				}
			}
		})
	}
	// Lists: the owner, the project it is shared with and admins list it.
	f := newAG(t)
	for c := range nCallers {
		_, resp := f.call(t, c, http.MethodGet, "address-groups?fields=id", nil)
		want := `{"address_groups":[]}`
		if seers[c] {
			want = `{"address_groups":[{"id":"` + f.id["ag"] + `"}]}`
		}
		if string(resp) != want {
			t.Errorf("list as %s: %s, want %s", c, resp, want)
		}
	}
}
