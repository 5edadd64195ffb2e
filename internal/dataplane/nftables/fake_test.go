package nftables

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// The unit tests run the syncer's transactions on knftables' Fake, an
// in-memory nftables written independently of this package: it refuses
// flushing, deleting or adding rules to objects that do not exist, a rule
// or verdict naming a missing set or chain, and deleting a missing
// element. What it lets through and the kernel refuses — deleting a chain
// a rule or verdict still jumps to, a set a rule still uses — strictFake
// checks before each command.

// knftOp is the knftables form of an op (one per element for element ops).
func knftOps(o op) []struct {
	verb string
	obj  knftables.Object
} {
	type kop = struct {
		verb string
		obj  knftables.Object
	}
	fam, tbl := o.table.Family, o.table.Name
	switch o.obj {
	case "table":
		t := &knftables.Table{Family: fam, Name: tbl}
		if o.decl != "" {
			t.Comment = knftables.PtrTo(o.decl)
		}
		return []kop{{o.verb, t}}
	case "chain":
		c := &knftables.Chain{Family: fam, Table: tbl, Name: o.name}
		if o.base != nil && o.verb == "add" {
			c.Type = knftables.PtrTo(knftables.BaseChainType(o.base.typ))
			c.Hook = knftables.PtrTo(knftables.BaseChainHook(o.base.hook))
			c.Priority = knftables.PtrTo(knftables.BaseChainPriority(strconv.Itoa(o.base.prio)))
			c.Policy = knftables.PtrTo(knftables.BaseChainPolicy(o.base.policy))
		}
		return []kop{{o.verb, c}}
	case "rule":
		return []kop{{o.verb, &knftables.Rule{Family: fam, Table: tbl, Chain: o.name, Rule: o.rule.body, Comment: knftables.PtrTo(o.rule.comment)}}}
	case "set":
		// The Fake does not interpret types: it keeps the signature, so
		// that reading the Fake back gives the signature the kernel lists.
		return []kop{{o.verb, &knftables.Set{Family: fam, Table: tbl, Name: o.name, Type: o.sig}}}
	case "map":
		return []kop{{o.verb, &knftables.Map{Family: fam, Table: tbl, Name: o.name, Type: o.sig}}}
	case "element":
		var out []kop
		for i, k := range o.keys {
			e := &knftables.Element{Family: fam, Table: tbl, Key: []string{k}}
			if o.isMap {
				e.Map = o.name
				if o.verb == "add" {
					e.Value = []string{o.vals[i]}
				}
			} else {
				e.Set = o.name
			}
			out = append(out, kop{o.verb, e})
		}
		return out
	}
	panic("unknown op " + o.obj)
}

func addToTx(tx *knftables.Transaction, verb string, obj knftables.Object) {
	switch verb {
	case "add":
		tx.Add(obj)
	case "delete":
		tx.Delete(obj)
	case "flush":
		tx.Flush(obj)
	default:
		panic("unknown verb " + verb)
	}
}

// strictCheck refuses what the kernel refuses and the Fake does not:
// deleting (or flushing away) a chain some rule or verdict jumps to,
// deleting a set a rule uses, a table delete is always fine.
func strictCheck(f *knftables.Fake, o op) error {
	if o.verb != "delete" {
		return nil
	}
	t := f.Table
	if tables := f.Tables[o.table.Family]; tables != nil {
		t = tables[o.table.Name]
	}
	if t == nil {
		return nil
	}
	switch o.obj {
	case "chain":
		for cname, c := range t.Chains {
			for _, r := range c.Rules {
				words := strings.Split(r.Rule, " ")
				for i := range len(words) - 1 {
					if (words[i] == "jump" || words[i] == "goto") && words[i+1] == o.name {
						return fmt.Errorf("delete chain %s: chain %s still jumps to it (Device or resource busy)", o.name, cname)
					}
				}
			}
		}
		for mname, m := range t.Maps {
			for _, e := range m.Elements {
				if len(e.Value) == 1 && (e.Value[0] == "jump "+o.name || e.Value[0] == "goto "+o.name) {
					return fmt.Errorf("delete chain %s: map %s element %s still points to it (Device or resource busy)", o.name, mname, e.Key[0])
				}
			}
		}
	case "set", "map":
		for cname, c := range t.Chains {
			for _, r := range c.Rules {
				if slices.Contains(strings.Split(r.Rule, " "), "@"+o.name) {
					return fmt.Errorf("delete %s %s: chain %s still uses it (Device or resource busy)", o.obj, o.name, cname)
				}
			}
		}
	}
	return nil
}

// runStrict runs a plan on f one command at a time with strictCheck, as
// the kernel would judge each command of the transaction in order. On an
// error f holds the commands before the failing one: callers use a copy.
func runStrict(f *knftables.Fake, p *plan) error {
	for _, o := range p.ops {
		if err := strictCheck(f, o); err != nil {
			return err
		}
		tx := f.NewTransaction()
		for _, k := range knftOps(o) {
			addToTx(tx, k.verb, k.obj)
		}
		if err := f.Run(context.Background(), tx); err != nil {
			return fmt.Errorf("%s: %w", o.line(), err)
		}
	}
	return nil
}

// runAtomic runs a plan on f as one transaction (the Fake's Run is all or
// nothing, like the kernel's).
func runAtomic(f *knftables.Fake, p *plan) error {
	for _, o := range p.ops {
		if err := strictCheck(f, o); err != nil {
			return err
		}
	}
	tx := f.NewTransaction()
	for _, o := range p.ops {
		for _, k := range knftOps(o) {
			addToTx(tx, k.verb, k.obj)
		}
	}
	return f.Run(context.Background(), tx)
}

// dump is the Fake's content with element lines sorted (the Fake keeps
// elements in insertion order; the kernel has none).
func dump(f *knftables.Fake) string {
	lines := strings.Split(strings.TrimSpace(f.Dump()), "\n")
	var els []string
	var rest []string
	for _, l := range lines {
		if strings.HasPrefix(l, "add element ") {
			els = append(els, l)
		} else {
			rest = append(rest, l)
		}
	}
	slices.Sort(els)
	return strings.Join(append(rest, els...), "\n") + "\n"
}

// readFake reads the Fake back into the syncer's state, as read does with
// nft -j: per chain its hook and fingerprints, per set its signature and
// elements.
func readFake(f *knftables.Fake, id TableID) *tableState {
	t := f.Tables[id.Family][id.Name]
	if t == nil {
		return nil
	}
	st := newTableState()
	for name, c := range t.Chains {
		cs := &chainState{}
		if c.Hook != nil {
			prio, _ := strconv.Atoi(string(*c.Priority))
			cs.base = &baseSpec{typ: string(*c.Type), hook: string(*c.Hook), prio: prio, policy: string(*c.Policy)}
		}
		for _, r := range c.Rules {
			fp := ""
			if r.Comment != nil {
				_, fp = splitComment(*r.Comment)
			}
			cs.fps = append(cs.fps, fp)
		}
		st.chains[name] = cs
	}
	for name, s := range t.Sets {
		ss := &setState{sig: s.Type, elems: map[string]string{}}
		for _, e := range s.Elements {
			ss.elems[e.Key[0]] = ""
		}
		st.sets[name] = ss
	}
	for name, m := range t.Maps {
		ss := &setState{isMap: true, sig: m.Type, elems: map[string]string{}}
		for _, e := range m.Elements {
			ss.elems[e.Key[0]] = e.Value[0]
		}
		st.sets[name] = ss
	}
	return st
}

// fakeKernel is the syncer's kernel on a Fake, with a generation that
// moves on every committed transaction (the syncer's or the test's).
type fakeKernel struct {
	f       *knftables.Fake
	gen     uint32
	noGen   bool
	commits int
	reads   int
	// refuse makes the next commit fail (after checking it would apply).
	refuse error
}

func newFakeKernel() *fakeKernel { return &fakeKernel{f: knftables.NewFake("", "")} }

func (k *fakeKernel) commit(_ context.Context, p *plan) error {
	k.commits++
	if k.refuse != nil {
		err := k.refuse
		k.refuse = nil
		return err
	}
	if err := runAtomic(k.f, p); err != nil {
		return err
	}
	k.gen++
	return nil
}

func (k *fakeKernel) read(_ context.Context, ids []TableID) (map[TableID]*tableState, error) {
	k.reads++
	out := map[TableID]*tableState{}
	for _, id := range ids {
		out[id] = readFake(k.f, id)
	}
	return out, nil
}

func (k *fakeKernel) generation(context.Context) (uint32, bool) { return k.gen, !k.noGen }
func (k *fakeKernel) hasGeneration() bool                       { return !k.noGen }

// foreign runs another writer's transaction on the fake kernel.
func (k *fakeKernel) foreign(build func(tx *knftables.Transaction)) error {
	tx := k.f.NewTransaction()
	build(tx)
	if err := k.f.Run(context.Background(), tx); err != nil {
		return err
	}
	k.gen++
	return nil
}
