package console

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// ruleTemplate is one choice of Horizon's "Rule" select.
type ruleTemplate struct {
	Key, Label string
	// Kind says which fields the form shows: custom (TCP/UDP with a port
	// or range), icmp (type and code), other (a protocol number), fixed
	// (a template: protocol and ports given).
	Kind     string
	Protocol string
	Min, Max int // the fixed port range; 0: none
}

// ruleTemplates are Horizon's (openstack_dashboard SECURITY_GROUP_RULES
// and the custom choices), in Horizon's order.
var ruleTemplates = []ruleTemplate{
	{Key: "tcp", Label: "Custom TCP Rule", Kind: "custom", Protocol: "tcp"},
	{Key: "udp", Label: "Custom UDP Rule", Kind: "custom", Protocol: "udp"},
	{Key: "icmp", Label: "Custom ICMP Rule", Kind: "icmp", Protocol: "icmp"},
	{Key: "custom", Label: "Other Protocol", Kind: "other"},
	{Key: "all_icmp", Label: "ALL ICMP", Kind: "fixed", Protocol: "icmp"},
	{Key: "all_tcp", Label: "ALL TCP", Kind: "fixed", Protocol: "tcp", Min: 1, Max: 65535},
	{Key: "all_udp", Label: "ALL UDP", Kind: "fixed", Protocol: "udp", Min: 1, Max: 65535},
	{Key: "dns", Label: "DNS", Kind: "fixed", Protocol: "udp", Min: 53, Max: 53},
	{Key: "http", Label: "HTTP", Kind: "fixed", Protocol: "tcp", Min: 80, Max: 80},
	{Key: "https", Label: "HTTPS", Kind: "fixed", Protocol: "tcp", Min: 443, Max: 443},
	{Key: "imap", Label: "IMAP", Kind: "fixed", Protocol: "tcp", Min: 143, Max: 143},
	{Key: "imaps", Label: "IMAPS", Kind: "fixed", Protocol: "tcp", Min: 993, Max: 993},
	{Key: "ldap", Label: "LDAP", Kind: "fixed", Protocol: "tcp", Min: 389, Max: 389},
	{Key: "ms_sql", Label: "MS SQL", Kind: "fixed", Protocol: "tcp", Min: 1433, Max: 1433},
	{Key: "mysql", Label: "MYSQL", Kind: "fixed", Protocol: "tcp", Min: 3306, Max: 3306},
	{Key: "pop3", Label: "POP3", Kind: "fixed", Protocol: "tcp", Min: 110, Max: 110},
	{Key: "pop3s", Label: "POP3S", Kind: "fixed", Protocol: "tcp", Min: 995, Max: 995},
	{Key: "rdp", Label: "RDP", Kind: "fixed", Protocol: "tcp", Min: 3389, Max: 3389},
	{Key: "smtp", Label: "SMTP", Kind: "fixed", Protocol: "tcp", Min: 25, Max: 25},
	{Key: "smtps", Label: "SMTPS", Kind: "fixed", Protocol: "tcp", Min: 465, Max: 465},
	{Key: "ssh", Label: "SSH", Kind: "fixed", Protocol: "tcp", Min: 22, Max: 22},
}

func findTemplate(key string) *ruleTemplate {
	for i := range ruleTemplates {
		if ruleTemplates[i].Key == key {
			return &ruleTemplates[i]
		}
	}
	return nil
}

// formError is a mistake in a form, shown next to it (400).
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func badForm(format string, args ...any) error { return &formError{fmt.Sprintf(format, args...)} }

// ruleFromForm turns Horizon's Add Rule form into the API's
// security_group_rule body, with Horizon's rules: a template fixes
// protocol and ports, "All ports" leaves them open, ICMP type and code -1
// mean any, a CIDR remote decides the ether type.
func ruleFromForm(groupID string, f url.Values) (map[string]any, error) {
	t := findTemplate(f.Get("rule"))
	if t == nil {
		return nil, badForm("Choose a rule.")
	}
	r := map[string]any{"security_group_id": groupID}
	dir := f.Get("direction")
	if dir == "" {
		dir = "ingress"
	}
	if dir != "ingress" && dir != "egress" {
		return nil, badForm("Direction must be Ingress or Egress.")
	}
	r["direction"] = dir
	if d := strings.TrimSpace(f.Get("description")); d != "" {
		r["description"] = d
	}
	proto := t.Protocol
	switch t.Kind {
	case "fixed":
		if t.Min > 0 {
			r["port_range_min"], r["port_range_max"] = t.Min, t.Max
		}
	case "custom":
		switch f.Get("port_or_range") {
		case "", "port":
			p, err := portNumber(f.Get("port"), "Port")
			if err != nil {
				return nil, err
			}
			r["port_range_min"], r["port_range_max"] = p, p
		case "range":
			lo, err := portNumber(f.Get("from_port"), "From Port")
			if err != nil {
				return nil, err
			}
			hi, err := portNumber(f.Get("to_port"), "To Port")
			if err != nil {
				return nil, err
			}
			if hi < lo {
				return nil, badForm("The \"to\" port number must be greater than or equal to the \"from\" port number.")
			}
			r["port_range_min"], r["port_range_max"] = lo, hi
		case "all":
			r["port_range_min"], r["port_range_max"] = 1, 65535
		default:
			return nil, badForm("Open Port must be Port, Port Range or All ports.")
		}
	case "icmp":
		typ, err := icmpField(f.Get("icmp_type"), "Type")
		if err != nil {
			return nil, err
		}
		code, err := icmpField(f.Get("icmp_code"), "Code")
		if err != nil {
			return nil, err
		}
		if typ < 0 && code >= 0 {
			return nil, badForm("An ICMP code needs an ICMP type.")
		}
		if typ >= 0 {
			r["port_range_min"] = typ
		}
		if code >= 0 {
			r["port_range_max"] = code
		}
	case "other":
		s := strings.TrimSpace(f.Get("ip_protocol"))
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return nil, badForm("IP Protocol must be a number from 0 to 255 (4 is IP-in-IP).")
		}
		proto = strconv.Itoa(n)
	}
	ether := f.Get("ethertype")
	switch f.Get("remote") {
	case "", "cidr":
		cidr := strings.TrimSpace(f.Get("cidr"))
		if cidr == "" {
			cidr = "0.0.0.0/0"
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, badForm("CIDR %q is not an address prefix such as 10.0.0.0/24 or ::/0.", cidr)
		}
		r["remote_ip_prefix"] = p.String()
		ether = "IPv4"
		if p.Addr().Is6() {
			ether = "IPv6"
		}
	case "sg":
		id := strings.TrimSpace(f.Get("security_group"))
		if id == "" {
			return nil, badForm("Choose the remote security group.")
		}
		r["remote_group_id"] = id
	case "ag":
		id := strings.TrimSpace(f.Get("address_group"))
		if id == "" {
			return nil, badForm("Give the remote address group's id.")
		}
		r["remote_address_group_id"] = id
	default:
		return nil, badForm("Remote must be CIDR, Security Group or Address Group.")
	}
	if ether != "IPv4" && ether != "IPv6" {
		return nil, badForm("Ether Type must be IPv4 or IPv6.")
	}
	r["ethertype"] = ether
	if proto == "icmp" && ether == "IPv6" {
		proto = "ipv6-icmp"
	}
	if proto != "" {
		r["protocol"] = proto
	}
	return r, nil
}

func portNumber(s, field string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, badForm("%s must be a number from 1 to 65535.", field)
	}
	return n, nil
}

// icmpField reads an ICMP type or code: empty or -1 is any.
func icmpField(s, field string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > 255 {
		return 0, badForm("ICMP %s must be a number from -1 (any) to 255.", field)
	}
	return n, nil
}

// Horizon's columns.

func (r rule) ProtocolText() string {
	if r.Protocol == nil || *r.Protocol == "" {
		return "Any"
	}
	p := *r.Protocol
	if n, err := strconv.Atoi(p); err == nil {
		if name := neutron.ProtocolName(n); name != "" && name != "ip" {
			return fmt.Sprintf("%d (%s)", n, strings.ToUpper(name))
		}
		return p
	}
	return strings.ToUpper(p)
}

func (r rule) icmp() bool {
	if r.Protocol == nil {
		return false
	}
	switch strings.ToLower(*r.Protocol) {
	case "icmp", "ipv6-icmp", "icmpv6", "1", "58":
		return true
	}
	return false
}

func (r rule) PortRangeText() string {
	if r.icmp() {
		var parts []string
		if r.PortMin != nil {
			parts = append(parts, "type "+strconv.Itoa(*r.PortMin))
		}
		if r.PortMax != nil {
			parts = append(parts, "code "+strconv.Itoa(*r.PortMax))
		}
		if len(parts) == 0 {
			return "Any"
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case r.PortMin == nil && r.PortMax == nil:
		return "Any"
	case r.PortMin != nil && r.PortMax != nil && *r.PortMin == *r.PortMax:
		return strconv.Itoa(*r.PortMin)
	case r.PortMin != nil && r.PortMax != nil && *r.PortMin == 1 && *r.PortMax == 65535:
		return "1 - 65535"
	}
	lo, hi := "", ""
	if r.PortMin != nil {
		lo = strconv.Itoa(*r.PortMin)
	}
	if r.PortMax != nil {
		hi = strconv.Itoa(*r.PortMax)
	}
	return lo + " - " + hi
}

func strOr(p *string, def string) string {
	if p == nil || *p == "" {
		return def
	}
	return *p
}

func (r rule) RemoteIPText() string { return strOr(r.RemoteIPPrefix, "-") }
func (r rule) RemoteGroup() string  { return strOr(r.RemoteGroupID, "") }
func (r rule) RemoteAG() string     { return strOr(r.RemoteAddressGroupID, "-") }

func (r rule) DirectionText() string {
	if r.Direction == "" {
		return ""
	}
	return strings.ToUpper(r.Direction[:1]) + r.Direction[1:]
}
