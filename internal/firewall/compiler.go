package firewall

import (
	"fmt"
	"slices"
	"strings"
)

// Compiler turns host states into Rulesets, reusing the work of earlier
// compiles wherever the inputs it depends on are unchanged:
//
//   - a security group's rendered rules, kept with a copy of the group and
//     the options they were rendered from;
//   - the de-duplicated rule list of each combination of groups ports
//     carry (many ports share one), kept with the versions of its groups;
//   - a port's own rules (dispatch, DHCP, anti-spoofing), kept with a copy
//     of the port and the options;
//   - a port's chains, kept with the version of all of the above plus its
//     zone, its statefulness and, without ipsets, a fingerprint of the
//     member addresses its rules expand to;
//   - the members of remote groups and address groups, kept with a
//     fingerprint of the addresses.
//
// Inputs are compared exactly, except member and address lists, which can
// be long and are compared by a 128-bit order-independent fingerprint. So
// adding a rule to a group re-assembles only the ports that carry the
// group, and with ipsets a membership change re-computes only set members.
// A Compiler is not safe for concurrent use.
type Compiler struct {
	seeds   seeds
	gen     uint64 // compile counter, marks cache entries in use
	version uint64 // source of versions of rebuilt cache entries

	groups map[string]*groupEntry
	combos map[string]*comboEntry
	ports  map[string]*portEntry
	addrs  map[addrKey]*addrEntry

	stats Stats

	// dispatch caches the chains every port has a share in, reused while
	// the ports and their shares stay the same.
	dispatch *dispatch
	// order is the last input's port ids and their sorting permutation.
	order struct {
		ids  []string
		perm []int
	}
}

// Stats counts the work one Compile did.
type Stats struct {
	Ports int // ports on the host
	// PortsRebuilt is the number of ports whose own rules (dispatch, DHCP,
	// anti-spoofing) were rendered again because the port or the options
	// changed.
	PortsRebuilt int
	// PortsRecompiled is the number of ports whose chains were assembled
	// again, for any reason; the other ports' chains were reused as they
	// were.
	PortsRecompiled int
	// GroupsRendered is the number of security groups whose rules were
	// rendered again.
	GroupsRendered int
	// CombosBuilt is the number of group combinations whose merged rule
	// lists were built again.
	CombosBuilt int
	// AddressListsBuilt is the number of remote-group member lists and
	// address groups parsed and sorted again.
	AddressListsBuilt int
}

// NewCompiler returns a Compiler with an empty cache.
func NewCompiler() *Compiler {
	return &Compiler{
		seeds:  newSeeds(),
		groups: map[string]*groupEntry{},
		combos: map[string]*comboEntry{},
		ports:  map[string]*portEntry{},
		addrs:  map[addrKey]*addrEntry{},
	}
}

// Compile compiles a state without a cache.
func Compile(s *HostState) (*Ruleset, error) { return NewCompiler().Compile(s) }

// Stats returns the counters of the last Compile.
func (c *Compiler) Stats() Stats { return c.stats }

type groupEntry struct {
	gen     uint64
	version uint64
	src     SecurityGroup // deep copy of what r was rendered from
	opt     Options
	r       *renderedGroup
}

type addrKey struct {
	addressGroup bool
	id           string
}

type addrEntry struct {
	gen uint64
	fp  fingerprint
	l   *addressList
}

// comboEntry is the merged, de-duplicated rule lists of one sequence of
// groups, per family and direction.
type comboEntry struct {
	key      string
	gen      uint64
	version  uint64
	versions []uint64         // of the groups it was built from, 0 if missing
	groups   []*renderedGroup // nil where a group is missing
	lists    [2][2]ruleList
	// deps fingerprints the address lists the expansions read (without
	// ipsets); computed once per compile.
	depsGen uint64
	deps    fingerprint
	// setsGen marks the combination as looked at for ipsets this compile.
	setsGen uint64
}

// ruleList is a chain's group rules: resolved lines, or (when they contain
// expansions) the rendered rules to expand per port.
type ruleList struct {
	lines  []line
	texts  []string
	ids    map[string]struct{}
	glines []gline // non-nil: expand per port
}

type portEntry struct {
	gen      uint64
	src      Port // deep copy of what static was built from
	comments bool
	static   *portStatic
	comboKey string      // the port's group ids, joined
	combo    *comboEntry // its combination in the last compile

	// What out was assembled from.
	in  assemblyInputs
	out *portOut
}

// assemblyInputs is everything a port's chains depend on besides its own
// static part.
type assemblyInputs struct {
	combo     uint64 // version
	deps      fingerprint
	zone      int
	stateless bool
	opt       Options
}

// portOut is a filtered port's share of the ruleset.
type portOut struct {
	chains [2][]Chain // i, o and, if present, s chain per family
	raw    []string   // raw PREROUTING rules
}

// compilation is the state of one Compile call.
type compilation struct {
	c      *Compiler
	s      *HostState
	opt    Options
	groups map[string]*SecurityGroup
	ags    map[string]*AddressGroup

	established, invalid, fallback line
}

// Compile compiles a host state into its ruleset.
func (c *Compiler) Compile(s *HostState) (*Ruleset, error) {
	c.gen++
	c.stats = Stats{Ports: len(s.Ports)}
	k, err := c.newCompilation(s)
	if err != nil {
		return nil, err
	}
	rs, err := k.run()
	if err != nil {
		return nil, err
	}
	c.evict()
	return rs, nil
}

// newCompilation sets up one compile of s: its groups and address groups
// by id (each listed once) and the rules every port chain ends with.
func (c *Compiler) newCompilation(s *HostState) (*compilation, error) {
	k := &compilation{
		c: c, s: s, opt: s.Options,
		groups: make(map[string]*SecurityGroup, len(s.SecurityGroups)),
		ags:    make(map[string]*AddressGroup, len(s.AddressGroups)),
	}
	cm := s.Options.CommentRules
	k.established = line{text: withComment("-m state --state RELATED,ESTABLISHED -j RETURN", commentAllowAssoc, cm)}
	k.invalid = line{text: withComment("-m state --state INVALID -j DROP", commentInvalidDrop, cm)}
	k.fallback = line{text: withComment("-j "+chainFallback, commentUnmatched, cm)}
	for i := range s.SecurityGroups {
		g := &s.SecurityGroups[i]
		if _, dup := k.groups[g.ID]; dup {
			return nil, fmt.Errorf("security group %s listed twice", g.ID)
		}
		k.groups[g.ID] = g
	}
	for i := range s.AddressGroups {
		ag := &s.AddressGroups[i]
		if _, dup := k.ags[ag.ID]; dup {
			return nil, fmt.Errorf("address group %s listed twice", ag.ID)
		}
		k.ags[ag.ID] = ag
	}
	return k, nil
}

// evict drops cache entries the last compile did not use.
func (c *Compiler) evict() {
	for id, e := range c.groups {
		if e.gen != c.gen {
			delete(c.groups, id)
		}
	}
	for id, e := range c.combos {
		if e.gen != c.gen {
			delete(c.combos, id)
		}
	}
	for id, e := range c.ports {
		if e.gen != c.gen {
			delete(c.ports, id)
		}
	}
	for id, e := range c.addrs {
		if e.gen != c.gen {
			delete(c.addrs, id)
		}
	}
}

func (k *compilation) run() (*Ruleset, error) {
	ports := k.c.sortedPorts(k.s.Ports)

	// Static parts first: they say which ports are filtered, which the zone
	// allocator needs to know.
	entries := make([]*portEntry, len(ports))
	present := make(map[string]bool, len(ports))
	var prev *Port
	for i, p := range ports {
		if i > 0 && ports[i-1].ID == p.ID {
			return nil, fmt.Errorf("port %s listed twice", p.ID)
		}
		e, err := k.port(p)
		if err != nil {
			return nil, err
		}
		entries[i] = e
		if e.static.kind == trusted {
			continue
		}
		present[p.ID] = true
		// Chain and device names are cut from the id, so two ports must
		// not share its first ten characters; sorted, such ports are
		// neighbours.
		if prev != nil && truncate(prev.ID, 10) == truncate(p.ID, 10) {
			return nil, fmt.Errorf("ports %s and %s would share chain %s", prev.ID, p.ID, portChainName('i', p.ID))
		}
		prev = p
	}

	zones := newZoneAllocator(k.s.Zones)
	isPresent := func(id string) bool { return present[id] }
	rs := &Ruleset{}
	statics := make([]*portStatic, len(ports))
	outs := make([]*portOut, len(ports))
	for i, p := range ports {
		e := entries[i]
		statics[i] = e.static
		if e.static.kind != filtered {
			continue
		}
		zone, err := zones.zone(p.ID, isPresent)
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", p.ID, err)
		}
		if outs[i], err = k.portChains(p, e, zone); err != nil {
			return nil, err
		}
		rs.PortZones = append(rs.PortZones, PortZone{PortID: p.ID, Zone: zone})
	}
	rs.ZoneAssignments = zones.assigned
	dispatch := k.c.dispatchChains(statics, outs)
	rs.IPv4 = k.tables(v4, dispatch, outs)
	rs.IPv6 = k.tables(v6, dispatch, outs)
	if k.opt.EnableIPSet {
		sets, err := k.ipsets(ports, entries)
		if err != nil {
			return nil, err
		}
		rs.IPSets = sets
	}
	return rs, nil
}

// sortedPorts returns the ports sorted by id. Agents usually pass the same
// ports in the same order again, so the last permutation is kept and
// reused when the ids are unchanged.
func (c *Compiler) sortedPorts(in []Port) []*Port {
	same := len(in) == len(c.order.ids)
	for i := 0; same && i < len(in); i++ {
		same = in[i].ID == c.order.ids[i]
	}
	if !same {
		c.order.ids = make([]string, len(in))
		c.order.perm = make([]int, len(in))
		for i := range in {
			c.order.ids[i], c.order.perm[i] = in[i].ID, i
		}
		slices.SortFunc(c.order.perm, func(a, b int) int { return strings.Compare(in[a].ID, in[b].ID) })
	}
	ports := make([]*Port, len(in))
	for i, j := range c.order.perm {
		ports[i] = &in[j]
	}
	return ports
}

// port returns the port's cache entry with its static part up to date.
func (k *compilation) port(p *Port) (*portEntry, error) {
	e := k.c.ports[p.ID]
	if e == nil {
		e = &portEntry{}
		k.c.ports[p.ID] = e
	}
	e.gen = k.c.gen
	if e.static == nil || e.comments != k.opt.CommentRules || !samePort(&e.src, p) {
		st, err := buildPortStatic(p, k.opt)
		if err != nil {
			return nil, err
		}
		e.src, e.comments, e.static, e.out = clonePort(p), k.opt.CommentRules, st, nil
		e.comboKey = strings.Join(p.SecurityGroups, "\x00")
		k.c.stats.PortsRebuilt++
	}
	return e, nil
}

func samePort(a, b *Port) bool {
	return a.ID == b.ID && a.MAC == b.MAC && a.DeviceOwner == b.DeviceOwner &&
		a.PortSecurityDisabled == b.PortSecurityDisabled &&
		slices.Equal(a.FixedIPs, b.FixedIPs) &&
		slices.Equal(a.AllowedAddressPairs, b.AllowedAddressPairs) &&
		slices.Equal(a.SecurityGroups, b.SecurityGroups)
}

func clonePort(p *Port) Port {
	c := *p
	c.FixedIPs = slices.Clone(p.FixedIPs)
	c.AllowedAddressPairs = slices.Clone(p.AllowedAddressPairs)
	c.SecurityGroups = slices.Clone(p.SecurityGroups)
	return c
}

// portChains returns a filtered port's chains, re-assembling them only if
// an input changed.
func (k *compilation) portChains(p *Port, e *portEntry, zone int) (*portOut, error) {
	combo := e.combo
	if combo == nil || combo.gen != k.c.gen || combo.key != e.comboKey {
		var err error
		if combo, err = k.combo(e.comboKey, p.SecurityGroups); err != nil {
			return nil, err
		}
	}
	stateless, err := k.stateless(e.static, combo)
	if err != nil {
		return nil, err
	}
	deps, err := k.comboDeps(combo)
	if err != nil {
		return nil, err
	}
	e.combo = combo
	in := assemblyInputs{combo: combo.version, deps: deps, zone: zone, stateless: stateless, opt: k.opt}
	if e.out != nil && e.in == in {
		return e.out, nil
	}
	out, err := k.assemble(e.static, combo, zone, stateless)
	if err != nil {
		return nil, err
	}
	e.out, e.in = out, in
	k.c.stats.PortsRecompiled++
	return out, nil
}

// group returns a security group's rendered rules, nil for a group the
// state does not hold.
func (k *compilation) group(id string) (*groupEntry, error) {
	e := k.c.groups[id]
	if e != nil && e.gen == k.c.gen {
		return e, nil
	}
	g := k.groups[id]
	if g == nil {
		return nil, nil
	}
	if e == nil || e.opt != k.opt || !sameGroup(&e.src, g) {
		r, err := renderGroup(g, k.opt)
		if err != nil {
			return nil, err
		}
		k.c.version++
		e = &groupEntry{version: k.c.version, src: cloneGroup(g), opt: k.opt, r: r}
		k.c.groups[id] = e
		k.c.stats.GroupsRendered++
	}
	e.gen = k.c.gen
	return e, nil
}

func sameGroup(a, b *SecurityGroup) bool {
	return a.ID == b.ID && a.Stateless == b.Stateless && slices.EqualFunc(a.Rules, b.Rules, sameRule)
}

func sameRule(a, b Rule) bool {
	return a.Direction == b.Direction && a.Ethertype == b.Ethertype && a.Protocol == b.Protocol &&
		sameInt(a.PortRangeMin, b.PortRangeMin) && sameInt(a.PortRangeMax, b.PortRangeMax) &&
		a.RemoteIPPrefix == b.RemoteIPPrefix && a.NormalizedCIDR == b.NormalizedCIDR &&
		a.RemoteGroupID == b.RemoteGroupID && a.RemoteAddressGroupID == b.RemoteAddressGroupID
}

func sameInt(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func cloneGroup(g *SecurityGroup) SecurityGroup {
	c := *g
	c.Rules = make([]Rule, len(g.Rules))
	for i, r := range g.Rules {
		if r.PortRangeMin != nil {
			v := *r.PortRangeMin
			r.PortRangeMin = &v
		}
		if r.PortRangeMax != nil {
			v := *r.PortRangeMax
			r.PortRangeMax = &v
		}
		c.Rules[i] = r
	}
	return c
}

// combo returns the merged rule lists of a sequence of groups.
func (k *compilation) combo(key string, ids []string) (*comboEntry, error) {
	e := k.c.combos[key]
	if e != nil && e.gen == k.c.gen {
		return e, nil
	}
	groups := make([]*renderedGroup, len(ids))
	versions := make([]uint64, len(ids))
	for i, id := range ids {
		ge, err := k.group(id)
		if err != nil {
			return nil, err
		}
		if ge != nil {
			groups[i], versions[i] = ge.r, ge.version
		}
	}
	if e == nil || !slices.Equal(e.versions, versions) {
		k.c.version++
		e = &comboEntry{key: key, version: k.c.version, versions: versions, groups: groups}
		for fam := range e.lists {
			for dir := range e.lists[fam] {
				e.lists[fam][dir] = mergeGroups(groups, fam, dir)
			}
		}
		k.c.combos[key] = e
		k.c.stats.CombosBuilt++
	}
	e.gen = k.c.gen
	return e, nil
}

// mergeGroups concatenates the groups' rules for one chain, dropping rules
// identical to an earlier one (rules from several groups often are).
func mergeGroups(groups []*renderedGroup, fam, dir int) ruleList {
	var rl ruleList
	for _, g := range groups {
		if g == nil {
			continue
		}
		for _, gl := range g.lines[fam][dir] {
			if gl.exp != nil {
				// Expanded per port; keep the rendered rules as they are.
				var all []gline
				for _, g := range groups {
					if g != nil {
						all = append(all, g.lines[fam][dir]...)
					}
				}
				return ruleList{glines: all}
			}
		}
	}
	rl.ids = map[string]struct{}{}
	for _, g := range groups {
		if g == nil {
			continue
		}
		for _, gl := range g.lines[fam][dir] {
			rl.add(gl.line)
		}
	}
	rl.texts = texts(rl.lines)
	return rl
}

func (rl *ruleList) add(l line) {
	id := l.id()
	if _, dup := rl.ids[id]; dup {
		return
	}
	rl.ids[id] = struct{}{}
	rl.lines = append(rl.lines, l)
}

// addresses returns a remote group's members or an address group's
// addresses.
func (k *compilation) addresses(key addrKey) (*addressList, error) {
	e := k.c.addrs[key]
	if e != nil && e.gen == k.c.gen {
		return e.l, nil
	}
	var raw []string
	if key.addressGroup {
		if ag := k.ags[key.id]; ag != nil {
			raw = ag.Addresses
		}
	} else {
		raw = k.s.GroupMembers[key.id]
	}
	fp := k.c.seeds.listFingerprint(raw)
	if e == nil || e.fp != fp {
		l, err := parseAddresses(raw)
		if err != nil {
			what := "security group"
			if key.addressGroup {
				what = "address group"
			}
			return nil, fmt.Errorf("%s %s: %w", what, key.id, err)
		}
		e = &addrEntry{fp: fp, l: l}
		k.c.addrs[key] = e
		k.c.stats.AddressListsBuilt++
	}
	e.gen = k.c.gen
	return e.l, nil
}

// comboDeps fingerprints the address lists a combination's expansions read.
func (k *compilation) comboDeps(e *comboEntry) (fingerprint, error) {
	if e.depsGen == k.c.gen {
		return e.deps, nil
	}
	var deps fingerprint
	seen := map[addrKey]bool{}
	for fam := range e.lists {
		for dir := range e.lists[fam] {
			for _, gl := range e.lists[fam][dir].glines {
				if gl.exp == nil {
					continue
				}
				key := addrKey{addressGroup: !gl.exp.remoteGroup, id: gl.exp.id}
				if seen[key] {
					continue
				}
				seen[key] = true
				if _, err := k.addresses(key); err != nil {
					return fingerprint{}, err
				}
				// The key is mixed in so that two lists swapping contents
				// differ.
				deps = k.c.seeds.mix(deps, key.id, k.c.addrs[key].fp)
			}
		}
	}
	e.deps, e.depsGen = deps, k.c.gen
	return deps, nil
}

// stateless is Neutron's _get_port_sg_rules/_are_sg_rules_stateful: the
// port follows the stateful flag of the first rule of its first group that
// applies to it; no such rule, or a network:/neutron: owner, means
// stateful.
func (k *compilation) stateless(ps *portStatic, combo *comboEntry) (bool, error) {
	if ps.forceStateful || len(combo.groups) == 0 || combo.groups[0] == nil {
		return false, nil
	}
	g := combo.groups[0]
	for _, pr := range g.probe {
		if pr.id == "" || k.opt.EnableIPSet {
			return g.stateless, nil
		}
		l, err := k.addresses(addrKey{id: pr.id})
		if err != nil {
			return false, err
		}
		fam := v4
		if pr.v6 {
			fam = v6
		}
		for _, a := range l.byFamily[fam] {
			if !isOwn(ps.fixedText, a) {
				return g.stateless, nil
			}
		}
	}
	return false, nil
}

// isOwn reports whether a remote-group member is one of the port's own
// fixed addresses (own, as stored), which Neutron leaves out of per-member
// rules. Neutron compares the stored texts, so an allowed address pair
// that spells the port's address differently ("10.0.0.5/32",
// "2001:db8:0::8") still gets its rule; so does moat.
func isOwn(own []string, a address) bool {
	for _, f := range own {
		if f == a.raw {
			return true
		}
	}
	return false
}
