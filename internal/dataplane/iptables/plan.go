package iptables

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// tableNames are the tables moat manages, in the order a family's restore
// input holds them. No rule refers to a chain of another table, so the order
// does not matter for correctness, but it does for cost: iptables-nft-restore
// --noflush pays about 1.7 times the user CPU for a large filter section
// that follows a committed raw section (measured with 1.8.9 at 1,000
// ports: 0.77 s against 0.45 s), so the big table goes first.
var tableNames = [2]string{"filter", "raw"}

// desiredTables turns one family of a Ruleset into the states the kernel must
// reach, with the canary added to filter. It checks that the ruleset stays
// inside what moat owns, so that a compiler bug cannot make the syncer
// overwrite another tool's chain or leave a jump it would not recognise as
// its own.
func desiredTables(ts *firewall.Tables) ([2]*tableState, error) {
	var out [2]*tableState
	for i, t := range [2]*firewall.Table{&ts.Filter, &ts.Raw} {
		name := tableNames[i]
		if t.Name != "" && t.Name != name {
			return out, fmt.Errorf("table %q given as the %s table", t.Name, name)
		}
		st := &tableState{builtins: t.Builtins}
		for _, c := range t.Builtins {
			if Owned(c.Name) {
				return out, fmt.Errorf("%s: chain %s listed as built-in", name, c.Name)
			}
			for _, r := range c.Rules {
				if !ownedRule(r) {
					return out, fmt.Errorf("%s: rule %q in built-in chain %s does not jump to a chain moat owns", name, r, c.Name)
				}
			}
		}
		// Copy the chain list: the syncer keeps it as what it wrote, and the
		// caller may reuse its slices for the next ruleset.
		n := len(t.Chains)
		if name == "filter" {
			n++
		}
		st.owned = make([]firewall.Chain, 0, n)
		st.owned = append(st.owned, t.Chains...)
		if name == "filter" {
			st.owned = append(st.owned, firewall.Chain{Name: CanaryChain, Rules: canaryRules})
		}
		cmp := func(a, b firewall.Chain) int { return strings.Compare(a.Name, b.Name) }
		if !slices.IsSortedFunc(st.owned, cmp) {
			slices.SortStableFunc(st.owned, cmp)
		}
		for j, c := range st.owned {
			if !Owned(c.Name) {
				return out, fmt.Errorf("%s: chain %s is not one moat owns (neutron-openvswi-*, neutron-filter-top)", name, c.Name)
			}
			if j > 0 && st.owned[j-1].Name == c.Name {
				return out, fmt.Errorf("%s: chain %s listed twice", name, c.Name)
			}
		}
		out[i] = st
	}
	return out, nil
}

var canaryRules = []string{CanaryRule}

// tablePlan is what one table needs to go from the current state to the
// desired one.
type tablePlan struct {
	table string
	// declare are the chains that get a ":chain - [0:0]" line: those created,
	// rewritten or about to be deleted. In --noflush mode that line creates
	// a missing chain and flushes an existing one, with both iptables-legacy
	// and iptables-nft (tested in kernel_test.go), so it serves all three.
	declare []string
	// create are the chains created, write those flushed and written again.
	create, write []firewall.Chain
	// extend are rules appended to chains created by an earlier stage.
	extend []firewall.Chain
	// patch are -D and -I lines for owned chains changed in a few rules.
	patch []string
	// builtin are -D and -I lines for the built-in chains.
	builtin []string
	// remove are the owned chains to delete (-X), after the rules that refer
	// to them are gone.
	remove []string

	created, rewritten, patched, rules int
	drift                              []string
}

func (p *tablePlan) empty() bool {
	return len(p.declare) == 0 && len(p.extend) == 0 && len(p.patch) == 0 && len(p.builtin) == 0
}

// planTable diffs a table. cur is what the kernel holds (read, or what the
// syncer wrote last); want is the desired state from desiredTables. It
// returns the plan and the state the table is in once the plan is applied.
func planTable(table string, cur, want *tableState) (*tablePlan, *tableState) {
	p := &tablePlan{table: table}
	next := &tableState{owned: want.owned}

	// Owned chains: both lists are sorted by name; merge them.
	i, j := 0, 0
	for i < len(cur.owned) || j < len(want.owned) {
		var c int
		switch {
		case i == len(cur.owned):
			c = 1
		case j == len(want.owned):
			c = -1
		default:
			c = strings.Compare(cur.owned[i].Name, want.owned[j].Name)
		}
		switch {
		case c < 0: // in the kernel only
			name := cur.owned[i].Name
			p.declare = append(p.declare, name)
			p.remove = append(p.remove, name)
			p.drift = append(p.drift, fmt.Sprintf("%s: unexpected chain %s", table, name))
			i++
		case c > 0: // missing
			w := want.owned[j]
			p.declare = append(p.declare, w.Name)
			p.create = append(p.create, w)
			p.created++
			p.rules += len(w.Rules)
			p.drift = append(p.drift, fmt.Sprintf("%s: missing chain %s", table, w.Name))
			j++
		default:
			w, have := want.owned[j], cur.owned[i].Rules
			if !sameRules(have, w.Rules) {
				if lines, inserted, ok := patchChain(w.Name, have, w.Rules); ok {
					p.patch = append(p.patch, lines...)
					p.patched++
					p.rules += inserted
				} else {
					p.declare = append(p.declare, w.Name)
					p.write = append(p.write, w)
					p.rewritten++
					p.rules += len(w.Rules)
				}
				p.drift = append(p.drift, fmt.Sprintf("%s: chain %s differs (%d rules, want %d)", table, w.Name, len(have), len(w.Rules)))
			}
			i++
			j++
		}
	}

	// Built-in chains: those the kernel has, in its order, then any the
	// desired state names that the kernel does not list yet.
	names := make([]string, 0, len(cur.builtins)+len(want.builtins))
	for _, c := range cur.builtins {
		names = append(names, c.Name)
	}
	for _, c := range want.builtins {
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	for _, name := range names {
		have, _ := cur.builtin(name)
		w, _ := want.builtin(name)
		lines, rules := planBuiltin(name, have.Rules, w.Rules)
		if len(lines) > 0 {
			p.builtin = append(p.builtin, lines...)
			p.drift = append(p.drift, fmt.Sprintf("%s: built-in chain %s does not start with moat's jumps %q", table, name, w.Rules))
		}
		next.builtins = append(next.builtins, firewall.Chain{Name: name, Rules: rules})
	}
	return p, next
}

// patchChain returns the -D and -I lines that turn an owned chain's rules
// have into want when they differ in a few consecutive rules: a rule added
// to a group becomes one -I per port chain, a port added or removed a few
// -I or -D lines in the dispatch chains, which hold two rules per port.
// Rewriting such chains instead would cost a line per rule of the chain:
// at 5,000 ports, 40,000 lines to add one port. ok is false where a rewrite
// is as cheap or the edit would be ambiguous.
//
// Rules are deleted by their text (a stale view makes the transaction fail
// rather than delete another rule) and inserted by position. Under drift (a
// rule someone added to or removed from the chain since the syncer last
// read it) a position can be off: the transaction then fails (index too
// big) or the rule lands one place off until the next Check repairs the
// chain.
func patchChain(chain string, have, want []string) (lines []string, inserted int, ok bool) {
	p := 0
	for p < len(have) && p < len(want) && sameRule(have[p], want[p]) {
		p++
	}
	s := 0
	for s < len(have)-p && s < len(want)-p && sameRule(have[len(have)-1-s], want[len(want)-1-s]) {
		s++
	}
	del, ins := have[p:len(have)-s], want[p:len(want)-s]
	edits := len(del) + len(ins)
	if len(want) == 0 || edits > 2 && 2*edits > len(want) {
		return nil, 0, false
	}
	// -D deletes the first rule with that text: one in the kept prefix
	// would be hit instead. An empty rule (no match, no target) cannot be
	// spelled after -D or -I.
	for _, d := range del {
		if d == "" || slices.ContainsFunc(have[:p], func(r string) bool { return sameRule(r, d) }) {
			return nil, 0, false
		}
	}
	if slices.Contains(ins, "") {
		return nil, 0, false
	}
	for _, d := range del {
		lines = append(lines, "-D "+chain+" "+hybrid.RestoreRule(d))
	}
	for k, r := range ins {
		lines = append(lines, "-I "+chain+" "+strconv.Itoa(p+1+k)+" "+hybrid.RestoreRule(r))
	}
	return lines, len(ins), true
}

// planBuiltin makes moat's rules (want, all jumps to owned chains) the first
// rules of a built-in chain, in order, and removes any other rule of moat's
// from it, leaving every other rule where it is relative to the others. It
// returns the -D/-I lines and the chain's rules afterwards.
//
// Rules are deleted by their text, never by number: a number taken from a
// stale view could hit another tool's rule, while a text that no longer
// matches makes the transaction fail, and the syncer then re-reads the
// kernel.
func planBuiltin(chain string, have, want []string) ([]string, []string) {
	// Keep the longest prefix that is already right.
	k := 0
	for k < len(want) && k < len(have) && sameRule(have[k], want[k]) {
		k++
	}
	var stale []string
	for _, r := range have[k:] {
		if ownedRule(r) {
			stale = append(stale, r)
		}
	}
	if k == len(want) && len(stale) == 0 {
		return nil, have
	}
	// -D deletes the first rule with that text; if a stale rule repeats one
	// of the kept prefix, that would be the wrong one. Start from scratch.
	for _, s := range stale {
		if slices.ContainsFunc(have[:k], func(r string) bool { return sameRule(r, s) }) {
			k = 0
			stale = stale[:0]
			for _, r := range have {
				if ownedRule(r) {
					stale = append(stale, r)
				}
			}
			break
		}
	}
	var lines []string
	for _, s := range stale {
		lines = append(lines, "-D "+chain+" "+hybrid.RestoreRule(s))
	}
	for n := k; n < len(want); n++ {
		lines = append(lines, "-I "+chain+" "+strconv.Itoa(n+1)+" "+hybrid.RestoreRule(want[n]))
	}
	after := make([]string, 0, len(have)-len(stale)+len(want)-k)
	after = append(after, have[:k]...)
	after = append(after, want[k:]...)
	for _, r := range have[k:] {
		if !ownedRule(r) {
			after = append(after, r)
		}
	}
	return lines, after
}

// appendTo appends the plan as one iptables-restore --noflush table
// section: declarations first (so every chain a rule jumps to exists), then
// the chains' rules, then the built-in chains' jumps, and deletions last,
// once nothing refers to the chains. It returns the extended buffer and the
// number of lines added.
func (p *tablePlan) appendTo(b []byte) ([]byte, int) {
	size := len("*") + len(p.table) + len("\nCOMMIT\n")
	lines := 2
	for _, name := range p.declare {
		size += len(name) + len(": - [0:0]\n")
	}
	for _, cs := range [][]firewall.Chain{p.create, p.extend, p.write} {
		for _, c := range cs {
			for _, r := range c.Rules {
				size += len("-A ") + len(c.Name) + 1 + len(r) + 1
			}
			lines += len(c.Rules)
		}
	}
	for _, ls := range [][]string{p.patch, p.builtin} {
		for _, l := range ls {
			size += len(l) + 1
		}
	}
	for _, name := range p.remove {
		size += len("-X ") + len(name) + 1
	}
	lines += len(p.declare) + len(p.patch) + len(p.builtin) + len(p.remove)
	b = slices.Grow(b, size)

	b = append(b, '*')
	b = append(b, p.table...)
	b = append(b, '\n')
	for _, name := range p.declare {
		b = append(b, ':')
		b = append(b, name...)
		b = append(b, " - [0:0]\n"...)
	}
	for _, cs := range [][]firewall.Chain{p.create, p.extend, p.write} {
		for _, c := range cs {
			for _, r := range c.Rules {
				b = append(b, "-A "...)
				b = append(b, c.Name...)
				if r != "" {
					b = append(b, ' ')
					b = hybrid.AppendRestoreRule(b, r)
				}
				b = append(b, '\n')
			}
		}
	}
	for _, ls := range [][]string{p.patch, p.builtin} {
		for _, l := range ls {
			b = append(b, l...)
			b = append(b, '\n')
		}
	}
	for _, name := range p.remove {
		b = append(b, "-X "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	b = append(b, "COMMIT\n"...)
	return b, lines
}

// stageLimits bound one batch of new chains loaded ahead of the main
// transaction.
type stageLimits struct {
	// chains and rules: iptables-nft-restore --noflush is superlinear in
	// the size of one transaction.
	chains, rules int
	// targets: distinct new chains that a batch's rules jump to without
	// declaring them. iptables-nft 1.8.9 looks up each such name as a
	// possible target extension (a failed stat of libxt_NAME.so and
	// libipt_NAME.so) and keeps the failures in a list it searches
	// linearly: 2,500 rules jumping to 2,500 distinct chains cost 0.04 s of
	// user CPU, 10,000 to 10,000 cost 0.52 s, the same 10,000 in ten
	// processes 0.05 s. Chains a restore declares (":name") are known
	// chains and cost nothing, which is why a bare restore does not pay it.
	targets int
}

var defaultStageLimits = stageLimits{chains: 500, rules: 10000, targets: 1000}

// stage moves the creation of new chains out of the plan into batches, each
// its own table section, to be restored before the plan. It exists for
// iptables-nft: iptables-nft-restore --noflush spends time superlinear in
// the size of one transaction (1.8.9, one family at 5,000 ports: 6.4 s of
// user CPU in one transaction, 3.3 s in 50; without --noflush 1.2 s), while
// the same chains in batches of a few hundred cost little more than a
// restore without --noflush. New chains are not referenced by anything
// until the main transaction (built-in jumps, patched or rewritten dispatch
// chains) refers to them, so packets see the old rules until then and the
// new ones after: loading in stages does not make the change any less
// atomic. A failed stage leaves unreferenced chains, possibly partly
// filled, that the next Apply, reading the kernel, adopts or deletes.
//
// Batches follow the jumps between the new chains: a chain comes in a
// batch after every new chain it jumps to. A chain whose rules overflow a
// batch (Neutron's sg-chain and INPUT chain: two or one jumps per port, to
// distinct chains) is declared in one batch and continued by appends in the
// next ones. Staging starts from more than lim.chains new chains or
// lim.rules new rules in the table.
func (p *tablePlan) stage(lim stageLimits) []*tablePlan {
	rules := 0
	for _, c := range p.create {
		rules += len(c.Rules)
	}
	if len(p.create) <= lim.chains && rules <= lim.rules {
		return nil
	}
	idx := make(map[string]int, len(p.create))
	for i, c := range p.create {
		idx[c.Name] = i
	}
	// jumps[i][k] is the index of the new chain that rule k of new chain i
	// jumps to, or -1: each rule's target is looked up once.
	jumps := make([][]int, len(p.create))
	all := make([]int, rules)
	for i, c := range p.create {
		js := all[:len(c.Rules):len(c.Rules)]
		all = all[len(c.Rules):]
		for k, r := range c.Rules {
			js[k] = -1
			if j, ok := idx[hybrid.RuleTarget(r)]; ok {
				js[k] = j
			}
		}
		jumps[i] = js
	}
	// level: 0 for a chain that jumps to no new chain, else one more than
	// the highest level of the new chains it jumps to. Jumps cannot loop
	// (iptables refuses loops), but a malformed plan must not hang: cap.
	level := make([]int, len(p.create))
	for i := range level {
		level[i] = -1
	}
	var depth func(i, guard int) int
	depth = func(i, guard int) int {
		if level[i] >= 0 || guard > len(p.create) {
			return max(level[i], 0)
		}
		l := 0
		for _, j := range jumps[i] {
			if j >= 0 && j != i {
				l = max(l, depth(j, guard+1)+1)
			}
		}
		level[i] = l
		return l
	}
	top := 0
	for i := range p.create {
		top = max(top, depth(i, 0))
	}
	var (
		batches []*tablePlan
		cur     *tablePlan
		targets map[int]bool // new chains cur's rules jump to
	)
	next := func() {
		cur = &tablePlan{table: p.table}
		batches = append(batches, cur)
		targets = map[int]bool{}
	}
	// add puts rules of c into cur: declared and created if first, else
	// appended to the chain an earlier batch created.
	add := func(c firewall.Chain, rules []string, first bool) {
		part := firewall.Chain{Name: c.Name, Rules: rules}
		if first {
			cur.declare = append(cur.declare, c.Name)
			cur.create = append(cur.create, part)
			cur.created++
		} else {
			cur.extend = append(cur.extend, part)
		}
		cur.rules += len(rules)
	}
	for l := 0; l <= top; l++ {
		cur = nil
		for i, c := range p.create {
			if level[i] != l {
				continue
			}
			// A chain that fits in a batch of its own is not split.
			if cur == nil || len(cur.create) >= lim.chains || cur.rules > 0 &&
				(cur.rules+len(c.Rules) > lim.rules || len(targets)+newTargets(i, jumps[i], targets) > lim.targets) {
				next()
			}
			start, first := 0, true
			for k, t := range jumps[i] {
				jumpsNew := t >= 0 && t != i && !targets[t]
				if cur.rules+k-start < lim.rules && !(jumpsNew && len(targets) >= lim.targets) {
					if jumpsNew {
						targets[t] = true
					}
					continue
				}
				if k > start {
					add(c, c.Rules[start:k], first)
					start, first = k, false
				}
				next()
				if jumpsNew {
					targets[t] = true
				}
			}
			add(c, c.Rules[start:], first)
		}
	}
	// What stays: every declaration but those of the staged chains.
	staged := make(map[string]bool, len(p.create))
	for _, c := range p.create {
		staged[c.Name] = true
	}
	decl := p.declare[:0:0]
	for _, n := range p.declare {
		if !staged[n] {
			decl = append(decl, n)
		}
	}
	p.declare, p.create = decl, nil
	for _, b := range batches {
		p.created -= b.created
		p.rules -= b.rules
	}
	return batches
}

// newTargets counts the distinct new chains, other than chain i itself and
// those in seen, that chain i's rules jump to (jumps as in stage).
func newTargets(i int, jumps []int, seen map[int]bool) int {
	var own map[int]bool
	for _, t := range jumps {
		if t < 0 || t == i || seen[t] || own[t] {
			continue
		}
		if own == nil {
			own = map[int]bool{}
		}
		own[t] = true
	}
	return len(own)
}
