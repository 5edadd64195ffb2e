package nftables

import (
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/knftables"
)

// A small model of moat's nftables layout (docs: the bridge table marks
// a frame's direction, the ip table dispatches on qbr . mark to one chain
// per port and direction, which jumps to one chain per group), as the
// renderer will produce it. The tests and the benchmark build their
// Rulesets with it; the syncer itself knows nothing of the layout.

const dirBit = 0x10000000

type tPort struct {
	id        string
	mac       string
	ips       []string // IPv4 addresses and prefixes (allowed address pairs)
	zone      uint64
	stateless bool
	groups    []string
	open      bool // port security off: both directions accept
}

type tGroup struct {
	id      string
	in, out []Rule
	members []string // IPv4 addresses and prefixes
}

type tLayout struct {
	ports  []tPort
	groups []tGroup
}

func (p tPort) dev(prefix string) string { return prefix + p.id[:11] }

func (l tLayout) ruleset() *Ruleset {
	return &Ruleset{Tables: []*Table{l.bridge(), l.ip()}}
}

func (l tLayout) bridge() *Table {
	taps := &Set{Name: "vm_taps", Key: []DataType{TypeIfName}}
	for _, p := range l.ports {
		taps.Elements = append(taps.Elements, E(IfName(p.dev("tap"))))
	}
	clear := R("", Kw(fmt.Sprintf("meta mark & 0x%x == 0x%x meta mark set meta mark & 0x%x", dirBit, dirBit, ^uint32(dirBit))))
	return &Table{
		ID:      BridgeTable,
		Comment: "moat security groups",
		Sets:    []*Set{taps},
		Chains: []*Chain{
			{Name: "prerouting", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: "-300"}, Rules: []Rule{
				R("", Kw("iifname"), Ref("vm_taps"), Kw(fmt.Sprintf("meta mark set meta mark | 0x%x", dirBit)), Return),
				clear,
			}},
			{Name: "postrouting", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.PostroutingHook, Priority: "300"}, Rules: []Rule{clear}},
		},
	}
}

func (l tLayout) ip() *Table {
	zone := &Set{Name: "zone_of", Key: []DataType{TypeIfName}, Value: TypeCTZone}
	stateless := &Set{Name: "stateless", Key: []DataType{TypeIfName}}
	dispatch := &Set{Name: "dispatch", Key: []DataType{TypeIfName, TypeMark}, Value: TypeVerdict}
	spoof := &Set{Name: "spoof_ok", Key: []DataType{TypeIfName, TypeEtherAddr, TypeIPv4Addr}, Interval: true}
	t := &Table{
		ID:      IPTable,
		Comment: "moat security groups",
		Sets:    []*Set{zone, stateless, dispatch, spoof},
		Chains: []*Chain{
			{Name: "raw", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: knftables.RawPriority}, Rules: []Rule{
				R("", Kw("iifname"), Ref("stateless"), Kw("notrack")),
				R("", Kw("ct zone set iifname map"), Ref("zone_of")),
			}},
			{Name: "forward", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.ForwardHook, Priority: knftables.FilterPriority}, Rules: []Rule{
				R("", Kw(fmt.Sprintf("iifname . meta mark & 0x%x vmap", dirBit)), Ref("dispatch")),
			}},
			{Name: "sg-fallback", Rules: []Rule{R("fallback", Kw("counter"), Drop)}},
		},
	}
	for _, g := range l.groups {
		members := &Set{Name: "sg-" + g.id, Key: []DataType{TypeIPv4Addr}, Interval: true, Comment: "remote group " + g.id}
		for _, iv := range MergePrefixes(prefixes(g.members)) {
			members.Elements = append(members.Elements, E(IP(iv)))
		}
		t.Sets = append(t.Sets, members)
		t.Chains = append(t.Chains, &Chain{Name: "g-" + g.id + "-in", Rules: g.in}, &Chain{Name: "g-" + g.id + "-out", Rules: g.out})
	}
	for _, p := range l.ports {
		qbr, qvb := IfName(p.dev("qbr")), IfName(p.dev("qvb"))
		if p.stateless {
			stateless.Elements = append(stateless.Elements, E(qbr), E(qvb))
		} else {
			zone.Elements = append(zone.Elements, M(Num(p.zone), qbr), M(Num(p.zone), qvb))
		}
		if p.open {
			dispatch.Elements = append(dispatch.Elements, M(Accept, qbr, Hex(0)), M(Accept, qbr, Hex(dirBit)))
		} else {
			dispatch.Elements = append(dispatch.Elements, M(Jump("i-"+p.id), qbr, Hex(0)), M(Jump("o-"+p.id), qbr, Hex(dirBit)))
		}
		for _, iv := range MergePrefixes(prefixes(p.ips)) {
			spoof.Elements = append(spoof.Elements, E(qbr, ParseMAC(p.mac), IP(iv)))
		}
		in := []Rule{R("state", Kw("ct state established,related counter"), Return)}
		out := []Rule{
			R("dhcp-client", Kw("ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 counter"), Return),
			R("spoof", Kw("iifname . ether saddr . ip saddr !="), Ref("spoof_ok"), Kw("counter"), Drop),
			R("dhcp-spoof", Kw("udp sport 67 udp dport 68 counter"), Drop),
			R("state", Kw("ct state established,related counter"), Return),
		}
		for _, ip := range p.ips {
			if strings.Contains(ip, "/") {
				continue
			}
			in = append(in, R("dhcp-reply", Kw("ip daddr"), Prefix(netip.MustParsePrefix(ip+"/32")), Kw("udp sport 67 udp dport 68 counter"), Return))
		}
		for _, g := range p.groups {
			in = append(in, R("sg "+g, Kw("counter"), Jump("g-"+g+"-in")))
			out = append(out, R("sg "+g, Kw("counter"), Jump("g-"+g+"-out")))
		}
		tail := []Rule{R("invalid", Kw("ct state invalid counter"), Drop), R("fallback", Kw("counter"), Jump("sg-fallback"))}
		t.Chains = append(t.Chains,
			&Chain{Name: "i-" + p.id, Rules: append(in, tail...)},
			&Chain{Name: "o-" + p.id, Rules: append(out, tail...)})
	}
	return t
}

func prefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		} else {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// Fixed ids, so that goldens stay stable.
const (
	portA = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	portB = "5f2b7e1d-9a8b-4c7d-8e6f-5a4b3c2d1e0f"
	portC = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
	sgWeb = "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b"
	sgUDP = "7f8a9b0c-1d2e-4f3a-8b4c-5d6e7f8a9b0c"
)

func twoPorts() tLayout {
	return tLayout{
		ports: []tPort{
			{id: portA, mac: "fa:16:3e:c3:ea:d5", ips: []string{"192.168.1.12", "192.168.1.100"}, zone: 4098, groups: []string{sgWeb}},
			{id: portB, mac: "fa:16:3e:7d:21:9b", ips: []string{"192.168.1.13"}, zone: 4097, stateless: true, groups: []string{sgUDP}},
		},
		groups: []tGroup{
			{id: sgWeb,
				in: []Rule{
					R("sgr bbbbbbbb-0000-4000-8000-000000000003", Kw("ip protocol 1 counter"), Accept),
					R("sgr bbbbbbbb-0000-4000-8000-000000000004", Kw("tcp dport 22 ip saddr"), Ref("sg-"+sgWeb), Kw("counter"), Accept),
				},
				out:     []Rule{R("sgr bbbbbbbb-0000-4000-8000-000000000001", Kw("counter"), Accept)},
				members: []string{"192.168.1.12", "192.168.1.100", "10.0.0.77"}},
			{id: sgUDP,
				in:  []Rule{R("sgr dddddddd-0000-4000-8000-000000000002", Kw("udp dport"), NumRange(5000, 5010), Kw("counter"), Accept)},
				out: []Rule{R("sgr dddddddd-0000-4000-8000-000000000001", Kw("counter"), Accept)}},
		},
	}
}

// scaled is n ports in groups of 50 (one group each), 64 rules per port
// chain pair as in the design's measurements, IPv4 only.
func scaled(n int) tLayout {
	var l tLayout
	ngroups := max(1, n/50)
	for g := range ngroups {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", g, g)
		gr := tGroup{id: id, out: []Rule{R("sgr "+id+"-out", Kw("counter"), Accept)}}
		for r := range 12 {
			gr.in = append(gr.in, R(fmt.Sprintf("sgr %s-%d", id, r), Kw("tcp dport"), Num(uint64(1000+r)), Kw("ip saddr"), Ref("sg-"+id), Kw("counter"), Accept))
		}
		l.groups = append(l.groups, gr)
	}
	for i := range n {
		id := fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i)
		ip := fmt.Sprintf("10.%d.%d.%d", 128+i>>16&127, i>>8&255, i&255)
		g := l.groups[i%ngroups].id
		l.ports = append(l.ports, tPort{id: id, mac: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255), ips: []string{ip}, zone: uint64(4096 + i), groups: []string{g}})
		l.groups[i%ngroups].members = append(l.groups[i%ngroups].members, ip)
	}
	return l
}

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
