package neutron

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ConvertProtocol is Neutron's convert_protocol: an integer 0..255 (JSON
// number or numeric string) is kept as the client spelled it, a name must be
// one Neutron knows and is lower-cased. Unlike Neutron, booleans, lists and
// non-integral numbers are refused (Neutron stores "True", answers 500, or
// stores "4.5"); see docs/compatibility.md.
func ConvertProtocol(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		if n, ok := pyInt(x); ok && !strings.ContainsAny(x.String(), ".eE") {
			if n >= 0 && n <= 255 {
				return x.String(), nil
			}
		}
		return nil, SecurityGroupRuleInvalidProtocol(x.String())
	case string:
		if n, ok := pyInt(x); ok {
			if n >= 0 && n <= 255 {
				return x, nil
			}
			return nil, SecurityGroupRuleInvalidProtocol(x)
		}
		if _, ok := protocolNumbers[strings.ToLower(x)]; ok {
			return strings.ToLower(x), nil
		}
		return nil, SecurityGroupRuleInvalidProtocol(x)
	default:
		return nil, SecurityGroupRuleInvalidProtocol(PyStr(v))
	}
}

// ConvertEthertype matches IPv4/IPv6 case-insensitively.
func ConvertEthertype(v any) (any, error) {
	if s, ok := v.(string); ok {
		for _, et := range Ethertypes {
			if strings.EqualFold(s, et) {
				return et, nil
			}
		}
	}
	return nil, SecurityGroupRuleInvalidEtherType(PyStr(v))
}

// ConvertPort is convert_validate_port_value: nil, or an integer 0..65535
// given as a number or a numeric string. Booleans are refused (Neutron reads
// true as port 1).
func ConvertPort(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if _, isBool := v.(bool); !isBool {
		if n, ok := pyInt(v); ok && n >= 0 && n <= 65535 {
			return int(n), nil
		}
	}
	return nil, SecurityGroupInvalidPortValue(PyStr(v))
}

// ConvertIPPrefix is convert_ip_prefix_to_cidr: empty means no prefix, a
// bare address gets a full-length mask, host bits are kept.
func ConvertIPPrefix(v any) (any, error) {
	if isEmptyBody(v) {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, InvalidCIDR(PyStr(v))
	}
	p, err := ParseCIDR(s)
	if err != nil {
		return nil, InvalidCIDR(s)
	}
	return FormatCIDR(p), nil
}

// convertOptionalID turns "" into nil: Neutron treats an empty remote id as
// absent in its checks but then fails storing it (a foreign-key error, 500).
func convertOptionalID(v any) (any, error) {
	if s, ok := v.(string); ok && s == "" {
		return nil, nil
	}
	return v, nil
}

func projectAttr(name string) Attr {
	return Attr{Name: name, AllowPost: true, Validate: ValidateString(ProjectIDMaxLen), Visible: true, Filter: true, SortKey: true}
}

func standardAttrs(tags bool) []Attr {
	attrs := []Attr{
		{Name: "description", AllowPost: true, AllowPut: true, Default: "", HasDefault: true,
			Validate: ValidateString(DescriptionMaxLen), Visible: true, Filter: true},
	}
	if tags {
		attrs = append(attrs,
			Attr{Name: "tags", Visible: true, Filter: true},
			Attr{Name: "tags-any", Filter: true},
			Attr{Name: "not-tags", Filter: true},
			Attr{Name: "not-tags-any", Filter: true})
	}
	return append(attrs,
		Attr{Name: "created_at", Visible: true},
		Attr{Name: "updated_at", Visible: true},
		Attr{Name: "revision_number", Visible: true, Filter: true, Convert: convertIntFilter},
	)
}

// convertIntFilter lets revision_number filters compare as integers.
func convertIntFilter(v any) (any, error) {
	if s, ok := v.(string); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n, nil
		}
	}
	return v, nil
}

func validateNameNotDefault(v any) error {
	if err := ValidateString(NameMaxLen)(v); err != nil {
		return err
	}
	if strings.EqualFold(v.(string), DefaultSecurityGroupName) {
		return SecurityGroupDefaultAlreadyExists()
	}
	return nil
}

// SecurityGroupResource is the security-groups attribute map with the
// extensions moat implements (stateful, shared filtering, standard
// attributes, tags).
var SecurityGroupResource = &Resource{
	Singular: "security_group",
	Plural:   "security_groups",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true,
			Validate: validateNameNotDefault, Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		{Name: "security_group_rules", Visible: true},
		{Name: "stateful", AllowPost: true, AllowPut: true, Default: true, HasDefault: true,
			Convert: ConvertToBoolean, Visible: true},
		{Name: "shared", Convert: ConvertToBoolean, Visible: true, Filter: true},
		projectAttr("project_id"),
	}, standardAttrs(true)...),
}

// SecurityGroupRuleResource is the security-group-rules attribute map.
var SecurityGroupRuleResource = &Resource{
	Singular: "security_group_rule",
	Plural:   "security_group_rules",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "security_group_id", AllowPost: true, Validate: ValidateString(36), Visible: true, Filter: true, SortKey: true},
		{Name: "remote_group_id", AllowPost: true, HasDefault: true, Convert: convertOptionalID, Visible: true, Filter: true, SortKey: true},
		{Name: "direction", AllowPost: true, Validate: ValidateValues(Ingress, Egress), Visible: true, Filter: true, SortKey: true},
		{Name: "protocol", AllowPost: true, HasDefault: true, Convert: ConvertProtocol, Visible: true, Filter: true, SortKey: true},
		{Name: "port_range_min", AllowPost: true, HasDefault: true, Convert: ConvertPort, Visible: true, Filter: true, SortKey: true},
		{Name: "port_range_max", AllowPost: true, HasDefault: true, Convert: ConvertPort, Visible: true, Filter: true, SortKey: true},
		{Name: "ethertype", AllowPost: true, Default: IPv4, HasDefault: true, Convert: ConvertEthertype,
			Validate: ValidateValues(IPv4, IPv6), Visible: true, Filter: true, SortKey: true},
		{Name: "remote_ip_prefix", AllowPost: true, HasDefault: true, Convert: ConvertIPPrefix, Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		{Name: "normalized_cidr", Visible: true, Filter: true},
		{Name: "remote_address_group_id", AllowPost: true, HasDefault: true, Convert: convertOptionalID, Visible: true, Filter: true, SortKey: true},
		projectAttr("project_id"),
	}, standardAttrs(false)...),
}

// SecurityGroupRequest is a validated security group create or update.
type SecurityGroupRequest struct {
	Request
	Name, Description Opt[string]
	Stateful          Opt[bool]
}

func decodeSecurityGroup(v values, head Request) SecurityGroupRequest {
	return SecurityGroupRequest{Request: head, Name: v.str("name"), Description: v.str("description"),
		Stateful: v.boolean("stateful")}
}

// SecurityGroups validates security group bodies.
var SecurityGroups = &Kind[SecurityGroupRequest]{Resource: SecurityGroupResource, Bulk: true, decode: decodeSecurityGroup}

// RuleRequest is a validated rule create, or an update (which may change
// the description only: Rule.Description is nil unless the body gives it).
// A created rule still goes through NormalizeRule and CheckNewRules.
type RuleRequest struct {
	Request
	Rule SecurityGroupRule
}

func decodeRule(v values, head Request) RuleRequest {
	r := SecurityGroupRule{
		ProjectID: head.ProjectID, Direction: v.str("direction").V, Ethertype: v.str("ethertype").V,
		Protocol: v.optStr("protocol"), RemoteIPPrefix: v.optStr("remote_ip_prefix"), Description: v.optStr("description"),
	}
	if v.has("security_group_id") {
		r.SecurityGroupID = PyStr(v["security_group_id"])
	}
	if n, ok := v["port_range_min"].(int); ok {
		r.PortRangeMin = &n
	}
	if n, ok := v["port_range_max"].(int); ok {
		r.PortRangeMax = &n
	}
	// The remote ids have no validator (Neutron's neither): whatever the
	// client sent, as Python prints it.
	if x := v["remote_group_id"]; x != nil {
		s := PyStr(x)
		r.RemoteGroupID = &s
	}
	if x := v["remote_address_group_id"]; x != nil {
		s := PyStr(x)
		r.RemoteAddressGroupID = &s
	}
	return RuleRequest{Request: head, Rule: r}
}

// SecurityGroupRules validates rule bodies.
var SecurityGroupRules = &Kind[RuleRequest]{Resource: SecurityGroupRuleResource, Bulk: true, decode: decodeRule}

// NormalizeRule applies Neutron's checks of a new rule that need no
// database, in Neutron's order: legacy IPv6 ICMP names, the full port
// range, port range validity, the remote prefix, ethertype versus
// protocol, and at most one remote. CheckNewRules still checks that the
// referenced groups exist and that the rule is not a duplicate.
func NormalizeRule(r *SecurityGroupRule) error {
	// _make_canonical_ipv6_icmp_protocol
	if r.Protocol != nil {
		p := canonicalIPv6ICMP(*r.Protocol, r.Ethertype)
		r.Protocol = &p
	}
	// _make_canonical_port_range
	if r.PortRangeMin != nil && r.PortRangeMax != nil && *r.PortRangeMin == 1 && *r.PortRangeMax == 65535 {
		r.PortRangeMin, r.PortRangeMax = nil, nil
	}
	if err := validatePortRange(r); err != nil {
		return err
	}
	// _validate_ip_prefix
	if r.RemoteIPPrefix != nil {
		p, err := ParseCIDR(*r.RemoteIPPrefix)
		if err != nil {
			return InvalidCIDR(*r.RemoteIPPrefix)
		}
		want := IPv4
		if p.Addr().Is6() {
			want = IPv6
		}
		if r.Ethertype != want {
			return SecurityGroupRuleParameterConflict(r.Ethertype, *r.RemoteIPPrefix)
		}
	}
	// _validate_ethertype_and_protocol
	if r.Protocol != nil && r.Ethertype == IPv4 {
		switch *r.Protocol {
		case "ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
			"41", "44", "58", "59", "60", "43":
			return SecurityGroupEthertypeConflictWithProtocol(r.Ethertype, *r.Protocol)
		}
	}
	// At most one remote.
	remotes := 0
	for _, p := range []*string{r.RemoteIPPrefix, r.RemoteGroupID, r.RemoteAddressGroupID} {
		if p != nil && *p != "" {
			remotes++
		}
	}
	if remotes > 1 {
		return SecurityGroupMultipleRemoteEntites()
	}
	return nil
}

// portProtocols are the protocols whose rules may carry port ranges.
var portProtocols = map[int]bool{ProtoTCP: true, ProtoUDP: true, ProtoDCCP: true, ProtoSCTP: true, ProtoUDPLite: true}

// validatePortRange is Neutron's _validate_port_range.
func validatePortRange(r *SecurityGroupRule) error {
	min, max := r.PortRangeMin, r.PortRangeMax
	if min == nil && max == nil {
		return nil
	}
	if r.Protocol == nil || *r.Protocol == "" {
		return SecurityGroupProtocolRequiredWithPorts()
	}
	num, _ := ProtocolNumber(*r.Protocol)
	switch {
	case portProtocols[num]:
		if (min != nil && *min == 0) || (max != nil && *max == 0) {
			return SecurityGroupInvalidPortValue("0")
		}
		if min == nil || max == nil || *min > *max {
			return SecurityGroupInvalidPortRange()
		}
	case num == ProtoICMP || num == ProtoICMPv6:
		if min != nil && (*min < 0 || *min > 255) {
			return SecurityGroupInvalidIcmpValue("type", "port_range_min", *min)
		}
		if max != nil && (*max < 0 || *max > 255) {
			return SecurityGroupInvalidIcmpValue("code", "port_range_max", *max)
		}
		if min == nil && max != nil {
			return SecurityGroupMissingIcmpType(*max)
		}
	default:
		return SecurityGroupInvalidProtocolForPort(strconv.Itoa(num))
	}
	return nil
}

// RuleKey is the identity Neutron uses to find duplicate rules: the
// description does not count, a protocol name equals its number, and
// "any" equals 0.0.0.0/0 and ::/0. The remote prefix is not normalised
// (10.1.2.3/24 and 10.1.2.0/24 differ), as in Neutron.
func RuleKey(r *SecurityGroupRule) string {
	opt := func(p *string) string {
		if p == nil {
			return "+"
		}
		return *p
	}
	optInt := func(p *int) string {
		if p == nil {
			return "+"
		}
		return strconv.Itoa(*p)
	}
	prefix := "+"
	if r.RemoteIPPrefix != nil && *r.RemoteIPPrefix != "0.0.0.0/0" && *r.RemoteIPPrefix != "::/0" {
		prefix = *r.RemoteIPPrefix
	}
	proto := "+"
	if r.Protocol != nil {
		proto = protocolKey(*r.Protocol, r.Ethertype)
	}
	return strings.Join([]string{
		r.Direction, r.Ethertype, optInt(r.PortRangeMax), optInt(r.PortRangeMin), proto,
		opt(r.RemoteGroupID), opt(r.RemoteAddressGroupID), prefix, r.SecurityGroupID,
	}, "_")
}

// canonicalIPv6ICMP is _make_canonical_ipv6_icmp_protocol: an IPv6 rule's
// ICMP protocol, by any of its names or as 1, is ipv6-icmp (58).
func canonicalIPv6ICMP(p, ethertype string) string {
	if ethertype == IPv6 {
		switch p {
		case "icmp", "icmpv6", "ipv6-icmp":
			return "ipv6-icmp"
		case "1":
			return "58"
		}
	}
	return p
}

// protocolKey is _get_ip_proto_name_and_num: a [name, number] pair, so that
// "tcp" and "6" compare equal. Like Neutron it compares strings, so "06" is
// not "6".
func protocolKey(p, ethertype string) string {
	p = canonicalIPv6ICMP(p, ethertype)
	if n, ok := protocolNumbers[p]; ok {
		if p == "icmpv6" {
			return "[icmpv6, 58]"
		}
		return "[" + p + ", " + strconv.Itoa(n) + "]"
	}
	if n, err := strconv.Atoi(p); err == nil && strconv.Itoa(n) == p {
		if name := ProtocolName(n); name != "" {
			return "[" + name + ", " + p + "]"
		}
	}
	return "[" + p + ", " + p + "]"
}
