package hybrid

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/moat-sg/moat/internal/neutron"
)

// The iptables renderer: a Rule as iptables-save prints it after
// "-A <chain> ", byte for byte. iptables-save prints a rule's parts in a
// fixed order: addresses, interfaces and protocol first, then the matches
// in the order they were given, then the target; the layout gives its
// matches in one order (protocol ports, physdev, mac, set, state,
// comment), so the order here is that of every rule Neutron writes.

// Iptables is the rule as iptables-save prints it.
func (r *Rule) Iptables() string {
	// Rendered on the stack: the string is the only allocation.
	var buf [256]byte
	return string(r.AppendIptables(buf[:0]))
}

// AppendIptables appends Iptables() to b.
func (r *Rule) AppendIptables(b []byte) []byte {
	start := len(b)
	m := &r.Match
	b = appendPrefix(b, "-s ", m.Src)
	b = appendPrefix(b, "-d ", m.Dst)
	if m.InIface != "" {
		b = appendWord(b, "-i ", m.InIface)
	}
	if m.Proto != 0 {
		b = appendWord(b, "-p ", IptablesProtocolName(int(m.Proto)))
	}
	b = appendProtoMatch(b, m)
	if m.PhysIn != "" || m.PhysOut != "" || m.PhysBridged {
		b = appendWord(b, "-m ", "physdev")
		if m.PhysIn != "" {
			b = appendWord(b, "--physdev-in ", m.PhysIn)
		}
		if m.PhysOut != "" {
			b = appendWord(b, "--physdev-out ", m.PhysOut)
		}
		if m.PhysBridged {
			b = appendWord(b, "--physdev-is-bridged", "")
		}
	}
	if m.MACSource != nil {
		b = appendMAC(appendWord(b, "-m mac --mac-source ", ""), m.MACSource)
	}
	if m.IPSet != "" {
		b = appendWord(b, "-m set --match-set ", m.IPSet)
		if m.IPSetDst {
			b = append(b, " dst"...)
		} else {
			b = append(b, " src"...)
		}
	}
	if m.States != 0 {
		b = appendWord(b, "-m state --state ", "")
		first := true
		for _, s := range ctStateNames {
			if m.States&s.s != 0 {
				if !first {
					b = append(b, ',')
				}
				b = append(b, s.name...)
				first = false
			}
		}
	}
	if r.Comment != "" {
		b = appendSaveString(appendWord(b, "-m comment --comment ", ""), r.Comment)
	}
	switch a := r.Action; a.Kind {
	case Accept:
		b = appendWord(b, "-j ", "ACCEPT")
	case Drop:
		b = appendWord(b, "-j ", "DROP")
	case Return:
		b = appendWord(b, "-j ", "RETURN")
	case Jump:
		b = appendWord(b, "-j ", a.Chain)
	case CTZone:
		b = appendWord(b, "-j CT --zone ", "")
		b = strconv.AppendUint(b, uint64(a.Zone), 10)
	case CTNoTrack:
		b = appendWord(b, "-j CT --notrack", "")
	case Log:
		// As libxt_limit and libxt_NFLOG save them: the burst unless it is
		// the default 5, the prefix before the group.
		b = appendWord(b, "-m limit --limit ", "")
		b = strconv.AppendUint(b, uint64(a.Log.Rate), 10)
		b = append(b, "/sec"...)
		if a.Log.Burst != 5 {
			b = appendWord(b, "--limit-burst ", "")
			b = strconv.AppendUint(b, uint64(a.Log.Burst), 10)
		}
		b = appendWord(b, "-j NFLOG", "")
		if a.Log.Prefix != "" {
			b = appendSaveString(appendWord(b, "--nflog-prefix ", ""), a.Log.Prefix)
		}
		if a.Log.Group != 0 {
			b = appendWord(b, "--nflog-group ", "")
			b = strconv.AppendUint(b, uint64(a.Log.Group), 10)
		}
	}
	if len(b) > start && b[start] == ' ' {
		// Every part starts with a blank but the first.
		b = append(b[:start], b[start+1:]...)
	}
	return b
}

// appendWord appends " " + opt + arg.
func appendWord(b []byte, opt, arg string) []byte {
	return append(append(append(b, ' '), opt...), arg...)
}

// appendPrefix appends -s/-d as iptables-save prints them: host bits
// cleared, a /0 (any address) not at all.
func appendPrefix(b []byte, opt string, p netip.Prefix) []byte {
	if !p.IsValid() || p.Bits() == 0 {
		return b
	}
	b, _ = p.Masked().AppendText(appendWord(b, opt, ""))
	return b
}

// appendMAC appends a MAC as net.HardwareAddr.String does (lower-case hex,
// colons).
func appendMAC(b []byte, mac net.HardwareAddr) []byte {
	const hex = "0123456789abcdef"
	for i, c := range mac {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

// appendProtoMatch appends the protocol's match module and its options:
// ports of TCP, UDP, SCTP and DCCP (-m tcp --sport/--dport, or with a
// range -m tcp -m multiport --dports A:B), of UDP-Lite (-m multiport
// --dports, it has no module of its own), ICMP and ICMPv6 types.
func appendProtoMatch(b []byte, m *Match) []byte {
	switch m.Proto {
	case neutron.ProtoTCP, neutron.ProtoUDP, neutron.ProtoSCTP, neutron.ProtoDCCP:
		if m.SrcPort.Any() && m.DstPort.Any() {
			return b
		}
		b = appendWord(b, "-m ", IptablesProtocolName(int(m.Proto)))
		if !m.SrcPort.Any() {
			b = appendPorts(b, "--sport ", "--sports ", m.SrcPort)
		}
		if !m.DstPort.Any() {
			b = appendPorts(b, "--dport ", "--dports ", m.DstPort)
		}
	case neutron.ProtoUDPLite:
		if !m.SrcPort.Any() {
			b = appendRange(appendWord(b, "-m multiport --sports ", ""), m.SrcPort)
		}
		if !m.DstPort.Any() {
			b = appendRange(appendWord(b, "-m multiport --dports ", ""), m.DstPort)
		}
	case neutron.ProtoICMP, neutron.ProtoICMPv6:
		if !m.ICMP.Set {
			return b
		}
		if m.Proto == neutron.ProtoICMP {
			b = appendWord(b, "-m icmp --icmp-type ", "")
			if m.ICMP.Type == 255 {
				// The icmp match stores type 255 as "any ICMP type" and
				// iptables-save prints it so, whatever the code.
				return append(b, "any"...)
			}
		} else {
			b = appendWord(b, "-m icmp6 --icmpv6-type ", "")
		}
		b = strconv.AppendUint(b, uint64(m.ICMP.Type), 10)
		if m.ICMP.Code >= 0 {
			b = append(b, '/')
			b = strconv.AppendInt(b, int64(m.ICMP.Code), 10)
		}
	}
	return b
}

// appendPorts appends one port with the protocol's own option, a range
// with multiport's.
func appendPorts(b []byte, single, multi string, r PortRange) []byte {
	if r.Single() {
		b = appendWord(b, single, "")
		return strconv.AppendUint(b, uint64(r.Min), 10)
	}
	return appendRange(appendWord(b, "-m multiport "+multi, ""), r)
}

func appendRange(b []byte, r PortRange) []byte {
	b = strconv.AppendUint(b, uint64(r.Min), 10)
	if r.Max != r.Min {
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(r.Max), 10)
	}
	return b
}
