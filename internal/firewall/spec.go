package firewall

import (
	"net/netip"

	"github.com/moat-sg/moat/internal/hybrid"
)

// The compiler builds every rule as data (hybrid.Rule: match, action,
// comment, origin) and renders its iptables text from it. The texts are
// what a compile needs (the output, diffs, the cache); the data only some
// callers ask for (Chain.Specs(): trace, the agent's conntrack cleanup, the
// nftables renderer). So the rules of shared pieces (fixed rules, group
// rules) are kept as data when built, while a port's own rules, which are
// most of a host's, are rendered from a rule on the stack and their data
// built again from the same inputs the first time a caller asks for the
// specs of a chain they are in (see portOut and dispatch). Keeping them
// all as data made the first compile of a host a third slower: every
// rule twice over, in pointer-holding memory the collector scans.

// line is one rule of a chain: its text as iptables-save prints it, the
// rule as data (nil for a port's own rule rendered without it) and, when
// it differs from the text, the text Neutron would have written, which is
// what decides whether two rules are duplicates (Neutron de-duplicates
// what it writes, the kernel shows what it stored).
type line struct {
	text string
	key  string // "" means text
	spec *hybrid.Rule
}

func (l line) id() string {
	if l.key != "" {
		return l.key
	}
	return l.text
}

// newLine renders a rule and keeps it.
func newLine(r *hybrid.Rule) line { return line{text: r.Iptables(), spec: r} }

// ruleArena hands out a port's own rules. With keep it keeps them as data
// in one allocation (they live as long as each other); without, it only
// renders them.
type ruleArena struct {
	chunk []hybrid.Rule
	keep  bool
}

func newRuleArena(n int, keep bool) *ruleArena {
	if !keep {
		return &ruleArena{}
	}
	return &ruleArena{chunk: make([]hybrid.Rule, 0, n), keep: true}
}

// line renders r, kept in the arena when it keeps rules.
func (a *ruleArena) line(r hybrid.Rule) line {
	if !a.keep {
		return line{text: r.Iptables()}
	}
	if len(a.chunk) == cap(a.chunk) {
		a.chunk = make([]hybrid.Rule, 0, max(8, cap(a.chunk)))
	}
	a.chunk = append(a.chunk, r)
	return newLine(&a.chunk[len(a.chunk)-1])
}

// withSources is l with the security group rules of o added to its
// origin's: o is a duplicate of l the chain does not hold. A line without
// data stays as it is (its text does not change).
func (l line) withSources(o line) line {
	if l.spec == nil || o.spec == nil || len(o.spec.Origin.Rules) == 0 {
		return l
	}
	s := *l.spec
	s.Origin = s.Origin.WithRules(o.spec.Origin.Rules)
	l.spec = &s
	return l
}

// ruleLines are rules as the output holds them: texts and, with keep,
// index for index, specs.
type ruleLines struct {
	texts []string
	specs []*hybrid.Rule
	keep  bool
}

func makeRuleLines(n int, keep bool) ruleLines {
	r := ruleLines{texts: make([]string, 0, n), keep: keep}
	if keep {
		r.specs = make([]*hybrid.Rule, 0, n)
	}
	return r
}

func (r *ruleLines) add(ls ...line) {
	for _, l := range ls {
		r.add1(l)
	}
}

func (r *ruleLines) add1(l line) {
	r.texts = append(r.texts, l.text)
	if r.keep {
		r.specs = append(r.specs, l.spec)
	}
}

func (r *ruleLines) addAll(o ruleLines) {
	r.texts = append(r.texts, o.texts...)
	if r.keep {
		r.specs = append(r.specs, o.specs...)
	}
}

func linesOf(ls []line, keep bool) ruleLines {
	r := makeRuleLines(len(ls), keep)
	r.add(ls...)
	return r
}

// specSource builds the specs of chains on demand; i says which chain.
type specSource interface {
	chainSpecs(i int) []*hybrid.Rule
}

// keptSpecs is the specs of a chain built with them.
type keptSpecs []*hybrid.Rule

func (s keptSpecs) chainSpecs(int) []*hybrid.Rule { return s }

// toChain is a chain of rules kept with their specs.
func toChain(name string, r ruleLines) Chain {
	c := Chain{Name: name, Rules: r.texts}
	if r.keep && len(r.specs) > 0 {
		c.specs = chainSpecs{src: keptSpecs(r.specs)}
	}
	return c
}

// lazyChain is a chain whose specs src builds when asked.
func lazyChain(name string, texts []string, src specSource, i int) Chain {
	return Chain{Name: name, Rules: texts, specs: chainSpecs{src: src, i: i}}
}

// Origins of the built-in rules, shared by every rule of a kind.
type originKey struct {
	kind hybrid.OriginKind
	dir  int // in, out, or -1 outside a port chain
	fam  int
}

var builtinOrigins = func() map[originKey]*hybrid.Origin {
	m := map[originKey]*hybrid.Origin{}
	for _, k := range []hybrid.OriginKind{
		hybrid.OriginDefaultDrop, hybrid.OriginToDefaultDrop, hybrid.OriginAntiSpoofing, hybrid.OriginInvalid,
		hybrid.OriginEstablished, hybrid.OriginDHCPClient, hybrid.OriginDHCPReply, hybrid.OriginDHCPProtection,
		hybrid.OriginICMPv6ND, hybrid.OriginICMPv6RA, hybrid.OriginRAProtection, hybrid.OriginICMPv6Egress,
		hybrid.OriginPortSecurityDisabled, hybrid.OriginTrusted, hybrid.OriginSGChainAccept, hybrid.OriginDispatch,
		hybrid.OriginCTZone, hybrid.OriginStateless, hybrid.OriginRejectedPort,
	} {
		m[originKey{k, -1, 0}] = &hybrid.Origin{Kind: k}
		for fam, eth := range []string{IPv4, IPv6} {
			for dir, d := range []string{Ingress, Egress} {
				m[originKey{k, dir, fam}] = &hybrid.Origin{Kind: k, Direction: d, Ethertype: eth}
			}
		}
	}
	return m
}()

// shared is the origin of a rule outside the port chains.
func shared(kind hybrid.OriginKind) *hybrid.Origin { return builtinOrigins[originKey{kind, -1, 0}] }

// inChain is the origin of a built-in rule of a port's chain of one
// direction and family.
func inChain(kind hybrid.OriginKind, dir, fam int) *hybrid.Origin {
	return builtinOrigins[originKey{kind, dir, fam}]
}

// fixedLine renders a rule of its own (one built once).
func fixedLine(r hybrid.Rule) line { return newLine(&r) }

// jump is "-j chain" (with a comment).
func jump(chain, comment string, o *hybrid.Origin) hybrid.Rule {
	return hybrid.Rule{Comment: comment, Action: hybrid.Action{Kind: hybrid.Jump, Chain: chain}, Origin: o}
}

// verdict is "-j ACCEPT" and the like (with a comment).
func verdict(kind hybrid.ActionKind, comment string, o *hybrid.Origin) hybrid.Rule {
	return hybrid.Rule{Comment: comment, Action: hybrid.Action{Kind: kind}, Origin: o}
}

// commentIf is c when comments are on.
func commentIf(c string, on bool) string {
	if on {
		return c
	}
	return ""
}

// hostPrefix is a as a /32 or /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
