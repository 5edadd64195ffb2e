package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

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
	spoof    [2]ruleLines // the s chain; no texts when the family has no pairs

	forward []line // rules in neutron-openvswi-FORWARD
	input   []line // rules in neutron-openvswi-INPUT
	sg      []line // rules in neutron-openvswi-sg-chain

	// The lines above are rendered without their specs, which are built
	// again from src the first time a caller asks (withSpecs).
	src      Port // what it was built from; read-only
	fixed    *fixedTexts
	specs    sync.Once
	withData *portStatic // the same lines with their specs
}

// withSpecs returns ps with the specs of its lines: ps itself if it was
// built with them, else (once) the same port built again with them.
func (ps *portStatic) withSpecs() *portStatic {
	ps.specs.Do(func() {
		if ps.withData != nil {
			return
		}
		full, err := buildPortStatic(&ps.src, ps.fixed, true)
		if err != nil {
			// buildPortStatic is a function of its inputs, which built
			// ps without an error.
			panic(fmt.Sprintf("firewall: port %s: rebuilding its rules with their specs: %v", ps.id, err))
		}
		ps.withData = full
	})
	return ps.withData
}

// fixedTexts are the rules that are the same for every port, per comment
// setting, built once.
type fixedTexts struct {
	ingressV6Head                 []line // NDP/MLD accepts
	egressV4Pre, egressV4Post     []line // around the s-chain jump
	egressV6Pre, egressV6Post     []line
	raProvider, bcastDHCP, llDHCP line
	pairDrop                      [2]line // per family
	// Every port chain's RELATED,ESTABLISHED, INVALID and fallback rules,
	// per family and direction.
	established, invalid, fallback [2][2]line
	// The fixed chains' rules.
	sgAccept                line
	filterTop, fallbackDrop ruleLines
	builtinFilter           [3]ruleLines // INPUT, FORWARD, OUTPUT
	builtinRaw              [2]ruleLines // PREROUTING, OUTPUT
	comments                bool
}

var fixedByComments = [2]*fixedTexts{newFixedTexts(false), newFixedTexts(true)}

// udpRule is a DHCP rule: UDP from port sport to dport.
func udpRule(src, dst netip.Prefix, sport, dport uint16, act hybrid.ActionKind, comment string, o *hybrid.Origin) hybrid.Rule {
	return hybrid.Rule{
		Match:   hybrid.Match{Src: src, Dst: dst, Proto: neutron.ProtoUDP, SrcPort: hybrid.Port(sport), DstPort: hybrid.Port(dport)},
		Comment: comment, Action: hybrid.Action{Kind: act}, Origin: o,
	}
}

// icmpv6Rule is an ICMPv6 rule (of one type unless typ < 0).
func icmpv6Rule(src, dst netip.Prefix, typ int, act hybrid.ActionKind, comment string, o *hybrid.Origin) line {
	m := hybrid.Match{Src: src, Dst: dst, Proto: neutron.ProtoICMPv6}
	if typ >= 0 {
		m.ICMP = hybrid.ICMPType(uint8(typ))
	}
	return fixedLine(hybrid.Rule{Match: m, Comment: comment, Action: hybrid.Action{Kind: act}, Origin: o})
}

func newFixedTexts(c bool) *fixedTexts {
	f := &fixedTexts{comments: c}
	var none netip.Prefix
	pfx := netip.MustParsePrefix
	ret, drop := hybrid.Return, hybrid.Drop
	for _, t := range []int{130, 135, 136} {
		f.ingressV6Head = append(f.ingressV6Head, icmpv6Rule(none, none, t, ret, "", inChain(hybrid.OriginICMPv6ND, in, v6)))
	}
	dhcpClient := commentIf(hybrid.CommentDHCPClient, c)
	dhcpSpoof := commentIf(hybrid.CommentDHCPSpoof, c)
	f.egressV4Pre = []line{fixedLine(udpRule(pfx("0.0.0.0/32"), pfx("255.255.255.255/32"), 68, 67, ret, dhcpClient, inChain(hybrid.OriginDHCPClient, out, v4)))}
	f.egressV4Post = []line{
		fixedLine(udpRule(none, none, 68, 67, ret, dhcpClient, inChain(hybrid.OriginDHCPClient, out, v4))),
		fixedLine(udpRule(none, none, 67, 68, drop, dhcpSpoof, inChain(hybrid.OriginDHCPProtection, out, v4))),
	}
	icmpAllow := commentIf(hybrid.CommentIPv6ICMPAllow, c)
	for _, t := range []int{131, 135, 143} {
		f.egressV6Pre = append(f.egressV6Pre, icmpv6Rule(pfx("::/128"), pfx("ff02::/16"), t, ret, icmpAllow, inChain(hybrid.OriginICMPv6ND, out, v6)))
	}
	f.egressV6Post = []line{
		icmpv6Rule(none, none, 134, drop, commentIf(hybrid.CommentIPv6RADrop, c), inChain(hybrid.OriginRAProtection, out, v6)),
		icmpv6Rule(none, none, -1, ret, icmpAllow, inChain(hybrid.OriginICMPv6Egress, out, v6)),
		fixedLine(udpRule(none, none, 546, 547, ret, dhcpClient, inChain(hybrid.OriginDHCPClient, out, v6))),
		fixedLine(udpRule(none, none, 547, 546, drop, dhcpSpoof, inChain(hybrid.OriginDHCPProtection, out, v6))),
	}
	f.raProvider = icmpv6Rule(none, none, 134, ret, "", inChain(hybrid.OriginICMPv6RA, in, v6))
	f.bcastDHCP = fixedLine(udpRule(none, pfx("255.255.255.255/32"), 67, 68, ret, "", inChain(hybrid.OriginDHCPReply, in, v4)))
	f.llDHCP = fixedLine(udpRule(none, pfx("fe80::/64"), 547, 546, ret, "", inChain(hybrid.OriginDHCPReply, in, v6)))
	for fam := range f.pairDrop {
		f.pairDrop[fam] = fixedLine(verdict(drop, commentIf(hybrid.CommentPairDrop, c), inChain(hybrid.OriginAntiSpoofing, out, fam)))
	}
	for fam := range f.established {
		for dir := range f.established[fam] {
			f.established[fam][dir] = fixedLine(hybrid.Rule{Match: hybrid.Match{States: hybrid.StateRelated | hybrid.StateEstablished},
				Comment: commentIf(hybrid.CommentAllowAssoc, c), Action: hybrid.Action{Kind: ret}, Origin: inChain(hybrid.OriginEstablished, dir, fam)})
			f.invalid[fam][dir] = fixedLine(hybrid.Rule{Match: hybrid.Match{States: hybrid.StateInvalid},
				Comment: commentIf(hybrid.CommentInvalidDrop, c), Action: hybrid.Action{Kind: drop}, Origin: inChain(hybrid.OriginInvalid, dir, fam)})
			f.fallback[fam][dir] = fixedLine(jump(hybrid.ChainFallback, commentIf(hybrid.CommentUnmatched, c), inChain(hybrid.OriginToDefaultDrop, dir, fam)))
		}
	}
	d := shared(hybrid.OriginDispatch)
	to := func(chain string) line { return fixedLine(jump(chain, "", d)) }
	f.filterTop = linesOf([]line{to(hybrid.ChainLocal)}, true)
	f.sgAccept = fixedLine(verdict(hybrid.Accept, "", shared(hybrid.OriginSGChainAccept)))
	f.fallbackDrop = linesOf([]line{fixedLine(verdict(drop, commentIf(hybrid.CommentUnmatchDrop, c), shared(hybrid.OriginDefaultDrop)))}, true)
	f.builtinFilter = [3]ruleLines{
		linesOf([]line{to(hybrid.ChainInput)}, true),
		linesOf([]line{to(hybrid.ChainFilterTop), to(hybrid.ChainForward)}, true),
		linesOf([]line{to(hybrid.ChainFilterTop), to(hybrid.ChainOutput)}, true),
	}
	f.builtinRaw = [2]ruleLines{linesOf([]line{to(hybrid.ChainPrerouting)}, true), linesOf([]line{to(hybrid.ChainOutput)}, true)}
	return f
}

func fixedFor(opt Options) *fixedTexts {
	if opt.CommentRules {
		return fixedByComments[1]
	}
	return fixedByComments[0]
}

// buildPortStatic builds a port's own rules with the fixed rules f; with
// keep, as data too. ps keeps a copy of *p, whose slices must not change.
func buildPortStatic(p *Port, f *fixedTexts, keep bool) (*portStatic, error) {
	if err := checkPort(p); err != nil {
		return nil, err
	}
	ps := &portStatic{
		src:           *p,
		fixed:         f,
		id:            p.ID,
		kind:          kindOf(p),
		tap:           hybrid.TapName(p.ID),
		qvb:           hybrid.BridgeVethName(p.ID),
		forceStateful: strings.HasPrefix(p.DeviceOwner, "network:") || strings.HasPrefix(p.DeviceOwner, "neutron:"),
	}
	// The port's own rules, in one allocation: 5 dispatch rules, a DHCP
	// reply per fixed address, up to 2 jumps to the s chains and an
	// anti-spoofing rule per pair (IPv6 ones also for the link-local
	// address of their MAC; the MAC alone in both families without fixed
	// addresses).
	pairs := len(p.FixedIPs) + len(p.AllowedAddressPairs)
	for _, s := range p.FixedIPs {
		if strings.Contains(s, ":") {
			pairs++
		}
	}
	for _, ap := range p.AllowedAddressPairs {
		if strings.Contains(ap.IP, ":") {
			pairs++
		}
	}
	if len(p.FixedIPs) == 0 {
		pairs += 2
	}
	arena := newRuleArena(5+len(p.FixedIPs)+2+pairs, keep)
	if keep {
		ps.withData = ps
	}
	// physdev renders "-m physdev --physdev-DIR TAP --physdev-is-bridged
	// [comment] -j TARGET", the shape of every dispatch rule.
	physdev := func(frameOut bool, cm string, a hybrid.Action, o *hybrid.Origin) line {
		m := hybrid.Match{PhysIn: ps.tap, PhysBridged: true}
		if frameOut {
			m = hybrid.Match{PhysOut: ps.tap, PhysBridged: true}
		}
		return arena.line(hybrid.Rule{Match: m, Comment: commentIf(cm, f.comments), Action: a, Origin: o})
	}
	accept := hybrid.Action{Kind: hybrid.Accept}
	to := func(chain string) hybrid.Action { return hybrid.Action{Kind: hybrid.Jump, Chain: chain} }
	switch ps.kind {
	case trusted:
		o := shared(hybrid.OriginTrusted)
		ps.forward = []line{physdev(true, hybrid.CommentTrustedAccept, accept, o), physdev(false, hybrid.CommentTrustedAccept, accept, o)}
		return ps, nil
	case unfiltered:
		o := shared(hybrid.OriginPortSecurityDisabled)
		ps.forward = []line{physdev(true, hybrid.CommentPortSecAccept, accept, o), physdev(false, hybrid.CommentPortSecAccept, accept, o)}
		ps.input = []line{physdev(false, hybrid.CommentPortSecAccept, accept, o)}
		return ps, nil
	}

	ps.chainI = hybrid.PortChain(hybrid.ChainIn, p.ID)
	ps.chainO = hybrid.PortChain(hybrid.ChainOut, p.ID)
	ps.chainS = hybrid.PortChain(hybrid.ChainSpoof, p.ID)
	d := shared(hybrid.OriginDispatch)
	ps.forward = []line{physdev(true, hybrid.CommentVMIntSG, to(hybrid.ChainSG), d), physdev(false, hybrid.CommentVMIntSG, to(hybrid.ChainSG), d)}
	ps.sg = []line{physdev(true, hybrid.CommentSGToVMSG, to(ps.chainI), d), physdev(false, hybrid.CommentSGToVMSG, to(ps.chainO), d)}
	ps.input = []line{physdev(false, hybrid.CommentInputToSG, to(ps.chainO), d)}

	mac, _ := parseMAC(p.MAC) // checked by checkPort
	ps.fixedText = ps.src.FixedIPs
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
	var none netip.Prefix
	for _, a := range fixed[v4] {
		ps.provider[v4] = append(ps.provider[v4], arena.line(udpRule(none, hostPrefix(a), 67, 68, hybrid.Return, "", inChain(hybrid.OriginDHCPReply, in, v4))))
	}
	ps.provider[v4] = append(ps.provider[v4], f.bcastDHCP)
	for _, a := range fixed[v6] {
		ps.provider[v6] = append(ps.provider[v6], arena.line(udpRule(none, hostPrefix(a), 547, 546, hybrid.Return, "", inChain(hybrid.OriginDHCPReply, in, v6))))
	}
	ps.provider[v6] = append(ps.provider[v6], f.llDHCP)

	// Traffic to the VM: IPv6 multicast listener queries and neighbour
	// discovery always pass.
	ps.head[v6][in] = f.ingressV6Head

	spoof, err := spoofChains(p, mac, f, arena)
	if err != nil {
		return nil, err
	}
	ps.spoof = spoof

	// Traffic from the VM (_add_fixed_egress_rules): the anti-spoofing
	// jump sits between fixed rules that are the same for every port.
	for fam, parts := range [2][2][]line{{f.egressV4Pre, f.egressV4Post}, {f.egressV6Pre, f.egressV6Post}} {
		head := make([]line, 0, len(parts[0])+1+len(parts[1]))
		head = append(head, parts[0]...)
		if spoof[fam].texts != nil {
			head = append(head, arena.line(jump(ps.chainS, "", inChain(hybrid.OriginAntiSpoofing, out, fam))))
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
func spoofChains(p *Port, mac net.HardwareAddr, f *fixedTexts, arena *ruleArena) ([2]ruleLines, error) {
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
				return [2]ruleLines{}, fmt.Errorf("bad allowed address pair MAC %s", quoteShort(ap.MAC))
			}
		}
		pfx, err := neutron.ParseCIDR(ap.IP)
		if err != nil {
			return [2]ruleLines{}, fmt.Errorf("bad allowed address pair %s", quoteShort(ap.IP))
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

	var chains [2]ruleLines
	cm := commentIf(hybrid.CommentPairAllow, f.comments)
	for fam, ps := range pairs {
		if len(ps) == 0 {
			continue
		}
		o := inChain(hybrid.OriginAntiSpoofing, out, fam)
		ls := make([]line, 0, len(ps)+1)
		for _, q := range ps {
			r := hybrid.Rule{Match: hybrid.Match{MACSource: q.mac}, Comment: cm, Action: hybrid.Action{Kind: hybrid.Return}, Origin: o}
			if q.any {
				ls = append(ls, arena.line(r))
				continue
			}
			// Neutron writes the prefix with its host bits and the kernel
			// clears them (a /0 disappears); duplicates are decided on what
			// Neutron wrote.
			key := ""
			if q.addr.Masked() != q.addr || q.addr.Bits() == 0 {
				key = "-s " + q.addr.String() + " " + r.Iptables()
			}
			r.Match.Src = q.addr
			l := arena.line(r)
			l.key = key
			ls = append(ls, l)
		}
		ls = append(ls, f.pairDrop[fam])
		chains[fam] = linesOf(dedupKeepLast(ls), arena.keep)
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
