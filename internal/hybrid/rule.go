package hybrid

import (
	"fmt"
	"net"
	"net/netip"
)

// Rule is one rule of the layout as data, for any backend: what it
// matches, what it does, its comment and where it came from. The compiler
// emits it beside the rule's iptables text (Iptables renders it); a second
// renderer (nftables) reads the same rules. Rules the compiler emits are
// shared between its results and cached: treat them as read-only.
type Rule struct {
	Match   Match
	Action  Action
	Comment string // "" for none
	Origin  *Origin
}

// Match is what a rule matches; the zero value matches every packet.
type Match struct {
	// Src and Dst are source and destination prefixes; the zero Prefix
	// (and a /0) matches any address.
	Src, Dst netip.Prefix
	// InIface is the interface the packet came in by ("" for any).
	InIface string
	// PhysIn and PhysOut are the bridge ports a bridged frame enters and
	// leaves by ("" for any); PhysBridged requires a bridged frame.
	PhysIn, PhysOut string
	// IPSet is the set the remote address must be in ("" for none): the
	// source address, or with IPSetDst the destination.
	IPSet string
	// MACSource is the source MAC, nil for any.
	MACSource net.HardwareAddr
	// SrcPort and DstPort are the port ranges of a port-carrying protocol
	// (TCP, UDP, SCTP, DCCP, UDP-Lite); the zero range matches any port.
	SrcPort, DstPort PortRange
	// ICMP matches an ICMP (Proto 1) or ICMPv6 (Proto 58) type and code.
	ICMP ICMPMatch
	// Proto is the IP protocol number, 0 for any.
	Proto       uint8
	PhysBridged bool
	IPSetDst    bool
	// States are the conntrack states the packet must be in, 0 for any.
	States CTState
}

// PortRange is a range of ports; Min 0 means none.
type PortRange struct{ Min, Max uint16 }

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return r.Min == 0 }

// Single reports whether the range is one port.
func (r PortRange) Single() bool { return r.Min != 0 && r.Min == r.Max }

// Port is the range of one port.
func Port(p uint16) PortRange { return PortRange{p, p} }

// ICMPMatch is an ICMP type and code. Set false matches any ICMP packet;
// Code -1 any code of the type. IPv4's type 255 means any type.
type ICMPMatch struct {
	Set  bool
	Type uint8
	Code int16
}

// ICMPType is the match of one type, any code.
func ICMPType(t uint8) ICMPMatch { return ICMPMatch{Set: true, Type: t, Code: -1} }

// CTState is a set of conntrack states.
type CTState uint8

const (
	StateInvalid CTState = 1 << iota
	StateNew
	StateRelated
	StateEstablished
	StateUntracked
)

// ctStateNames in the order iptables prints them.
var ctStateNames = []struct {
	s    CTState
	name string
}{{StateInvalid, "INVALID"}, {StateNew, "NEW"}, {StateRelated, "RELATED"}, {StateEstablished, "ESTABLISHED"}, {StateUntracked, "UNTRACKED"}}

// ActionKind is what a rule does with a packet it matches.
type ActionKind uint8

const (
	Accept    ActionKind = iota + 1
	Drop                 // drop the packet
	Return               // back to the calling chain
	Jump                 // to Action.Chain
	CTZone               // conntrack zone Action.Zone (raw table)
	CTNoTrack            // no connection tracking (raw table)
	// Log sends the packet to userspace (NFLOG, nft's log group) at a
	// limited rate and goes on to the next rule: it decides nothing.
	Log
)

// Action is what a rule does.
type Action struct {
	Chain string // Jump's target
	Zone  uint16 // CTZone's zone
	Kind  ActionKind
	// Log is the Log action's target.
	Log LogTarget
}

// LogTarget is where and how often a Log rule sends packets: netlink log
// group Group with Prefix (at most 63 bytes of [A-Za-z0-9_-]), at most
// Rate packets a second after a burst of Burst.
type LogTarget struct {
	Prefix      string
	Group       uint16
	Rate, Burst uint32
}

// OriginKind names what a rule stands for. The names are stable: trace
// prints them (origin_kind).
type OriginKind string

const (
	// OriginSGRule is a security group rule.
	OriginSGRule OriginKind = "security-group-rule"
	// OriginDefaultDrop is sg-fallback's DROP: no rule allowed the packet.
	OriginDefaultDrop OriginKind = "default-drop"
	// OriginToDefaultDrop is a port chain's jump to sg-fallback.
	OriginToDefaultDrop OriginKind = "to-default-drop"
	// OriginAntiSpoofing is the s chain and the o chain's jump to it.
	OriginAntiSpoofing OriginKind = "anti-spoofing"
	// OriginInvalid drops packets conntrack considers INVALID.
	OriginInvalid OriginKind = "invalid-state"
	// OriginEstablished returns packets of known connections.
	OriginEstablished OriginKind = "established"
	// OriginDHCPClient lets the VM's DHCP requests out.
	OriginDHCPClient OriginKind = "dhcp-client"
	// OriginDHCPReply lets DHCP replies to the VM in (a provider rule).
	OriginDHCPReply OriginKind = "dhcp-reply"
	// OriginDHCPProtection drops DHCP server traffic from the VM.
	OriginDHCPProtection OriginKind = "dhcp-protection"
	// OriginICMPv6ND allows neighbour discovery and MLD.
	OriginICMPv6ND OriginKind = "icmpv6-nd"
	// OriginICMPv6RA allows router advertisements to the VM (a provider
	// rule).
	OriginICMPv6RA OriginKind = "icmpv6-ra"
	// OriginRAProtection drops router advertisements from the VM.
	OriginRAProtection OriginKind = "ra-protection"
	// OriginICMPv6Egress lets the VM's other ICMPv6 out.
	OriginICMPv6Egress OriginKind = "icmpv6-egress"
	// OriginPortSecurityDisabled accepts everything of such a port.
	OriginPortSecurityDisabled OriginKind = "port-security-disabled"
	// OriginTrusted accepts everything of a network:* port.
	OriginTrusted OriginKind = "trusted-port"
	// OriginSGChainAccept is sg-chain's final ACCEPT: the port's chains
	// returned, the packet is allowed.
	OriginSGChainAccept OriginKind = "sg-chain-accept"
	// OriginDispatch are the jumps from the hooks to the port chains.
	OriginDispatch OriginKind = "dispatch"
	// OriginCTZone gives the port's packets their conntrack zone.
	OriginCTZone OriginKind = "conntrack-zone"
	// OriginStateless makes a stateless port's packets untracked.
	OriginStateless OriginKind = "stateless"
	// OriginRejectedPort drops the traffic of a port whose rules cannot
	// be built (moat's own).
	OriginRejectedPort OriginKind = "rejected-port"
)

// Directions and ethertypes as Neutron's API names them.
const (
	Ingress = "ingress"
	Egress  = "egress"
	IPv4    = "IPv4"
	IPv6    = "IPv6"
)

// Origin says where a rule came from, and sums up what it matches in the
// terms of a security group rule. Origins are shared by many rules.
type Origin struct {
	Kind OriginKind
	// Direction (Ingress, Egress) and Ethertype (IPv4, IPv6) of a rule of
	// a port's chains; "" elsewhere.
	Direction, Ethertype string
	// Rules are the security group rules behind the rule: its group rule,
	// or every rule that renders as it (the chain holds it once). A
	// built-in rule a group rule repeats has the group rule here too.
	Rules []SGRuleRef
	// RemoteGroup and RemoteAddressGroup are the remote group or address
	// group whose addresses the rule matches: through its ipset, or one
	// rule per address without ipsets.
	RemoteGroup, RemoteAddressGroup string
}

// SGRuleRef names one security group rule.
type SGRuleRef struct {
	GroupID string `json:"security_group_id"`
	// RuleID is the rule's id; "" when whoever built the host state did
	// not set it.
	RuleID string `json:"rule_id,omitempty"`
	// Index is the rule's position in its group's rules, for rules
	// without id.
	Index int `json:"index"`
}

func (s SGRuleRef) String() string {
	if s.RuleID != "" {
		return s.RuleID
	}
	return fmt.Sprintf("#%d of group %s", s.Index, s.GroupID)
}

// WithRules returns a copy of o whose Rules are o's followed by those of
// more not yet in it.
func (o *Origin) WithRules(more []SGRuleRef) *Origin {
	c := *o
	c.Rules = append([]SGRuleRef(nil), o.Rules...)
	for _, r := range more {
		dup := false
		for _, x := range c.Rules {
			dup = dup || x == r
		}
		if !dup {
			c.Rules = append(c.Rules, r)
		}
	}
	return &c
}
