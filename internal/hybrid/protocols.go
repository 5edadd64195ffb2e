package hybrid

import (
	"strconv"
	"strings"
)

// How iptables spells IP protocols.
//
// iptables-save prints `-p` with getprotobynumber(3), i.e. the first name
// /etc/protocols gives a number, and the protocol number when there is none;
// protocol 0 ("any") is printed as no `-p` at all. iptables-restore reads a
// `-p` argument lowercased, as a C number (strtoul base 0: "010" is 8), then
// "all", then getprotobyname(3), then a few names compiled into libxtables.
//
// A compiler that must predict iptables-save byte for byte cannot ask the
// running host, so the table below is a verbatim copy of the entries of
// /etc/protocols as Debian 12 ships it (netbase 6.4). Only this data is
// consulted; nothing reads /etc/protocols at run time.

// debianProtocols holds the non-comment lines of Debian 12's /etc/protocols:
// name, number, aliases.
const debianProtocols = `
ip	0	IP
hopopt	0	HOPOPT
icmp	1	ICMP
igmp	2	IGMP
ggp	3	GGP
ipencap	4	IP-ENCAP
st	5	ST
tcp	6	TCP
egp	8	EGP
igp	9	IGP
pup	12	PUP
udp	17	UDP
hmp	20	HMP
xns-idp	22	XNS-IDP
rdp	27	RDP
iso-tp4	29	ISO-TP4
dccp	33	DCCP
xtp	36	XTP
ddp	37	DDP
idpr-cmtp 38	IDPR-CMTP
ipv6	41	IPv6
ipv6-route 43	IPv6-Route
ipv6-frag 44	IPv6-Frag
idrp	45	IDRP
rsvp	46	RSVP
gre	47	GRE
esp	50	IPSEC-ESP
ah	51	IPSEC-AH
skip	57	SKIP
ipv6-icmp 58	IPv6-ICMP
ipv6-nonxt 59	IPv6-NoNxt
ipv6-opts 60	IPv6-Opts
rspf	73	RSPF CPHB
vmtp	81	VMTP
eigrp	88	EIGRP
ospf	89	OSPFIGP
ax.25	93	AX.25
ipip	94	IPIP
etherip	97	ETHERIP
encap	98	ENCAP
pim	103	PIM
ipcomp	108	IPCOMP
vrrp	112	VRRP
l2tp	115	L2TP
isis	124	ISIS
sctp	132	SCTP
fc	133	FC
mobility-header 135	Mobility-Header
udplite	136	UDPLite
mpls-in-ip 137	MPLS-in-IP
manet	138
hip	139	HIP
shim6	140	Shim6
wesp	141	WESP
rohc	142	ROHC
ethernet 143	Ethernet
mptcp	262	MPTCP
`

// xtablesProtocols are the names libxtables (iptables 1.8.9,
// xtables_chain_protos) accepts when getprotobyname does not know them.
var xtablesProtocols = map[string]int{
	"tcp": 6, "sctp": 132, "udp": 17, "udplite": 136, "icmp": 1,
	"icmpv6": 58, "ipv6-icmp": 58, "esp": 50, "ah": 51,
	"ipv6-mh": 135, "mh": 135, "all": 0,
}

var (
	// protocolSaveNames[n] is getprotobynumber(n)'s name, "" if none.
	protocolSaveNames [256]string
	// protocolByName is getprotobyname over names and aliases.
	protocolByName = map[string]int{}
)

func init() {
	for _, line := range strings.Split(debianProtocols, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num, err := strconv.Atoi(f[1])
		if err != nil {
			panic("hybrid: bad embedded /etc/protocols line " + line)
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			if _, dup := protocolByName[name]; !dup {
				protocolByName[name] = num
			}
		}
		if num < len(protocolSaveNames) && protocolSaveNames[num] == "" {
			protocolSaveNames[num] = f[0]
		}
	}
}

// IptablesProtocolName is how iptables-save prints protocol num after `-p`:
// "" for 0 (iptables prints no `-p` for "any protocol"), the /etc/protocols
// name if there is one ("ipencap" for 4, "ipip" for 94), else the decimal
// number ("113"). It panics for num outside 0..255, which no rule can hold.
func IptablesProtocolName(num int) string {
	if num < 0 || num > 255 {
		panic("hybrid: IP protocol out of range: " + strconv.Itoa(num))
	}
	if num == 0 {
		return ""
	}
	if name := protocolSaveNames[num]; name != "" {
		return name
	}
	return strconv.Itoa(num)
}

// ParseIptablesProtocol is the protocol number iptables(-restore) reads from a
// `-p` argument, or ok=false where iptables rejects it ("unknown protocol").
// It mirrors libxtables: the argument is lowercased; a C number (strtoul base
// 0, leading blanks allowed: "06" is 6, "010" is 8, "0x4" is 4) up to 255;
// "all"; a name or alias from /etc/protocols; a libxtables built-in name.
func ParseIptablesProtocol(arg string) (num int, ok bool) {
	s := strings.ToLower(arg)
	if n, ok := parseCUint(s); ok {
		if n > 255 {
			return 0, false
		}
		return int(n), true
	}
	if s == "all" {
		return 0, true
	}
	if n, found := protocolByName[s]; found && n <= 255 {
		return n, true
	}
	if n, found := xtablesProtocols[s]; found {
		return n, true
	}
	return 0, false
}

// parseCUint parses s the way strtoul(s, &end, 0) does when the whole string
// must be consumed: optional leading white space and '+', then a 0x hex, 0
// octal or decimal number.
func parseCUint(s string) (uint64, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	s = strings.TrimPrefix(s, "+")
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
