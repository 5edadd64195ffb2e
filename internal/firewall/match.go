package firewall

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// portArgs says which port (or ICMP type) arguments a protocol takes.
type portArgs int

const (
	noPorts       portArgs = iota
	dports                 // --dport N, or -m multiport --dports A:B
	multiportOnly          // -m multiport --dports N[:M] (udplite)
	icmpType               // --icmp-type T[/C]
	icmpv6Type             // --icmpv6-type T[/C]
)

// protoSpec is how one rule's protocol is rendered.
type protoSpec struct {
	num    int    // the protocol number, 0 for any
	save   string // -p argument as iptables-save prints it; "" for none
	key    string // -p argument as written; decides duplicate rules
	module string // -m added when the rule has ports; "" for none
	ports  portArgs
}

// resolveProtocol decides the -p/-m/port arguments of a stored protocol.
//
// moat resolves the stored value to its IP protocol number once (the API
// name "ipip" is 4) and takes every decision from the number; iptables-save
// then prints the number's /etc/protocols name. Neutron instead passes the
// stored string through a name map and lets iptables interpret whatever
// comes out: "ipip" reaches the kernel as 94, "ip" is written as -p ip which
// iptables-save omits (so Neutron never converges on it), and a
// zero-padded number such as "06" gets neither -m nor ports. compat keeps
// Neutron's way.
func resolveProtocol(stored string, v6, compat bool) (protoSpec, error) {
	if compat {
		return resolveNeutronProtocol(stored, v6)
	}
	if stored == "" {
		return protoSpec{}, nil
	}
	num, ok := neutron.ProtocolNumber(stored)
	if !ok {
		return protoSpec{}, fmt.Errorf("unknown protocol %s", quoteShort(stored))
	}
	if v6 && (strings.EqualFold(stored, "icmp") || strings.EqualFold(stored, "icmpv6")) {
		num = neutron.ProtoICMPv6 // the agent's legacy-name rewrite
	}
	name := hybrid.IptablesProtocolName(num)
	s := protoSpec{num: num, save: name, key: name}
	switch num {
	case neutron.ProtoTCP, neutron.ProtoUDP, neutron.ProtoSCTP, neutron.ProtoDCCP:
		s.module, s.ports = name, dports
	case neutron.ProtoUDPLite:
		s.ports = multiportOnly
	case neutron.ProtoICMP:
		s.module, s.ports = "icmp", icmpType
	case neutron.ProtoICMPv6:
		s.module, s.ports = "icmp6", icmpv6Type
	}
	return s, nil
}

// neutronModules is neutron-lib's IPTABLES_PROTOCOL_MAP: the -m Neutron adds
// when a rule has ports.
var neutronModules = map[string]string{
	"dccp": "dccp", "icmp": "icmp", "ipv6-icmp": "icmp6",
	"sctp": "sctp", "tcp": "tcp", "udp": "udp",
}

// resolveNeutronProtocol is Neutron 21's _protocol_arg/_port_arg.
func resolveNeutronProtocol(stored string, v6 bool) (protoSpec, error) {
	if v6 && (stored == "icmp" || stored == "icmpv6") {
		stored = "ipv6-icmp" // _split_sgr_by_ethertype
	}
	if stored == "" || stored == "0" {
		return protoSpec{}, nil
	}
	token := neutronIptablesName(stored)
	num, ok := hybrid.ParseIptablesProtocol(token)
	if !ok {
		return protoSpec{}, fmt.Errorf("protocol %s: Neutron writes -p %s, which iptables rejects", quoteShort(stored), quoteShort(token))
	}
	s := protoSpec{num: num, save: hybrid.IptablesProtocolName(num), key: token, module: neutronModules[token]}
	switch token {
	case "icmp":
		s.ports = icmpType
	case "ipv6-icmp":
		s.ports = icmpv6Type
	case "tcp", "udp", "sctp", "dccp":
		s.ports = dports
	case "udplite":
		s.ports = multiportOnly
	}
	return s, nil
}

// neutronIptablesName is Neutron's _iptables_protocol_name: neutron-lib's
// IPTABLES_PROTOCOL_NAME_MAP updated with the host's /etc/protocols
// (number -> name; on Debian 12 the two agree wherever both have a number),
// and the stored string itself where neither has an entry.
func neutronIptablesName(stored string) string {
	switch stored {
	case "ipv6-encap":
		return "ipv6"
	case "icmpv6":
		return "ipv6-icmp"
	case "pgm":
		return "113"
	}
	n, err := strconv.Atoi(stored)
	if err != nil || n < 1 || n > 255 || strconv.Itoa(n) != stored {
		return stored // only the exact decimal spelling is a map key
	}
	return hybrid.IptablesProtocolName(n)
}

// protoMatch sets the protocol and port (or ICMP type) part of m from a
// rule and returns the part as Neutron writes it where that differs from
// what iptables-save prints (the protocol as Neutron spells it, ICMP type
// 255 as a number): the rule's identity for de-duplication. "" when they
// agree.
func protoMatch(m *hybrid.Match, r *Rule, p protoSpec) (key string) {
	if p.save == "" && p.key == "" {
		return ""
	}
	m.Proto = uint8(p.num)
	hasPorts := r.PortRangeMin != nil
	if hasPorts {
		min := *r.PortRangeMin
		switch p.ports {
		case dports, multiportOnly:
			m.DstPort = hybrid.Port(uint16(min))
			if r.PortRangeMax != nil {
				m.DstPort.Max = uint16(*r.PortRangeMax)
			}
		case icmpType, icmpv6Type:
			m.ICMP = hybrid.ICMPType(uint8(min))
			if r.PortRangeMax != nil {
				m.ICMP.Code = int16(*r.PortRangeMax)
			}
		}
	}
	if p.key == p.save && !(p.ports == icmpType && m.ICMP.Set && m.ICMP.Type == 255) {
		return ""
	}
	var kb strings.Builder
	kb.WriteString("-p ")
	kb.WriteString(p.key)
	if hasPorts && p.module != "" {
		kb.WriteString(" -m " + p.module)
	}
	if hasPorts {
		min := *r.PortRangeMin
		switch p.ports {
		case dports, multiportOnly:
			switch {
			case r.PortRangeMax != nil && *r.PortRangeMax != min:
				kb.WriteString(" -m multiport --dports " + strconv.Itoa(min) + ":" + strconv.Itoa(*r.PortRangeMax))
			case p.ports == multiportOnly:
				kb.WriteString(" -m multiport --dports " + strconv.Itoa(min))
			default:
				kb.WriteString(" --dport " + strconv.Itoa(min))
			}
		case icmpType, icmpv6Type:
			opt := " --icmp-type "
			if p.ports == icmpv6Type {
				opt = " --icmpv6-type "
			}
			kb.WriteString(opt + strconv.Itoa(min))
			if r.PortRangeMax != nil {
				kb.WriteString("/" + strconv.Itoa(*r.PortRangeMax))
			}
		}
	}
	return kb.String()
}
