package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

// rawRule is a rule body gophercloud's CreateOpts cannot express (an ICMP
// code 0, ports as strings, a missing ethertype): it still goes through
// rules.Create.
type rawRule map[string]any

func (r rawRule) ToSecGroupRuleCreateMap() (map[string]any, error) {
	return map[string]any{"security_group_rule": map[string]any(r)}, nil
}

// jsonRule is the subset of a rule's JSON that normalisation decides; nil
// is JSON null.
type jsonRule struct {
	Protocol, PortMin, PortMax, RemoteIPPrefix, NormalizedCIDR, RemoteGroupID any
	EtherType, Direction                                                      string
}

func jsonRuleOf(m map[string]any) jsonRule {
	return jsonRule{
		Protocol: m["protocol"], PortMin: m["port_range_min"], PortMax: m["port_range_max"],
		RemoteIPPrefix: m["remote_ip_prefix"], NormalizedCIDR: m["normalized_cidr"], RemoteGroupID: m["remote_group_id"],
		EtherType: m["ethertype"].(string), Direction: m["direction"].(string),
	}
}

// showRuleJSON is GET /security-group-rules/{id} as JSON, so that null and 0
// are told apart.
func showRuleJSON(t *testing.T, c *gophercloud.ServiceClient, id string) map[string]any {
	t.Helper()
	body := rawGet(t, c, "security-group-rules/"+id)
	r, ok := body["security_group_rule"].(map[string]any)
	if !ok {
		t.Fatalf("GET rule %s: no security_group_rule in %v", id, body)
	}
	return r
}

func TestRuleCreateNormalisation(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	peer := createGroup(t, e.a, "peer")

	// gophercloud decodes JSON numbers as json.Number.
	f := func(n int) any { return json.Number(strconv.Itoa(n)) }
	tests := []struct {
		name string
		opts rules.CreateOptsBuilder
		want jsonRule
	}{
		{"tcp 22", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22},
			jsonRule{"tcp", f(22), f(22), nil, nil, nil, "IPv4", "ingress"}},
		{"tcp range", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 1000, PortRangeMax: 2000, Description: "app ports"},
			jsonRule{"tcp", f(1000), f(2000), nil, nil, nil, "IPv4", "ingress"}},
		{"tcp all ports is no range", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 1, PortRangeMax: 65535, RemoteIPPrefix: "192.0.2.0/24"},
			jsonRule{"tcp", nil, nil, "192.0.2.0/24", "192.0.2.0/24", nil, "IPv4", "ingress"}},
		{"upper-case TCP", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "TCP", PortRangeMin: 443, PortRangeMax: 443},
			jsonRule{"tcp", f(443), f(443), nil, nil, nil, "IPv4", "ingress"}},
		{"ports as strings", rawRule{"direction": "ingress", "security_group_id": web.ID, "protocol": "udp", "port_range_min": "53", "port_range_max": "53"},
			jsonRule{"udp", f(53), f(53), nil, nil, nil, "IPv4", "ingress"}},
		{"protocol number 4", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "4"},
			jsonRule{"4", nil, nil, nil, nil, nil, "IPv4", "ingress"}},
		{"protocol name ipip", rules.CreateOpts{Direction: "egress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "ipip"},
			jsonRule{"ipip", nil, nil, nil, nil, nil, "IPv4", "egress"}},
		{"protocol number 132 with ports", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "132", PortRangeMin: 9, PortRangeMax: 9},
			jsonRule{"132", f(9), f(9), nil, nil, nil, "IPv4", "ingress"}},
		{"icmp type 8 code 0", rawRule{"direction": "ingress", "ethertype": "IPv4", "security_group_id": web.ID, "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
			jsonRule{"icmp", f(8), f(0), nil, nil, nil, "IPv4", "ingress"}},
		{"icmp type 3 code 4", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "icmp", PortRangeMin: 3, PortRangeMax: 4},
			jsonRule{"icmp", f(3), f(4), nil, nil, nil, "IPv4", "ingress"}},
		{"icmp type only", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "icmp", PortRangeMin: 11},
			jsonRule{"icmp", f(11), nil, nil, nil, nil, "IPv4", "ingress"}},
		{"udp egress all ports", rules.CreateOpts{Direction: "egress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "udp"},
			jsonRule{"udp", nil, nil, nil, nil, nil, "IPv4", "egress"}},
		{"remote group", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 5432, PortRangeMax: 5432, RemoteGroupID: peer.ID},
			jsonRule{"tcp", f(5432), f(5432), nil, nil, peer.ID, "IPv4", "ingress"}},
		{"remote group itself", rules.CreateOpts{Direction: "ingress", EtherType: "IPv6", SecGroupID: web.ID, RemoteGroupID: web.ID},
			jsonRule{nil, nil, nil, nil, nil, web.ID, "IPv6", "ingress"}},
		{"bare address gets /32", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 80, PortRangeMax: 80, RemoteIPPrefix: "10.1.2.3"},
			jsonRule{"tcp", f(80), f(80), "10.1.2.3/32", "10.1.2.3/32", nil, "IPv4", "ingress"}},
		{"host bits kept, normalized_cidr masked", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 81, PortRangeMax: 81, RemoteIPPrefix: "10.1.2.3/8"},
			jsonRule{"tcp", f(81), f(81), "10.1.2.3/8", "10.0.0.0/8", nil, "IPv4", "ingress"}},
		{"0.0.0.0/0 kept", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 82, PortRangeMax: 82, RemoteIPPrefix: "0.0.0.0/0"},
			jsonRule{"tcp", f(82), f(82), "0.0.0.0/0", "0.0.0.0/0", nil, "IPv4", "ingress"}},
		{"IPv6 ::/0", rules.CreateOpts{Direction: "egress", EtherType: "IPv6", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 443, PortRangeMax: 443, RemoteIPPrefix: "::/0"},
			jsonRule{"tcp", f(443), f(443), "::/0", "::/0", nil, "IPv6", "egress"}},
		{"IPv6 prefix lower-cased", rules.CreateOpts{Direction: "ingress", EtherType: "IPv6", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "2001:DB8::/64"},
			jsonRule{"tcp", f(22), f(22), "2001:db8::/64", "2001:db8::/64", nil, "IPv6", "ingress"}},
		{"icmp with IPv6 is ipv6-icmp", rules.CreateOpts{Direction: "ingress", EtherType: "IPv6", SecGroupID: web.ID, Protocol: "icmp"},
			jsonRule{"ipv6-icmp", nil, nil, nil, nil, nil, "IPv6", "ingress"}},
		{"58 with IPv6 stays 58", rules.CreateOpts{Direction: "egress", EtherType: "IPv6", SecGroupID: web.ID, Protocol: "58", PortRangeMin: 135},
			jsonRule{"58", f(135), nil, nil, nil, nil, "IPv6", "egress"}},
		{"ethertype defaults to IPv4", rawRule{"direction": "egress", "security_group_id": web.ID, "protocol": "gre"},
			jsonRule{"gre", nil, nil, nil, nil, nil, "IPv4", "egress"}},
		{"lower-case ethertype", rawRule{"direction": "egress", "ethertype": "ipv6", "security_group_id": web.ID, "protocol": "esp"},
			jsonRule{"esp", nil, nil, nil, nil, nil, "IPv6", "egress"}},
	}

	created := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := rules.Create(t.Context(), e.a, tc.opts).Extract()
			noErr(t, err, "create")
			created[r.ID] = true
			if r.SecGroupID != web.ID || r.ProjectID != projectA.project || r.TenantID != projectA.project || r.RevisionNumber != 0 {
				t.Errorf("created rule: security_group_id %s project %s/%s revision %d", r.SecGroupID, r.ProjectID, r.TenantID, r.RevisionNumber)
			}
			if got := jsonRuleOf(showRuleJSON(t, e.a, r.ID)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("GET rule:\n got %#v\nwant %#v", got, tc.want)
			}
			// gophercloud's view of the create answer agrees with the GET.
			got := getRule(t, e.a, r.ID)
			if shapeOf(*got) != shapeOf(*r) || got.Description != r.Description {
				t.Errorf("GET %+v differs from the create answer %+v", shapeOf(*got), shapeOf(*r))
			}
			if o, ok := tc.opts.(rules.CreateOpts); ok && r.Description != o.Description {
				t.Errorf("description = %q, want %q", r.Description, o.Description)
			}
		})
	}

	// Listing the group's rules gives exactly its 2 default egress rules and
	// the ones created here; each rule added bumped the group's revision.
	listed := listRules(t, e.a, rules.ListOpts{SecGroupID: web.ID})
	if len(listed) != len(created)+2 {
		t.Errorf("listed %d rules of web, want %d created + 2 default", len(listed), len(created))
	}
	for _, r := range listed {
		if !created[r.ID] && !(r.Direction == "egress" && r.Protocol == "" && r.RemoteIPPrefix == "") {
			t.Errorf("unexpected rule listed: %+v", shapeOf(r))
		}
	}
	g := getGroup(t, e.a, web.ID)
	if g.RevisionNumber != 1+len(created) {
		t.Errorf("web revision_number = %d after %d rules added, want %d", g.RevisionNumber, len(created), 1+len(created))
	}
	if len(g.Rules) != len(listed) {
		t.Errorf("web embeds %d rules, list gave %d", len(g.Rules), len(listed))
	}
}

func TestRuleDuplicates(t *testing.T) {
	e := newEnv(t, nil)
	g := createGroup(t, e.a, "dups")
	rule := func(proto string, min, max int, descr string) rules.CreateOpts {
		return rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID,
			Protocol: rules.RuleProtocol(proto), PortRangeMin: min, PortRangeMax: max, Description: descr}
	}
	tcp22 := createRule(t, e.a, rule("tcp", 22, 22, ""))
	ipip := createRule(t, e.a, rule("ipip", 0, 0, ""))
	icmp := createRule(t, e.a, rule("icmp", 8, 0, ""))
	g2 := createGroup(t, e.a, "dups-by-number")
	four := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g2.ID, Protocol: "4"})
	host := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g2.ID, Protocol: "udp", RemoteIPPrefix: "10.1.2.3"})

	tests := []struct {
		name  string
		opts  rules.CreateOpts
		dupOf string
	}{
		{"same tcp 22", rule("tcp", 22, 22, ""), tcp22.ID},
		{"6 is tcp", rule("6", 22, 22, ""), tcp22.ID},
		{"TCP is tcp", rule("TCP", 22, 22, ""), tcp22.ID},
		{"description ignored", rule("tcp", 22, 22, "other"), tcp22.ID},
		{"4 is ipip", rule("4", 0, 0, ""), ipip.ID},
		{"1 is icmp", rule("1", 8, 0, ""), icmp.ID},
		{"ipip is 4", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g2.ID, Protocol: "ipip"}, four.ID},
		{"10.1.2.3/32 is 10.1.2.3", rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g2.ID, Protocol: "udp", RemoteIPPrefix: "10.1.2.3/32"}, host.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Create(t.Context(), e.a, tc.opts).Extract()
			wantError(t, err, http.StatusConflict, "SecurityGroupRuleExists",
				fmt.Sprintf("Security group rule already exists. Rule id is %s.", tc.dupOf))
		})
	}
	// Not duplicates: another direction, another port, another group.
	createRule(t, e.a, rules.CreateOpts{Direction: "egress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	createRule(t, e.a, rule("tcp", 23, 23, ""))
	createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g2.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	if n := len(listRules(t, e.a, rules.ListOpts{SecGroupID: g.ID})); n != 2+3+2 {
		t.Errorf("group dups has %d rules, want 7", n)
	}
}

const invalidProtocolTail = " not supported. Only protocol values [None, 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', 'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp'] and integer representations [0 to 255] are supported."

func TestRuleErrors(t *testing.T) {
	e := newEnv(t, nil)
	g := createGroup(t, e.a, "web")
	other := createGroup(t, e.a, "other")
	gB := createGroup(t, e.b, "b")
	base := func(extra rawRule) rawRule {
		r := rawRule{"security_group_id": g.ID, "direction": "ingress", "ethertype": "IPv4"}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	missing := "00000000-0000-0000-0000-000000000000"

	tests := []struct {
		name    string
		client  *gophercloud.ServiceClient
		body    rawRule
		status  int
		typ     string
		message string
	}{
		{"IPv6 prefix with IPv4", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "2001:db8::/64"}),
			400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64"},
		{"IPv4 prefix with IPv6", e.a, base(rawRule{"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
			400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8"},
		{"garbage prefix", e.a, base(rawRule{"remote_ip_prefix": "not-a-cidr"}),
			400, "InvalidCIDR", "Invalid CIDR not-a-cidr given as IP prefix."},
		{"protocol 256", e.a, base(rawRule{"protocol": "256"}),
			400, "SecurityGroupRuleInvalidProtocol", "Security group rule protocol 256" + invalidProtocolTail},
		{"protocol foo", e.a, base(rawRule{"protocol": "foo"}),
			400, "SecurityGroupRuleInvalidProtocol", "Security group rule protocol foo" + invalidProtocolTail},
		{"min greater than max", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}),
			400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max"},
		{"only min port", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 80}),
			400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max"},
		{"port 0", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 0, "port_range_max": 0}),
			400, "SecurityGroupInvalidPortValue", "Invalid value for port 0"},
		{"port 65536", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}),
			400, "SecurityGroupInvalidPortValue", "Invalid value for port 65536"},
		{"ports without protocol", e.a, base(rawRule{"port_range_min": 22, "port_range_max": 22}),
			400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given."},
		{"ports with gre", e.a, base(rawRule{"protocol": "47", "port_range_min": 1, "port_range_max": 2}),
			400, "SecurityGroupInvalidProtocolForPort", "Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."},
		{"icmp code without type", e.a, base(rawRule{"protocol": "icmp", "port_range_max": 1}),
			400, "SecurityGroupMissingIcmpType", "ICMP code (port-range-max) 1 is provided but ICMP type (port-range-min) is missing."},
		{"icmp type 256", e.a, base(rawRule{"protocol": "icmp", "port_range_min": 256, "port_range_max": 0}),
			400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP type (port_range_min) 256. It must be 0 to 255."},
		{"icmpv6 with IPv4", e.a, base(rawRule{"protocol": "icmpv6"}),
			400, "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype IPv4 for protocol icmpv6."},
		{"remote group and prefix", e.a, base(rawRule{"protocol": "tcp", "remote_group_id": other.ID, "remote_ip_prefix": "10.0.0.0/8"}),
			400, "SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided."},
		{"ethertype IPv5", e.a, base(rawRule{"ethertype": "IPv5"}),
			400, "SecurityGroupRuleInvalidEtherType", "Security group rule for ethertype 'IPv5' not supported. Allowed values are ['IPv4', 'IPv6']."},
		{"direction inbound", e.a, base(rawRule{"direction": "inbound"}),
			400, "HTTPBadRequest", "Invalid input for direction. Reason: inbound is not in valid_values."},
		{"missing direction", e.a, rawRule{"security_group_id": g.ID, "ethertype": "IPv4"},
			400, "HTTPBadRequest", "Failed to parse request. Required attribute 'direction' not specified"},
		{"unknown attribute", e.a, base(rawRule{"foo": "bar"}),
			400, "HTTPBadRequest", "Unrecognized attribute(s) 'foo'"},
		{"missing group", e.a, base(rawRule{"security_group_id": missing}),
			404, "SecurityGroupNotFound", "Security group " + missing + " does not exist"},
		{"another project's group", e.b, base(rawRule{"protocol": "tcp", "port_range_min": 1, "port_range_max": 1}),
			404, "SecurityGroupNotFound", "Security group " + g.ID + " does not exist"},
		{"another project's remote group", e.a, base(rawRule{"protocol": "tcp", "port_range_min": 1, "port_range_max": 1, "remote_group_id": gB.ID}),
			404, "SecurityGroupNotFound", "Security group " + gB.ID + " does not exist"},
		{"missing remote group", e.a, base(rawRule{"protocol": "tcp", "remote_group_id": missing}),
			404, "SecurityGroupNotFound", "Security group " + missing + " does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Create(t.Context(), tc.client, tc.body).Extract()
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}
	// Nothing was created by the refused requests.
	if n := len(listRules(t, e.a, rules.ListOpts{SecGroupID: g.ID})); n != 2 {
		t.Errorf("group web has %d rules after only refused creates, want its 2 defaults", n)
	}
}

func TestRuleGetDelete(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	g := createGroup(t, e.a, "web")
	r := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	missing := "00000000-0000-0000-0000-000000000000"

	// Another project cannot see or delete it: Neutron's policy engine
	// answers the generic 404.
	_, err := rules.Get(ctx, e.b, r.ID).Extract()
	wantError(t, err, 404, "HTTPNotFound", "The resource could not be found.")
	wantError(t, rules.Delete(ctx, e.b, r.ID).ExtractErr(), 404, "HTTPNotFound", "The resource could not be found.")
	_, err = rules.Get(ctx, e.a, missing).Extract()
	wantError(t, err, 404, "SecurityGroupRuleNotFound", "Security group rule "+missing+" does not exist")
	// An admin sees it.
	if got := getRule(t, e.admin, r.ID); got.ID != r.ID || got.ProjectID != projectA.project {
		t.Errorf("admin GET rule = %s of %s", got.ID, got.ProjectID)
	}
	// Members list only their project's rules.
	for _, rr := range listRules(t, e.b, rules.ListOpts{}) {
		if rr.ProjectID != projectB.project {
			t.Errorf("project B lists rule %s of %s", rr.ID, rr.ProjectID)
		}
	}

	before := getGroup(t, e.a, g.ID).RevisionNumber
	noErr(t, rules.Delete(ctx, e.a, r.ID).ExtractErr(), "delete rule")
	_, err = rules.Get(ctx, e.a, r.ID).Extract()
	wantError(t, err, 404, "SecurityGroupRuleNotFound", "Security group rule "+r.ID+" does not exist")
	wantError(t, rules.Delete(ctx, e.a, r.ID).ExtractErr(), 404, "SecurityGroupRuleNotFound", "Security group rule "+r.ID+" does not exist")
	after := getGroup(t, e.a, g.ID)
	if after.RevisionNumber != before+1 || len(after.Rules) != 2 {
		t.Errorf("group after rule delete: revision %d (before %d), %d rules", after.RevisionNumber, before, len(after.Rules))
	}
	// A default group's rule can be deleted too.
	def := defaultGroup(t, e.a, projectA.project)
	noErr(t, rules.Delete(ctx, e.a, def.Rules[0].ID).ExtractErr(), "delete a default group rule")
	if n := len(getGroup(t, e.a, def.ID).Rules); n != 3 {
		t.Errorf("default group has %d rules after deleting one, want 3", n)
	}
}

func TestRuleBulkCreate(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	g := createGroup(t, e.a, "bulk")
	other := createGroup(t, e.a, "other")
	opts := []rules.CreateOpts{
		{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 80, PortRangeMax: 80},
		{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "4"},
		{Direction: "ingress", EtherType: "IPv6", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 443, PortRangeMax: 443, RemoteIPPrefix: "2001:db8::/32"},
	}
	created, err := rules.CreateBulk(ctx, e.a, opts).Extract()
	noErr(t, err, "bulk create")
	if len(created) != 3 {
		t.Fatalf("bulk create returned %d rules, want 3", len(created))
	}
	for i, r := range created {
		want := ruleShape{string(opts[i].Direction), string(opts[i].EtherType), string(opts[i].Protocol),
			opts[i].PortRangeMin, opts[i].PortRangeMax, opts[i].RemoteIPPrefix, ""}
		if shapeOf(r) != want || r.SecGroupID != g.ID {
			t.Errorf("bulk rule %d = %+v, want %+v", i, shapeOf(r), want)
		}
		if got := getRule(t, e.a, r.ID); shapeOf(*got) != want {
			t.Errorf("GET bulk rule %d = %+v, want %+v", i, shapeOf(*got), want)
		}
	}

	tests := []struct {
		name    string
		opts    []rules.CreateOpts
		status  int
		typ     string
		message string
	}{
		{"duplicate inside the request", []rules.CreateOpts{
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 1, PortRangeMax: 1},
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 1, PortRangeMax: 1},
		}, 409, "DuplicateSecurityGroupRuleInPost", "Duplicate Security Group Rule in POST."},
		{"two groups", []rules.CreateOpts{
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 2, PortRangeMax: 2},
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: other.ID, Protocol: "tcp", PortRangeMin: 2, PortRangeMax: 2},
		}, 400, "SecurityGroupNotSingleGroupRules", "Only allowed to update rules for one security profile at a time"},
		{"duplicate of an existing rule", []rules.CreateOpts{
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 3, PortRangeMax: 3},
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "ipip"},
		}, 409, "SecurityGroupRuleExists", "Security group rule already exists. Rule id is " + created[1].ID + "."},
		{"one invalid rule", []rules.CreateOpts{
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 4, PortRangeMax: 4},
			{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 9, PortRangeMax: 8},
		}, 400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.CreateBulk(ctx, e.a, tc.opts).Extract()
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}
	// A refused bulk request creates nothing.
	if n := len(listRules(t, e.a, rules.ListOpts{SecGroupID: g.ID})); n != 2+3 {
		t.Errorf("bulk group has %d rules, want 5 (2 default + 3 bulk)", n)
	}
}

func TestRuleUpdateDescription(t *testing.T) {
	// Neutron 21 answers this PUT with a 500 (ML2 lacks
	// update_security_group_rule); moat implements what the API defines.
	e := newEnv(t, nil)
	g := createGroup(t, e.a, "web")
	r := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22, Description: "ssh"})

	var out struct {
		Rule rules.SecGroupRule `json:"security_group_rule"`
	}
	err := rawRequest(t, e.a, http.MethodPut, "security-group-rules/"+r.ID,
		map[string]any{"security_group_rule": map[string]any{"description": "ssh from anywhere"}}, nil, &out, 200)
	noErr(t, err, "PUT rule description")
	if out.Rule.Description != "ssh from anywhere" || out.Rule.RevisionNumber != r.RevisionNumber+1 || shapeOf(out.Rule) != shapeOf(*r) {
		t.Errorf("updated rule: description %q revision %d (was %d), shape %+v (was %+v)",
			out.Rule.Description, out.Rule.RevisionNumber, r.RevisionNumber, shapeOf(out.Rule), shapeOf(*r))
	}
	if got := getRule(t, e.a, r.ID); got.Description != "ssh from anywhere" || got.RevisionNumber != r.RevisionNumber+1 {
		t.Errorf("GET after update: description %q revision %d", got.Description, got.RevisionNumber)
	}

	tests := []struct {
		name    string
		client  *gophercloud.ServiceClient
		body    map[string]any
		status  int
		typ     string
		message string
	}{
		{"read-only attribute", e.a, map[string]any{"port_range_min": 23}, 400, "HTTPBadRequest", "Cannot update read-only attribute port_range_min"},
		{"another project", e.b, map[string]any{"description": "x"}, 404, "HTTPNotFound", "The resource could not be found."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := rawRequest(t, tc.client, http.MethodPut, "security-group-rules/"+r.ID,
				map[string]any{"security_group_rule": tc.body}, nil, nil, 200)
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}
	if got := getRule(t, e.a, r.ID); got.Description != "ssh from anywhere" || got.PortRangeMin != 22 {
		t.Errorf("refused updates changed the rule: %+v", got)
	}
}
