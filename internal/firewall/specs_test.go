package firewall_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/parity"
	"github.com/moat-sg/moat/internal/firewall/workload"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Every rule the compiler emits carries its spec: the spec renders as the
// rule's text, says where the rule came from, and, in a port's chains,
// its direction and ethertype. Checked on every dump of every golden case
// (with and without ipsets and comments, Neutron's way and moat's), each
// compiled by one Compiler in turn, as an agent would.
func TestSpecsRenderRules(t *testing.T) {
	for _, compat := range []bool{true, false} {
		forEachCase(t, func(t *testing.T, dir string, c parity.Case) {
			sc, err := parity.LoadScenario(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			rss, _, err := parity.CompileDumps(sc, c.Set, compat)
			if err != nil {
				t.Fatal(err)
			}
			for _, rs := range rss {
				checkSpecs(t, rs)
			}
		})
	}
}

func checkSpecs(t *testing.T, rs *firewall.Ruleset) {
	t.Helper()
	for fam, ts := range []*firewall.Tables{&rs.IPv4, &rs.IPv6} {
		eth := []string{hybrid.IPv4, hybrid.IPv6}[fam]
		for _, tb := range []*firewall.Table{&ts.Filter, &ts.Raw} {
			for _, cs := range [][]firewall.Chain{tb.Builtins, tb.Chains} {
				for _, c := range cs {
					if len(c.Specs()) != len(c.Rules) {
						t.Fatalf("%s %s: %d specs for %d rules", eth, c.Name, len(c.Specs()), len(c.Rules))
					}
					kind, _, portChain := hybrid.PortChainOf(c.Name)
					for i, s := range c.Specs() {
						if s == nil || s.Origin == nil || s.Origin.Kind == "" {
							t.Fatalf("%s %s rule %d (%s): no origin", eth, c.Name, i+1, c.Rules[i])
						}
						if got := s.Iptables(); got != c.Rules[i] {
							t.Errorf("%s %s rule %d: spec renders\n\t%s\nrule is\n\t%s", eth, c.Name, i+1, got, c.Rules[i])
						}
						o := s.Origin
						switch {
						case portChain:
							dir := hybrid.Ingress
							if kind != hybrid.ChainIn {
								dir = hybrid.Egress
							}
							if o.Direction != dir || o.Ethertype != eth {
								t.Errorf("%s %s rule %d: origin %+v, want %s %s", eth, c.Name, i+1, o, dir, eth)
							}
						case o.Direction != "" || o.Ethertype != "":
							t.Errorf("%s %s rule %d: origin %+v outside a port chain", eth, c.Name, i+1, o)
						}
						if o.Kind == hybrid.OriginSGRule && (len(o.Rules) == 0 || !portChain || kind == hybrid.ChainSpoof) {
							t.Errorf("%s %s rule %d: group rule origin %+v", eth, c.Name, i+1, o)
						}
					}
				}
			}
		}
	}
}

// The sources of group rules name rules of the host state's groups, by
// group, position and id (every case of the reference scenarios, with and
// without ipsets).
func TestSpecsNameGroupRules(t *testing.T) {
	ix, err := parity.LoadIndex(filepath.Join("testdata", "neutron", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range ix.Cases {
		sc, err := parity.LoadScenario("testdata/neutron", c)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sc.HostState(c.Set)
		if err != nil {
			t.Fatal(err)
		}
		groups := map[string]*firewall.SecurityGroup{}
		for i := range st.SecurityGroups {
			groups[st.SecurityGroups[i].ID] = &st.SecurityGroups[i]
		}
		rs, err := firewall.Compile(st)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range []*firewall.Tables{&rs.IPv4, &rs.IPv6} {
			for _, ch := range ts.Filter.Chains {
				for _, s := range ch.Specs() {
					for _, r := range s.Origin.Rules {
						n++
						g := groups[r.GroupID]
						if g == nil || r.Index >= len(g.Rules) || g.Rules[r.Index].ID != r.RuleID {
							t.Errorf("%s: %s names rule %+v, not one of the groups'", c.Dir, ch.Name, r)
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Error("no rule names a group rule")
	}
}

// A compiled ruleset builds most specs when first asked: several
// goroutines asking at once get the same specs, each rendering as its
// rule, and a ruleset's specs stay its own after the compiler has moved
// on to a changed state.
func TestSpecsBuiltOnDemand(t *testing.T) {
	w := workload.NewBench(40)
	c := firewall.NewCompiler()
	first, err := c.Compile(w.State)
	if err != nil {
		t.Fatal(err)
	}
	w.State.Zones = first.ZoneAssignments
	w.AddRule(w.Common, 10001)
	second, err := c.Compile(w.State)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range []*firewall.Ruleset{second, first} {
		var chains []firewall.Chain
		for _, ts := range []*firewall.Tables{&rs.IPv4, &rs.IPv6} {
			for _, tb := range []*firewall.Table{&ts.Filter, &ts.Raw} {
				chains = append(append(chains, tb.Builtins...), tb.Chains...)
			}
		}
		got := make([][][]*hybrid.Rule, 4)
		var wg sync.WaitGroup
		for g := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, c := range chains {
					got[g] = append(got[g], c.Specs())
				}
			}()
		}
		wg.Wait()
		for g := range got[1:] {
			for i, c := range chains {
				if !slices.Equal(got[g+1][i], got[0][i]) {
					t.Fatalf("chain %s: goroutines got different specs", c.Name)
				}
			}
		}
		checkSpecs(t, rs)
	}
	if changed := slices.EqualFunc(first.IPv4.Filter.Chains, second.IPv4.Filter.Chains, firewall.Chain.Equal); changed {
		t.Fatal("adding a rule to the common group changed no chain")
	}
}
