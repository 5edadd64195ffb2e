package nftables

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name (or writes it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func mustCompile(t testing.TB, rs *Ruleset) map[TableID]*wantTable {
	t.Helper()
	w, err := compile(rs, MoatTables())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// loaded is the syncer's state after it committed rs, and a Fake that
// holds rs (loaded by the syncer's own full-load plan, on the Fake).
func loaded(t *testing.T, rs *Ruleset) (map[TableID]*tableState, *knftables.Fake) {
	t.Helper()
	f := knftables.NewFake("", "")
	if rs == nil {
		return map[TableID]*tableState{}, f
	}
	p := planAll(MoatTables(), map[TableID]*tableState{}, mustCompile(t, rs))
	if err := runStrict(f, p); err != nil {
		t.Fatalf("full load on the Fake: %v", err)
	}
	return p.next, f
}

// TestPlan checks, per kind of change, the exact transaction (golden
// file) and that it is right: run command by command on a Fake holding
// the old tables, with the kernel's reference rules, it leaves the Fake
// holding exactly what a fresh full load of the new tables gives; and the
// syncer's next state equals what it would read back.
func TestPlan(t *testing.T) {
	base := twoPorts
	type change struct {
		name string
		old  func() *Ruleset // nil: no tables yet
		new  func() *Ruleset
		// replace marks the old state as not understood (see read).
		replace bool
	}
	with := func(edit func(l *tLayout)) func() *Ruleset {
		return func() *Ruleset {
			l := base()
			edit(&l)
			return l.ruleset()
		}
	}
	cases := []change{
		{name: "full-load", new: base().ruleset},
		{name: "no-change", old: base().ruleset, new: base().ruleset},
		{name: "group-rule-added", old: base().ruleset, new: with(func(l *tLayout) {
			l.groups[0].in = append(l.groups[0].in, R("sgr bbbbbbbb-0000-4000-8000-000000000009", Kw("tcp dport 443 counter"), Accept))
		})},
		{name: "member-joins", old: base().ruleset, new: with(func(l *tLayout) {
			l.groups[0].members = append(l.groups[0].members, "10.0.0.78")
		})},
		{name: "member-leaves", old: base().ruleset, new: with(func(l *tLayout) {
			l.groups[0].members = l.groups[0].members[1:]
		})},
		{name: "interval-grows", old: with(func(l *tLayout) {
			l.groups[0].members = append(l.groups[0].members, "10.1.0.0/25")
		}), new: with(func(l *tLayout) {
			l.groups[0].members = append(l.groups[0].members, "10.1.0.0/25", "10.1.0.128/26", "10.1.0.200")
		})},
		{name: "port-added", old: base().ruleset, new: with(func(l *tLayout) {
			l.ports = append(l.ports, tPort{id: portC, mac: "fa:16:3e:00:00:0c", ips: []string{"192.168.1.14"}, zone: 4099, groups: []string{sgWeb}})
		})},
		{name: "port-removed", old: base().ruleset, new: with(func(l *tLayout) {
			l.ports = l.ports[:1]
		})},
		{name: "port-security-off", old: base().ruleset, new: with(func(l *tLayout) {
			l.ports[0].open = true
		})},
		{name: "stateful-to-stateless", old: base().ruleset, new: with(func(l *tLayout) {
			l.ports[0].stateless = true
		})},
		{name: "group-added-and-removed", old: base().ruleset, new: with(func(l *tLayout) {
			l.groups[1] = tGroup{id: portC, in: []Rule{R("sgr x", Kw("ip saddr"), Ref("sg-"+portC), Accept)}, out: []Rule{R("sgr y", Accept)}, members: []string{"10.9.9.9"}}
			l.ports[1].groups = []string{portC}
		})},
		{name: "set-type-changed", old: base().ruleset, new: func() *Ruleset {
			rs := base().ruleset()
			for _, s := range rs.Tables[1].Sets {
				if s.Name == "sg-"+sgWeb {
					s.Interval = false
				}
			}
			return rs
		}},
		{name: "base-chain-priority", old: base().ruleset, new: func() *Ruleset {
			rs := base().ruleset()
			rs.Tables[1].Chains[1].Base.Priority = "10"
			return rs
		}},
		{name: "table-dropped", old: base().ruleset, new: func() *Ruleset {
			rs := base().ruleset()
			rs.Tables = rs.Tables[1:]
			return rs
		}},
		{name: "replace-not-understood", old: base().ruleset, new: base().ruleset, replace: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var oldRS *Ruleset
			if c.old != nil {
				oldRS = c.old()
			}
			known, f := loaded(t, oldRS)
			if c.replace {
				known[IPTable].replace, known[IPTable].why = true, "it holds a counter, which moat does not write"
			}
			newRS := c.new()
			want := mustCompile(t, newRS)
			p := planAll(MoatTables(), known, want)
			golden(t, "plan/"+c.name+".nft", string(p.text()))
			if c.name == "no-change" && !p.empty() {
				t.Errorf("no change planned %d commands", len(p.ops))
			}
			if err := runStrict(f, p); err != nil {
				t.Fatalf("the plan does not apply: %v", err)
			}
			_, fresh := loaded(t, newRS)
			if got, want := dump(f), dump(fresh); got != want {
				t.Errorf("after the plan the tables differ from a fresh load:\n--- after plan\n%s\n--- fresh load\n%s", got, want)
			}
			for _, id := range MoatTables() {
				if got, want := describeState(p.next[id]), describeState(readFake(f, id)); got != want {
					t.Errorf("%s: next state\n%s\nbut the Fake reads back as\n%s", id, got, want)
				}
			}
		})
	}
}

// describeState renders a state for comparisons.
func describeState(st *tableState) string {
	if st == nil {
		return "absent\n"
	}
	var b strings.Builder
	for _, name := range sortedKeys(st.chains) {
		c := st.chains[name]
		b.WriteString("chain " + name + " " + c.base.String() + " " + strings.Join(c.fps, ",") + "\n")
	}
	for _, name := range sortedKeys(st.sets) {
		s := st.sets[name]
		b.WriteString(setKind(s.isMap) + " " + name + " " + s.sig + "\n")
		for _, k := range sortedKeys(s.elems) {
			b.WriteString("  " + k + " : " + s.elems[k] + "\n")
		}
	}
	return b.String()
}

// TestPlanOrderMatters checks that the strict checks catch the orders the
// kernel refuses, so that TestPlan's "the plan applies" means something:
// deleting a chain before the verdict that points to it, and adding a
// verdict to a chain that does not exist yet.
func TestPlanOrderMatters(t *testing.T) {
	known, f := loaded(t, twoPorts().ruleset())
	l := twoPorts()
	l.ports = l.ports[:1]
	p := planAll(MoatTables(), known, mustCompile(t, l.ruleset()))
	// Move the element deletes after the chain deletes.
	var els, rest []op
	for _, o := range p.ops {
		if o.obj == "element" && o.verb == "delete" {
			els = append(els, o)
		} else {
			rest = append(rest, o)
		}
	}
	bad := &plan{ops: append(rest, els...)}
	if err := runStrict(f, bad); err == nil || !strings.Contains(err.Error(), "still points to it") {
		t.Errorf("deleting a chain a verdict points to: %v, want refused", err)
	}

	known, f = loaded(t, twoPorts().ruleset())
	l = twoPorts()
	l.ports = append(l.ports, tPort{id: portC, mac: "fa:16:3e:00:00:0c", ips: []string{"192.168.1.14"}, zone: 4099})
	p = planAll(MoatTables(), known, mustCompile(t, l.ruleset()))
	var adds []op
	rest = nil
	for _, o := range p.ops {
		if o.obj == "element" && o.verb == "add" {
			adds = append(adds, o)
		} else {
			rest = append(rest, o)
		}
	}
	bad = &plan{ops: append(adds, rest...)}
	if err := runStrict(f, bad); err == nil || !strings.Contains(err.Error(), "no such chain") {
		t.Errorf("a verdict to a chain not created yet: %v, want refused", err)
	}
}
