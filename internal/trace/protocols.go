package trace

import (
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// The IP protocol table with every name a protocol goes by: IANA's
// keyword, the names Neutron's API accepts, and how iptables spells it
// (the first /etc/protocols name of Debian 12, which iptables-save
// prints). The names do not always agree, and where they do not a rule can
// silently match another protocol than the one meant.

// ianaKeywords are the keywords of IANA's Assigned Internet Protocol
// Numbers registry ("" where the registry has none).
var ianaKeywords = map[int]string{
	0: "HOPOPT", 1: "ICMP", 2: "IGMP", 3: "GGP", 4: "IPv4", 5: "ST", 6: "TCP", 7: "CBT",
	8: "EGP", 9: "IGP", 10: "BBN-RCC-MON", 11: "NVP-II", 12: "PUP", 13: "ARGUS", 14: "EMCON",
	15: "XNET", 16: "CHAOS", 17: "UDP", 18: "MUX", 19: "DCN-MEAS", 20: "HMP", 21: "PRM",
	22: "XNS-IDP", 23: "TRUNK-1", 24: "TRUNK-2", 25: "LEAF-1", 26: "LEAF-2", 27: "RDP",
	28: "IRTP", 29: "ISO-TP4", 30: "NETBLT", 31: "MFE-NSP", 32: "MERIT-INP", 33: "DCCP",
	34: "3PC", 35: "IDPR", 36: "XTP", 37: "DDP", 38: "IDPR-CMTP", 39: "TP++", 40: "IL",
	41: "IPv6", 42: "SDRP", 43: "IPv6-Route", 44: "IPv6-Frag", 45: "IDRP", 46: "RSVP",
	47: "GRE", 48: "DSR", 49: "BNA", 50: "ESP", 51: "AH", 52: "I-NLSP", 53: "SWIPE",
	54: "NARP", 55: "Min-IPv4", 56: "TLSP", 57: "SKIP", 58: "IPv6-ICMP", 59: "IPv6-NoNxt",
	60: "IPv6-Opts", 62: "CFTP", 64: "SAT-EXPAK", 65: "KRYPTOLAN", 66: "RVD", 67: "IPPC",
	69: "SAT-MON", 70: "VISA", 71: "IPCV", 72: "CPNX", 73: "CPHB", 74: "WSN", 75: "PVP",
	76: "BR-SAT-MON", 77: "SUN-ND", 78: "WB-MON", 79: "WB-EXPAK", 80: "ISO-IP", 81: "VMTP",
	82: "SECURE-VMTP", 83: "VINES", 84: "TTP/IPTM", 85: "NSFNET-IGP", 86: "DGP", 87: "TCF",
	88: "EIGRP", 89: "OSPFIGP", 90: "Sprite-RPC", 91: "LARP", 92: "MTP", 93: "AX.25",
	94: "IPIP", 95: "MICP", 96: "SCC-SP", 97: "ETHERIP", 98: "ENCAP", 100: "GMTP",
	101: "IFMP", 102: "PNNI", 103: "PIM", 104: "ARIS", 105: "SCPS", 106: "QNX", 107: "A/N",
	108: "IPComp", 109: "SNP", 110: "Compaq-Peer", 111: "IPX-in-IP", 112: "VRRP", 113: "PGM",
	115: "L2TP", 116: "DDX", 117: "IATP", 118: "STP", 119: "SRP", 120: "UTI", 121: "SMP",
	122: "SM", 123: "PTP", 124: "ISIS over IPv4", 125: "FIRE", 126: "CRTP", 127: "CRUDP",
	128: "SSCOPMCE", 129: "IPLT", 130: "SPS", 131: "PIPE", 132: "SCTP", 133: "FC",
	134: "RSVP-E2E-IGNORE", 135: "Mobility Header", 136: "UDPLite", 137: "MPLS-in-IP",
	138: "manet", 139: "HIP", 140: "Shim6", 141: "WESP", 142: "ROHC", 143: "Ethernet",
	144: "AGGFRAG", 145: "NSH",
}

// ianaNoKeyword describes numbers IANA assigns without a keyword.
var ianaNoKeyword = map[int]string{
	61: "any host internal protocol", 63: "any local network", 68: "any distributed file system",
	99: "any private encryption scheme", 114: "any 0-hop protocol", 253: "experimentation and testing",
	254: "experimentation and testing", 255: "reserved",
}

// protocolNotes spell out the ambiguities.
var protocolNotes = map[int]string{
	0:   "no -p: any protocol. Neutron names ip and hopopt both mean 0; Neutron renders ip as -p ip, which iptables-save prints as no -p at all, so Neutron never converges on such a rule",
	4:   "IP-in-IP (IANA: IPv4 encapsulation). Neutron's API calls it ipip, but /etc/protocols (and so iptables -p ipip) says ipip is 94 and calls 4 ipencap: Neutron renders the API name ipip as -p ipip, i.e. 94. Give --protocol 4",
	41:  "Neutron's name ipv6-encap is rendered as -p ipv6 (/etc/protocols' name of 41)",
	58:  "Neutron accepts icmpv6 and ipv6-icmp (and icmp or 1 on an IPv6 rule) and stores ipv6-icmp/58; iptables spells it ipv6-icmp and matches types with -m icmp6",
	94:  "what /etc/protocols calls ipip: the IP-within-IP of IANA (IPIP), NOT the common IP-in-IP tunnel (4). Neutron's API name ipip is 4",
	113: "Neutron's name pgm has no /etc/protocols entry: rendered as -p 113",
	136: "ports as -m multiport --dports, there is no udplite match module",
}

// Protocol is one row of the protocol table.
type Protocol struct {
	Number int `json:"number"`
	// IANA is the registry's keyword, or its description where it has no
	// keyword, "" for unassigned numbers.
	IANA string `json:"iana"`
	// Neutron are the names Neutron's API accepts for the number.
	Neutron []string `json:"neutron_names,omitempty"`
	// Iptables is how iptables-save prints -p for the number ("" for 0:
	// no -p at all).
	Iptables string `json:"iptables"`
	// EtcProtocols are the names /etc/protocols gives the number, which
	// iptables accepts in -p.
	EtcProtocols []string `json:"etc_protocols,omitempty"`
	Note         string   `json:"note,omitempty"`
}

// Protocols returns the table of protocols 0..255: with all false only
// those that have a name somewhere or a note.
func Protocols(all bool) []Protocol {
	neutronNames := map[int][]string{}
	for _, n := range neutron.ProtocolNames() {
		num, _ := neutron.ProtocolNumber(n)
		neutronNames[num] = append(neutronNames[num], n)
	}
	etc := etcProtocolNames()
	var out []Protocol
	for n := 0; n <= 255; n++ {
		p := Protocol{Number: n, IANA: ianaKeywords[n], Neutron: neutronNames[n], Iptables: hybrid.IptablesProtocolName(n), EtcProtocols: etc[n], Note: protocolNotes[n]}
		if p.IANA == "" {
			p.IANA = ianaNoKeyword[n]
		}
		if n >= 146 && n <= 252 {
			p.IANA = "unassigned"
		}
		// Names that mean another number elsewhere.
		for _, name := range p.Neutron {
			if ipt, ok := hybrid.ParseIptablesProtocol(name); ok && ipt != n && p.Note == "" {
				p.Note = "iptables reads the name " + name + " as " + strconv.Itoa(ipt)
			}
		}
		for _, name := range p.EtcProtocols {
			if nn, ok := neutron.ProtocolNumber(name); ok && nn != n && p.Note == "" {
				p.Note = "Neutron's API reads the name " + name + " as " + strconv.Itoa(nn)
			}
		}
		if !all && len(p.Neutron) == 0 && len(p.EtcProtocols) == 0 && p.Note == "" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// etcProtocolNames are the lower-case names /etc/protocols (Debian 12)
// gives each number, as iptables accepts them.
func etcProtocolNames() map[int][]string {
	names := map[int][]string{}
	// The embedded table gives one name per number: the one iptables-save
	// prints.
	for n := 0; n <= 255; n++ {
		if name := hybrid.IptablesProtocolName(n); name != "" && name != strconv.Itoa(n) {
			names[n] = []string{name}
		}
	}
	// hopopt shares 0 with ip; iptables prints no -p for 0.
	names[0] = []string{"hopopt", "ip"}
	return names
}

// ProtocolRowText is a row for a text table.
func (p Protocol) ProtocolRowText() []string {
	ipt := p.Iptables
	if p.Number == 0 {
		ipt = "(no -p)"
	}
	return []string{strconv.Itoa(p.Number), p.IANA, strings.Join(p.Neutron, ", "), ipt, p.Note}
}
