package trace

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// Origin kinds: what a rule of Neutron's hybrid layout stands for, as the
// compiler names them (hybrid.OriginKind), and two of trace's own.
const (
	OriginSGRule               = string(hybrid.OriginSGRule)
	OriginDefaultDrop          = string(hybrid.OriginDefaultDrop)
	OriginToDefaultDrop        = string(hybrid.OriginToDefaultDrop)
	OriginAntiSpoofing         = string(hybrid.OriginAntiSpoofing)
	OriginInvalid              = string(hybrid.OriginInvalid)
	OriginEstablished          = string(hybrid.OriginEstablished)
	OriginDHCPClient           = string(hybrid.OriginDHCPClient)
	OriginDHCPReply            = string(hybrid.OriginDHCPReply)
	OriginDHCPProtection       = string(hybrid.OriginDHCPProtection)
	OriginICMPv6ND             = string(hybrid.OriginICMPv6ND)
	OriginICMPv6RA             = string(hybrid.OriginICMPv6RA)
	OriginRAProtection         = string(hybrid.OriginRAProtection)
	OriginICMPv6Egress         = string(hybrid.OriginICMPv6Egress)
	OriginPortSecurityDisabled = string(hybrid.OriginPortSecurityDisabled)
	OriginTrusted              = string(hybrid.OriginTrusted)
	OriginSGChainAccept        = string(hybrid.OriginSGChainAccept)
	OriginDispatch             = string(hybrid.OriginDispatch)
	OriginCTZone               = string(hybrid.OriginCTZone)
	OriginStateless            = string(hybrid.OriginStateless)
	// OriginPolicy is a built-in chain's policy.
	OriginPolicy = "chain-policy"
	// OriginOther is a rule outside Neutron's layout.
	OriginOther = "other"
)

// Origin is what a rule stands for.
type Origin struct {
	Kind string `json:"kind"`
	// Text describes the rule for people.
	Text string `json:"text"`
	// Rules are the security group rules behind a rule, when known.
	Rules []SGRule `json:"security_group_rules,omitempty"`
}

// ruleView is what classification needs to know about a rule.
type ruleView struct {
	cr       *compiledRule
	proto    int // -1: none
	sport    []portRange
	dport    []portRange
	multi    []portRange
	icmpType int // -1: none
	icmpLo   int
	icmpHi   int
	src, dst string
	set      *item
	states   State
	hasState bool
	hasMAC   bool
}

func viewOf(cr *compiledRule) ruleView {
	v := ruleView{cr: cr, proto: -1, icmpType: -1}
	for i := range cr.items {
		it := &cr.items[i]
		switch it.kind {
		case itemProto:
			v.proto = it.num
		case itemSport:
			v.sport = it.ranges
		case itemDport:
			v.dport = it.ranges
		case itemMultiport:
			v.multi = it.ranges
		case itemICMP, itemICMPv6:
			v.icmpType, v.icmpLo, v.icmpHi = it.icmpType, it.icmpLo, it.icmpHi
			if it.icmpType < 0 {
				v.icmpType = 255
			}
		case itemSrc:
			v.src = it.pfx.String()
		case itemDst:
			v.dst = it.pfx.String()
		case itemSet:
			v.set = it
		case itemState:
			v.states, v.hasState = it.states, true
		case itemMAC:
			v.hasMAC = true
		}
	}
	return v
}

func (v ruleView) udp(sport, dport int) bool {
	return v.proto == 17 && len(v.sport) == 1 && v.sport[0] == portRange{sport, sport} &&
		len(v.dport) == 1 && v.dport[0] == portRange{dport, dport}
}

func (v ruleView) icmp6(types ...int) bool {
	if v.proto != 58 {
		return false
	}
	for _, t := range types {
		if v.icmpType == t {
			return true
		}
	}
	return false
}

// classify says what a rule stands for, from its chain and its text (and
// its position: in a port chain, Neutron's fixed rules come before the
// RELATED,ESTABLISHED rule, the security group rules after it).
func (s *sim) classify(r *Rule) *Origin {
	return classifyRule(r, s.rs.IPv6, s.h.Provenance)
}

func classifyRule(r *Rule, v6 bool, prov *Provenance) *Origin {
	cr := r.compile()
	v := viewOf(cr)
	tg := cr.target
	chain := r.Chain.Name
	o := func(kind, text string) *Origin { return &Origin{Kind: kind, Text: text} }
	if kind, _, ok := hybrid.PortChainOf(chain); ok {
		return classifyPortRule(r, kind, v, v6, prov)
	}
	_, local, wrapped := hybrid.SplitWrap(chain)
	switch {
	case wrapped && local == hybrid.LocalFallback && tg.kind == targetDrop:
		return o(OriginDefaultDrop, "default drop (sg-fallback): no security group rule allowed the packet")
	case wrapped && local == hybrid.LocalSG && tg.kind == targetAccept:
		return o(OriginSGChainAccept, "sg-chain ACCEPT: the port's chains let the packet through")
	case wrapped && local == hybrid.LocalPrerouting && tg.kind == targetCT && tg.notrack:
		return o(OriginStateless, "stateless security group: CT --notrack, conntrack skips the port's packets")
	case wrapped && local == hybrid.LocalPrerouting && tg.kind == targetCT:
		return o(OriginCTZone, "conntrack zone "+strconv.Itoa(tg.zone)+" of the port")
	case wrapped && (local == hybrid.LocalForward || local == hybrid.LocalInput) && tg.kind == targetAccept:
		switch {
		case strings.Contains(cr.comment, "port security is disabled"):
			return o(OriginPortSecurityDisabled, "port security disabled: every packet of the port is accepted")
		case strings.Contains(cr.comment, "port is trusted"):
			return o(OriginTrusted, "trusted port (device_owner network:*): every packet is accepted")
		}
		if local == hybrid.LocalInput {
			return o(OriginPortSecurityDisabled, "port security disabled: every packet of the port is accepted")
		}
		return o(OriginPortSecurityDisabled, "port security disabled, or a trusted network:* port: every packet is accepted")
	case tg.kind == targetJump || tg.kind == targetGoto:
		if _, _, ok := hybrid.SplitWrap(tg.name); ok || tg.name == hybrid.ChainFilterTop {
			return o(OriginDispatch, "dispatch to "+tg.name)
		}
	}
	return o(OriginOther, "not part of Neutron's security group layout")
}

func classifyPortRule(r *Rule, kind hybrid.ChainKind, v ruleView, v6 bool, prov *Provenance) *Origin {
	cr, tg := v.cr, v.cr.target
	o := func(k, text string) *Origin { return &Origin{Kind: k, Text: text} }
	if kind == hybrid.ChainSpoof {
		if tg.kind == targetDrop {
			return o(OriginAntiSpoofing, "anti-spoofing: the source IP/MAC pair is not one of the port's (fixed IPs, allowed address pairs)")
		}
		return o(OriginAntiSpoofing, "anti-spoofing: an allowed IP/MAC pair of the port")
	}
	// Neutron's fixed rules come before RELATED,ESTABLISHED (Num is the
	// rule's position, plus one).
	head := r.Num-1 <= r.Chain.firstEstablished()
	var sources []SGRule
	if prov != nil {
		sources = prov.Rules[RuleKey{v6, r.Chain.Name, r.Text}]
	}
	switch {
	case isEstablished(cr):
		return o(OriginEstablished, "a packet of a known connection (RELATED,ESTABLISHED)")
	case v.hasState && v.states == StateInvalid && tg.kind == targetDrop:
		return o(OriginInvalid, "INVALID state: conntrack does not know the packet's connection")
	case tg.kind == targetJump || tg.kind == targetGoto:
		if _, local, ok := hybrid.SplitWrap(tg.name); ok && local == hybrid.LocalFallback {
			return o(OriginToDefaultDrop, "no security group rule matched: on to the default drop")
		}
		if k, _, _ := hybrid.PortChainOf(tg.name); k == hybrid.ChainSpoof {
			return o(OriginAntiSpoofing, "anti-spoofing check of the source IP/MAC")
		}
	}
	if kind == hybrid.ChainOut {
		switch {
		case v.udp(68, 67) || v.udp(546, 547):
			return o(OriginDHCPClient, "DHCP client traffic of the VM (built-in)")
		case (v.udp(67, 68) || v.udp(547, 546)) && tg.kind == targetDrop:
			return o(OriginDHCPProtection, "DHCP spoofing protection: the VM may not act as a DHCP server")
		case v.icmp6(134) && tg.kind == targetDrop:
			return o(OriginRAProtection, "the VM may not send router advertisements")
		case head && v.icmp6(131, 135, 143) && v.src == "::/128":
			return o(OriginICMPv6ND, "ICMPv6 MLD/neighbour discovery from the unspecified address (built-in)")
		case head && v.proto == 58 && v.icmpType < 0 && tg.kind == targetReturn:
			return o(OriginICMPv6Egress, "ICMPv6 from the VM (built-in)")
		}
	} else {
		switch {
		case v.udp(67, 68) || v.udp(547, 546):
			return o(OriginDHCPReply, "DHCP reply to the VM (provider rule)")
		case head && v.icmp6(130, 135, 136) && tg.kind == targetReturn:
			return o(OriginICMPv6ND, "ICMPv6 MLD/neighbour discovery to the VM (built-in)")
		case v.icmp6(134) && v.src == "" && v.set == nil && tg.kind == targetReturn && len(sources) == 0:
			return o(OriginICMPv6RA, "router advertisement to the VM (provider rule)")
		}
	}
	if tg.kind == targetReturn && !head {
		desc := describeSGRule(v, kind, v6, prov)
		org := &Origin{Kind: OriginSGRule, Text: "security group rule: " + desc, Rules: sources}
		if len(sources) > 0 {
			ids := make([]string, len(sources))
			for i, sr := range sources {
				ids[i] = sr.String()
			}
			org.Text = "security group rule " + strings.Join(ids, ", ") + ": " + desc
		}
		return org
	}
	return o(OriginOther, "not part of Neutron's security group layout")
}

// firstEstablished returns the position of the chain's first
// RELATED,ESTABLISHED RETURN, len(c.Rules) when it has none; found once
// per chain.
func (c *Chain) firstEstablished() int {
	if c.established == 0 {
		n := len(c.Rules)
		for i, x := range c.Rules {
			if isEstablished(x.compile()) {
				n = i
				break
			}
		}
		c.established = n + 1
	}
	return c.established - 1
}

func isEstablished(cr *compiledRule) bool {
	for _, it := range cr.items {
		if it.kind == itemState && !it.neg && it.states == StateRelated|StateEstablished {
			return cr.target.kind == targetReturn
		}
	}
	return false
}

// describeSGRule spells a rule of a port chain as the security group rule
// it stands for: direction, ethertype, protocol, ports, remote.
func describeSGRule(v ruleView, kind hybrid.ChainKind, v6 bool, prov *Provenance) string {
	var b strings.Builder
	dir := "ingress"
	if kind == hybrid.ChainOut {
		dir = "egress"
	}
	eth := "IPv4"
	if v6 {
		eth = "IPv6"
	}
	b.WriteString(dir + " " + eth)
	switch {
	case v.proto <= 0:
		b.WriteString(", any protocol")
	default:
		fmt.Fprintf(&b, ", protocol %s", protoName(v.proto))
		if v.proto == 94 {
			b.WriteString(" [not IP-in-IP, which is 4]")
		}
	}
	ports := v.dport
	if ports == nil {
		ports = v.multi
	}
	if len(ports) > 0 {
		var ps []string
		for _, r := range ports {
			if r.lo == r.hi {
				ps = append(ps, strconv.Itoa(r.lo))
			} else {
				ps = append(ps, fmt.Sprintf("%d-%d", r.lo, r.hi))
			}
		}
		b.WriteString(", port " + strings.Join(ps, ","))
	}
	if v.icmpType >= 0 && v.icmpType != 255 {
		fmt.Fprintf(&b, ", type %d", v.icmpType)
		if v.icmpLo == v.icmpHi {
			fmt.Fprintf(&b, " code %d", v.icmpLo)
		}
	}
	remote := v.src
	if kind == hybrid.ChainOut {
		remote = v.dst
	}
	switch {
	case v.set != nil:
		if src, ok := prov.setSource(v.set.name); ok && src.AddressGroup {
			b.WriteString(", remote: addresses of ipset " + v.set.name + " (" + src.String() + ")")
			break
		}
		b.WriteString(", remote: members of ipset " + v.set.name)
		if src, ok := prov.setSource(v.set.name); ok {
			b.WriteString(" (" + src.String() + ")")
		} else if g := hybrid.IPSetGroupID(v.set.name); g != "" {
			b.WriteString(" (security group " + g + "…)")
		}
	case remote != "":
		b.WriteString(", remote " + remote)
	default:
		b.WriteString(", any remote")
	}
	return b.String()
}

// SuggestedRule is the security group rule that would allow a packet the
// default rule dropped, in the API's terms (the console creates it with
// one click; the command line prints it as an openstack command).
type SuggestedRule struct {
	// GroupID is the port's first group; "" when the rules do not name
	// the port's groups (a dump without provenance).
	GroupID   string
	Direction Direction
	EtherType string // IPv4 or IPv6
	// Protocol is as the CLI and the API take it: a name where Neutron
	// and iptables agree on it, else the number ("4" for IP-in-IP); ""
	// for any protocol.
	Protocol string
	// PortMin and PortMax are the destination port range, -1 when none.
	PortMin, PortMax int
	// ICMPType and ICMPCode are -1 when none (the API carries them in
	// port_range_min and port_range_max).
	ICMPType, ICMPCode int
	// RemoteIPPrefix is the other end of the packet, as a host prefix.
	RemoteIPPrefix string
}

// suggest builds the rule, and the command, that would allow a packet the
// default rule dropped, and notes about it.
func suggest(s *sim, notes []string) (*SuggestedRule, string, []string) {
	p, port := s.pkt, s.port
	r := &SuggestedRule{Direction: port.Direction, EtherType: "IPv4", PortMin: -1, PortMax: -1, ICMPType: -1, ICMPCode: -1}
	group := "<group>"
	if s.h.Provenance != nil && port.ID != "" {
		if gs := s.h.Provenance.Groups[port.ID]; len(gs) > 0 {
			group, r.GroupID = gs[0], gs[0]
		}
	}
	if group == "<group>" {
		notes = append(notes, "<group>: one of the port's security groups (openstack port show "+portName(port)+" -c security_group_ids); a dump does not name them")
	}
	dir, remote := "--ingress", p.Src
	if port.Direction == Egress {
		dir, remote = "--egress", p.Dst
	}
	if p.IPv6 {
		r.EtherType = "IPv6"
	}
	args := []string{"openstack security group rule create", group, dir, "--ethertype", r.EtherType}
	proto, why := suggestProtocol(p.Protocol, p.IPv6)
	if proto != "" {
		r.Protocol = proto
		args = append(args, "--protocol", proto)
	}
	if why != "" {
		notes = append(notes, why)
	}
	if hasPorts(p.Protocol) && p.DstPort >= 0 {
		r.PortMin, r.PortMax = p.DstPort, p.DstPort
		args = append(args, "--dst-port", strconv.Itoa(p.DstPort))
	}
	if (p.Protocol == 1 || p.Protocol == 58) && p.ICMPType >= 0 {
		r.ICMPType = p.ICMPType
		args = append(args, "--icmp-type", strconv.Itoa(p.ICMPType))
		if p.ICMPCode >= 0 {
			r.ICMPCode = p.ICMPCode
			args = append(args, "--icmp-code", strconv.Itoa(p.ICMPCode))
		}
	}
	bits := 32
	if p.IPv6 {
		bits = 128
	}
	r.RemoteIPPrefix = fmt.Sprintf("%s/%d", remote, bits)
	args = append(args, "--remote-ip", r.RemoteIPPrefix)
	if p.State == StateUntracked {
		notes = append(notes, "the port's security group is stateless: replies are not allowed automatically, the other direction needs a rule too")
	}
	return r, strings.Join(args, " "), notes
}

func portName(port *PortRef) string {
	if port.ID != "" {
		return port.ID
	}
	return "<port>"
}

// suggestProtocol spells a protocol for the openstack CLI: Neutron's name
// where Neutron and iptables agree on it, else the number.
func suggestProtocol(num int, v6 bool) (arg, why string) {
	if num == 0 {
		return "", ""
	}
	if num == neutron.ProtoIPIP {
		return "4", "--protocol 4, not ipip: Neutron renders the name ipip as -p ipip, which iptables reads as 94 (/etc/protocols), not IP-in-IP (4)"
	}
	name := neutron.ProtocolName(num)
	if v6 && num == neutron.ProtoICMPv6 {
		name = "ipv6-icmp"
	}
	if name == "" || name == "ip" {
		return strconv.Itoa(num), ""
	}
	if n, ok := hybrid.ParseIptablesProtocol(name); !ok || n != num {
		return strconv.Itoa(num), fmt.Sprintf("--protocol %d, not %s: iptables reads %s differently", num, name, name)
	}
	return name, ""
}
