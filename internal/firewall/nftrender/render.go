// Package nftrender renders what the firewall compiler produced for a host
// (a firewall.Ruleset, whose rules are data: hybrid.Rule) as moat's
// nftables tables (an nftables.Ruleset), with exactly the semantics of
// the iptables hybrid layout and O(1) dispatch. It is pure: no kernel, no
// files. docs/nftables.md describes the layout and why.
//
// The translation keeps every rule of a port's chains, in order, and
// replaces only the parts of the iptables layout whose cost grows with
// the number of ports:
//
//   - the physdev dispatch (FORWARD, sg-chain and INPUT: one rule per
//     port and direction, walked linearly) becomes one verdict map lookup
//     per hook, on the port's bridge and the direction mark the bridge
//     table set;
//   - the raw table's zone rules (three per port) become a map lookup
//     (`ct zone set iifname map`) and a set lookup for stateless ports;
//   - a port's anti-spoofing chain (one RETURN per MAC/address pair)
//     becomes one lookup in a concatenated set of (bridge, MAC, address).
//
// The kernel has no conntrack in the bridge family (no
// CONFIG_NF_CONNTRACK_BRIDGE), and br_netfilter hands a bridged frame to
// the ip hooks with the bridge as both devices, so the bridge table only
// classifies: it sets a mark bit on frames that came from a tap; the ip
// and ip6 tables do the rest.
package nftrender

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// TableComment is written on each of moat's tables.
const TableComment = "moat security groups"

// Render builds moat's three tables from a compiled ruleset. It fails
// only on a ruleset that does not have the hybrid layout's shape (a rule
// it does not know how to translate), never on a port's content: the
// compiler has rejected bad ports already.
func Render(rs *firewall.Ruleset) (*nft.Ruleset, error) { return NewRenderer().Render(rs) }

// Renderer renders rulesets one after the other, as an agent does, and
// keeps the translation of each rule of the compiler's between calls: the
// compiler shares a rule's data between the ports and the compiles that
// hold it (and never changes it), so a rule already translated costs a
// map lookup. Translations no rule of the last ruleset used are dropped.
// A Renderer is not safe for concurrent use.
type Renderer struct {
	cur, prev map[ruleKey]nft.Rule
	// Chains: an unchanged chain of the compiler's (the same Specs
	// slice) renders into the same Rules slice, which the syncer then
	// recognises without compiling it again.
	curChains, prevChains map[chainKey][]nft.Rule
}

type chainKey struct {
	// first is the address of the Specs slice's first element: the
	// compiler shares an unchanged chain's slice and allocates a new one
	// for a changed chain (and the key keeps the old one alive, so its
	// address is not reused).
	first  **hybrid.Rule
	n      int
	fam    family
	name   string
	folded bool // the port's anti-spoofing chain is in the set
}

type ruleKey struct {
	r   *hybrid.Rule
	fam family
}

// NewRenderer returns a Renderer with an empty cache.
func NewRenderer() *Renderer {
	return &Renderer{cur: map[ruleKey]nft.Rule{}, curChains: map[chainKey][]nft.Rule{}}
}

// Render is Render with the cache.
func (rd *Renderer) Render(rs *firewall.Ruleset) (*nft.Ruleset, error) {
	out, err := rd.render(rs)
	// The translations of this ruleset are the cache of the next.
	rd.prev, rd.cur = rd.cur, make(map[ruleKey]nft.Rule, len(rd.cur))
	rd.prevChains, rd.curChains = rd.curChains, make(map[chainKey][]nft.Rule, len(rd.curChains))
	if err != nil {
		rd.prev, rd.prevChains = nil, nil
	}
	return out, err
}

func (rd *Renderer) render(rs *firewall.Ruleset) (*nft.Ruleset, error) {
	if rs == nil {
		return nil, fmt.Errorf("render nftables: no ruleset")
	}
	ports := map[string]string{} // iptables chain → port id
	for _, pz := range rs.PortZones {
		for _, k := range []hybrid.ChainKind{hybrid.ChainIn, hybrid.ChainOut, hybrid.ChainSpoof} {
			ports[hybrid.PortChain(k, pz.PortID)] = pz.PortID
		}
	}
	taps := map[string]bool{}
	v4, err := renderFamily(rd, rs, v4, ports, taps)
	if err != nil {
		return nil, fmt.Errorf("render nftables, IPv4: %w", err)
	}
	v6, err := renderFamily(rd, rs, v6, ports, taps)
	if err != nil {
		return nil, fmt.Errorf("render nftables, IPv6: %w", err)
	}
	return &nft.Ruleset{Tables: []*nft.Table{bridgeTable(taps), v4, v6}}, nil
}

type family int

const (
	v4 family = iota
	v6
)

func (f family) ip() string {
	if f == v6 {
		return "ip6"
	}
	return "ip"
}

func (f family) addrType() nft.DataType {
	if f == v6 {
		return nft.TypeIPv6Addr
	}
	return nft.TypeIPv4Addr
}

func (f family) ipsetFamily() string {
	if f == v6 {
		return "inet6"
	}
	return "inet"
}

// bridgeTable marks frames from taps. The mark bit is cleared first
// (a frame that crossed another port's bridge before, or was marked by
// someone else, must not keep it) and set only for a tap.
func bridgeTable(taps map[string]bool) *nft.Table {
	set := &nft.Set{Name: SetTaps, Key: []nft.DataType{nft.TypeIfName}}
	for _, t := range sortedKeys(taps) {
		set.Elements = append(set.Elements, nft.E(nft.IfName(t)))
	}
	clear := nft.R("", nft.Kw(fmt.Sprintf("meta mark & 0x%x == 0x%x meta mark set meta mark & 0x%x", DirMark, DirMark, ^uint32(DirMark))))
	return &nft.Table{
		ID:      nft.BridgeTable,
		Comment: TableComment,
		Sets:    []*nft.Set{set},
		Chains: []*nft.Chain{
			{Name: ChainMark, Base: &nft.BaseChain{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: BridgeMarkPriority}, Rules: []nft.Rule{
				clear,
				nft.R("", nft.Kw("iifname"), nft.Ref(SetTaps), nft.Kw(fmt.Sprintf("meta mark set meta mark | 0x%x", DirMark))),
			}},
			{Name: ChainUnmark, Base: &nft.BaseChain{Type: knftables.FilterType, Hook: knftables.PostroutingHook, Priority: BridgeUnmarkPriority}, Rules: []nft.Rule{clear}},
		},
	}
}

// dispatchKey is one element of a dispatch map: a bridge and a direction.
type dispatchKey struct {
	bridge string
	egress bool
}

func (k dispatchKey) key() []nft.Term {
	m := uint64(0)
	if k.egress {
		m = DirMark
	}
	return []nft.Term{nft.IfName(k.bridge), nft.Hex(m)}
}

type familyRender struct {
	rd       *Renderer // nil: no cache
	fam      family
	taps     map[string]bool
	names    map[string]string // iptables chain → nft chain
	spoofSet map[string]bool   // iptables s chains folded into SetSpoof
	t        *nft.Table
	spoof    map[spoofGroup][]nft.Interval
}

type spoofGroup struct{ bridge, mac string }

func renderFamily(rd *Renderer, rs *firewall.Ruleset, fam family, ports map[string]string, taps map[string]bool) (*nft.Table, error) {
	ts := rs.IPv4
	id := nft.IPTable
	if fam == v6 {
		ts, id = rs.IPv6, nft.IP6Table
	}
	r := &familyRender{rd: rd, fam: fam, taps: taps, names: map[string]string{hybrid.ChainFallback: ChainFallback},
		spoofSet: map[string]bool{}, spoof: map[spoofGroup][]nft.Interval{},
		t: &nft.Table{ID: id, Comment: TableComment}}
	filter := &ts.Filter
	for _, c := range filter.Chains {
		if hybrid.FixedChain(c.Name) {
			continue
		}
		kind, _, ok := hybrid.PortChainOf(c.Name)
		portID, known := ports[c.Name]
		if !ok || !known {
			return nil, fmt.Errorf("chain %s: not a chain of a port the ruleset lists", c.Name)
		}
		switch kind {
		case hybrid.ChainIn:
			r.names[c.Name] = InChain(portID)
		case hybrid.ChainOut:
			r.names[c.Name] = OutChain(portID)
		case hybrid.ChainSpoof:
			if r.foldSpoof(portID, c) {
				r.spoofSet[c.Name] = true
			} else {
				r.names[c.Name] = SpoofChain(portID)
			}
		}
	}
	for _, name := range []string{hybrid.ChainLocal, hybrid.ChainOutput} {
		if c, ok := filter.Chain(name); ok && len(c.Rules) > 0 {
			return nil, fmt.Errorf("chain %s: %d rules, the layout has none there", name, len(c.Rules))
		}
	}
	forward, err := r.dispatch(filter)
	if err != nil {
		return nil, err
	}
	zones, stateless, err := r.zones(&ts.Raw)
	if err != nil {
		return nil, err
	}

	// Sets: the ipsets of the family (remote groups, address groups).
	for _, s := range rs.IPSets {
		if s.Family != fam.ipsetFamily() {
			continue
		}
		if err := nft.CheckName("set", s.Name); err != nil {
			return nil, fmt.Errorf("ipset %s: %w", s.Name, err)
		}
		var pfx []netip.Prefix
		for _, m := range s.Members {
			p, err := parseMember(m)
			if err != nil {
				return nil, fmt.Errorf("ipset %s: member %q: %w", s.Name, m, err)
			}
			pfx = append(pfx, p)
		}
		set := &nft.Set{Name: s.Name, Key: []nft.DataType{fam.addrType()}, Interval: true, Comment: "members of " + s.Name}
		for _, iv := range nft.MergePrefixes(pfx) {
			set.Elements = append(set.Elements, nft.E(nft.IP(iv)))
		}
		r.t.Sets = append(r.t.Sets, set)
	}
	spoof := &nft.Set{Name: SetSpoof, Key: []nft.DataType{nft.TypeIfName, nft.TypeEtherAddr, fam.addrType()}, Interval: true}
	groups := make([]spoofGroup, 0, len(r.spoof))
	for g := range r.spoof {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b spoofGroup) int {
		if c := strings.Compare(a.bridge, b.bridge); c != 0 {
			return c
		}
		return strings.Compare(a.mac, b.mac)
	})
	for _, g := range groups {
		hw, _ := net.ParseMAC(g.mac)
		for _, iv := range nft.Merge(r.spoof[g]) {
			spoof.Elements = append(spoof.Elements, nft.E(nft.IfName(g.bridge), nft.MAC(hw), nft.IP(iv)))
		}
	}
	r.t.Sets = append(r.t.Sets,
		spoof,
		&nft.Set{Name: MapZone, Key: []nft.DataType{nft.TypeIfName}, Value: nft.TypeCTZone, Elements: zones},
		&nft.Set{Name: SetStateless, Key: []nft.DataType{nft.TypeIfName}, Elements: stateless},
		&nft.Set{Name: MapForward, Key: []nft.DataType{nft.TypeIfName, nft.TypeMark}, Value: nft.TypeVerdict, Elements: forward},
	)

	dispatchRule := func(m string) nft.Rule {
		return nft.R(string(hybrid.OriginDispatch), nft.Kw(fmt.Sprintf("iifname . meta mark & 0x%x vmap", DirMark)), nft.Ref(m))
	}
	r.t.Chains = append(r.t.Chains,
		&nft.Chain{Name: ChainZone, Base: &nft.BaseChain{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: knftables.RawPriority}, Rules: []nft.Rule{
			// notrack first: a zone template would make the packet
			// tracked again.
			nft.R(string(hybrid.OriginStateless), nft.Kw("iifname"), nft.Ref(SetStateless), nft.Kw("notrack")),
			nft.R(string(hybrid.OriginCTZone), nft.Kw("ct zone set iifname map"), nft.Ref(MapZone)),
		}},
		&nft.Chain{Name: ChainForward, Base: &nft.BaseChain{Type: knftables.FilterType, Hook: knftables.ForwardHook, Priority: knftables.FilterPriority}, Rules: []nft.Rule{dispatchRule(MapForward)}},
		&nft.Chain{Name: ChainCanary, Rules: []nft.Rule{nft.R("moat drift canary", nft.Return)}},
		&nft.Chain{Name: ChainUnfiltered, Rules: []nft.Rule{nft.R(string(hybrid.OriginPortSecurityDisabled), nft.Kw("counter"), nft.Accept)}},
		&nft.Chain{Name: ChainTrusted, Rules: []nft.Rule{nft.R(string(hybrid.OriginTrusted), nft.Kw("counter"), nft.Accept)}},
		&nft.Chain{Name: ChainRejected, Rules: []nft.Rule{nft.R(string(hybrid.OriginRejectedPort), nft.Kw("counter"), nft.Drop)}},
	)
	// The owned chains, translated rule by rule.
	for _, c := range filter.Chains {
		if r.spoofSet[c.Name] || hybrid.FixedChain(c.Name) && c.Name != hybrid.ChainFallback {
			continue
		}
		out, err := r.chain(c)
		if err != nil {
			return nil, err
		}
		r.t.Chains = append(r.t.Chains, out)
	}
	if _, ok := filter.Chain(hybrid.ChainFallback); !ok {
		return nil, fmt.Errorf("no chain %s", hybrid.ChainFallback)
	}
	return r.t, nil
}

func parseMember(m string) (netip.Prefix, error) {
	if strings.Contains(m, "/") {
		p, err := netip.ParsePrefix(m)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(m)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// foldSpoof puts an anti-spoofing chain of the compiler's shape (RETURN
// per MAC or MAC and address, then DROP) into SetSpoof and reports
// whether it could.
func (r *familyRender) foldSpoof(portID string, c firewall.Chain) bool {
	cSpecs := c.Specs()
	if len(cSpecs) != len(c.Rules) || len(cSpecs) < 2 {
		return false
	}
	last := cSpecs[len(cSpecs)-1]
	if last.Action.Kind != hybrid.Drop || !matchIsZero(last.Match) {
		return false
	}
	type entry struct {
		g  spoofGroup
		iv nft.Interval
	}
	var entries []entry
	bridge := hybrid.BridgeName(portID)
	for _, s := range cSpecs[:len(cSpecs)-1] {
		m := s.Match
		if s.Action.Kind != hybrid.Return || len(m.MACSource) != 6 {
			return false
		}
		src := m.Src
		m.Src, m.MACSource = netip.Prefix{}, nil
		if !matchIsZero(m) {
			return false
		}
		if !src.IsValid() {
			src = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if r.fam == v6 {
				src = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		}
		if src.Addr().Is4() != (r.fam == v4) {
			return false
		}
		iv, ok := nft.PrefixInterval(src.Masked())
		if !ok {
			return false
		}
		entries = append(entries, entry{spoofGroup{bridge, s.Match.MACSource.String()}, iv})
	}
	for _, e := range entries {
		r.spoof[e.g] = append(r.spoof[e.g], e.iv)
	}
	return true
}

// dispatch reads the physdev rules of FORWARD and sg-chain into the
// forward map's elements. INPUT's dispatch rules are left out on purpose:
// they carry --physdev-is-bridged, which never matches at INPUT, so the
// iptables layout does not filter a VM's traffic to the host itself
// (docs/agent.md, known limits), and neither does this one.
func (r *familyRender) dispatch(filter *firewall.Table) (forward []nft.Element, err error) {
	type target struct {
		key dispatchKey
		v   nft.Term
	}
	phys := func(chain string, s *hybrid.Rule) (dispatchKey, error) {
		m := s.Match
		dev, egress := m.PhysOut, false
		if m.PhysIn != "" {
			dev, egress = m.PhysIn, true
		}
		m.PhysIn, m.PhysOut, m.PhysBridged = "", "", false
		if dev == "" || (s.Match.PhysIn != "" && s.Match.PhysOut != "") || !s.Match.PhysBridged || !matchIsZero(m) {
			return dispatchKey{}, fmt.Errorf("chain %s: rule %q is not a dispatch rule", chain, s.Iptables())
		}
		br, ok := BridgeOf(dev)
		if !ok || !strings.HasPrefix(dev, hybrid.TapPrefix) {
			return dispatchKey{}, fmt.Errorf("chain %s: rule %q: %s is not a tap", chain, s.Iptables(), dev)
		}
		r.taps[dev] = true
		return dispatchKey{br, egress}, nil
	}
	specs := func(name string) ([]*hybrid.Rule, error) {
		c, ok := filter.Chain(name)
		if !ok {
			return nil, nil
		}
		cSpecs := c.Specs()
		if len(cSpecs) != len(c.Rules) {
			return nil, fmt.Errorf("chain %s: rules without their data (a ruleset read from a kernel?)", name)
		}
		return cSpecs, nil
	}
	// sg-chain: port → its chain, then ACCEPT.
	sgSpecs, err := specs(hybrid.ChainSG)
	if err != nil {
		return nil, err
	}
	sg := map[dispatchKey]nft.Term{}
	for i, s := range sgSpecs {
		if i == len(sgSpecs)-1 && matchIsZero(s.Match) && s.Action.Kind == hybrid.Accept {
			break
		}
		k, err := phys(hybrid.ChainSG, s)
		if err != nil {
			return nil, err
		}
		v, err := r.verdict(hybrid.ChainSG, s)
		if err != nil {
			return nil, err
		}
		if _, dup := sg[k]; !dup { // the first rule decides, as in iptables
			sg[k] = v
		}
	}
	collect := func(name string, viaSG bool) ([]nft.Element, error) {
		ss, err := specs(name)
		if err != nil {
			return nil, err
		}
		seen := map[dispatchKey]bool{}
		var out []nft.Element
		for _, s := range ss {
			k, err := phys(name, s)
			if err != nil {
				return nil, err
			}
			var v nft.Term
			switch {
			case viaSG && s.Action.Kind == hybrid.Jump && s.Action.Chain == hybrid.ChainSG:
				var ok bool
				if v, ok = sg[k]; !ok {
					v = nft.Accept // sg-chain's final ACCEPT
				}
			default:
				if v, err = r.verdict(name, s); err != nil {
					return nil, err
				}
			}
			if seen[k] {
				continue // the first rule decides
			}
			seen[k] = true
			out = append(out, nft.M(v, k.key()...))
		}
		return out, nil
	}
	if _, err := collect(hybrid.ChainInput, false); err != nil { // checked, not rendered
		return nil, err
	}
	return collect(hybrid.ChainForward, true)
}

// verdictChains are the chains a dispatch rule's ACCEPT or DROP goes to,
// by the rule's origin.
var verdictChains = map[hybrid.OriginKind]struct {
	chain  string
	action hybrid.ActionKind
}{
	hybrid.OriginPortSecurityDisabled: {ChainUnfiltered, hybrid.Accept},
	hybrid.OriginTrusted:              {ChainTrusted, hybrid.Accept},
	hybrid.OriginRejectedPort:         {ChainRejected, hybrid.Drop},
}

// verdict is a dispatch rule's action as a map verdict.
func (r *familyRender) verdict(chain string, s *hybrid.Rule) (nft.Term, error) {
	switch s.Action.Kind {
	case hybrid.Accept, hybrid.Drop:
		if s.Origin != nil {
			if vc, ok := verdictChains[s.Origin.Kind]; ok && vc.action == s.Action.Kind {
				return nft.Jump(vc.chain), nil
			}
		}
		if s.Action.Kind == hybrid.Accept {
			return nft.Accept, nil
		}
		return nft.Drop, nil
	case hybrid.Jump:
		if n, ok := r.names[s.Action.Chain]; ok {
			return nft.Jump(n), nil
		}
		if r.spoofSet[s.Action.Chain] {
			return nft.Term{}, fmt.Errorf("chain %s: rule %q: dispatch to an anti-spoofing chain", chain, s.Iptables())
		}
	}
	return nft.Term{}, fmt.Errorf("chain %s: rule %q: not a verdict a dispatch map can hold", chain, s.Iptables())
}

// zones reads the raw PREROUTING rules: a zone or no tracking per port
// device. A frame bridged by the port's qbr comes to the ip hooks with
// the qbr as its device, whether it entered from the tap or the qvb.
func (r *familyRender) zones(raw *firewall.Table) (zones, stateless []nft.Element, err error) {
	c, ok := raw.Chain(hybrid.ChainPrerouting)
	if !ok {
		return nil, nil, nil
	}
	cSpecs := c.Specs()
	if len(cSpecs) != len(c.Rules) {
		return nil, nil, fmt.Errorf("chain raw %s: rules without their data", c.Name)
	}
	zoneOf := map[string]uint16{}
	var zoneDevs []string
	notrack := map[string]bool{}
	for _, s := range cSpecs {
		m := s.Match
		dev := m.InIface
		if m.PhysIn != "" {
			b, ok := BridgeOf(m.PhysIn)
			if !ok {
				return nil, nil, fmt.Errorf("chain raw %s: rule %q: %s is not a port device", c.Name, s.Iptables(), m.PhysIn)
			}
			dev = b
		}
		m.InIface, m.PhysIn = "", ""
		if dev == "" || (s.Match.InIface != "" && s.Match.PhysIn != "") || !matchIsZero(m) {
			return nil, nil, fmt.Errorf("chain raw %s: rule %q is not a zone rule", c.Name, s.Iptables())
		}
		switch s.Action.Kind {
		case hybrid.CTZone:
			if z, seen := zoneOf[dev]; seen {
				if z != s.Action.Zone {
					return nil, nil, fmt.Errorf("chain raw %s: device %s has zones %d and %d", c.Name, dev, z, s.Action.Zone)
				}
				continue
			}
			zoneOf[dev] = s.Action.Zone
			zoneDevs = append(zoneDevs, dev)
		case hybrid.CTNoTrack:
			notrack[dev] = true
		default:
			return nil, nil, fmt.Errorf("chain raw %s: rule %q is not a zone rule", c.Name, s.Iptables())
		}
	}
	for _, d := range zoneDevs {
		if notrack[d] {
			return nil, nil, fmt.Errorf("chain raw %s: device %s has a zone and no tracking", c.Name, d)
		}
		zones = append(zones, nft.M(nft.Num(uint64(zoneOf[d])), nft.IfName(d)))
	}
	for _, d := range sortedKeys(notrack) {
		stateless = append(stateless, nft.E(nft.IfName(d)))
	}
	return zones, stateless, nil
}

// chain translates one owned chain.
func (r *familyRender) chain(c firewall.Chain) (*nft.Chain, error) {
	name, ok := r.names[c.Name]
	if !ok {
		return nil, fmt.Errorf("chain %s: no nftables name", c.Name)
	}
	cSpecs := c.Specs()
	if len(cSpecs) != len(c.Rules) {
		return nil, fmt.Errorf("chain %s: rules without their data", c.Name)
	}
	var key chainKey
	if r.rd != nil && len(cSpecs) > 0 {
		key = chainKey{first: &cSpecs[0], n: len(cSpecs), fam: r.fam, name: name}
		if _, id, ok := hybrid.PortChainOf(c.Name); ok {
			key.folded = r.spoofSet[hybrid.Wrap+string(hybrid.ChainSpoof)+id]
		}
		if rules, ok := r.rd.curChains[key]; ok {
			return &nft.Chain{Name: name, Rules: rules}, nil
		}
		if rules, ok := r.rd.prevChains[key]; ok {
			r.rd.curChains[key] = rules
			return &nft.Chain{Name: name, Rules: rules}, nil
		}
	}
	out := &nft.Chain{Name: name, Rules: make([]nft.Rule, 0, len(cSpecs))}
	defer func() {
		if key.first != nil && len(out.Rules) == len(cSpecs) {
			r.rd.curChains[key] = out.Rules
		}
	}()
	for i, s := range cSpecs {
		rule, err := r.cachedRule(s)
		if err != nil {
			return nil, fmt.Errorf("chain %s rule %d (%s): %w", c.Name, i+1, c.Rules[i], err)
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

// cachedRule is rule through the Renderer's cache. Only rules whose
// translation depends on nothing but the rule are cached: a jump's target
// name depends on the ruleset (and the anti-spoofing jump on whether the
// chain folded), except the jump to the default drop.
func (r *familyRender) cachedRule(s *hybrid.Rule) (nft.Rule, error) {
	if r.rd == nil || s.Action.Kind == hybrid.Jump && s.Action.Chain != hybrid.ChainFallback {
		return r.rule(s)
	}
	k := ruleKey{s, r.fam}
	if out, ok := r.rd.cur[k]; ok {
		return out, nil
	}
	if out, ok := r.rd.prev[k]; ok {
		r.rd.cur[k] = out
		return out, nil
	}
	out, err := r.rule(s)
	if err == nil {
		r.rd.cur[k] = out
	}
	return out, err
}

// rule translates one rule of a port chain or sg-fallback.
func (r *familyRender) rule(s *hybrid.Rule) (nft.Rule, error) {
	m := s.Match
	ip := r.fam.ip()
	comment := OriginTag(s.Origin)
	if s.Action.Kind == hybrid.Jump && r.spoofSet[s.Action.Chain] {
		// The jump to a folded anti-spoofing chain: one set lookup.
		if !matchIsZero(m) {
			return nft.Rule{}, fmt.Errorf("a jump to the anti-spoofing chain with a match")
		}
		return nft.R(comment, nft.Kw("iifname . ether saddr . "+ip+" saddr !="), nft.Ref(SetSpoof), nft.Kw("counter"), nft.Drop), nil
	}
	if m.PhysIn != "" || m.PhysOut != "" || m.PhysBridged {
		return nft.Rule{}, fmt.Errorf("a physdev match outside the dispatch chains")
	}
	terms := make([]nft.Term, 0, 12)
	add := func(t ...nft.Term) { terms = append(terms, t...) }
	if m.InIface != "" {
		add(nft.Kw("iifname"), nft.IfName(m.InIface))
	}
	if p := m.Src; p.IsValid() && p.Bits() > 0 {
		if p.Addr().Is4() != (r.fam == v4) {
			return nft.Rule{}, fmt.Errorf("source %s in the wrong family", p)
		}
		add(nft.Kw(ip+" saddr"), nft.Prefix(p.Masked()))
	}
	if p := m.Dst; p.IsValid() && p.Bits() > 0 {
		if p.Addr().Is4() != (r.fam == v4) {
			return nft.Rule{}, fmt.Errorf("destination %s in the wrong family", p)
		}
		add(nft.Kw(ip+" daddr"), nft.Prefix(p.Masked()))
	}
	if m.MACSource != nil {
		if len(m.MACSource) != 6 {
			return nft.Rule{}, fmt.Errorf("MAC %s is not 48 bits", m.MACSource)
		}
		add(nft.Kw("ether saddr"), nft.MAC(m.MACSource))
	}
	if m.Proto != 0 {
		add(nft.Kw("meta l4proto"), nft.Num(uint64(m.Proto)))
	}
	switch m.Proto {
	// Ports and ICMP types as the iptables rendering has them
	// (hybrid's appendProtoMatch): only for the protocols that carry them.
	case neutron.ProtoTCP, neutron.ProtoUDP, neutron.ProtoSCTP, neutron.ProtoDCCP, neutron.ProtoUDPLite:
		if !m.SrcPort.Any() {
			add(nft.Kw("th sport"), nft.NumRange(uint64(m.SrcPort.Min), uint64(m.SrcPort.Max)))
		}
		if !m.DstPort.Any() {
			add(nft.Kw("th dport"), nft.NumRange(uint64(m.DstPort.Min), uint64(m.DstPort.Max)))
		}
	case neutron.ProtoICMP, neutron.ProtoICMPv6:
		kw := "icmp"
		if m.Proto == neutron.ProtoICMPv6 {
			kw = "icmpv6"
		}
		if m.ICMP.Set && !(m.Proto == neutron.ProtoICMP && m.ICMP.Type == 255) { // 255: iptables' "any"
			add(nft.Kw(kw+" type"), nft.Num(uint64(m.ICMP.Type)))
			if m.ICMP.Code >= 0 {
				add(nft.Kw(kw+" code"), nft.Num(uint64(m.ICMP.Code)))
			}
		}
	}
	if m.IPSet != "" {
		dir := "saddr"
		if m.IPSetDst {
			dir = "daddr"
		}
		add(nft.Kw(ip+" "+dir), nft.Ref(m.IPSet))
	}
	if m.States != 0 {
		add(nft.Kw("ct state " + ctStates(m.States)))
	}
	if s.Action.Kind == hybrid.Log {
		// A log statement decides nothing: nft goes on to the next rule.
		lt := s.Action.Log
		add(nft.Kw(fmt.Sprintf("limit rate %d/second burst %d packets", lt.Rate, lt.Burst)),
			nft.Kw("log prefix"), nft.Str(lt.Prefix), nft.Kw(fmt.Sprintf("group %d", lt.Group)))
		return nft.R(comment, terms...), nil
	}
	add(nft.Kw("counter"))
	switch s.Action.Kind {
	case hybrid.Accept:
		add(nft.Accept)
	case hybrid.Drop:
		add(nft.Drop)
	case hybrid.Return:
		add(nft.Return)
	case hybrid.Jump:
		n, ok := r.names[s.Action.Chain]
		if !ok {
			return nft.Rule{}, fmt.Errorf("a jump to %s, which has no nftables chain", s.Action.Chain)
		}
		add(nft.Jump(n))
	default:
		return nft.Rule{}, fmt.Errorf("action %d outside the raw table", s.Action.Kind)
	}
	return nft.R(comment, terms...), nil
}

// ctStates renders conntrack states in nft's words.
func ctStates(s hybrid.CTState) string {
	var out []string
	for _, x := range []struct {
		s    hybrid.CTState
		name string
	}{{hybrid.StateInvalid, "invalid"}, {hybrid.StateEstablished, "established"}, {hybrid.StateRelated, "related"}, {hybrid.StateNew, "new"}, {hybrid.StateUntracked, "untracked"}} {
		if s&x.s != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ",")
}

// OriginTag is the comment a rule carries in the kernel: what it stands
// for, so that `moat trace` and `moat explain` on a live host name the
// origin. A security group rule's tag is "sgr" and its rule ids; the
// others are the origin kind.
func OriginTag(o *hybrid.Origin) string {
	if o == nil {
		return ""
	}
	if o.Kind == hybrid.OriginSGRule && len(o.Rules) > 0 {
		ids := make([]string, len(o.Rules))
		for i, r := range o.Rules {
			ids[i] = r.String()
		}
		return "sgr " + strings.Join(ids, ",")
	}
	return string(o.Kind)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// matchIsZero reports whether m matches every packet.
func matchIsZero(m hybrid.Match) bool {
	return !m.Src.IsValid() && !m.Dst.IsValid() && m.InIface == "" && m.PhysIn == "" && m.PhysOut == "" &&
		m.IPSet == "" && m.MACSource == nil && m.SrcPort.Any() && m.DstPort.Any() && !m.ICMP.Set &&
		m.Proto == 0 && !m.PhysBridged && !m.IPSetDst && m.States == 0
}
