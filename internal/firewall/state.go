package firewall

import (
	"time"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// Directions and ethertypes as Neutron's API stores them.
const (
	Ingress = hybrid.Ingress
	Egress  = hybrid.Egress
	IPv4    = hybrid.IPv4
	IPv6    = hybrid.IPv6
)

// HostState is everything that decides one host's rules.
type HostState struct {
	Options Options

	// Ports are the ports plugged on this host, in any order.
	Ports []Port

	// SecurityGroups must hold every group a local port carries. A group a
	// port names but that is missing here counts as a stateful group
	// without rules (the port is closed), as in Neutron.
	SecurityGroups []SecurityGroup

	// AddressGroups holds the address groups rules refer to; a missing one
	// counts as empty.
	AddressGroups []AddressGroup

	// GroupMembers maps a security group id to the addresses of every port
	// in that group on any host, this one included: each port's fixed IPs
	// and allowed-address-pair addresses, as stored (a bare address or a
	// CIDR). Only groups that rules name as remote_group_id are read; a
	// missing group has no members. Order and duplicates do not matter.
	GroupMembers map[string][]string

	// Zones are conntrack zones already assigned, by port id: what the
	// previous Ruleset returned in ZoneAssignments (or what the agent read
	// back from the raw table at start-up). Ports found here keep their
	// zone; new ports get new zones, see ZoneAssignments.
	Zones map[string]int

	// Installed names the ports whose rules the host holds now (an agent:
	// the ports of the last ruleset it applied, or after a restart the
	// ports it found wired or with a zone in the raw table). It decides
	// nothing but name clashes: of ports that would share chain or device
	// names, an installed one keeps them (see Ruleset.Rejected).
	Installed map[string]bool
}

// Options are the agent settings that change the rules.
type Options struct {
	// EnableIPSet is [SECURITYGROUP] enable_ipset: remote-group rules match
	// an ipset instead of one rule per member address.
	EnableIPSet bool
	// CommentRules is [AGENT] comment_iptables_rules.
	CommentRules bool
	// NeutronCompat reproduces Neutron 21 exactly, including the bugs moat
	// fixes by default (docs/compatibility.md): protocols are spelled the
	// way Neutron spells them (API "ipip" becomes -p ipip, i.e. 94), and
	// remote_address_group_id rules are left open. It exists for parity
	// tests and for comparing with hosts still run by Neutron.
	NeutronCompat bool
}

// Port is a port on this host.
type Port struct {
	ID string
	// MAC is the port's MAC address in any notation net.ParseMAC reads.
	MAC string
	// FixedIPs are the port's fixed addresses, without prefix length.
	FixedIPs            []string
	AllowedAddressPairs []AddressPair
	// SecurityGroups are the port's group ids in the order the API lists
	// them; rules are emitted group by group in this order.
	SecurityGroups []string
	// PortSecurityDisabled is the negation of Neutron's
	// port_security_enabled, so that the zero value filters the port.
	PortSecurityDisabled bool
	// DeviceOwner decides trust: "network:*" ports are not filtered at all
	// (Neutron's trusted ports), "neutron:*" ports are always stateful.
	DeviceOwner string
	// CreatedAt is when the port was created (zero if unknown). It renders
	// nothing: of clashing ports none of which is installed, the older one
	// keeps the names.
	CreatedAt time.Time
	// Unreadable, when set, says why the port's stored state could not be
	// read in full (the store's HostSnapshot.PortErrors): the rest of the
	// port is not to be trusted, so it is rejected with this reason.
	Unreadable string
}

// AddressPair is an allowed address pair.
type AddressPair struct {
	// IP is an address or CIDR as stored (host bits may be set).
	IP string
	// MAC is the pair's MAC; empty means the port's own.
	MAC string
}

// SecurityGroup is a security group and its rules, in the order the API
// returns them.
type SecurityGroup struct {
	ID string
	// Stateless is the negation of Neutron's stateful flag, so that the
	// zero value is Neutron's default (stateful).
	Stateless bool
	Rules     []Rule
}

// Rule is a security group rule as Neutron's API stores it (after its
// converters and normalisation: "icmp" on IPv6 is already "ipv6-icmp", the
// port range 1-65535 is already absent, and so on).
type Rule struct {
	// ID is the rule's id in the API. The rule's text does not depend on
	// it (two rules that differ only in id render alike, and the chain
	// holds the line once); its origin names it (Chain.Specs()).
	ID        string
	Direction string // Ingress or Egress
	Ethertype string // IPv4 or IPv6
	// Protocol is the stored value: "" for any, a lower-case name ("tcp",
	// "ipip") or a number as the client spelled it ("6", "06").
	Protocol     string
	PortRangeMin *int // ICMP type for ICMP rules
	PortRangeMax *int // ICMP code for ICMP rules
	// RemoteIPPrefix is the stored prefix, host bits kept.
	RemoteIPPrefix string
	// NormalizedCIDR is RemoteIPPrefix with host bits cleared; the compiler
	// derives it when empty.
	NormalizedCIDR       string
	RemoteGroupID        string
	RemoteAddressGroupID string
}

// RuleFromNeutron is the compiler's view of a rule the API stored: its id,
// and its attributes with absent values as "" (NormalizedCIDR too when the
// prefix does not parse).
func RuleFromNeutron(r *neutron.SecurityGroupRule) Rule {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	fr := Rule{
		ID:        r.ID,
		Direction: r.Direction, Ethertype: r.Ethertype, Protocol: str(r.Protocol),
		PortRangeMin: r.PortRangeMin, PortRangeMax: r.PortRangeMax,
		RemoteIPPrefix: str(r.RemoteIPPrefix), RemoteGroupID: str(r.RemoteGroupID),
		RemoteAddressGroupID: str(r.RemoteAddressGroupID),
	}
	if n := r.NormalizedCIDR(); n != nil {
		fr.NormalizedCIDR = *n
	}
	return fr
}

// AddressGroup is a Neutron address group.
type AddressGroup struct {
	ID        string
	Addresses []string // CIDRs as stored
	// Name is for traces to show; it is never rendered into a rule.
	Name string
}
