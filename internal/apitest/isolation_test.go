package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

// The isolation matrix: every resource × verb × caller, with the status
// Neutron 21 answers, over HTTP against a real server in headers mode.
//
// Expected statuses follow Neutron 21's default policies
// (neutron/conf/policies/*.py) as neutron-server evaluates them with its
// defaults (enforce_new_defaults = False: the new rule OR the deprecated
// one; admins pass every rule), and its API layer: an action the policy
// refuses is 403 when the caller may see the object and 404 when it may
// not (api/v2/base.py _update/_delete check the show rule to decide).
// Cells marked "moat:" differ on purpose; docs/compatibility.md says why.
//
// The fixture, built through the API:
//
//	s   network owned by B, shared: true (made by admin for B)
//	sb  subnet of B on s
//	g   A's security group, shared with D by RBAC policy p (A's)
//	r   a rule of A in g
//	rd  a rule of D in g (made by admin: D may not add rules to g itself)
//	q   RBAC policy held by B on A's group g, targeting E (made by admin)
//	na  A's private network, sa its subnet (no ports but the DHCP port)
//	pa  A's port on s with g: B is the owner of its network
//	pd  D's port on s with g (so D depends on p)
//	quota overrides for A
//	tag t1 on g, s, na, sb, sa, pa, pd; a group "mine" for every caller
//
// The callers are A (owner of most objects), B (owner of network s), C
// (a member with no relation), D (a project g is shared with) and an admin.

type who int

const (
	callerA who = iota
	callerB
	callerC
	callerD
	callerAdmin
	nCallers
)

var projectD = identity{"user-d", "dddddddd000000000000000000000005", "member,reader"}

// projectE and projectF are projects that never call, only named as
// targets of RBAC policies.
const (
	projectE = "eeeeeeee000000000000000000000006"
	projectF = "ffffffff000000000000000000000007"
)

var callerIDs = [nCallers]identity{projectA, projectB, projectC, projectD, admin}

func (c who) String() string { return [...]string{"A", "B", "C", "D", "admin"}[c] }

// cell is one expected answer: a status and, for errors, the NeutronError
// type ("" accepts any).
type cell struct {
	status int
	typ    string
}

var (
	ok200        = cell{200, ""}
	created201   = cell{201, ""}
	noContent204 = cell{204, ""}
	denied       = cell{403, "PolicyNotAuthorized"}
	// notOwner is Neutron's "Only admins can manipulate policies on
	// objects they do not own" (validate_rbac_policy_change).
	notOwner = cell{400, "InvalidInput"}
)

func notFound(typ string) cell { return cell{404, typ} }
func conflict(typ string) cell { return cell{409, typ} }

// set is a set of callers.
type set [nCallers]bool

func callers(cs ...who) set {
	var s set
	for _, c := range cs {
		s[c] = true
	}
	return s
}

var everyone = callers(callerA, callerB, callerC, callerD, callerAdmin)

// per answers a for the callers in s and b for the others.
func per(s set, a, b cell) [nCallers]cell {
	var out [nCallers]cell
	for c := range nCallers {
		out[c] = b
		if s[c] {
			out[c] = a
		}
	}
	return out
}

// fixture is one server with the objects above.
type fixture struct {
	srv *Server
	id  map[string]string
}

// call sends one request as c and returns the status and body.
func (f *fixture) call(t *testing.T, c who, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.Endpoint()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	id := callerIDs[c]
	req.Header.Set("X-User-Id", id.user)
	req.Header.Set("X-Project-Id", id.project)
	req.Header.Set("X-Roles", id.roles)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", method, path, c, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s as %s: read body: %v", method, path, c, err)
	}
	return resp.StatusCode, out
}

// must sends a request that has to answer status and returns its body's
// single object (the value of its only key), if any.
func (f *fixture) must(t *testing.T, c who, method, path string, body any, status int) map[string]any {
	t.Helper()
	got, b := f.call(t, c, method, path, body)
	if got != status {
		t.Fatalf("fixture: %s %s as %s: %d, want %d: %s", method, path, c, got, status, b)
	}
	var top map[string]any
	if len(b) == 0 || json.Unmarshal(b, &top) != nil {
		return nil
	}
	for _, v := range top {
		if m, ok := v.(map[string]any); ok {
			return m
		}
	}
	return nil
}

func (f *fixture) create(t *testing.T, c who, collection, singular string, attrs map[string]any) string {
	t.Helper()
	return f.must(t, c, http.MethodPost, collection, map[string]any{singular: attrs}, 201)["id"].(string)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{srv: Start(t, Config{Auth: Headers}), id: map[string]string{}}
	A, B, D := callerA, callerB, callerD
	f.id["s"] = f.create(t, callerAdmin, "networks", "network", map[string]any{"name": "s", "shared": true, "tenant_id": projectB.project})
	f.id["sb"] = f.create(t, B, "subnets", "subnet", map[string]any{"name": "sb", "network_id": f.id["s"], "cidr": "10.1.0.0/24", "ip_version": 4})
	f.id["g"] = f.create(t, A, "security-groups", "security_group", map[string]any{"name": "g", "description": "A's group"})
	f.id["r"] = f.create(t, A, "security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": f.id["g"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
		"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8", "description": "ssh"})
	f.id["rd"] = f.create(t, callerAdmin, "security-group-rules", "security_group_rule", map[string]any{"tenant_id": projectD.project,
		"security_group_id": f.id["g"], "direction": "egress", "ethertype": "IPv6", "protocol": "udp", "port_range_min": 53, "port_range_max": 53})
	f.id["p"] = f.create(t, A, "rbac-policies", "rbac_policy", map[string]any{
		"object_type": "security_group", "object_id": f.id["g"], "action": "access_as_shared", "target_tenant": projectD.project})
	f.id["q"] = f.create(t, callerAdmin, "rbac-policies", "rbac_policy", map[string]any{"tenant_id": projectB.project,
		"object_type": "security_group", "object_id": f.id["g"], "action": "access_as_shared", "target_tenant": projectE})
	f.id["na"] = f.create(t, A, "networks", "network", map[string]any{"name": "na"})
	f.id["sa"] = f.create(t, A, "subnets", "subnet", map[string]any{"name": "sa", "network_id": f.id["na"], "cidr": "10.2.0.0/24", "ip_version": 4})
	f.id["pa"] = f.create(t, A, "ports", "port", map[string]any{"name": "pa", "network_id": f.id["s"], "security_groups": []string{f.id["g"]}})
	f.id["pd"] = f.create(t, D, "ports", "port", map[string]any{"name": "pd", "network_id": f.id["s"], "security_groups": []string{f.id["g"]}})
	f.must(t, callerAdmin, http.MethodPut, "quotas/"+projectA.project, map[string]any{"quota": map[string]any{"port": 50}}, 200)
	for _, o := range taggedObjects {
		f.must(t, o.tagger, http.MethodPut, o.collection+"/"+f.id[o.key]+"/tags", map[string]any{"tags": []string{"t1"}}, 200)
	}
	for c := range nCallers {
		f.id["mine:"+c.String()] = f.create(t, c, "security-groups", "security_group", map[string]any{"name": "mine"})
	}
	return f
}

// snapshot is everything the admin sees, to prove that refused requests
// change nothing.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"security-groups", "security-group-rules", "networks", "subnets", "ports", "rbac-policies",
		"quotas/" + projectA.project, "quotas"} {
		status, body := f.call(t, callerAdmin, http.MethodGet, path, nil)
		if status != 200 {
			t.Fatalf("snapshot: GET %s: %d %s", path, status, body)
		}
		fmt.Fprintf(&b, "%s: %s\n", path, body)
	}
	return b.String()
}

// check compares one answer with its cell.
func check(t *testing.T, c who, method, path string, want cell, status int, body []byte) {
	t.Helper()
	if status != want.status {
		t.Errorf("%s %s as %s: status %d, want %d: %s", method, path, c, status, want.status, body)
		return
	}
	if want.typ == "" {
		return
	}
	var e struct {
		NeutronError struct{ Type, Message string }
	}
	if json.Unmarshal(body, &e) != nil || e.NeutronError.Type != want.typ {
		t.Errorf("%s %s as %s: %d %s, want type %s", method, path, c, status, body, want.typ)
	}
}

// object is one fixture object as the matrix sees it.
type object struct {
	key, collection string
	res             *neutron.Resource
	// visible: who may see it (Neutron's get_<resource>).
	visible set
	// tagger is who tags it in the fixture; mayTag who may change its tags
	// (nil: no tags).
	tagger who
	mayTag *set
}

func ptrSet(s set) *set { return &s }

// The objects and who sees them (Neutron 21's get_* rules and model
// queries).
var (
	objG = object{key: "g", collection: "security-groups", res: neutron.SecurityGroupResource,
		// get_security_group: any member, through a query scoped to its
		// project and the groups shared with it.
		visible: callers(callerA, callerD, callerAdmin), tagger: callerA, mayTag: ptrSet(callers(callerA, callerAdmin))}
	objR = object{key: "r", collection: "security-group-rules", res: neutron.SecurityGroupRuleResource,
		// get_security_group_rule: admin_owner_or_sg_owner.
		visible: callers(callerA, callerAdmin)}
	objRD = object{key: "rd", collection: "security-group-rules", res: neutron.SecurityGroupRuleResource,
		// sg_owner: the owner of the rule's group sees it too.
		visible: callers(callerA, callerD, callerAdmin)}
	objS = object{key: "s", collection: "networks", res: neutron.NetworkResource,
		// get_network: admin_or_owner or rule:shared.
		visible: everyone, tagger: callerB, mayTag: ptrSet(callers(callerB, callerAdmin))}
	objNA = object{key: "na", collection: "networks", res: neutron.NetworkResource,
		visible: callers(callerA, callerAdmin), tagger: callerA, mayTag: ptrSet(callers(callerA, callerAdmin))}
	objSB = object{key: "sb", collection: "subnets", res: neutron.SubnetResource,
		// get_subnet: admin_or_owner or rule:shared (its network's).
		visible: everyone, tagger: callerB, mayTag: ptrSet(callers(callerB, callerAdmin))}
	objSA = object{key: "sa", collection: "subnets", res: neutron.SubnetResource,
		visible: callers(callerA, callerAdmin), tagger: callerA, mayTag: ptrSet(callers(callerA, callerAdmin))}
	objPA = object{key: "pa", collection: "ports", res: neutron.PortResource,
		// get_port: admin_owner_or_network_owner.
		visible: callers(callerA, callerB, callerAdmin), tagger: callerA, mayTag: ptrSet(callers(callerA, callerAdmin))}
	objPD = object{key: "pd", collection: "ports", res: neutron.PortResource,
		visible: callers(callerB, callerD, callerAdmin), tagger: callerD, mayTag: ptrSet(callers(callerD, callerAdmin))}
	objP = object{key: "p", collection: "rbac-policies", res: neutron.RBACPolicyResource,
		// get_rbac_policy: admin_or_owner (of the policy; its target does
		// not see it).
		visible: callers(callerA, callerAdmin)}
	objQ = object{key: "q", collection: "rbac-policies", res: neutron.RBACPolicyResource,
		visible: callers(callerB, callerAdmin)}

	allObjects    = []object{objG, objR, objRD, objS, objNA, objSB, objSA, objPA, objPD, objP, objQ}
	taggedObjects = []object{objG, objS, objNA, objSB, objSA, objPA, objPD}
)

// notFoundType is the error a caller who cannot see an object gets.
var notFoundType = map[string]string{
	"security-groups": "SecurityGroupNotFound", "security-group-rules": "HTTPNotFound", "networks": "NetworkNotFound",
	"subnets": "SubnetNotFound", "ports": "PortNotFound", "rbac-policies": "RbacPolicyNotFound",
}

// row is one verb on one object, for every caller.
type row struct {
	name   string
	method string
	path   func(f *fixture, c who) string
	body   func(f *fixture, c who) any
	want   [nCallers]cell
	// destructive: a success leaves nothing for the next caller to
	// succeed on (a delete), so every success gets a fresh fixture.
	destructive bool
}

func objPath(o object, suffix string) func(*fixture, who) string {
	return func(f *fixture, _ who) string { return o.collection + "/" + f.id[o.key] + suffix }
}

func fixed(path string) func(*fixture, who) string { return func(*fixture, who) string { return path } }

func body(v map[string]any) func(*fixture, who) any { return func(*fixture, who) any { return v } }

// showRows: GET of each object; 404 for whoever may not see it.
func showRows() []row {
	var rows []row
	for _, o := range allObjects {
		rows = append(rows, row{name: "show " + o.key, method: http.MethodGet, path: objPath(o, ""),
			want: per(o.visible, ok200, notFound(notFoundType[o.collection]))})
	}
	return rows
}

// tagRows: the tag routes of each taggable object. Reads follow the
// object's visibility (Neutron 21: the tag plugin loads the object through
// the caller's scoped query). moat: writes need the right to change the
// object, 403 otherwise (the update_<collection>_tags and
// delete_<collection>_tags policies of later Neutron releases); Neutron 21
// lets anyone who sees an object retag it.
func tagRows() []row {
	var rows []row
	for _, o := range taggedObjects {
		gone := notFound("TagResourceNotFound")
		write := func(success cell) [nCallers]cell {
			out := per(o.visible, denied, gone)
			for c := range nCallers {
				if o.mayTag[c] {
					out[c] = success
				}
			}
			return out
		}
		rows = append(rows,
			row{name: "get tags of " + o.key, method: http.MethodGet, path: objPath(o, "/tags"), want: per(o.visible, ok200, gone)},
			row{name: "get tag t1 of " + o.key, method: http.MethodGet, path: objPath(o, "/tags/t1"), want: per(o.visible, noContent204, gone)},
			row{name: "replace tags of " + o.key, method: http.MethodPut, path: objPath(o, "/tags"),
				body: body(map[string]any{"tags": []string{"x"}}), want: write(ok200)},
			row{name: "add tag x to " + o.key, method: http.MethodPut, path: objPath(o, "/tags/x"), want: write(created201)},
			row{name: "remove tag t1 of " + o.key, method: http.MethodDelete, path: objPath(o, "/tags/t1"), want: write(noContent204), destructive: true},
			row{name: "remove all tags of " + o.key, method: http.MethodDelete, path: objPath(o, "/tags"), want: write(noContent204), destructive: true},
		)
	}
	return rows
}

// w is a row of cells in caller order A, B, C, D, admin.
func want5(a, b, c, d, adm cell) [nCallers]cell { return [nCallers]cell{a, b, c, d, adm} }

func updateRows() []row {
	sgNF, netNF, subNF, portNF, rbacNF := notFound("SecurityGroupNotFound"), notFound("NetworkNotFound"),
		notFound("SubnetNotFound"), notFound("PortNotFound"), notFound("RbacPolicyNotFound")
	put := func(o object, what string, attrs map[string]any, want [nCallers]cell) row {
		singular := o.res.Singular
		return row{name: "update " + o.key + " " + what, method: http.MethodPut, path: objPath(o, ""),
			body: body(map[string]any{singular: attrs}), want: want}
	}
	return []row{
		// update_security_group: admin_or_owner; D sees g, so 403.
		put(objG, "name", map[string]any{"name": "renamed"}, want5(ok200, sgNF, sgNF, denied, ok200)),
		// In use by pa and pd: SecurityGroupInUse after the policy.
		put(objG, "stateful", map[string]any{"stateful": false}, want5(conflict("SecurityGroupInUse"), sgNF, sgNF, denied, conflict("SecurityGroupInUse"))),
		// moat: Neutron 21 answers 500 (ML2 has no update_security_group_rule).
		put(objR, "description", map[string]any{"description": "x"}, want5(ok200, notFound("HTTPNotFound"), notFound("HTTPNotFound"), notFound("HTTPNotFound"), ok200)),
		// update_network: admin_or_owner; s is shared, so the others see it: 403.
		put(objS, "name", map[string]any{"name": "renamed"}, want5(denied, ok200, denied, denied, ok200)),
		// update_network:shared is admin_only, whatever the value; unsharing
		// while A's and D's ports are on it is InvalidSharedSetting.
		put(objS, "shared false", map[string]any{"shared": false}, want5(denied, denied, denied, denied, conflict("InvalidSharedSetting"))),
		put(objNA, "name", map[string]any{"name": "renamed"}, want5(ok200, netNF, netNF, netNF, ok200)),
		put(objNA, "shared false", map[string]any{"shared": false}, want5(denied, netNF, netNF, netNF, ok200)),
		put(objNA, "shared true", map[string]any{"shared": true}, want5(denied, netNF, netNF, netNF, ok200)),
		// update_subnet: admin_or_network_owner (or the subnet's project).
		put(objSB, "name", map[string]any{"name": "renamed"}, want5(denied, ok200, denied, denied, ok200)),
		put(objSA, "name", map[string]any{"name": "renamed"}, want5(ok200, subNF, subNF, subNF, ok200)),
		// update_port: admin_or_owner; B sees pa (its network) but may not
		// change it.
		put(objPA, "name", map[string]any{"name": "renamed"}, want5(ok200, denied, portNF, portNF, ok200)),
		put(objPA, "security_groups", map[string]any{"security_groups": []string{}}, want5(ok200, denied, portNF, portNF, ok200)),
		// update_port:port_security_enabled: advsvc or admin_or_network_owner.
		put(objPA, "port security off", map[string]any{"port_security_enabled": false, "security_groups": []string{}}, want5(denied, denied, portNF, portNF, ok200)),
		// update_port:device_owner: network:* owners for the network's owner,
		// and only with update_port.
		put(objPA, "device_owner network:*", map[string]any{"device_owner": "network:router_interface"}, want5(denied, denied, portNF, portNF, ok200)),
		put(objPA, "device_owner compute:*", map[string]any{"device_owner": "compute:nova"}, want5(ok200, denied, portNF, portNF, ok200)),
		// update_port:binding:host_id and :binding:profile: admin_only, even
		// set to their defaults.
		put(objPA, "binding:host_id empty", map[string]any{"binding:host_id": ""}, want5(denied, denied, portNF, portNF, ok200)),
		put(objPA, "binding:profile empty", map[string]any{"binding:profile": map[string]any{}}, want5(denied, denied, portNF, portNF, ok200)),
		// update_port:fixed_ips: advsvc or admin_or_network_owner (no
		// rule:shared on update).
		put(objPA, "fixed_ips", map[string]any{"fixed_ips": []map[string]any{{"subnet_id": "SB"}}}, want5(denied, denied, portNF, portNF, ok200)),
		// update_port:mac_address: admin_only or advsvc.
		put(objPA, "mac_address", map[string]any{"mac_address": "fa:16:3e:00:00:99"}, want5(denied, denied, portNF, portNF, ok200)),
		// update_port:allowed_address_pairs: admin_or_network_owner.
		put(objPA, "allowed_address_pairs", map[string]any{"allowed_address_pairs": []map[string]any{{"ip_address": "10.1.0.200"}}}, want5(denied, denied, portNF, portNF, ok200)),
		put(objPD, "name", map[string]any{"name": "renamed"}, want5(portNF, denied, portNF, ok200, ok200)),
		// update_rbac_policy: admin_or_owner of the policy. p is what pd's
		// use of g rests on: RbacPolicyInUse.
		put(objP, "target_tenant", map[string]any{"target_tenant": projectE}, want5(conflict("RbacPolicyInUse"), rbacNF, rbacNF, rbacNF, conflict("RbacPolicyInUse"))),
		// "Only admins can manipulate policies on objects they do not own":
		// B holds q but does not own g. moat: 403; Neutron 21 wraps the
		// callback's InvalidInput in a 409 RbacPolicyInUse.
		put(objQ, "target_tenant", map[string]any{"target_tenant": projectF}, want5(rbacNF, notOwner, rbacNF, rbacNF, ok200)),
		put(objQ, "target_tenant *", map[string]any{"target_tenant": "*"}, want5(rbacNF, denied, rbacNF, rbacNF, ok200)),
	}
}

func deleteRows() []row {
	sgNF, netNF, subNF, portNF, rbacNF := notFound("SecurityGroupNotFound"), notFound("NetworkNotFound"),
		notFound("SubnetNotFound"), notFound("PortNotFound"), notFound("RbacPolicyNotFound")
	del := func(o object, want [nCallers]cell) row {
		return row{name: "delete " + o.key, method: http.MethodDelete, path: objPath(o, ""), want: want, destructive: true}
	}
	inUse := conflict
	return []row{
		// delete_security_group: admin_or_owner, then SecurityGroupInUse.
		del(objG, want5(inUse("SecurityGroupInUse"), sgNF, sgNF, denied, inUse("SecurityGroupInUse"))),
		// delete_security_group_rule: admin_or_owner.
		del(objR, want5(noContent204, notFound("HTTPNotFound"), notFound("HTTPNotFound"), notFound("HTTPNotFound"), noContent204)),
		// delete_network: admin_or_owner, then NetworkInUse (pa, pd).
		// moat: the owner of g may remove D's rule from it (Neutron 21:
		// 403, delete_security_group_rule is admin_or_owner of the rule).
		del(objRD, want5(noContent204, notFound("HTTPNotFound"), notFound("HTTPNotFound"), noContent204, noContent204)),
		del(objS, want5(denied, inUse("NetworkInUse"), denied, denied, inUse("NetworkInUse"))),
		del(objNA, want5(noContent204, netNF, netNF, netNF, noContent204)),
		// delete_subnet: admin_or_network_owner, then SubnetInUse.
		del(objSB, want5(denied, inUse("SubnetInUse"), denied, denied, inUse("SubnetInUse"))),
		del(objSA, want5(noContent204, subNF, subNF, subNF, noContent204)),
		// delete_port: advsvc or admin_owner_or_network_owner: the owner of
		// the network may remove ports from it.
		del(objPA, want5(noContent204, noContent204, portNF, portNF, noContent204)),
		del(objPD, want5(portNF, noContent204, portNF, noContent204, noContent204)),
		// delete_rbac_policy: admin_or_owner; pd depends on p.
		del(objP, want5(inUse("RbacPolicyInUse"), rbacNF, rbacNF, rbacNF, inUse("RbacPolicyInUse"))),
		// Giving up a share is always the holder's to do.
		del(objQ, want5(rbacNF, noContent204, rbacNF, rbacNF, noContent204)),
	}
}

// createRows: creates that name a fixture object, each caller for its own
// project.
func createRows() []row {
	post := func(name, collection, singular string, attrs func(f *fixture, c who) map[string]any, want [nCallers]cell) row {
		return row{name: name, method: http.MethodPost, path: fixed(collection),
			body: func(f *fixture, c who) any { return map[string]any{singular: attrs(f, c)} }, want: want}
	}
	sgNF, netNF := notFound("SecurityGroupNotFound"), notFound("NetworkNotFound")
	return []row{
		// A port may use the caller's groups and those shared with it.
		post("port on s with g", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "security_groups": []string{f.id["g"]}}
		}, want5(created201, sgNF, sgNF, created201, created201)),
		// create_security_group_rule: admin_or_owner (of the rule, which is
		// the caller's). moat: D, whom g is shared with, may use g but not
		// add rules to it (Neutron 21: 201).
		post("rule in g", "security-group-rules", "security_group_rule", func(f *fixture, c who) map[string]any {
			port := 1000 + int(c)
			return map[string]any{"security_group_id": f.id["g"], "direction": "ingress", "protocol": "udp", "port_range_min": port, "port_range_max": port}
		}, want5(created201, sgNF, sgNF, denied, created201)),
		// A remote group must be the rule's project's or shared with it.
		post("rule with remote group g", "security-group-rules", "security_group_rule", func(f *fixture, c who) map[string]any {
			return map[string]any{"security_group_id": f.id["mine:"+c.String()], "direction": "ingress", "remote_group_id": f.id["g"]}
		}, want5(created201, sgNF, sgNF, created201, created201)),
		// Only the group's owner (or an admin) shares it: Neutron 21's
		// callback answers the others InvalidInput.
		post("rbac policy on g", "rbac-policies", "rbac_policy", func(f *fixture, c who) map[string]any {
			return map[string]any{"object_type": "security_group", "object_id": f.id["g"], "action": "access_as_shared",
				"target_tenant": fmt.Sprintf("%s-%d", projectF, c)}
		}, want5(created201, notOwner, notOwner, notOwner, created201)),
		// create_port on a shared network: anyone.
		post("port on s", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"]}
		}, want5(created201, created201, created201, created201, created201)),
		// create_port:fixed_ips:subnet_id has rule:shared...
		post("port on s in subnet sb", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "fixed_ips": []map[string]any{{"subnet_id": f.id["sb"]}}}
		}, want5(created201, created201, created201, created201, created201)),
		// ...create_port:fixed_ips:ip_address does not.
		post("port on s with an address", "ports", "port", func(f *fixture, c who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "fixed_ips": []map[string]any{{"ip_address": fmt.Sprintf("10.1.0.%d", 100+int(c))}}}
		}, want5(denied, created201, denied, denied, created201)),
		// create_port:port_security_enabled and :device_owner network:*
		// are for the network's owner.
		post("port on s without port security", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "port_security_enabled": false}
		}, want5(denied, created201, denied, denied, created201)),
		post("port on s as network:router_interface", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "device_owner": "network:router_interface"}
		}, want5(denied, created201, denied, denied, created201)),
		// create_port:binding:host_id is admin_only.
		post("port on s bound to a host", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "binding:host_id": "host-1"}
		}, want5(denied, denied, denied, denied, created201)),
		// binding:host_id has no default in Neutron: even "" is explicit.
		post("port on s with an empty binding:host_id", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "binding:host_id": ""}
		}, want5(denied, denied, denied, denied, created201)),
		// moat: only the network's owner adds subnets (Neutron 21 lets any
		// member add one to a shared network).
		post("subnet on s", "subnets", "subnet", func(f *fixture, c who) map[string]any {
			return map[string]any{"network_id": f.id["s"], "cidr": fmt.Sprintf("10.3.%d.0/24", c), "ip_version": 4}
		}, want5(denied, created201, denied, denied, created201)),
		post("port on na", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["na"]}
		}, want5(created201, netNF, netNF, netNF, created201)),
		post("port on na in subnet sa", "ports", "port", func(f *fixture, _ who) map[string]any {
			return map[string]any{"network_id": f.id["na"], "fixed_ips": []map[string]any{{"subnet_id": f.id["sa"]}}}
		}, want5(created201, netNF, netNF, netNF, created201)),
		post("subnet on na", "subnets", "subnet", func(f *fixture, c who) map[string]any {
			return map[string]any{"network_id": f.id["na"], "cidr": fmt.Sprintf("10.4.%d.0/24", c), "ip_version": 4}
		}, want5(created201, netNF, netNF, netNF, created201)),
	}
}

// quotaRows: get_quota, update_quota and delete_quota are admin_only; a
// project reads its own quotas without the policy.
func quotaRows() []row {
	a := "quotas/" + projectA.project
	adminRequired := cell{403, "AdminRequired"}
	return []row{
		{name: "list quotas", method: http.MethodGet, path: fixed("quotas"), want: want5(denied, denied, denied, denied, ok200)},
		{name: "show A's quota", method: http.MethodGet, path: fixed(a), want: want5(ok200, denied, denied, denied, ok200)},
		{name: "show A's default quota", method: http.MethodGet, path: fixed(a + "/default"), want: want5(ok200, denied, denied, denied, ok200)},
		{name: "show A's quota details", method: http.MethodGet, path: fixed(a + "/details"), want: want5(ok200, adminRequired, adminRequired, adminRequired, ok200)},
		{name: "update A's quota", method: http.MethodPut, path: fixed(a), body: body(map[string]any{"quota": map[string]any{"port": 60}}),
			want: want5(denied, denied, denied, denied, ok200)},
		{name: "delete A's quota", method: http.MethodDelete, path: fixed(a), want: want5(denied, denied, denied, denied, noContent204), destructive: true},
	}
}

// resolve replaces the placeholders of a body ("SB") with fixture ids.
func resolve(f *fixture, v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = resolve(f, e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolve(f, e)
		}
		return out
	case string:
		if id, ok := f.id[strings.ToLower(x)]; ok && x == strings.ToUpper(x) {
			return id
		}
	}
	return v
}

func (rw row) send(t *testing.T, f *fixture, c who) {
	t.Helper()
	var b any
	if rw.body != nil {
		b = resolve(f, rw.body(f, c))
	}
	path := rw.path(f, c)
	status, out := f.call(t, c, rw.method, path, b)
	check(t, c, rw.method, path, rw.want[c], status, out)
}

// run plays a row: the refusals first, on one fixture, which they must
// leave exactly as it was; then the successes, on that fixture or, for
// destructive rows, each on a fresh one.
func (rw row) run(t *testing.T, read *fixture) {
	if rw.method == http.MethodGet {
		for c := range nCallers {
			rw.send(t, read, c)
		}
		return
	}
	f := newFixture(t)
	before := f.snapshot(t)
	var successes []who
	for c := range nCallers {
		if rw.want[c].status >= 300 {
			rw.send(t, f, c)
		} else {
			successes = append(successes, c)
		}
	}
	if after := f.snapshot(t); after != before {
		t.Errorf("refused requests changed the state: %s", firstDifference(before, after))
	}
	for i, c := range successes {
		if rw.destructive && i > 0 {
			f = newFixture(t)
		}
		rw.send(t, f, c)
	}
}

// firstDifference shows the first line of two snapshots that differs,
// shortened.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			short := func(s string) string {
				if len(s) > 3000 {
					return s[:3000] + "..."
				}
				return s
			}
			return "\nbefore: " + short(al[i]) + "\nafter:  " + short(bl[i])
		}
	}
	return "(line count changed)"
}

func TestIsolationMatrix(t *testing.T) {
	read := newFixture(t)
	var rows []row
	for _, group := range [][]row{showRows(), tagRows(), updateRows(), deleteRows(), createRows(), quotaRows()} {
		rows = append(rows, group...)
	}
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) { rw.run(t, read) })
	}
}

// filterValue renders a JSON value as a query value; ok is false for
// what a query cannot express (null, lists, objects).
func filterValue(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool, float64, json.Number:
		return fmt.Sprint(x), true
	}
	return "", false
}

// listQueries are one query per filter attribute of o's resource, with the
// object's value (as the caller sees it when it may, as the admin does
// otherwise), plus no filter and fields=id.
func listQueries(o object, view, adminView map[string]any) []string {
	qs := []string{"", "fields=id"}
	val := func(name string) (any, bool) {
		if v, ok := view[name]; ok {
			return v, true
		}
		v, ok := adminView[name]
		return v, ok
	}
	for _, a := range o.res.Attrs {
		if !a.Filter {
			continue
		}
		switch a.Name {
		case "tags":
			qs = append(qs, "tags=t1")
		case "tags-any":
			qs = append(qs, "tags-any=t1,zz")
		case "not-tags", "not-tags-any":
			qs = append(qs, a.Name+"=zz")
		case "fixed_ips":
			v, _ := val("fixed_ips")
			for _, ip := range v.([]any) {
				m := ip.(map[string]any)
				qs = append(qs, "fixed_ips="+url.QueryEscape("ip_address="+m["ip_address"].(string)),
					"fixed_ips="+url.QueryEscape("subnet_id="+m["subnet_id"].(string)))
			}
		case "security_groups":
			v, _ := val("security_groups")
			for _, g := range v.([]any) {
				qs = append(qs, "security_groups="+url.QueryEscape(g.(string)))
			}
		default:
			v, present := val(a.Name)
			if s, ok := filterValue(v); present && ok {
				qs = append(qs, url.QueryEscape(a.Name)+"="+url.QueryEscape(s))
			}
		}
	}
	return qs
}

// TestIsolationMatrixLists: each object is in a caller's list, whatever
// single filter matches it, exactly when the caller may see it.
func TestIsolationMatrixLists(t *testing.T) {
	f := newFixture(t)
	show := func(c who, o object) map[string]any {
		status, b := f.call(t, c, http.MethodGet, o.collection+"/"+f.id[o.key], nil)
		if status != 200 {
			return nil
		}
		var top map[string]map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&top); err != nil {
			t.Fatalf("show %s as %s: %v", o.key, c, err)
		}
		return top[o.res.Singular]
	}
	for _, o := range allObjects {
		t.Run(o.key, func(t *testing.T) {
			adminView := show(callerAdmin, o)
			for c := range nCallers {
				view := show(c, o)
				if (view != nil) != o.visible[c] {
					t.Errorf("show %s as %s: visible %v, want %v", o.key, c, view != nil, o.visible[c])
				}
				for _, q := range listQueries(o, view, adminView) {
					status, b := f.call(t, c, http.MethodGet, o.collection+"?"+q, nil)
					if status != 200 {
						t.Errorf("GET %s?%s as %s: %d %s", o.collection, q, c, status, b)
						continue
					}
					var top map[string][]map[string]any
					if err := json.Unmarshal(b, &top); err != nil {
						t.Fatalf("GET %s?%s: %v", o.collection, q, err)
					}
					var ids []string
					for _, it := range top[o.res.Plural] {
						id, _ := it["id"].(string)
						ids = append(ids, id)
					}
					if got := slices.Contains(ids, f.id[o.key]); got != o.visible[c] {
						t.Errorf("GET %s?%s as %s: %s listed %v, want %v", o.collection, q, c, o.key, got, o.visible[c])
					}
				}
			}
		})
	}
}
