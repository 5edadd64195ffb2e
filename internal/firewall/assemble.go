package firewall

import (
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// assemble builds a filtered port's chains and raw rules.
func (k *compilation) assemble(ps *portStatic, combo *comboEntry, zone int, stateless bool) *portOut {
	out := &portOut{}
	for fam := range out.chains {
		chains := make([]Chain, 0, 3)
		for dir, name := range []string{ps.chainI, ps.chainO} {
			sg := k.resolve(ps, &combo.lists[fam][dir], fam)
			var prov []line
			if dir == in {
				prov = ps.provider[fam]
			}
			chains = append(chains, Chain{Name: name, Rules: k.chainRules(ps.head[fam][dir], prov, sg)})
		}
		if ps.spoof[fam] != nil {
			chains = append(chains, Chain{Name: ps.chainS, Rules: ps.spoof[fam]})
		}
		out.chains[fam] = chains
	}

	// raw: a conntrack zone per port (CONNTRACK_ZONE_PER_PORT), or no
	// tracking at all for a stateless port. Neutron hard-codes these
	// comments, so they stay when comments are off.
	comment, target := "Set zone for "+ps.id, "CT --zone "+strconv.Itoa(zone)
	if stateless {
		comment, target = "Make "+ps.id+" stateless", "CT --notrack"
	}
	tail := ` -m comment --comment "` + comment + `" -j ` + target
	out.raw = []string{
		"-m physdev --physdev-in " + ps.qvb + tail,
		"-i " + ps.qvb + tail,
		"-m physdev --physdev-in " + ps.tap + tail,
	}
	return out
}

// resolve returns a chain's group rules for one port, expanding per-member
// rules when ipsets are off.
func (k *compilation) resolve(ps *portStatic, rl *ruleList, fam int) *ruleList {
	if rl.glines == nil {
		return rl
	}
	res := &ruleList{ids: map[string]struct{}{}}
	add := res.add
	for _, gl := range rl.glines {
		if gl.exp == nil {
			add(gl.line)
			continue
		}
		k.expand(gl.exp, fam, ps.fixedText, add)
	}
	res.texts = texts(res.lines)
	return res
}

// expand passes to add the lines an expansion stands for in one family:
// the rule once per address of its remote group or address group, less
// the remote group's members that are the port's own fixed addresses (own,
// as stored).
func (k *compilation) expand(x *expansion, fam int, own []string, add func(line)) {
	l := k.addresses(addrKey{addressGroup: !x.remoteGroup, id: x.id})
	for _, a := range l.byFamily[fam] {
		if x.remoteGroup && isOwn(own, a) {
			continue
		}
		add(join(prefixArg(x.flag, a.prefix), x.rest))
	}
}

// chainRules lays out a port chain as _add_rules_by_security_group does:
// the fixed head rules, RELATED,ESTABLISHED, then the provider and group
// rules with later duplicates dropped, INVALID and the fallback jump.
// IptablesManager then removes every rule that occurs again further down
// the chain, which can only hit a head rule that a group rule repeats.
func (k *compilation) chainRules(head, prov []line, sg *ruleList) []string {
	sgTexts := sg.texts
	for _, p := range prov {
		if _, dup := sg.ids[p.id()]; dup {
			sgTexts = dropIDs(sg.lines, prov)
			break
		}
	}
	rules := make([]string, 0, len(head)+len(prov)+len(sgTexts)+3)
	for _, h := range head {
		id := h.id()
		if _, dup := sg.ids[id]; dup || containsID(prov, id) {
			continue
		}
		rules = append(rules, h.text)
	}
	rules = append(rules, k.established.text)
	for _, p := range prov {
		rules = append(rules, p.text)
	}
	rules = append(rules, sgTexts...)
	rules = append(rules, k.invalid.text, k.fallback.text)
	return rules
}

func containsID(ls []line, id string) bool {
	for _, l := range ls {
		if l.id() == id {
			return true
		}
	}
	return false
}

func dropIDs(ls, drop []line) []string {
	var out []string
	for _, l := range ls {
		if !containsID(drop, l.id()) {
			out = append(out, l.text)
		}
	}
	return out
}

// dispatch is what all ports contribute to shared chains; it is the same
// for both families.
type dispatch struct {
	statics []*portStatic
	raws    [][]string // each filtered port's raw rules, nil for others
	drops   []string   // the rules dropping rejected ports' traffic

	forward, input, sgChain, prerouting []string
}

// dispatchChains returns the shared chains, rebuilt only when a port came,
// went or changed its share. drops end neutron-openvswi-FORWARD.
func (c *Compiler) dispatchChains(statics []*portStatic, outs []*portOut, drops []string) *dispatch {
	raws := make([][]string, len(outs))
	for i, o := range outs {
		if o != nil {
			raws[i] = o.raw
		}
	}
	if d := c.dispatch; d != nil && slices.Equal(d.statics, statics) &&
		slices.EqualFunc(d.raws, raws, sameArray) && slices.Equal(d.drops, drops) {
		return d
	}
	d := &dispatch{statics: statics, raws: raws, drops: drops}
	var nf, nu, nt int
	for _, ps := range statics {
		switch ps.kind {
		case filtered:
			nf++
		case unfiltered:
			nu++
		default:
			nt++
		}
	}
	d.forward = make([]string, 0, 2*len(statics)+len(drops))
	d.input = make([]string, 0, nf+nu)
	d.sgChain = make([]string, 0, 2*nf+1)
	d.prerouting = make([]string, 0, 3*nf)
	// FORWARD: Neutron inserts the filtered ports' jumps at the top; trusted
	// ports come before the port-security-disabled ones because the agent
	// accepts them inside the deferred apply, before the chains are set up.
	for i, ps := range statics {
		if ps.kind == filtered {
			d.forward = append(d.forward, ps.forward...)
			d.input = append(d.input, ps.input...)
			d.sgChain = append(d.sgChain, ps.sg...)
			d.prerouting = append(d.prerouting, raws[i]...)
		}
	}
	for _, kind := range []portKind{trusted, unfiltered} {
		for _, ps := range statics {
			if ps.kind == kind {
				d.forward = append(d.forward, ps.forward...)
				d.input = append(d.input, ps.input...)
			}
		}
	}
	d.forward = append(d.forward, drops...)
	d.sgChain = append(d.sgChain, "-j ACCEPT")
	c.dispatch = d
	return d
}

// sameArray reports whether two slices are the same slice (or both nil).
func sameArray(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// tables builds one family's filter and raw tables.
func (k *compilation) tables(fam int, d *dispatch, outs []*portOut) Tables {
	// Port chains come out in name order when collected by kind: every i
	// chain sorts before every o chain before every s chain, and ports are
	// sorted by id.
	n := 0
	for _, o := range outs {
		if o != nil {
			n += len(o.chains[fam])
		}
	}
	fixed := []Chain{
		{Name: hybrid.ChainFilterTop, Rules: []string{"-j " + hybrid.ChainLocal}},
		{Name: hybrid.ChainForward, Rules: d.forward},
		{Name: hybrid.ChainInput, Rules: d.input},
		{Name: hybrid.ChainOutput},
		{Name: hybrid.ChainLocal},
		{Name: hybrid.ChainSG, Rules: d.sgChain},
		{Name: hybrid.ChainFallback, Rules: []string{withComment("-j DROP", hybrid.CommentUnmatchDrop, k.opt.CommentRules)}},
	}
	// Build in name order: every i chain sorts before "local", every o
	// chain before every s chain, and those before "sg-chain" when the
	// port ids are hex (UUIDs); other ids are sorted below.
	chains := make([]Chain, 0, n+len(fixed))
	chains = append(chains, fixed[:4]...) // filter-top, FORWARD, INPUT, OUTPUT
	appendKind := func(kind int) {
		for _, o := range outs {
			if o != nil && kind < len(o.chains[fam]) {
				chains = append(chains, o.chains[fam][kind])
			}
		}
	}
	appendKind(0)
	chains = append(chains, fixed[4]) // local
	appendKind(1)
	appendKind(2)
	chains = append(chains, fixed[5:]...) // sg-chain, sg-fallback
	sortChains(chains)
	filter := Table{
		Name: "filter",
		Builtins: []Chain{
			{Name: "INPUT", Rules: []string{"-j " + hybrid.ChainInput}},
			{Name: "FORWARD", Rules: []string{"-j " + hybrid.ChainFilterTop, "-j " + hybrid.ChainForward}},
			{Name: "OUTPUT", Rules: []string{"-j " + hybrid.ChainFilterTop, "-j " + hybrid.ChainOutput}},
		},
		Chains: chains,
	}
	raw := Table{
		Name: "raw",
		Builtins: []Chain{
			{Name: "PREROUTING", Rules: []string{"-j " + hybrid.ChainPrerouting}},
			{Name: "OUTPUT", Rules: []string{"-j " + hybrid.ChainOutput}},
		},
		Chains: []Chain{
			{Name: hybrid.ChainOutput},
			{Name: hybrid.ChainPrerouting, Rules: d.prerouting},
		},
	}
	return Tables{Filter: filter, Raw: raw}
}

// sortChains puts chains in iptables-save's order (byte-wise by name).
func sortChains(cs []Chain) {
	cmp := func(a, b Chain) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(cs, cmp) {
		slices.SortStableFunc(cs, cmp)
	}
}

// ipsets lists the sets the rules of the (accepted) ports' groups name,
// less those two groups would share (rejectSetClashes).
func (k *compilation) ipsets(ports []*Port, entries []*portEntry) []IPSet {
	want := map[string]setRef{}
	k.eachSet(ports, entries, nil, false, func(_ int, r setRef) {
		if name := r.name(); !k.setClash[name] {
			want[name] = r
		}
	})
	sets := make([]IPSet, 0, len(want))
	for name, r := range want {
		l := k.addresses(r.key)
		fam, family := v4, "inet"
		if r.v6 {
			fam, family = v6, "inet6"
		}
		sets = append(sets, IPSet{Name: name, Type: "hash:net", Family: family, Members: l.setEntries[fam]})
	}
	slices.SortFunc(sets, func(a, b IPSet) int { return strings.Compare(a.Name, b.Name) })
	return sets
}

func ethertype(isV6 bool) string {
	if isV6 {
		return IPv6
	}
	return IPv4
}
