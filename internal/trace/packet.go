package trace

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// State is a set of conntrack states, as -m state / -m conntrack --ctstate
// name them.
type State uint8

const (
	StateNew State = 1 << iota
	StateEstablished
	StateRelated
	StateInvalid
	StateUntracked
)

var stateNames = []struct {
	s    State
	name string
}{
	{StateNew, "NEW"}, {StateEstablished, "ESTABLISHED"}, {StateRelated, "RELATED"},
	{StateInvalid, "INVALID"}, {StateUntracked, "UNTRACKED"},
}

func (s State) String() string {
	var parts []string
	for _, n := range stateNames {
		if s&n.s != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// ParseState reads one state: new, established, related, invalid,
// untracked (any case).
func ParseState(s string) (State, error) {
	for _, n := range stateNames {
		if strings.EqualFold(s, n.name) {
			return n.s, nil
		}
	}
	return 0, fmt.Errorf("unknown conntrack state %q (want new, established, related, invalid or untracked)", s)
}

// Direction is the direction of a packet as seen by the VM.
type Direction string

const (
	Ingress Direction = "ingress" // to the VM: enters on qvb, leaves on tap
	Egress  Direction = "egress"  // from the VM: enters on tap
)

// Hook is where the frame meets the filter table.
type Hook string

const (
	// HookForward is a bridged frame (VM to anywhere but the host, or
	// anywhere to the VM): filter FORWARD with --physdev-is-bridged true.
	HookForward Hook = "forward"
	// HookInput is a frame from the VM to the host itself: filter INPUT,
	// no physdev-out, so --physdev-is-bridged is false.
	HookInput Hook = "input"
)

// Packet is one packet as the matches see it. Port numbers, ICMP type and
// code are -1 and SrcMAC nil when not known; a rule that needs them gives
// an unknown outcome.
type Packet struct {
	IPv6     bool
	Protocol int // IP protocol number (the upper-layer protocol for IPv6)
	Src, Dst netip.Addr
	SrcPort  int
	DstPort  int
	ICMPType int
	ICMPCode int
	SrcMAC   net.HardwareAddr
	State    State

	// What netfilter sees of the devices: InDev/OutDev for -i/-o (with
	// br_netfilter, the bridge), PhysIn/PhysOut for -m physdev (the
	// bridge ports; PhysOut is empty before the bridge decided, in raw
	// PREROUTING, and for frames to the host).
	InDev, OutDev   string
	PhysIn, PhysOut string
}

// Query is a packet as a user describes it: the port and direction it
// crosses, and the header fields. Zero values mean "not given"; see
// Resolve for the defaults.
type Query struct {
	// Port is a port id or a prefix of one; Tap a tap device. One of them
	// is required.
	Port, Tap string
	Direction Direction
	Hook      Hook // default HookForward
	// Protocol is a number or a name: Neutron's API names first ("ipip"
	// is 4), then /etc/protocols names ("ipencap").
	Protocol         string
	Src, Dst         string
	SrcPort, DstPort string
	ICMPType         string
	ICMPCode         string
	SrcMAC           string
	State            string // default "new"
}

// ParseProtocol reads a protocol as a user gives it: a number 0..255, a
// Neutron API name ("ipip" is 4, "icmpv6" 58), or a name /etc/protocols
// knows ("ipencap" is 4). note explains a name whose meaning differs
// between Neutron and iptables. On IPv6, "icmp" is ICMPv6, as Neutron
// stores it.
func ParseProtocol(s string, v6 bool) (num int, note string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "", fmt.Errorf("no protocol given")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 255 {
			return 0, "", fmt.Errorf("protocol %d out of range 0..255", n)
		}
		return n, "", nil
	}
	lower := strings.ToLower(s)
	if v6 && (lower == "icmp" || lower == "icmpv6") {
		return neutron.ProtoICMPv6, "", nil
	}
	if n, ok := neutron.ProtocolNumber(lower); ok {
		if ipt, ok := hybrid.ParseIptablesProtocol(lower); ok && ipt != n {
			note = fmt.Sprintf("%q is Neutron's name for protocol %d; iptables (/etc/protocols) reads %q as %d", lower, n, lower, ipt)
		}
		return n, note, nil
	}
	if n, ok := hybrid.ParseIptablesProtocol(lower); ok {
		return n, "", nil
	}
	return 0, "", fmt.Errorf("unknown protocol %q (give a number 0..255 or a name; moat protocols lists them)", s)
}

func parseOptInt(s, what string, max int) (int, error) {
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("%s %q: want a number 0..%d", what, s, max)
	}
	return n, nil
}

// protoName spells a protocol number for people: "4 (ipencap)".
func protoName(n int) string {
	if n == 0 {
		return "any"
	}
	name := hybrid.IptablesProtocolName(n)
	if name == strconv.Itoa(n) {
		return name
	}
	return fmt.Sprintf("%d (%s)", n, name)
}

// Describe prints the packet's header for people.
func (p *Packet) Describe() string {
	var b strings.Builder
	fam := "IPv4"
	if p.IPv6 {
		fam = "IPv6"
	}
	fmt.Fprintf(&b, "%s protocol %s %s", fam, protoName(p.Protocol), p.Src)
	if p.SrcPort >= 0 {
		fmt.Fprintf(&b, ":%d", p.SrcPort)
	}
	fmt.Fprintf(&b, " -> %s", p.Dst)
	if p.DstPort >= 0 {
		fmt.Fprintf(&b, ":%d", p.DstPort)
	}
	if p.ICMPType >= 0 {
		fmt.Fprintf(&b, " type %d", p.ICMPType)
		if p.ICMPCode >= 0 {
			fmt.Fprintf(&b, " code %d", p.ICMPCode)
		}
	}
	if p.SrcMAC != nil {
		fmt.Fprintf(&b, " from MAC %s", p.SrcMAC)
	}
	fmt.Fprintf(&b, ", state %s", p.State)
	return b.String()
}

// TcpdumpFilter is a pcap filter expression for the packet's header
// fields (protocol, addresses, ports), for capturing the same packet on
// the devices along its path.
func (p *Packet) TcpdumpFilter() string {
	fam := "ip"
	if p.IPv6 {
		fam = "ip6"
	}
	parts := []string{fam}
	if p.Protocol != 0 {
		parts = append(parts, fmt.Sprintf("%s proto %d", fam, p.Protocol))
	}
	if p.Src.IsValid() {
		parts = append(parts, "src host "+p.Src.String())
	}
	if p.Dst.IsValid() {
		parts = append(parts, "dst host "+p.Dst.String())
	}
	switch p.Protocol {
	case neutron.ProtoTCP, neutron.ProtoUDP, neutron.ProtoSCTP:
		if p.SrcPort >= 0 {
			parts = append(parts, fmt.Sprintf("src port %d", p.SrcPort))
		}
		if p.DstPort >= 0 {
			parts = append(parts, fmt.Sprintf("dst port %d", p.DstPort))
		}
	}
	return strings.Join(parts, " and ")
}
