package nftables

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// tableState is what the syncer knows a table holds: per chain its hook
// and its rules' fingerprints, per set its signature and elements. It is
// what the syncer committed, or what it read back from the kernel.
type tableState struct {
	chains map[string]*chainState
	sets   map[string]*setState
	// replace is set when the kernel's table holds something the syncer
	// cannot express as a difference (an object of a kind it does not
	// write, a name or element it cannot render): the next plan replaces
	// the whole table in one transaction. why says what it was.
	replace bool
	why     string
}

type chainState struct {
	base *baseSpec
	fps  []string // "" for a rule without moat's fingerprint
}

type setState struct {
	isMap bool
	sig   string
	elems map[string]string
}

func newTableState() *tableState {
	return &tableState{chains: map[string]*chainState{}, sets: map[string]*setState{}}
}

// stateOf is the state a table is in once want has been committed.
func stateOf(wt *wantTable) *tableState {
	st := newTableState()
	for name, c := range wt.chains {
		st.chains[name] = &chainState{base: c.base, fps: c.fps}
	}
	for name, s := range wt.sets {
		st.sets[name] = &setState{isMap: s.isMap, sig: s.sig, elems: s.elems}
	}
	return st
}

// An op is one command of a transaction.
type op struct {
	verb  string // add, delete, flush
	obj   string // table, chain, rule, set, map, element
	table TableID
	name  string // chain, set or map; "" for a table
	// add chain: the base hook (nil: regular); add set/map: the
	// declaration; add rule: the rule; element: the keys (and values).
	base  *baseSpec
	decl  string
	sig   string // add set/map: the signature (for the test fake)
	rule  *wantRule
	keys  []string
	vals  []string // map elements being added; parallel to keys
	isMap bool     // element ops: the set is a map
}

// line renders the op as one nft command.
func (o *op) line() string {
	var b strings.Builder
	o.write(&b)
	return b.String()
}

func (o *op) write(b *strings.Builder) {
	b.WriteString(o.verb)
	b.WriteByte(' ')
	b.WriteString(o.obj)
	b.WriteByte(' ')
	b.WriteString(string(o.table.Family))
	b.WriteByte(' ')
	b.WriteString(o.table.Name)
	if o.name != "" {
		b.WriteByte(' ')
		b.WriteString(o.name)
	}
	switch {
	case o.obj == "table" && o.verb == "add" && o.decl != "":
		b.WriteString(" { comment \"" + o.decl + "\"; }")
	case o.obj == "chain" && o.verb == "add" && o.base != nil:
		fmt.Fprintf(b, " { %s }", o.base)
	case (o.obj == "set" || o.obj == "map") && o.verb == "add":
		b.WriteString(" { " + o.decl + " }")
	case o.obj == "rule":
		b.WriteByte(' ')
		b.WriteString(o.rule.body)
		b.WriteString(` comment "`)
		b.WriteString(o.rule.comment)
		b.WriteByte('"')
	case o.obj == "element":
		b.WriteString(" { ")
		for i, k := range o.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k)
			if o.verb == "add" && o.isMap {
				b.WriteString(" : ")
				b.WriteString(o.vals[i])
			}
		}
		b.WriteString(" }")
	}
}

// plan is one transaction over all the owned tables, and the state the
// tables are in once it committed.
type plan struct {
	ops   []op
	next  map[TableID]*tableState
	stats Stats
	// drift describes how the known state differed from the desired one,
	// table by table, for Check and for Stats.Drift.
	drift []string
}

func (p *plan) empty() bool { return len(p.ops) == 0 }

// text renders the transaction: one command per line.
func (p *plan) text() []byte {
	var b strings.Builder
	for i := range p.ops {
		p.ops[i].write(&b)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// planAll plans every owned table, in the order of owned. known holds an
// entry per owned table (nil: the table does not exist).
func planAll(owned []TableID, known map[TableID]*tableState, want map[TableID]*wantTable) *plan {
	p := &plan{next: map[TableID]*tableState{}}
	for _, id := range owned {
		planTable(p, id, known[id], want[id])
	}
	return p
}

func (p *plan) add(o op) { p.ops = append(p.ops, o) }

func (p *plan) driftf(id TableID, format string, args ...any) {
	p.drift = append(p.drift, id.String()+": "+fmt.Sprintf(format, args...))
}

// planTable appends one table's commands. The order inside a table is
// what the kernel needs for references, and what keeps every step
// fail-closed even if it were not atomic:
//
//  1. unreference: delete the elements that go (a verdict element that
//     jumps to a chain about to be deleted goes first), flush every
//     chain that is rewritten or deleted (so that its rules no longer
//     hold sets and chains);
//  2. remove: delete chains, then sets and maps;
//  3. create: sets and maps, chains, then the rules of every new or
//     rewritten chain (so a rule's sets and jump targets exist);
//  4. fill: add elements (so a verdict element only points at a chain
//     that is already filled).
func planTable(p *plan, id TableID, cur *tableState, want *wantTable) {
	switch {
	case want == nil && cur == nil:
		return
	case want == nil:
		p.driftf(id, "table present, not wanted")
		p.add(op{verb: "delete", obj: "table", table: id})
		p.stats.TablesDeleted++
		return
	case cur == nil || cur.replace:
		if cur == nil {
			p.driftf(id, "table missing")
		} else {
			p.driftf(id, "table replaced: %s", cur.why)
		}
		fullLoad(p, want)
		return
	}
	next := newTableState()
	p.next[id] = next
	curChains, wantChains := sortedKeys(cur.chains), sortedKeys(want.chains)
	curSets, wantSets := sortedKeys(cur.sets), sortedKeys(want.sets)

	// What changes.
	rewrite := map[string]bool{}  // chains flushed and refilled (they stay)
	recreate := map[string]bool{} // chains deleted and added (hook changed)
	for _, name := range curChains {
		c := cur.chains[name]
		w, ok := want.chains[name]
		switch {
		case !ok:
			p.driftf(id, "chain %s not wanted", name)
		case !sameBase(c.base, w.base):
			recreate[name] = true
			p.driftf(id, "chain %s: %s, want %s", name, c.base, w.base)
		case !slices.Equal(c.fps, fps(w)):
			rewrite[name] = true
			p.driftf(id, "chain %s: %s", name, rulesDiff(c.fps, fps(w)))
		}
	}
	for _, name := range wantChains {
		if _, ok := cur.chains[name]; !ok {
			p.driftf(id, "chain %s missing", name)
		}
	}
	resetSet := map[string]bool{} // deleted and added (type changed)
	for _, name := range curSets {
		s := cur.sets[name]
		w, ok := want.sets[name]
		switch {
		case !ok:
			p.driftf(id, "%s %s not wanted", setKind(s.isMap), name)
		case s.isMap != w.isMap || s.sig != w.sig:
			resetSet[name] = true
			p.driftf(id, "%s %s: %s, want %s %s", setKind(s.isMap), name, s.sig, setKind(w.isMap), w.sig)
		}
	}
	for _, name := range wantSets {
		if _, ok := cur.sets[name]; !ok {
			p.driftf(id, "%s %s missing", setKind(want.sets[name].isMap), name)
		}
	}
	// A set that is deleted and added must first lose every rule that
	// uses it: rewrite those chains.
	if len(resetSet) > 0 {
		for _, name := range wantChains {
			if _, ok := cur.chains[name]; !ok || recreate[name] {
				continue
			}
			for _, r := range want.chains[name].rules {
				if slices.ContainsFunc(r.sets, func(s string) bool { return resetSet[s] }) {
					rewrite[name] = true
				}
			}
		}
	}

	// 1. Unreference.
	adds := map[string][]string{} // set → keys to add (kept sets)
	for _, name := range wantSets {
		s, ok := cur.sets[name]
		if !ok || resetSet[name] {
			continue
		}
		w := want.sets[name]
		var del, add []string
		for k, v := range s.elems {
			if wv, ok := w.elems[k]; !ok || wv != v {
				del = append(del, k)
			}
		}
		for k, v := range w.elems {
			if sv, ok := s.elems[k]; !ok || sv != v {
				add = append(add, k)
			}
		}
		slices.Sort(del)
		slices.Sort(add)
		if len(del)+len(add) > 0 {
			p.driftf(id, "%s %s: %d elements to delete, %d to add", setKind(w.isMap), name, len(del), len(add))
		}
		if len(del) > 0 {
			p.add(op{verb: "delete", obj: "element", table: id, name: name, keys: del, isMap: w.isMap})
			p.stats.ElementsDeleted += len(del)
		}
		adds[name] = add
	}
	for _, name := range curChains {
		if _, wanted := want.chains[name]; !wanted || rewrite[name] || recreate[name] {
			p.add(op{verb: "flush", obj: "chain", table: id, name: name})
		}
	}
	// 2. Remove.
	for _, name := range curChains {
		if _, wanted := want.chains[name]; !wanted || recreate[name] {
			p.add(op{verb: "delete", obj: "chain", table: id, name: name})
			p.stats.ChainsDeleted++
		}
	}
	for _, name := range curSets {
		if _, wanted := want.sets[name]; !wanted || resetSet[name] {
			p.add(op{verb: "delete", obj: setKind(cur.sets[name].isMap), table: id, name: name})
			p.stats.SetsDeleted++
		}
	}
	// 3. Create.
	for _, name := range wantSets {
		if _, ok := cur.sets[name]; !ok || resetSet[name] {
			w := want.sets[name]
			p.add(op{verb: "add", obj: setKind(w.isMap), table: id, name: name, decl: w.decl, sig: w.sig})
			p.stats.SetsCreated++
		}
	}
	for _, name := range wantChains {
		if _, ok := cur.chains[name]; !ok || recreate[name] {
			p.add(op{verb: "add", obj: "chain", table: id, name: name, base: want.chains[name].base})
			p.stats.ChainsCreated++
		}
	}
	for _, name := range wantChains {
		_, exists := cur.chains[name]
		if exists && !rewrite[name] && !recreate[name] {
			continue
		}
		if exists && rewrite[name] {
			p.stats.ChainsRewritten++
		}
		addRules(p, id, want.chains[name])
	}
	// 4. Fill.
	for _, name := range wantSets {
		w := want.sets[name]
		keys, kept := adds[name]
		if !kept {
			keys = sortedKeys(w.elems)
		}
		addElements(p, id, w, keys)
	}
	*next = *stateOf(want)
}

func fps(c *wantChain) []string { return c.fps }

// rulesDiff says how a chain's rules differ, for the drift report.
func rulesDiff(have, want []string) string {
	foreign := 0
	for _, fp := range have {
		if fp == "" {
			foreign++
		}
	}
	s := fmt.Sprintf("%d rules, want %d", len(have), len(want))
	if foreign > 0 {
		s += fmt.Sprintf(" (%d without moat's fingerprint)", foreign)
	}
	return s
}

func setKind(isMap bool) string {
	if isMap {
		return "map"
	}
	return "set"
}

func addRules(p *plan, id TableID, c *wantChain) {
	for i := range c.rules {
		p.add(op{verb: "add", obj: "rule", table: id, name: c.name, rule: &c.rules[i]})
	}
	p.stats.RulesWritten += len(c.rules)
}

func addElements(p *plan, id TableID, w *wantSet, keys []string) {
	if len(keys) == 0 {
		return
	}
	o := op{verb: "add", obj: "element", table: id, name: w.name, keys: keys, isMap: w.isMap}
	if w.isMap {
		o.vals = make([]string, len(keys))
		for i, k := range keys {
			o.vals[i] = w.elems[k]
		}
	}
	p.add(o)
	p.stats.ElementsAdded += len(keys)
}

// fullLoad replaces a table in the transaction: `add table` (so that the
// delete cannot fail on a missing table), `delete table`, then everything.
// In one transaction this is atomic: packets see the old table until the
// commit and the new one after it, never neither. (nft 1.0.6 has no
// `destroy`; Debian 12's is 1.0.6.)
func fullLoad(p *plan, want *wantTable) {
	id := want.id
	p.add(op{verb: "add", obj: "table", table: id})
	p.add(op{verb: "delete", obj: "table", table: id})
	p.add(op{verb: "add", obj: "table", table: id, decl: want.comment})
	p.stats.TablesLoaded++
	chains, sets := sortedKeys(want.chains), sortedKeys(want.sets)
	for _, name := range sets {
		w := want.sets[name]
		p.add(op{verb: "add", obj: setKind(w.isMap), table: id, name: name, decl: w.decl, sig: w.sig})
		p.stats.SetsCreated++
	}
	for _, name := range chains {
		p.add(op{verb: "add", obj: "chain", table: id, name: name, base: want.chains[name].base})
		p.stats.ChainsCreated++
	}
	for _, name := range chains {
		addRules(p, id, want.chains[name])
	}
	for _, name := range sets {
		w := want.sets[name]
		addElements(p, id, w, sortedKeys(w.elems))
	}
	p.next[id] = stateOf(want)
}

// removeAll is the transaction that deletes the owned tables, whether or
// not they exist.
func removeAll(owned []TableID) *plan {
	p := &plan{next: map[TableID]*tableState{}}
	for _, id := range owned {
		p.add(op{verb: "add", obj: "table", table: id})
		p.add(op{verb: "delete", obj: "table", table: id})
		p.next[id] = nil
	}
	return p
}

// describe names the op at a 1-based line of the transaction, for errors.
func (p *plan) describe(line int) string {
	if line < 1 || line > len(p.ops) {
		return ""
	}
	o := p.ops[line-1]
	s := o.verb + " " + o.obj + " " + o.table.String()
	if o.name != "" {
		s += " " + o.name
	}
	if o.obj == "rule" {
		s += " (" + Origin(o.rule.comment) + ")"
	}
	if o.obj == "element" {
		s += " (" + strconv.Itoa(len(o.keys)) + " elements)"
	}
	return s
}

// compareKnown describes how the tables read (now) differ from what the
// syncer had committed (was): the drift another writer caused.
func compareKnown(owned []TableID, was, now map[TableID]*tableState) []string {
	var out []string
	say := func(id TableID, format string, args ...any) {
		out = append(out, id.String()+": "+fmt.Sprintf(format, args...))
	}
	for _, id := range owned {
		a, b := was[id], now[id]
		switch {
		case a == nil && b == nil:
			continue
		case a == nil:
			say(id, "table appeared")
			continue
		case b == nil:
			say(id, "table gone")
			continue
		case b.replace:
			say(id, "%s", b.why)
			continue
		}
		for _, name := range sortedKeys(a.chains) {
			ca, cb := a.chains[name], b.chains[name]
			switch {
			case cb == nil:
				say(id, "chain %s gone", name)
			case !sameBase(ca.base, cb.base):
				say(id, "chain %s: %s, was %s", name, cb.base, ca.base)
			case !slices.Equal(ca.fps, cb.fps):
				say(id, "chain %s: %s", name, rulesDiff(cb.fps, ca.fps))
			}
		}
		for _, name := range sortedKeys(b.chains) {
			if a.chains[name] == nil {
				say(id, "chain %s appeared", name)
			}
		}
		for _, name := range sortedKeys(a.sets) {
			sa, sb := a.sets[name], b.sets[name]
			switch {
			case sb == nil:
				say(id, "%s %s gone", setKind(sa.isMap), name)
			case sa.isMap != sb.isMap || sa.sig != sb.sig:
				say(id, "%s %s: %s, was %s", setKind(sb.isMap), name, sb.sig, sa.sig)
			default:
				missing, extra := 0, 0
				for k, v := range sa.elems {
					if w, ok := sb.elems[k]; !ok || w != v {
						missing++
					}
				}
				for k := range sb.elems {
					if _, ok := sa.elems[k]; !ok {
						extra++
					}
				}
				if missing+extra > 0 {
					say(id, "%s %s: %d elements missing or changed, %d unexpected", setKind(sa.isMap), name, missing, extra)
				}
			}
		}
		for _, name := range sortedKeys(b.sets) {
			if a.sets[name] == nil {
				say(id, "%s %s appeared", setKind(b.sets[name].isMap), name)
			}
		}
	}
	return out
}
