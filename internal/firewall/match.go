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
	s := protoSpec{save: name, key: name}
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
	s := protoSpec{save: hybrid.IptablesProtocolName(num), key: token, module: neutronModules[token]}
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

// matchArgs renders the protocol and port arguments of a rule: the
// iptables-save text and the text that identifies the rule for
// de-duplication (equal to the former unless they differ).
func matchArgs(r *Rule, p protoSpec) (save, key string) {
	if p.save == "" && p.key == "" {
		return "", ""
	}
	var sb, kb strings.Builder
	if p.save != "" {
		sb.WriteString("-p ")
		sb.WriteString(p.save)
	}
	kb.WriteString("-p ")
	kb.WriteString(p.key)
	hasPorts := r.PortRangeMin != nil
	if hasPorts && p.module != "" {
		sb.WriteString(" -m " + p.module)
		kb.WriteString(" -m " + p.module)
	}
	if hasPorts {
		min := *r.PortRangeMin
		switch p.ports {
		case dports, multiportOnly:
			var arg string
			switch {
			case r.PortRangeMax != nil && *r.PortRangeMax != min:
				arg = " -m multiport --dports " + strconv.Itoa(min) + ":" + strconv.Itoa(*r.PortRangeMax)
			case p.ports == multiportOnly:
				arg = " -m multiport --dports " + strconv.Itoa(min)
			default:
				arg = " --dport " + strconv.Itoa(min)
			}
			sb.WriteString(arg)
			kb.WriteString(arg)
		case icmpType, icmpv6Type:
			opt := " --icmp-type "
			if p.ports == icmpv6Type {
				opt = " --icmpv6-type "
			}
			arg := strconv.Itoa(min)
			if r.PortRangeMax != nil {
				arg += "/" + strconv.Itoa(*r.PortRangeMax)
			}
			kb.WriteString(opt + arg)
			// The IPv4 icmp match stores type 255 as "any ICMP type" and
			// iptables-save prints it so, whatever the code.
			if p.ports == icmpType && min == 255 {
				arg = "any"
			}
			sb.WriteString(opt + arg)
		}
	}
	save = strings.TrimPrefix(sb.String(), " ")
	key = kb.String()
	if key == save {
		key = ""
	}
	return save, key
}
