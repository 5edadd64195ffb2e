package firewall

import (
	"net/netip"

	"github.com/moat-sg/moat/internal/hybrid"
)

// The compiler builds every rule as data (hybrid.Rule: match, action,
// comment, origin) and renders its iptables text once, when the piece it
// belongs to is built and cached; the output carries both (Chain.Rules and
// Chain.Specs).

// line is one rule of a chain: its text as iptables-save prints it, the
// rule as data and, when it differs from the text, the text Neutron would
// have written, which is what decides whether two rules are duplicates
// (Neutron de-duplicates what it writes, the kernel shows what it stored).
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

// newLine renders a rule.
func newLine(r *hybrid.Rule) line { return line{text: r.Iptables(), spec: r} }

// ruleArena hands out rules from one allocation: the rules of one port
// (or one list of expansions) are built together and live as long.
type ruleArena struct{ chunk []hybrid.Rule }

func newRuleArena(n int) *ruleArena { return &ruleArena{chunk: make([]hybrid.Rule, 0, n)} }

// line renders r, kept in the arena.
func (a *ruleArena) line(r hybrid.Rule) line {
	if len(a.chunk) == cap(a.chunk) {
		a.chunk = make([]hybrid.Rule, 0, max(8, cap(a.chunk)))
	}
	a.chunk = append(a.chunk, r)
	return newLine(&a.chunk[len(a.chunk)-1])
}

// withSources is l with the security group rules of o added to its
// origin's: o is a duplicate of l the chain does not hold.
func (l line) withSources(o line) line {
	if o.spec == nil || len(o.spec.Origin.Rules) == 0 {
		return l
	}
	s := *l.spec
	s.Origin = s.Origin.WithRules(o.spec.Origin.Rules)
	l.spec = &s
	return l
}

// ruleLines are rules as the output holds them: texts and, index for
// index, specs.
type ruleLines struct {
	texts []string
	specs []*hybrid.Rule
}

func makeRuleLines(n int) ruleLines {
	return ruleLines{texts: make([]string, 0, n), specs: make([]*hybrid.Rule, 0, n)}
}

func (r *ruleLines) add(ls ...line) {
	for _, l := range ls {
		r.add1(l)
	}
}

func (r *ruleLines) add1(l line) {
	r.texts = append(r.texts, l.text)
	r.specs = append(r.specs, l.spec)
}

func (r *ruleLines) addAll(o ruleLines) {
	r.texts = append(r.texts, o.texts...)
	r.specs = append(r.specs, o.specs...)
}

func linesOf(ls []line) ruleLines {
	r := makeRuleLines(len(ls))
	r.add(ls...)
	return r
}

func toChain(name string, r ruleLines) Chain {
	return Chain{Name: name, Rules: r.texts, Specs: r.specs}
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
