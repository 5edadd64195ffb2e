package firewall

import (
	"slices"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/hybrid"
)

// assemble builds a filtered port's chains and raw rules; the raw rules of
// prev (what was assembled from prevIn) are kept when the zone and
// statefulness are the same.
// The chains hold their texts only; their specs are built when asked
// (chainSpecs).
func (k *compilation) assemble(ps *portStatic, combo *comboEntry, zone int, stateless bool, prev *portOut, prevIn assemblyInputs) *portOut {
	out := &portOut{static: ps, zone: zone, stateless: stateless}
	for fam := range out.chains {
		chains := make([]Chain, 0, 3)
		for dir, name := range []string{ps.chainI, ps.chainO} {
			sg := k.resolve(ps, &combo.lists[fam][dir], fam)
			out.sg[fam][dir] = sg
			rules := portChainRules(k.fixed, ps, fam, dir, sg, false)
			chains = append(chains, lazyChain(name, rules.texts, out, 3*fam+dir))
		}
		if ps.spoof[fam].texts != nil {
			chains = append(chains, lazyChain(ps.chainS, ps.spoof[fam].texts, out, 3*fam+2))
		}
		out.chains[fam] = chains
	}

	if prev != nil && prevIn.zone == zone && prevIn.stateless == stateless {
		out.raw = prev.raw
		return out
	}
	out.raw = rawRules(ps, zone, stateless, false)
	return out
}

// chainSpecs builds the specs of all the port's chains, once: chain i is
// family i/3's i, o or s chain (i%3).
func (o *portOut) chainSpecs(i int) []*hybrid.Rule {
	o.once.Do(func() {
		ps := o.static.withSpecs()
		specs := new([2][3][]*hybrid.Rule)
		for fam := range specs {
			for dir := range 2 {
				specs[fam][dir] = portChainRules(ps.fixed, ps, fam, dir, o.sg[fam][dir], true).specs
			}
			specs[fam][2] = ps.spoof[fam].specs
		}
		o.specs = specs
	})
	return o.specs[i/3][i%3]
}

// rawRules are a filtered port's raw PREROUTING rules: a conntrack zone
// per port (CONNTRACK_ZONE_PER_PORT), or no tracking at all for a
// stateless port; with keep, with their specs. Neutron hard-codes these
// comments, so they stay when comments are off.
func rawRules(ps *portStatic, zone int, stateless, keep bool) []line {
	cm, act, o := hybrid.ZoneComment(ps.id), hybrid.Action{Kind: hybrid.CTZone, Zone: uint16(zone)}, shared(hybrid.OriginCTZone)
	if stateless {
		cm, act, o = hybrid.StatelessComment(ps.id), hybrid.Action{Kind: hybrid.CTNoTrack}, shared(hybrid.OriginStateless)
	}
	rules := [3]hybrid.Rule{
		{Match: hybrid.Match{PhysIn: ps.qvb}, Comment: cm, Action: act, Origin: o},
		{Match: hybrid.Match{InIface: ps.qvb}, Comment: cm, Action: act, Origin: o},
		{Match: hybrid.Match{PhysIn: ps.tap}, Comment: cm, Action: act, Origin: o},
	}
	out := make([]line, len(rules))
	if keep {
		arena := newRuleArena(len(rules), true)
		for i, r := range rules {
			out[i] = arena.line(r)
		}
		return out
	}
	// The three texts in one string: they live as long as each other.
	var buf [512]byte
	b := buf[:0]
	var ends [len(rules)]int
	for i := range rules {
		b = rules[i].AppendIptables(b)
		ends[i] = len(b)
	}
	all, start := string(b), 0
	for i, end := range ends {
		out[i] = line{text: all[start:end]}
		start = end
	}
	return out
}

// portChainRules is a port's i (dir in) or o chain of one family.
func portChainRules(f *fixedTexts, ps *portStatic, fam, dir int, sg *ruleList, keep bool) ruleLines {
	var prov []line
	if dir == in {
		prov = ps.provider[fam]
	}
	return chainRules(f, fam, dir, ps.head[fam][dir], prov, sg, keep)
}

// resolve returns a chain's group rules for one port, expanding per-member
// rules when ipsets are off.
func (k *compilation) resolve(ps *portStatic, rl *ruleList, fam int) *ruleList {
	if rl.glines == nil {
		return rl
	}
	res := &ruleList{ids: map[string]int{}}
	for _, gl := range rl.glines {
		if gl.exp == nil {
			res.add(gl.line)
			continue
		}
		for _, el := range k.expand(gl.exp, fam) {
			if gl.exp.remoteGroup && isOwn(ps.fixedText, el.addr) {
				continue
			}
			res.add(el.line)
		}
	}
	res.out = linesOf(res.lines, false)
	return res
}

// expand returns the lines an expansion stands for in one family: the rule
// once per address of its remote group or address group. They are
// rendered once per compile; resolve leaves out a port's own addresses.
func (k *compilation) expand(x *expansion, fam int) []expandedLine {
	key := expandKey{x, fam}
	if ls, ok := k.expanded[key]; ok {
		return ls
	}
	l := k.addresses(addrKey{addressGroup: !x.remoteGroup, id: x.id})
	ls := make([]expandedLine, 0, len(l.byFamily[fam]))
	specs := make([]hybrid.Rule, len(l.byFamily[fam]))
	for i, a := range l.byFamily[fam] {
		r := &specs[i]
		*r = x.rule
		if x.egress {
			r.Match.Dst = a.prefix
		} else {
			r.Match.Src = a.prefix
		}
		el := expandedLine{line: newLine(r), addr: a}
		if x.key != "" {
			el.key = x.key
			if pre := prefixArg(x.egress, a.prefix); pre != "" {
				el.key = pre + " " + x.key
			}
		}
		ls = append(ls, el)
	}
	if k.expanded == nil {
		k.expanded = map[expandKey][]expandedLine{}
	}
	k.expanded[key] = ls
	return ls
}

// chainRules lays out a port chain as _add_rules_by_security_group does:
// the fixed head rules, RELATED,ESTABLISHED, then the provider and group
// rules with later duplicates dropped, INVALID and the fallback jump.
// IptablesManager then removes every rule that occurs again further down
// the chain, which can only hit a head rule that a group rule repeats. A
// provider rule a group rule repeats stays where it is and names the group
// rule as a source.
// With keep, the rules have their specs.
func chainRules(f *fixedTexts, fam, dir int, head, prov []line, sg *ruleList, keep bool) ruleLines {
	sgOut := sg.out
	if keep && !sgOut.keep {
		sgOut = linesOf(sg.lines, true)
	}
	for _, p := range prov {
		if _, dup := sg.ids[p.id()]; dup {
			sgOut, prov = dropIDs(sg.lines, prov, keep)
			break
		}
	}
	rules := makeRuleLines(len(head)+len(prov)+len(sgOut.texts)+3, keep)
	for _, h := range head {
		id := h.id()
		if _, dup := sg.ids[id]; dup || containsID(prov, id) {
			continue
		}
		rules.add1(h)
	}
	rules.add1(f.established[fam][dir])
	for _, p := range prov {
		rules.add1(p)
	}
	rules.addAll(sgOut)
	rules.add1(f.invalid[fam][dir])
	rules.add1(f.fallback[fam][dir])
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

// dropIDs returns the lines of ls that are not in drop, and drop with the
// sources of the lines of ls it holds.
func dropIDs(ls, drop []line, keep bool) (ruleLines, []line) {
	out := ruleLines{keep: keep}
	drop = slices.Clone(drop)
	for _, l := range ls {
		if i := slices.IndexFunc(drop, func(d line) bool { return d.id() == l.id() }); i >= 0 {
			drop[i] = drop[i].withSources(l)
			continue
		}
		out.add(l)
	}
	return out, drop
}

// dispatch is what all ports contribute to shared chains; it is the same
// for both families. The chains hold their texts only; their specs are
// built when asked (chainSpecs).
type dispatch struct {
	statics []*portStatic
	raws    [][]line // each filtered port's raw rules, nil for others
	drops   []line   // the rules dropping rejected ports' traffic
	rawOf   []rawInput
	fixed   *fixedTexts

	forward, input, sgChain, prerouting ruleLines

	once  sync.Once
	specs [4][]*hybrid.Rule // forward, input, sg-chain, prerouting
}

// rawInput is what a port's raw rules were built from.
type rawInput struct {
	zone      int
	stateless bool
}

// The dispatch chains, as chainSpecs numbers them.
const (
	dispatchForward = iota
	dispatchInput
	dispatchSG
	dispatchPrerouting
)

// dispatchChains returns the shared chains, rebuilt only when a port came,
// went or changed its share. drops end neutron-openvswi-FORWARD.
func (k *compilation) dispatchChains(statics []*portStatic, outs []*portOut, drops []line) *dispatch {
	c := k.c
	raws := make([][]line, len(outs))
	for i, o := range outs {
		if o != nil {
			raws[i] = o.raw
		}
	}
	if d := c.dispatch; d != nil && slices.Equal(d.statics, statics) &&
		slices.EqualFunc(d.raws, raws, sameArray) && slices.EqualFunc(d.drops, drops, sameText) {
		return d
	}
	d := &dispatch{statics: statics, raws: raws, drops: drops, fixed: k.fixed, rawOf: make([]rawInput, len(outs))}
	for i, o := range outs {
		if o != nil {
			d.rawOf[i] = rawInput{o.zone, o.stateless}
		}
	}
	d.forward, d.input, d.sgChain, d.prerouting = d.chains(false)
	c.dispatch = d
	return d
}

// chains builds the dispatch chains; with keep, with their specs.
func (d *dispatch) chains(keep bool) (forward, input, sgChain, prerouting ruleLines) {
	var nf, nu int
	for _, ps := range d.statics {
		switch ps.kind {
		case filtered:
			nf++
		case unfiltered:
			nu++
		}
	}
	forward = makeRuleLines(2*len(d.statics)+len(d.drops), keep)
	input = makeRuleLines(nf+nu, keep)
	sgChain = makeRuleLines(2*nf+1, keep)
	prerouting = makeRuleLines(3*nf, keep)
	port := func(ps *portStatic) *portStatic {
		if keep {
			return ps.withSpecs()
		}
		return ps
	}
	// FORWARD: Neutron inserts the filtered ports' jumps at the top; trusted
	// ports come before the port-security-disabled ones because the agent
	// accepts them inside the deferred apply, before the chains are set up.
	for i, ps := range d.statics {
		if ps.kind == filtered {
			ps := port(ps)
			forward.add(ps.forward...)
			input.add(ps.input...)
			sgChain.add(ps.sg...)
			if keep {
				prerouting.add(rawRules(ps, d.rawOf[i].zone, d.rawOf[i].stateless, true)...)
			} else {
				prerouting.add(d.raws[i]...)
			}
		}
	}
	for _, kind := range []portKind{trusted, unfiltered} {
		for _, ps := range d.statics {
			if ps.kind == kind {
				ps := port(ps)
				forward.add(ps.forward...)
				input.add(ps.input...)
			}
		}
	}
	forward.add(d.drops...)
	sgChain.add(d.fixed.sgAccept)
	return forward, input, sgChain, prerouting
}

// chainSpecs builds the specs of the dispatch chains, once.
func (d *dispatch) chainSpecs(i int) []*hybrid.Rule {
	d.once.Do(func() {
		f, in, sg, pre := d.chains(true)
		d.specs = [4][]*hybrid.Rule{f.specs, in.specs, sg.specs, pre.specs}
	})
	return d.specs[i]
}

// sameArray reports whether two slices are the same slice (or both nil).
func sameArray(a, b []line) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func sameText(a, b line) bool { return a.text == b.text }

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
	f := k.fixed
	fixed := []Chain{
		toChain(hybrid.ChainFilterTop, f.filterTop),
		lazyChain(hybrid.ChainForward, d.forward.texts, d, dispatchForward),
		lazyChain(hybrid.ChainInput, d.input.texts, d, dispatchInput),
		{Name: hybrid.ChainOutput},
		{Name: hybrid.ChainLocal},
		lazyChain(hybrid.ChainSG, d.sgChain.texts, d, dispatchSG),
		toChain(hybrid.ChainFallback, f.fallbackDrop),
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
			toChain("INPUT", f.builtinFilter[0]),
			toChain("FORWARD", f.builtinFilter[1]),
			toChain("OUTPUT", f.builtinFilter[2]),
		},
		Chains: chains,
	}
	raw := Table{
		Name: "raw",
		Builtins: []Chain{
			toChain("PREROUTING", f.builtinRaw[0]),
			toChain("OUTPUT", f.builtinRaw[1]),
		},
		Chains: []Chain{
			{Name: hybrid.ChainOutput},
			lazyChain(hybrid.ChainPrerouting, d.prerouting.texts, d, dispatchPrerouting),
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
