package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// portKind is how the hybrid driver treats a port.
type portKind int

const (
	filtered   portKind = iota
	unfiltered          // port security disabled: accepted in FORWARD and INPUT
	trusted             // device_owner network:*: accepted in FORWARD only
)

func kindOf(p *Port) portKind {
	switch {
	case strings.HasPrefix(p.DeviceOwner, "network:"):
		return trusted
	case p.PortSecurityDisabled:
		return unfiltered
	}
	return filtered
}

// portStatic is everything about a port's rules that depends on the port
// and the options alone, not on its security groups or zone.
type portStatic struct {
	id        string
	kind      portKind
	tap, qvb  string
	chainI    string
	chainO    string
	chainS    string
	fixedText []string // fixed IPs as stored
	// forceStateful: Neutron never makes network:/neutron: owned ports
	// stateless.
	forceStateful bool

	head     [2][2][]line // fixed rules before RELATED,ESTABLISHED
	provider [2][]line    // DHCP and RA rules, ahead of the group rules
	spoof    [2][]string  // the s chain; nil when the family has no pairs

	forward []string // rules in neutron-openvswi-FORWARD
	input   []string // rules in neutron-openvswi-INPUT
	sg      []string // rules in neutron-openvswi-sg-chain
}

// fixedTexts are the rule texts that are the same for every port, per
// comment setting, built once.
type fixedTexts struct {
	ingressV6Head                 []line // NDP/MLD accepts
	egressV4Pre, egressV4Post     []line // around the s-chain jump
	egressV6Pre, egressV6Post     []line
	raProvider, bcastDHCP, llDHCP line
	pairDrop                      line
	comment                       map[string]string // -m comment part per comment text
}

var fixedByComments = [2]*fixedTexts{newFixedTexts(false), newFixedTexts(true)}

func newFixedTexts(c bool) *fixedTexts {
	f := &fixedTexts{comment: map[string]string{}}
	for _, t := range []int{130, 135, 136} {
		f.ingressV6Head = append(f.ingressV6Head, line{text: "-p ipv6-icmp -m icmp6 --icmpv6-type " + strconv.Itoa(t) + " -j RETURN"})
	}
	f.egressV4Pre = []line{{text: withComment("-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN", hybrid.CommentDHCPClient, c)}}
	f.egressV4Post = []line{
		{text: withComment("-p udp -m udp --sport 68 --dport 67 -j RETURN", hybrid.CommentDHCPClient, c)},
		{text: withComment("-p udp -m udp --sport 67 --dport 68 -j DROP", hybrid.CommentDHCPSpoof, c)},
	}
	for _, t := range []int{131, 135, 143} {
		f.egressV6Pre = append(f.egressV6Pre, line{text: withComment("-s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type "+strconv.Itoa(t)+" -j RETURN", hybrid.CommentIPv6ICMPAllow, c)})
	}
	f.egressV6Post = []line{
		{text: withComment("-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP", hybrid.CommentIPv6RADrop, c)},
		{text: withComment("-p ipv6-icmp -j RETURN", hybrid.CommentIPv6ICMPAllow, c)},
		{text: withComment("-p udp -m udp --sport 546 --dport 547 -j RETURN", hybrid.CommentDHCPClient, c)},
		{text: withComment("-p udp -m udp --sport 547 --dport 546 -j DROP", hybrid.CommentDHCPSpoof, c)},
	}
	f.raProvider = line{text: "-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN"}
	f.bcastDHCP = line{text: "-d 255.255.255.255/32 -p udp -m udp --sport 67 --dport 68 -j RETURN"}
	f.llDHCP = line{text: "-d fe80::/64 -p udp -m udp --sport 547 --dport 546 -j RETURN"}
	f.pairDrop = line{text: withComment("-j DROP", hybrid.CommentPairDrop, c)}
	for _, cm := range []string{hybrid.CommentTrustedAccept, hybrid.CommentPortSecAccept, hybrid.CommentVMIntSG, hybrid.CommentSGToVMSG, hybrid.CommentInputToSG, hybrid.CommentPairAllow} {
		if c {
			f.comment[cm] = ` -m comment --comment "` + cm + `"`
		} else {
			f.comment[cm] = ""
		}
	}
	return f
}

func fixedFor(opt Options) *fixedTexts {
	if opt.CommentRules {
		return fixedByComments[1]
	}
	return fixedByComments[0]
}

func buildPortStatic(p *Port, opt Options) (*portStatic, error) {
	if err := checkPort(p); err != nil {
		return nil, err
	}
	f := fixedFor(opt)
	ps := &portStatic{
		id:            p.ID,
		kind:          kindOf(p),
		tap:           hybrid.TapName(p.ID),
		qvb:           hybrid.BridgeVethName(p.ID),
		forceStateful: strings.HasPrefix(p.DeviceOwner, "network:") || strings.HasPrefix(p.DeviceOwner, "neutron:"),
	}
	// physdev renders "-m physdev --physdev-DIR TAP --physdev-is-bridged
	// [comment] -j TARGET", the shape of every dispatch rule.
	physdev := func(dir, comment, target string) string {
		return "-m physdev --physdev-" + dir + " " + ps.tap + " --physdev-is-bridged" + f.comment[comment] + " -j " + target
	}
	switch ps.kind {
	case trusted:
		ps.forward = []string{
			physdev("out", hybrid.CommentTrustedAccept, "ACCEPT"),
			physdev("in", hybrid.CommentTrustedAccept, "ACCEPT"),
		}
		return ps, nil
	case unfiltered:
		ps.forward = []string{
			physdev("out", hybrid.CommentPortSecAccept, "ACCEPT"),
			physdev("in", hybrid.CommentPortSecAccept, "ACCEPT"),
		}
		ps.input = []string{physdev("in", hybrid.CommentPortSecAccept, "ACCEPT")}
		return ps, nil
	}

	ps.chainI = hybrid.PortChain(hybrid.ChainIn, p.ID)
	ps.chainO = hybrid.PortChain(hybrid.ChainOut, p.ID)
	ps.chainS = hybrid.PortChain(hybrid.ChainSpoof, p.ID)
	ps.forward = []string{
		physdev("out", hybrid.CommentVMIntSG, hybrid.ChainSG),
		physdev("in", hybrid.CommentVMIntSG, hybrid.ChainSG),
	}
	ps.sg = []string{
		physdev("out", hybrid.CommentSGToVMSG, ps.chainI),
		physdev("in", hybrid.CommentSGToVMSG, ps.chainO),
	}
	ps.input = []string{physdev("in", hybrid.CommentInputToSG, ps.chainO)}

	mac, _ := parseMAC(p.MAC) // checked by checkPort
	ps.fixedText = slices.Clone(p.FixedIPs)
	var fixed [2][]netip.Addr
	for _, s := range p.FixedIPs {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("bad fixed IP %s", quoteShort(s))
		}
		fixed[family(a)] = append(fixed[family(a)], a)
	}

	// Provider rules the server adds to every port
	// (securitygroups_rpc_base._apply_provider_rule): router advertisements
	// if the port has an IPv6 address, then DHCP replies to each fixed
	// address and to broadcast (IPv4) or link-local (IPv6).
	ps.provider[v4] = make([]line, 0, len(fixed[v4])+1)
	ps.provider[v6] = make([]line, 0, len(fixed[v6])+2)
	if len(fixed[v6]) > 0 {
		ps.provider[v6] = append(ps.provider[v6], f.raProvider)
	}
	for _, a := range fixed[v4] {
		ps.provider[v4] = append(ps.provider[v4], line{text: "-d " + a.String() + "/32 -p udp -m udp --sport 67 --dport 68 -j RETURN"})
	}
	ps.provider[v4] = append(ps.provider[v4], f.bcastDHCP)
	for _, a := range fixed[v6] {
		ps.provider[v6] = append(ps.provider[v6], line{text: "-d " + a.String() + "/128 -p udp -m udp --sport 547 --dport 546 -j RETURN"})
	}
	ps.provider[v6] = append(ps.provider[v6], f.llDHCP)

	// Traffic to the VM: IPv6 multicast listener queries and neighbour
	// discovery always pass.
	ps.head[v6][in] = f.ingressV6Head

	spoof, err := spoofChains(p, mac, f)
	if err != nil {
		return nil, err
	}
	ps.spoof = spoof

	// Traffic from the VM (_add_fixed_egress_rules): the anti-spoofing
	// jump sits between fixed rules that are the same for every port.
	jump := line{text: "-j " + ps.chainS}
	for fam, parts := range [2][2][]line{{f.egressV4Pre, f.egressV4Post}, {f.egressV6Pre, f.egressV6Post}} {
		head := make([]line, 0, len(parts[0])+1+len(parts[1]))
		head = append(head, parts[0]...)
		if spoof[fam] != nil {
			head = append(head, jump)
		}
		ps.head[fam][out] = append(head, parts[1]...)
	}
	return ps, nil
}

func family(a netip.Addr) int {
	if a.Is6() {
		return v6
	}
	return v4
}

// spoofChains renders the s chains (_spoofing_rule): one RETURN per
// (MAC, address) pair the port may send from, allowed address pairs first,
// then fixed IPs, each IPv6 MAC also with its EUI-64 link-local address;
// a port without fixed IPs may send anything from its MAC. A family
// without pairs gets no chain.
func spoofChains(p *Port, mac net.HardwareAddr, f *fixedTexts) ([2][]string, error) {
	type pair struct {
		mac  net.HardwareAddr
		addr netip.Prefix
		raw  string // the address as stored
		any  bool   // no address: MAC only
	}
	var pairs [2][]pair
	add := func(m net.HardwareAddr, pfx netip.Prefix, raw string) {
		fam := family(pfx.Addr())
		pairs[fam] = append(pairs[fam], pair{mac: m, addr: pfx, raw: raw})
		if fam == v6 {
			// Added once per MAC; like Neutron, compare the stored text.
			lla := linkLocal(m)
			for _, q := range pairs[v6] {
				if q.raw == lla.String() && q.mac.String() == m.String() {
					return
				}
			}
			pairs[v6] = append(pairs[v6], pair{mac: m, addr: netip.PrefixFrom(lla, 128), raw: lla.String()})
		}
	}
	for _, ap := range p.AllowedAddressPairs {
		m := mac
		if ap.MAC != "" {
			var err error
			if m, err = parseMAC(ap.MAC); err != nil {
				return [2][]string{}, fmt.Errorf("bad allowed address pair MAC %s", quoteShort(ap.MAC))
			}
		}
		pfx, err := neutron.ParseCIDR(ap.IP)
		if err != nil {
			return [2][]string{}, fmt.Errorf("bad allowed address pair %s", quoteShort(ap.IP))
		}
		add(m, pfx, ap.IP)
	}
	for _, s := range p.FixedIPs {
		a, _ := netip.ParseAddr(s) // validated by the caller
		add(mac, netip.PrefixFrom(a, a.BitLen()), s)
	}
	if len(p.FixedIPs) == 0 {
		pairs[v4] = append(pairs[v4], pair{mac: mac, any: true})
		pairs[v6] = append(pairs[v6], pair{mac: mac, any: true})
	}

	var chains [2][]string
	cm := f.comment[hybrid.CommentPairAllow]
	for fam, ps := range pairs {
		if len(ps) == 0 {
			continue
		}
		ls := make([]line, 0, len(ps)+1)
		for _, q := range ps {
			tail := "-m mac --mac-source " + q.mac.String() + cm + " -j RETURN"
			if q.any {
				ls = append(ls, line{text: tail})
				continue
			}
			// Neutron writes the prefix with its host bits and the kernel
			// clears them (a /0 disappears); duplicates are decided on what
			// Neutron wrote.
			masked := q.addr.Masked()
			l := line{text: "-s " + masked.String() + " " + tail}
			if q.addr.Bits() == 0 {
				l.text = tail
			}
			if masked != q.addr || q.addr.Bits() == 0 {
				l.key = "-s " + q.addr.String() + " " + tail
			}
			ls = append(ls, l)
		}
		ls = append(ls, f.pairDrop)
		chains[fam] = texts(dedupKeepLast(ls))
	}
	return chains, nil
}

// parseMAC reads a 48-bit MAC in any notation net.ParseMAC knows.
func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil, err
	}
	if len(m) != 6 {
		return nil, fmt.Errorf("not a 48-bit MAC: %q", s)
	}
	return m, nil
}

// linkLocal is the EUI-64 link-local address of a MAC (fe80::/64).
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8] = mac[0] ^ 0x02
	b[9], b[10] = mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// dedupKeepLast drops every line whose identity appears again later, as
// IptablesManager's _weed_out_duplicates does on a whole table.
func dedupKeepLast(ls []line) []line {
	if len(ls) <= 16 {
		// Short lists (anti-spoofing chains) without a map.
		out := make([]line, 0, len(ls))
	next:
		for i, l := range ls {
			for _, later := range ls[i+1:] {
				if later.id() == l.id() {
					continue next
				}
			}
			out = append(out, l)
		}
		return out
	}
	seen := make(map[string]struct{}, len(ls))
	out := make([]line, len(ls))
	n := len(ls)
	for i := len(ls) - 1; i >= 0; i-- {
		id := ls[i].id()
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		n--
		out[n] = ls[i]
	}
	return out[n:]
}

func texts(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.text
	}
	return out
}
