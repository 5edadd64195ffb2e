package iptables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// CanaryChain is an extra chain moat keeps in each family's filter table. It
// is outside Neutron's layout and referenced by nothing, so it has no effect
// on packets; its only purpose is to disappear when someone flushes or
// replaces the table behind moat's back. It holds one rule (CanaryRule)
// rather than none so that `iptables -F`, which empties every chain but
// deletes none, is noticed too: that command also removes moat's jumps from
// the built-in chains, which opens every port.
const CanaryChain = "moat-canary"

// CanaryRule is the canary chain's only rule, as iptables-save prints it.
const CanaryRule = `-m comment --comment "moat drift canary" -j RETURN`

// Owned reports whether moat owns the chain of that name entirely: the
// chains of Neutron's hybrid layout and the canary. Chains of other tools
// (libvirt, docker, firewalld, other Neutron agents) are never touched.
func Owned(chain string) bool {
	return hybrid.OwnedChain(chain) || chain == CanaryChain
}

// tableState is one table as moat sees it: the built-in chains with all of
// their rules (other tools' included, in kernel order), and the chains moat
// owns, sorted by name. Chains of other tools are not kept.
type tableState struct {
	builtins []firewall.Chain
	owned    []firewall.Chain
}

func (t *tableState) builtin(name string) (firewall.Chain, bool) {
	for _, c := range t.builtins {
		if c.Name == name {
			return c, true
		}
	}
	return firewall.Chain{}, false
}

// parseSave reads iptables-save output (hybrid.ReadSave) and returns the
// tables named in want (others, such as nat or mangle, are skipped). A
// wanted table the output does not hold comes back empty:
// iptables-nft-save prints nothing for a table that was never created.
// Rule counters ("[5:300] -A ...", from iptables-save -c) are dropped.
func parseSave(out string, want ...string) (map[string]*tableState, error) {
	tables := make(map[string]*tableState, len(want))
	for _, name := range want {
		tables[name] = &tableState{}
	}
	// ref is where a chain of the table being read is kept: builtins[i]
	// or owned[i], or nowhere (i < 0), by hybrid.SaveLine.ChainIndex.
	type ref struct {
		builtin bool
		i       int
	}
	var (
		cur   *tableState // nil outside a wanted table
		index []ref
	)
	err := hybrid.ReadSave(out, func(l *hybrid.SaveLine) error {
		switch l.Kind {
		case hybrid.SaveComment:
			// iptables-nft-save prints this instead of a table it cannot
			// express in iptables syntax (native nft rules in it).
			if rest, ok := strings.CutPrefix(l.Text, "# Table `"); ok && strings.Contains(l.Text, "incompatible") {
				name, _, _ := strings.Cut(rest, "'")
				if _, ok := tables[name]; ok {
					return fmt.Errorf("line %d: %s", l.Num, l.Text)
				}
			}
		case hybrid.SaveTable:
			cur, index = tables[l.Table], index[:0]
		case hybrid.SaveChain:
			if cur == nil {
				break
			}
			// Built-in chains (they have a policy) with all their rules;
			// of the others only moat's.
			r := ref{i: -1}
			switch {
			case l.Policy != "":
				r = ref{true, len(cur.builtins)}
				cur.builtins = append(cur.builtins, firewall.Chain{Name: l.Chain})
			case Owned(l.Chain):
				r = ref{false, len(cur.owned)}
				cur.owned = append(cur.owned, firewall.Chain{Name: l.Chain})
			}
			index = append(index, r)
		case hybrid.SaveRule:
			if cur == nil {
				break
			}
			if l.Implicit {
				index = append(index, ref{i: -1}) // not declared: iptables-save declares all
			}
			switch r := index[l.ChainIndex]; {
			case r.i < 0:
			case r.builtin:
				cur.builtins[r.i].Rules = append(cur.builtins[r.i].Rules, l.Rule)
			default:
				cur.owned[r.i].Rules = append(cur.owned[r.i].Rules, l.Rule)
			}
		case hybrid.SaveCommit:
			cur = nil
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("iptables-save output: %w", err)
	}
	for _, t := range tables {
		// iptables-legacy-save sorts user chains by name; iptables-nft-save
		// lists them in creation order. Diffing needs one order.
		slices.SortFunc(t.owned, func(a, b firewall.Chain) int { return strings.Compare(a.Name, b.Name) })
	}
	return tables, nil
}

// ownedRule reports whether a rule in a built-in chain is moat's: it jumps to
// a chain moat owns.
func ownedRule(rule string) bool { return Owned(hybrid.RuleTarget(rule)) }

// sameRule compares a rule as moat wrote it with one as iptables-save printed
// it. They are equal byte for byte on hosts whose /etc/protocols agrees with
// Debian 12's; where it does not (or is missing), iptables-save prints
// protocol numbers or other names, so -p arguments are compared as numbers.
func sameRule(a, b string) bool {
	return a == b || hybrid.RestoreRule(a) == hybrid.RestoreRule(b)
}

// sameRules compares two rule lists with sameRule. Lists that are the same
// slice (the compiler hands out unchanged chains that way, and the syncer
// remembers what it wrote) compare in O(1).
func sameRules(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if !sameRule(a[i], b[i]) {
			return false
		}
	}
	return true
}
