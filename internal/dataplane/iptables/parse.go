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

// parseSave reads iptables-save output and returns the tables named in want
// (others, such as nat or mangle, are skipped). A wanted table the output
// does not hold comes back empty: iptables-nft-save prints nothing for a
// table that was never created. Comment lines (the "# Generated" header,
// iptables-nft-save's "# Warning: iptables-legacy tables present" notice) are
// ignored; rule counters ("[5:300] -A ...", from iptables-save -c) are
// dropped.
func parseSave(out string, want ...string) (map[string]*tableState, error) {
	tables := make(map[string]*tableState, len(want))
	for _, name := range want {
		tables[name] = &tableState{}
	}
	var (
		cur      *tableState // nil outside a wanted table
		curName  string
		inTable  bool
		owned    map[string]int // index into cur.owned
		builtin  map[string]int // index into cur.builtins
		declared map[string]bool
	)
	lineNo := 0
	for len(out) > 0 {
		var line string
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			line, out = out, ""
		}
		lineNo++
		if line == "" {
			continue
		}
		switch line[0] {
		case '#':
			// iptables-nft-save prints this instead of a table it cannot
			// express in iptables syntax (native nft rules in it).
			if strings.HasPrefix(line, "# Table `") && strings.Contains(line, "incompatible") {
				name, _, _ := strings.Cut(strings.TrimPrefix(line, "# Table `"), "'")
				if _, ok := tables[name]; ok {
					return nil, fmt.Errorf("iptables-save line %d: %s", lineNo, line)
				}
			}
			continue
		case '*':
			if inTable {
				return nil, fmt.Errorf("iptables-save line %d: table %s starts before table %s's COMMIT", lineNo, line[1:], curName)
			}
			inTable, curName = true, line[1:]
			cur = tables[curName]
			owned, builtin, declared = map[string]int{}, map[string]int{}, map[string]bool{}
			continue
		}
		if !inTable {
			return nil, fmt.Errorf("iptables-save line %d: %q outside a table", lineNo, line)
		}
		if line == "COMMIT" {
			inTable, cur = false, nil
			continue
		}
		if cur == nil {
			continue // a table moat does not manage
		}
		switch {
		case line[0] == ':':
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("iptables-save line %d: bad chain line %q", lineNo, line)
			}
			name, policy := f[0], f[1]
			// iptables-save declares each chain once; a second
			// declaration would make two chains of one name (or one
			// both built-in and moat's) and the diff ambiguous.
			if declared[name] {
				return nil, fmt.Errorf("iptables-save line %d: chain %s declared twice in table %s", lineNo, name, curName)
			}
			declared[name] = true
			switch {
			case policy != "-":
				builtin[name] = len(cur.builtins)
				cur.builtins = append(cur.builtins, firewall.Chain{Name: name})
			case Owned(name):
				owned[name] = len(cur.owned)
				cur.owned = append(cur.owned, firewall.Chain{Name: name})
			}
		case line[0] == '[' || line[0] == '-':
			rest := line
			if rest[0] == '[' {
				// A counter: "[packets:bytes] -A chain ...".
				i := strings.IndexByte(rest, ']')
				if i < 0 {
					return nil, fmt.Errorf("iptables-save line %d: bad counters in %q", lineNo, line)
				}
				rest = strings.TrimLeft(rest[i+1:], " ")
			}
			rest, ok := strings.CutPrefix(rest, "-A ")
			if !ok {
				return nil, fmt.Errorf("iptables-save line %d: unexpected %q", lineNo, line)
			}
			chain, rule, _ := strings.Cut(rest, " ")
			if i, ok := owned[chain]; ok {
				cur.owned[i].Rules = append(cur.owned[i].Rules, rule)
			} else if i, ok := builtin[chain]; ok {
				cur.builtins[i].Rules = append(cur.builtins[i].Rules, rule)
			}
		default:
			return nil, fmt.Errorf("iptables-save line %d: unexpected %q", lineNo, line)
		}
	}
	if inTable {
		return nil, fmt.Errorf("iptables-save output ends inside table %s (no COMMIT)", curName)
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
