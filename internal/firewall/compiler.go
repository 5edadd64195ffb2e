package firewall

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/hybrid"
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
	err     error // why the group cannot be rendered (r is nil)
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
}

// ruleList is a chain's group rules: resolved lines, or (when they contain
// expansions) the rendered rules to expand per port.
type ruleList struct {
	lines  []line
	out    ruleLines      // lines as the output holds them
	ids    map[string]int // index in lines by identity
	glines []gline        // non-nil: expand per port
}

type portEntry struct {
	gen      uint64
	src      *Port // deep copy of what static was built from; read-only
	comments bool
	static   *portStatic
	err      error       // why the port cannot have rules (static is nil)
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
	raw    []line     // raw PREROUTING rules, without specs

	// What the chains were assembled from, to build their specs when
	// asked (Chain.Specs()): the port's static part, each chain's group
	// rules, and the raw rules' zone.
	static    *portStatic
	sg        [2][2]*ruleList
	zone      int
	stateless bool
	once      sync.Once
	specs     *[2][3][]*hybrid.Rule // per family: i, o, s chain; nil until asked
}

// compilation is the state of one Compile call.
type compilation struct {
	c      *Compiler
	s      *HostState
	opt    Options
	groups map[string]*SecurityGroup
	ags    map[string]*AddressGroup
	// Groups and address groups the state lists more than once: which
	// copy is meant is unknown, so neither is used.
	dupGroups, dupAGs map[string]bool
	// setClash holds the ipset names two different remote groups (or
	// address groups) would share.
	setClash map[string]bool
	warnings []string
	// expanded holds the lines of each expansion and family, for every
	// address of its list (this compile's), the port's own addresses not
	// yet left out.
	expanded map[expandKey][]expandedLine

	fixed *fixedTexts
}

type expandKey struct {
	x   *expansion
	fam int
}

type expandedLine struct {
	line
	addr address
}

// Compile compiles a host state into its ruleset. No object of the state
// makes it fail: a port that cannot have rules, because of itself or of
// a group it carries, is left out and listed in Ruleset.Rejected with the
// reason, and the rest of the host is compiled as usual. The error is for
// a state that is not there at all.
func (c *Compiler) Compile(s *HostState) (*Ruleset, error) {
	if s == nil {
		return nil, fmt.Errorf("compile: no host state")
	}
	c.gen++
	c.stats = Stats{Ports: len(s.Ports)}
	rs := c.newCompilation(s).run()
	c.evict()
	return rs, nil
}

// newCompilation sets up one compile of s: its groups and address groups
// by id and the rules every port chain ends with.
func (c *Compiler) newCompilation(s *HostState) *compilation {
	k := &compilation{
		c: c, s: s, opt: s.Options,
		groups:    make(map[string]*SecurityGroup, len(s.SecurityGroups)),
		ags:       make(map[string]*AddressGroup, len(s.AddressGroups)),
		dupGroups: map[string]bool{}, dupAGs: map[string]bool{},
	}
	k.fixed = fixedFor(s.Options)
	for i := range s.SecurityGroups {
		g := &s.SecurityGroups[i]
		if _, dup := k.groups[g.ID]; dup {
			k.dupGroups[g.ID] = true // the ports carrying it are rejected
		}
		k.groups[g.ID] = g
	}
	for i := range s.AddressGroups {
		ag := &s.AddressGroups[i]
		if _, dup := k.ags[ag.ID]; dup && !k.dupAGs[ag.ID] {
			k.dupAGs[ag.ID] = true
			k.warnings = append(k.warnings, fmt.Sprintf("address group %s listed twice: its rules match no address", quoteShort(ag.ID)))
		}
		k.ags[ag.ID] = ag
	}
	return k
}

// evict drops cache entries the last compile did not use.
func (c *Compiler) evict() {
	maps.DeleteFunc(c.groups, func(_ string, e *groupEntry) bool { return e.gen != c.gen })
	maps.DeleteFunc(c.combos, func(_ string, e *comboEntry) bool { return e.gen != c.gen })
	maps.DeleteFunc(c.ports, func(_ string, e *portEntry) bool { return e.gen != c.gen })
	maps.DeleteFunc(c.addrs, func(_ addrKey, e *addrEntry) bool { return e.gen != c.gen })
}

func (k *compilation) run() *Ruleset {
	ports := k.c.sortedPorts(k.s.Ports)
	// reasons[i] is why ports[i] is rejected, "" while it is not.
	reasons := make([]string, len(ports))
	entries := make([]*portEntry, len(ports))

	// Each port by itself: its id, MAC and addresses, and the groups its
	// chains are made of.
	for i := 0; i < len(ports); {
		j := i + 1
		for j < len(ports) && ports[j].ID == ports[i].ID {
			j++
		}
		if j > i+1 {
			for x := i; x < j; x++ {
				reasons[x] = "listed twice in the host state"
			}
		}
		i = j
	}
	for i, p := range ports {
		if reasons[i] != "" {
			continue
		}
		e, err := k.port(p)
		if err != nil {
			reasons[i] = err.Error()
			continue
		}
		entries[i] = e
		if e.static.kind == filtered {
			if err := k.portCombo(p, e); err != nil {
				reasons[i] = err.Error()
			}
		}
	}
	// Then names the ports would share with each other.
	if k.opt.EnableIPSet {
		k.rejectSetClashes(ports, entries, reasons)
	}
	k.rejectNameClashes(ports, entries, reasons)

	// Zones, allocated in port-id order as Neutron does, and chains.
	present := make(map[string]bool, len(ports))
	for _, p := range ports {
		if kindOf(p) != trusted {
			present[p.ID] = true
		}
	}
	isPresent := func(id string) bool { return present[id] }
	zones := newZoneAllocator(k.s.Zones)
	rs := &Ruleset{}
	outs := make([]*portOut, len(ports))
	for i, p := range ports {
		if reasons[i] != "" || entries[i].static.kind != filtered {
			continue
		}
		zone, err := zones.zone(p.ID, isPresent)
		if err != nil {
			reasons[i] = err.Error()
			continue
		}
		outs[i] = k.portChains(p, entries[i], zone)
		rs.PortZones = append(rs.PortZones, PortZone{PortID: p.ID, Zone: zone})
	}
	rs.ZoneAssignments = zones.assigned

	// The rest of the compile sees the accepted ports only.
	accepted, acceptedEntries, acceptedOuts := ports, entries, outs
	if slices.ContainsFunc(reasons, func(r string) bool { return r != "" }) {
		accepted, acceptedEntries, acceptedOuts = nil, nil, nil
		for i, p := range ports {
			if reasons[i] != "" {
				if n := len(rs.Rejected); n == 0 || rs.Rejected[n-1].PortID != p.ID { // once if listed twice
					rs.Rejected = append(rs.Rejected, PortError{PortID: p.ID, Reason: reasons[i]})
				}
				continue
			}
			accepted = append(accepted, p)
			acceptedEntries = append(acceptedEntries, entries[i])
			acceptedOuts = append(acceptedOuts, outs[i])
		}
	}
	statics := make([]*portStatic, len(accepted))
	for i, e := range acceptedEntries {
		statics[i] = e.static
	}
	var drops []line
	if len(rs.Rejected) > 0 {
		drops = k.rejectedDrops(ports, reasons, statics)
	}
	dispatch := k.dispatchChains(statics, acceptedOuts, drops)
	rs.IPv4 = k.tables(v4, dispatch, acceptedOuts)
	rs.IPv6 = k.tables(v6, dispatch, acceptedOuts)
	if k.opt.EnableIPSet {
		rs.IPSets = k.ipsets(accepted, acceptedEntries)
	}
	rs.Warnings = k.collectWarnings()
	return rs
}

// collectWarnings lists the address lists this compile used that hold
// addresses which do not parse, and the duplicates newCompilation found.
func (k *compilation) collectWarnings() []string {
	out := slices.Clone(k.warnings)
	for key, e := range k.c.addrs {
		if e.gen != k.c.gen || len(e.l.bad) == 0 {
			continue
		}
		what := "security group"
		if key.addressGroup {
			what = "address group"
		}
		out = append(out, fmt.Sprintf("%s %s: left out addresses that do not parse: %s",
			what, key.id, strings.Join(e.l.bad, ", ")))
	}
	slices.Sort(out)
	return out
}

// rejectNameClashes rejects ports that would share names with another
// port: device names (tap, qbr, qvb, qvo: "tap" + id[:11]) for any ports,
// chain names (id[:10]) for filtered ports. Two such ports would share
// each other's rules or wiring; one of them keeps the names, see
// keepsNames. Ports are sorted by id, so clashing ports are neighbours.
func (k *compilation) rejectNameClashes(ports []*Port, entries []*portEntry, reasons []string) {
	clashes := func(what string, name func(i int) string) {
		for i := 0; i < len(ports); {
			if reasons[i] != "" || name(i) == "" {
				i++
				continue
			}
			block := []int{i}
			j := i + 1
			for ; j < len(ports); j++ {
				if reasons[j] != "" || name(j) == "" {
					continue
				}
				if name(j) != name(i) {
					break
				}
				block = append(block, j)
			}
			if len(block) > 1 {
				keep := block[0]
				for _, x := range block[1:] {
					if k.keepsNames(ports[x], ports[keep]) {
						keep = x
					}
				}
				for _, x := range block {
					if x != keep {
						reasons[x] = fmt.Sprintf("its %s %s would also be those of port %s, which keeps them",
							what, name(x), ports[keep].ID)
					}
				}
			}
			i = j
		}
	}
	clashes("device names", func(i int) string { return entries[i].static.tap })
	clashes("chains", func(i int) string { return entries[i].static.chainI })
}

// keepsNames reports whether port a rather than b keeps the names both
// would have: a port the host already holds wins; otherwise the port
// created first (a known time before an unknown one); then the lower id.
// So a running port is never disturbed by one that arrives later.
func (k *compilation) keepsNames(a, b *Port) bool {
	if ia, ib := k.s.Installed[a.ID], k.s.Installed[b.ID]; ia != ib {
		return ia
	}
	if za, zb := a.CreatedAt.IsZero(), b.CreatedAt.IsZero(); za != zb {
		return zb
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// setRef is an ipset a port's rules use: a remote group's or an address
// group's addresses of one family.
type setRef struct {
	key addrKey
	v6  bool
}

func (r setRef) name() string { return hybrid.IPSetName(ethertype(r.v6), r.key.id) }

func (r setRef) String() string {
	what := "remote group"
	if r.key.addressGroup {
		what = "address group"
	}
	return what + " " + r.key.id
}

// rejectSetClashes finds ipset names that two different remote groups or
// address groups would share (ids alike in their first 24 characters) and
// rejects the filtered ports whose rules would match such a set: sharing
// it would merge the two groups' members. The set is not created at all.
func (k *compilation) rejectSetClashes(ports []*Port, entries []*portEntry, reasons []string) {
	refs := map[string][]setRef{}
	k.eachSet(ports, entries, reasons, false, func(_ int, r setRef) {
		name := r.name()
		if !slices.Contains(refs[name], r) {
			refs[name] = append(refs[name], r)
		}
	})
	for name, rs := range refs {
		if len(rs) > 1 {
			if k.setClash == nil {
				k.setClash = map[string]bool{}
			}
			k.setClash[name] = true
			slices.SortFunc(rs, func(a, b setRef) int { return strings.Compare(a.String(), b.String()) })
		}
	}
	if len(k.setClash) == 0 {
		return
	}
	k.eachSet(ports, entries, reasons, true, func(i int, r setRef) {
		if reasons[i] != "" || entries[i].static.kind != filtered || !k.setClash[r.name()] {
			return
		}
		if r.key.addressGroup && k.opt.NeutronCompat {
			return // Neutron's rules do not use address group sets
		}
		var others []string
		for _, o := range refs[r.name()] {
			if o != r {
				others = append(others, o.String())
			}
		}
		reasons[i] = fmt.Sprintf("its rules name %s, whose ipset %s would also hold the addresses of %s",
			r, r.name(), strings.Join(others, ", "))
	})
}

// eachSet calls fn for every ipset the groups of the ports not rejected
// (reasons nil: none is) name: filtered ports and port-security-disabled
// ones (Neutron creates sets for the latter's groups too), not trusted
// ones. With perPort it calls fn for every port; else once per group, for
// the first port that carries it (ports share combinations and groups).
func (k *compilation) eachSet(ports []*Port, entries []*portEntry, reasons []string, perPort bool, fn func(i int, r setRef)) {
	var seenCombo map[*comboEntry]bool
	var seenGroup map[string]bool
	if !perPort {
		seenCombo, seenGroup = map[*comboEntry]bool{}, map[string]bool{}
	}
	for i, p := range ports {
		if reasons != nil && reasons[i] != "" || entries[i].static.kind == trusted {
			continue
		}
		if e := entries[i]; !perPort && e.static.kind == filtered {
			if seenCombo[e.combo] {
				continue
			}
			seenCombo[e.combo] = true
		}
		for _, id := range p.SecurityGroups {
			if !perPort {
				if seenGroup[id] {
					continue
				}
				seenGroup[id] = true
			}
			ge, err := k.group(id)
			if err != nil || ge == nil {
				continue // a broken group: its ports are rejected, it names no set
			}
			for _, r := range ge.r.remoteGroups {
				fn(i, setRef{addrKey{id: r.id}, r.v6})
			}
			for _, r := range ge.r.addressGroups {
				fn(i, setRef{addrKey{addressGroup: true, id: r.id}, r.v6})
			}
		}
	}
}

// rejectedDrops are the FORWARD rules that drop the traffic of rejected
// ports whose tap name is their own (no accepted port's, and not made of
// an id that cannot be a device name): if anything puts such a tap into a
// bridge, its frames still pass no rule that accepts them.
func (k *compilation) rejectedDrops(ports []*Port, reasons []string, accepted []*portStatic) []line {
	taken := make(map[string]bool, len(accepted))
	for _, ps := range accepted {
		taken[ps.tap] = true
	}
	var out []line
	cm := commentIf(hybrid.CommentRejected, k.opt.CommentRules)
	o := shared(hybrid.OriginRejectedPort)
	for i, p := range ports {
		if reasons[i] == "" || checkID(p.ID) != nil {
			continue
		}
		tap := hybrid.TapName(p.ID)
		if taken[tap] {
			continue
		}
		taken[tap] = true
		for _, m := range []hybrid.Match{{PhysOut: tap, PhysBridged: true}, {PhysIn: tap, PhysBridged: true}} {
			out = append(out, newLine(&hybrid.Rule{Match: m, Comment: cm, Action: hybrid.Action{Kind: hybrid.Drop}, Origin: o}))
		}
	}
	return out
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

// port returns the port's cache entry with its static part up to date, or
// why the port cannot have rules (kept like the static part, so that a
// bad port costs nothing while it stays as it is).
func (k *compilation) port(p *Port) (*portEntry, error) {
	e := k.c.ports[p.ID]
	if e == nil {
		e = &portEntry{}
		k.c.ports[p.ID] = e
	}
	e.gen = k.c.gen
	if (e.static == nil && e.err == nil) || e.comments != k.opt.CommentRules || !samePort(e.src, p) {
		// The static part keeps its copy of the port, to build its rules'
		// specs again when asked.
		src := clonePort(p)
		st, err := buildPortStatic(&src, k.fixed, false)
		e.comments, e.static, e.err, e.out = k.opt.CommentRules, st, err, nil
		if st != nil {
			e.src = &st.src // the static part's copy
		} else {
			kept := src
			e.src = &kept
		}
		e.comboKey = strings.Join(p.SecurityGroups, "\x00")
		k.c.stats.PortsRebuilt++
	}
	return e, e.err
}

func samePort(a, b *Port) bool {
	return a.ID == b.ID && a.MAC == b.MAC && a.DeviceOwner == b.DeviceOwner && a.Unreadable == b.Unreadable &&
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

// portCombo brings the combination of a filtered port's groups up to
// date; the error says which of its groups cannot be rendered.
func (k *compilation) portCombo(p *Port, e *portEntry) error {
	combo := e.combo
	if combo == nil || combo.gen != k.c.gen || combo.key != e.comboKey {
		var err error
		if combo, err = k.combo(e.comboKey, p.SecurityGroups); err != nil {
			e.combo = nil
			return err
		}
	}
	e.combo = combo
	return nil
}

// portChains returns a filtered port's chains, re-assembling them only if
// an input changed. portCombo has set e.combo.
func (k *compilation) portChains(p *Port, e *portEntry, zone int) *portOut {
	combo := e.combo
	stateless := k.stateless(e.static, combo)
	deps := k.comboDeps(combo)
	in := assemblyInputs{combo: combo.version, deps: deps, zone: zone, stateless: stateless, opt: k.opt}
	if e.out != nil && e.in == in {
		return e.out
	}
	out := k.assemble(e.static, combo, zone, stateless, e.out, e.in)
	e.out, e.in = out, in
	k.c.stats.PortsRecompiled++
	return out
}

// group returns a security group's rendered rules, nil for a group the
// state does not hold.
// The error says why the group cannot be rendered; like the rendered
// rules it is kept while the group stays as it is.
func (k *compilation) group(id string) (*groupEntry, error) {
	if k.dupGroups[id] {
		return nil, fmt.Errorf("security group %s is listed twice", quoteShort(id))
	}
	e := k.c.groups[id]
	if e != nil && e.gen == k.c.gen {
		return e, e.err
	}
	g := k.groups[id]
	if g == nil {
		return nil, nil
	}
	if e == nil || e.opt != k.opt || !sameGroup(&e.src, g) {
		r, err := renderGroup(g, k.opt)
		k.c.version++
		e = &groupEntry{version: k.c.version, src: cloneGroup(g), opt: k.opt, r: r, err: err}
		k.c.groups[id] = e
		k.c.stats.GroupsRendered++
	}
	e.gen = k.c.gen
	return e, e.err
}

func sameGroup(a, b *SecurityGroup) bool {
	return a.ID == b.ID && a.Stateless == b.Stateless && slices.EqualFunc(a.Rules, b.Rules, sameRule)
}

func sameRule(a, b Rule) bool {
	return a.ID == b.ID && a.Direction == b.Direction && a.Ethertype == b.Ethertype && a.Protocol == b.Protocol &&
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
	rl.ids = map[string]int{}
	for _, g := range groups {
		if g == nil {
			continue
		}
		for _, gl := range g.lines[fam][dir] {
			rl.add(gl.line)
		}
	}
	rl.out = linesOf(rl.lines, true)
	return rl
}

// add appends a line unless the list holds its identity already; then the
// list's line gets the security group rules of the duplicate as sources.
func (rl *ruleList) add(l line) {
	id := l.id()
	if i, dup := rl.ids[id]; dup {
		rl.lines[i] = rl.lines[i].withSources(l)
		return
	}
	rl.ids[id] = len(rl.lines)
	rl.lines = append(rl.lines, l)
}

// addresses returns a remote group's members or an address group's
// addresses.
// Addresses that do not parse are left out (and reported as warnings); an
// address group listed twice has none.
func (k *compilation) addresses(key addrKey) *addressList {
	e := k.c.addrs[key]
	if e != nil && e.gen == k.c.gen {
		return e.l
	}
	var raw []string
	if key.addressGroup {
		if ag := k.ags[key.id]; ag != nil && !k.dupAGs[key.id] {
			raw = ag.Addresses
		}
	} else {
		raw = k.s.GroupMembers[key.id]
	}
	fp := k.c.seeds.listFingerprint(raw)
	if e == nil || e.fp != fp {
		e = &addrEntry{fp: fp, l: parseAddresses(raw)}
		k.c.addrs[key] = e
		k.c.stats.AddressListsBuilt++
	}
	e.gen = k.c.gen
	return e.l
}

// comboDeps fingerprints the address lists a combination's expansions read.
func (k *compilation) comboDeps(e *comboEntry) fingerprint {
	if e.depsGen == k.c.gen {
		return e.deps
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
				k.addresses(key)
				// The key is mixed in so that two lists swapping contents
				// differ.
				deps = k.c.seeds.mix(deps, key.id, k.c.addrs[key].fp)
			}
		}
	}
	e.deps, e.depsGen = deps, k.c.gen
	return deps
}

// stateless is Neutron's _get_port_sg_rules/_are_sg_rules_stateful: the
// port follows the stateful flag of the first rule of its first group that
// applies to it; no such rule, or a network:/neutron: owner, means
// stateful.
func (k *compilation) stateless(ps *portStatic, combo *comboEntry) bool {
	if ps.forceStateful || len(combo.groups) == 0 || combo.groups[0] == nil {
		return false
	}
	g := combo.groups[0]
	for _, pr := range g.probe {
		if pr.id == "" || k.opt.EnableIPSet {
			return g.stateless
		}
		l := k.addresses(addrKey{id: pr.id})
		fam := v4
		if pr.v6 {
			fam = v6
		}
		for _, a := range l.byFamily[fam] {
			if !isOwn(ps.fixedText, a) {
				return g.stateless
			}
		}
	}
	return false
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
