// Package specgen generates random but valid scenarios in the reference
// harness's spec format, for parity tests of the firewall compiler against
// the real Neutron driver. The same seed always yields the same scenario.
//
// Every rule is sent through moat's API processing (the spec package) as it
// is generated, and rules the API would refuse (invalid, duplicate) are
// dropped, so that Neutron's harness accepts the scenario too.
//
// A few things are kept out on purpose, because Neutron's result would
// depend on Python's hash order rather than on the input: more than one
// port with port security disabled, more than one trusted (network:*)
// port, and address groups in scenarios with steps (Neutron destroys their
// ipsets on its next refresh). Zero-padded protocol numbers ("06") are left
// out as well; iptables reads them as C octal, see docs/compatibility.md.
package specgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"

	"github.com/moat-sg/moat/internal/firewall/spec"
)

// Config shapes the scenarios.
type Config struct {
	// Fixes allows the inputs on which moat deliberately differs from
	// Neutron: protocol names "ipip", "ip" and "hopopt", and rules with a
	// remote address group.
	Fixes bool
	// Steps adds steps after the first dump: a rule added to a group, a
	// port unplugged, a remote port added.
	Steps bool
}

// Generate returns the scenario for seed.
func Generate(seed uint64, name string, cfg Config) *spec.Scenario {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6d6f6174)), cfg: cfg}
	return g.scenario(name)
}

type gen struct {
	r   *rand.Rand
	cfg Config
	sc  *spec.Scenario
	// nextIP numbers addresses so that ports do not collide by accident.
	nextIP int
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }
func (g *gen) intn(n int) int        { return g.r.IntN(n) }

func (g *gen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (g *gen) mac() string {
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", g.intn(256), g.intn(256), g.intn(256))
}

func (g *gen) scenario(name string) *spec.Scenario {
	sc := &spec.Scenario{Name: name, Options: map[string]any{
		"enable_ipset":           g.chance(0.65),
		"comment_iptables_rules": g.chance(0.7),
	}}
	if g.cfg.Steps {
		// Without ipsets Neutron's refresh loses the members of other
		// ethertypes of the groups it re-reads (it replaces the whole
		// member list with the part the refreshed ports asked for), so a
		// later dump shows Neutron's history, not the state.
		sc.Options["enable_ipset"] = true
	}
	g.sc = sc
	if g.cfg.Fixes && !g.cfg.Steps {
		for i := g.intn(3); i > 0; i-- {
			sc.AddressGroups = append(sc.AddressGroups, spec.AddressGroup{ID: g.uuid(), Addresses: g.addresses(1 + g.intn(4))})
		}
	}
	for i := 2 + g.intn(4); i > 0; i-- {
		stateful := !g.chance(0.2)
		sc.SecurityGroups = append(sc.SecurityGroups, spec.SecurityGroup{ID: g.uuid(), Stateful: &stateful, Rules: []map[string]any{}})
	}
	for i := range sc.SecurityGroups {
		n := g.intn(9)
		if g.chance(0.1) {
			n = 0
		}
		for j := 0; j < n; j++ {
			g.addRule(i)
		}
	}
	unfiltered, trusted := false, false
	for i := 1 + g.intn(4); i > 0; i-- {
		p := g.port(true, &unfiltered, &trusted)
		sc.Ports = append(sc.Ports, p)
	}
	for i := g.intn(6); i > 0; i-- {
		sc.RemotePorts = append(sc.RemotePorts, g.port(false, nil, nil))
	}
	if g.cfg.Steps {
		g.steps()
	}
	return sc
}

// Validate checks a scenario the way a consumer of its JSON sees it: it is
// encoded, parsed and every rule sent through the API processing.
func Validate(sc *spec.Scenario) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	f, err := spec.Parse(bytes.NewReader(b), sc.Name)
	if err != nil {
		return err
	}
	_, err = f.Scenarios[0].HostState(nil)
	return err
}

// addRule adds a random rule the API accepts to group i (up to a few
// attempts; a scenario does not need every group to be full).
func (g *gen) addRule(i int) {
	sg := &g.sc.SecurityGroups[i]
	for attempt := 0; attempt < 20; attempt++ {
		body := g.rule()
		saved := sg.Rules
		sg.Rules = append(append([]map[string]any(nil), sg.Rules...), body)
		if Validate(g.sc) != nil {
			sg.Rules = saved
			continue
		}
		return
	}
}

// protocols are the protocol values rules use: API names, their numbers,
// numbers without a name, and a capitalised name.
var protocols = []string{
	"", "", "", "tcp", "tcp", "udp", "icmp", "icmp", "6", "17", "1",
	"sctp", "132", "udplite", "136", "dccp", "33",
	"gre", "47", "esp", "50", "ah", "vrrp", "112", "pgm", "113", "igmp",
	"ospf", "rsvp", "egp", "4", "94", "0", "TCP", "Udp", "200", "255", "143",
	"ipv6-icmp", "icmpv6", "58", "ipv6-encap", "41", "ipv6-frag", "ipv6-nonxt",
	"ipv6-opts", "ipv6-route", "43", "59",
}

// fixProtocols are the protocol values moat deliberately renders unlike
// Neutron.
var fixProtocols = []string{"ipip", "ip", "hopopt", "IPIP"}

func (g *gen) rule() map[string]any {
	r := map[string]any{"direction": "ingress", "ethertype": "IPv4"}
	if g.chance(0.4) {
		r["direction"] = "egress"
	}
	v6 := g.chance(0.35)
	if v6 {
		r["ethertype"] = "IPv6"
		if g.chance(0.1) {
			r["ethertype"] = "ipv6" // the API is case-insensitive here
		}
	}
	proto := protocols[g.intn(len(protocols))]
	if g.cfg.Fixes && g.chance(0.15) {
		proto = fixProtocols[g.intn(len(fixProtocols))]
	}
	switch {
	case proto == "":
	case g.chance(0.1):
		n, err := strconv.Atoi(proto)
		if err == nil {
			r["protocol"] = n // a JSON number
		} else {
			r["protocol"] = proto
		}
	default:
		r["protocol"] = proto
	}
	g.ports(r, proto)
	switch x := g.intn(10); {
	case x < 3:
		r["remote_ip_prefix"] = g.prefix(v6)
	case x < 5:
		groups := g.sc.SecurityGroups
		r["remote_group_id"] = groups[g.intn(len(groups))].ID
	case x < 6 && len(g.sc.AddressGroups) > 0:
		r["remote_address_group_id"] = g.sc.AddressGroups[g.intn(len(g.sc.AddressGroups))].ID
	}
	return r
}

// ports adds a port range or ICMP type/code suited to the protocol.
func (g *gen) ports(r map[string]any, proto string) {
	switch proto {
	case "tcp", "udp", "6", "17", "sctp", "132", "udplite", "136", "dccp", "33", "TCP", "Udp":
		switch g.intn(5) {
		case 0, 1:
			p := 1 + g.intn(65535)
			r["port_range_min"], r["port_range_max"] = p, p
		case 2:
			a, b := 1+g.intn(65535), 1+g.intn(65535)
			r["port_range_min"], r["port_range_max"] = min(a, b), max(a, b)
		case 3:
			if g.chance(0.3) {
				r["port_range_min"], r["port_range_max"] = 1, 65535 // the API drops it
			}
		}
	case "icmp", "1", "ipv6-icmp", "icmpv6", "58":
		switch g.intn(4) {
		case 0:
			r["port_range_min"] = g.icmpValue()
		case 1:
			r["port_range_min"], r["port_range_max"] = g.icmpValue(), g.icmpValue()
		}
	}
	if v, ok := r["port_range_min"]; ok && g.chance(0.1) {
		r["port_range_min"] = strconv.Itoa(v.(int)) // the API takes strings too
	}
}

func (g *gen) icmpValue() int {
	switch g.intn(6) {
	case 0:
		return 255
	case 1:
		return 0
	}
	return []int{3, 8, 11, 128, 129, 134, 135, 136, 130, 143}[g.intn(10)]
}

func (g *gen) prefix(v6 bool) string {
	if g.chance(0.1) {
		if v6 {
			return "::/0"
		}
		return "0.0.0.0/0"
	}
	var a netip.Addr
	if v6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		for i := 4; i < 16; i++ {
			b[i] = byte(g.intn(256))
		}
		a = netip.AddrFrom16(b)
		if g.chance(0.2) {
			return a.String() // a bare address: the API makes it /128
		}
		return a.String() + "/" + strconv.Itoa([]int{32, 48, 64, 100, 127, 128}[g.intn(6)])
	}
	a = netip.AddrFrom4([4]byte{byte(10 + g.intn(200)), byte(g.intn(256)), byte(g.intn(256)), byte(g.intn(256))})
	if g.chance(0.2) {
		return a.String()
	}
	// Host bits are often set: Neutron keeps them, normalized_cidr does not.
	return a.String() + "/" + strconv.Itoa([]int{8, 16, 20, 24, 28, 31, 32}[g.intn(7)])
}

func (g *gen) addresses(n int) []string {
	var out []string
	for ; n > 0; n-- {
		v6 := g.chance(0.4)
		p := g.prefix(v6)
		if pf, err := netip.ParsePrefix(p); err == nil {
			p = pf.Masked().String() // address groups hold networks
		} else if a, err := netip.ParseAddr(p); err == nil {
			p = netip.PrefixFrom(a, a.BitLen()).String()
		}
		out = append(out, p)
	}
	return out
}

// fixedIP returns a fresh address of the family.
func (g *gen) fixedIP(v6 bool) string {
	g.nextIP++
	n := g.nextIP
	if v6 {
		return fmt.Sprintf("2001:db8:%x::%x", g.intn(4), n)
	}
	return fmt.Sprintf("192.168.%d.%d", g.intn(4), n)
}

func (g *gen) port(local bool, unfiltered, trusted *bool) spec.Port {
	// Lists are never null: the harness iterates them.
	p := spec.Port{ID: g.uuid(), MACAddress: g.mac(), DeviceOwner: "compute:nova",
		FixedIPs: []spec.FixedIP{}, SecurityGroups: []string{}}
	nv4, nv6 := g.intn(3), g.intn(3)
	if g.chance(0.1) {
		nv4, nv6 = 0, 0
	}
	if nv4+nv6 == 0 && g.chance(0.5) {
		nv4 = 1
	}
	for ; nv4 > 0; nv4-- {
		p.FixedIPs = append(p.FixedIPs, spec.FixedIP(g.fixedIP(false)))
	}
	for ; nv6 > 0; nv6-- {
		p.FixedIPs = append(p.FixedIPs, spec.FixedIP(g.fixedIP(true)))
	}
	if local && !*unfiltered && g.chance(0.15) {
		*unfiltered = true
		f := false
		p.PortSecurityEnabled = &f
		return p // no groups, no pairs without port security
	}
	if local && !*trusted && g.chance(0.1) {
		*trusted = true
		p.DeviceOwner = "network:dhcp"
	} else if g.chance(0.08) {
		p.DeviceOwner = "neutron:LOADBALANCERV2"
	}
	for i := g.intn(4); i > 0; i-- {
		p.AllowedAddressPairs = append(p.AllowedAddressPairs, g.pair(p))
	}
	// A port's groups share the stateful flag (the API refuses a mix).
	stateful := !g.chance(0.25)
	var pool []string
	for _, sg := range g.sc.SecurityGroups {
		if *sg.Stateful == stateful {
			pool = append(pool, sg.ID)
		}
	}
	g.r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	n := min(len(pool), g.intn(4))
	p.SecurityGroups = append([]string{}, pool[:n]...)
	return p
}

func (g *gen) pair(p spec.Port) spec.AddressPair {
	var ap spec.AddressPair
	switch x := g.intn(10); {
	case x < 2 && len(p.FixedIPs) > 0:
		ap.IPAddress = string(p.FixedIPs[g.intn(len(p.FixedIPs))]) // the port's own address
		if g.chance(0.5) {
			if a, err := netip.ParseAddr(ap.IPAddress); err == nil {
				ap.IPAddress = netip.PrefixFrom(a, a.BitLen()).String()
			}
		}
	case x < 3:
		ap.IPAddress = []string{"0.0.0.0/0", "::/0"}[g.intn(2)]
	default:
		ap.IPAddress = g.prefix(g.chance(0.35))
		if ap.IPAddress == "0.0.0.0/0" || ap.IPAddress == "::/0" {
			ap.IPAddress = g.fixedIP(false)
		}
	}
	if g.chance(0.4) {
		ap.MACAddress = g.mac()
	}
	return ap
}

// steps adds a second and third dump after changes an agent handles
// incrementally.
func (g *gen) steps() {
	sc := g.sc
	add := func(v any) {
		b, _ := json.Marshal(v)
		sc.Steps = append(sc.Steps, b)
	}
	add(map[string]any{"op": "prepare"})
	add(map[string]any{"op": "dump", "label": "prepared"})
	// A rule added to a group a port carries.
	for _, p := range sc.Ports {
		if len(p.SecurityGroups) == 0 {
			continue
		}
		for attempt := 0; attempt < 20; attempt++ {
			sgID := p.SecurityGroups[g.intn(len(p.SecurityGroups))]
			body := g.rule()
			body["id"] = g.uuid()
			test := *sc
			test.Steps = nil
			test.SecurityGroups = append([]spec.SecurityGroup(nil), sc.SecurityGroups...)
			for i := range test.SecurityGroups {
				if test.SecurityGroups[i].ID == sgID {
					test.SecurityGroups[i].Rules = append(append([]map[string]any(nil), test.SecurityGroups[i].Rules...), body)
				}
			}
			if Validate(&test) != nil {
				continue
			}
			add(map[string]any{"op": "add_rule", "security_group": sgID, "rule": body})
			add(map[string]any{"op": "dump", "label": "rule_added"})
			break
		}
		break
	}
	// A new port elsewhere joins a group; one local port is unplugged.
	if len(sc.SecurityGroups) > 0 {
		rp := g.port(false, nil, nil)
		rp.SecurityGroups = []string{sc.SecurityGroups[g.intn(len(sc.SecurityGroups))].ID}
		add(map[string]any{"op": "add_remote_port", "port": rp})
	}
	if len(sc.Ports) > 1 {
		add(map[string]any{"op": "remove", "ports": []string{sc.Ports[g.intn(len(sc.Ports))].ID}})
	}
	add(map[string]any{"op": "dump", "label": "changed"})
}
