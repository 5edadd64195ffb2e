package neutron

import (
	"sort"
	"strings"
)

// Protocol names Neutron's API accepts (neutron-lib IP_PROTOCOL_MAP) and the IP
// protocol number each stands for. Inside moat protocols are numbers; these
// names exist only at the API edge. Note "ipip" is 4 here, while
// /etc/protocols (and so iptables' -p ipip) calls 94 "ipip" and 4 "ipencap".
var protocolNumbers = map[string]int{
	"ah":         51,
	"dccp":       33,
	"egp":        8,
	"esp":        50,
	"gre":        47,
	"hopopt":     0,
	"icmp":       1,
	"igmp":       2,
	"ip":         0,
	"ipip":       4,
	"ipv6-encap": 41,
	"ipv6-frag":  44,
	"ipv6-icmp":  58,
	"icmpv6":     58, // legacy alias of ipv6-icmp
	"ipv6-nonxt": 59,
	"ipv6-opts":  60,
	"ipv6-route": 43,
	"ospf":       89,
	"pgm":        113,
	"rsvp":       46,
	"sctp":       132,
	"tcp":        6,
	"udp":        17,
	"udplite":    136,
	"vrrp":       112,
}

// protocolNamesInErrorOrder is the order in which Neutron 21 lists the accepted
// names in SecurityGroupRuleInvalidProtocol messages (its dict order).
var protocolNamesInErrorOrder = []string{
	"ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip",
	"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts",
	"ipv6-route", "ospf", "pgm", "rsvp", "sctp", "tcp", "udp", "udplite", "vrrp",
}

// Well-known protocol numbers used by validation and the compiler.
const (
	ProtoICMP    = 1
	ProtoIPIP    = 4
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoDCCP    = 33
	ProtoIPv6    = 41
	ProtoIPv6Frg = 44
	ProtoIPv6Rt  = 43
	ProtoGRE     = 47
	ProtoICMPv6  = 58
	ProtoIPv6NoN = 59
	ProtoIPv6Opt = 60
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// ProtocolNames returns the API protocol names Neutron accepts, sorted.
func ProtocolNames() []string {
	names := make([]string, 0, len(protocolNumbers))
	for n := range protocolNumbers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProtocolNumber resolves a stored API protocol value ("tcp", "6", "06",
// "ipip", "icmpv6") to its IP protocol number. ok is false for nil-like
// values ("" means any protocol) and for values Neutron would not store.
func ProtocolNumber(p string) (num int, ok bool) {
	if p == "" {
		return 0, false
	}
	if n, found := protocolNumbers[strings.ToLower(p)]; found {
		return n, true
	}
	n, ok := pyInt(p)
	if !ok || n < 0 || n > 255 {
		return 0, false
	}
	return int(n), true
}

// ProtocolName is the canonical Neutron name for a protocol number, or "" if
// Neutron has none (58 is "ipv6-icmp", 0 is "ip"... see IP_PROTOCOL_NUM_TO_NAME_MAP).
func ProtocolName(num int) string {
	switch num {
	case 0:
		// hopopt and ip share 0; Neutron's num→name map keeps the later key, "ip".
		return "ip"
	case ProtoICMPv6:
		return "ipv6-icmp"
	}
	for _, n := range protocolNamesInErrorOrder {
		if protocolNumbers[n] == num {
			return n
		}
	}
	return ""
}
