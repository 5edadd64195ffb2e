package moatrules_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// trace classifies the rules of any dump by their shape (a Neutron host's
// too); the compiler knows what each rule it emits stands for. For every
// rule of every port of the reference scenarios, with and without ipsets
// and comments, they agree: trace's origin_kind is the compiler's
// Origin.Kind, and trace names the group rules the compiler names. One
// exception, by design: a group rule that allows router advertisements
// renders as the provider rule does, the chain holds the line once where
// the provider rule goes, and the compiler calls it that (naming the group
// rule too); trace, told of the group rule, calls it the group rule's.
func TestTraceKnowsTheCompilersOrigins(t *testing.T) {
	ptr := func(n int) *int { return &n }
	const port = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	ra := &firewall.HostState{
		Options: firewall.Options{EnableIPSet: true, CommentRules: true},
		Ports:   []firewall.Port{{ID: port, MAC: "fa:16:3e:00:00:01", FixedIPs: []string{"2001:db8::5"}, SecurityGroups: []string{"g"}}},
		SecurityGroups: []firewall.SecurityGroup{{ID: "g", Rules: []firewall.Rule{
			{ID: "ra", Direction: "ingress", Ethertype: "IPv6", Protocol: "ipv6-icmp", PortRangeMin: ptr(134)}}}},
	}
	rs, err := firewall.Compile(ra)
	if err != nil {
		t.Fatal(err)
	}
	h, err := moatrules.Host(ra)
	if err != nil {
		t.Fatal(err)
	}
	if checkOrigins(t, "router advertisements allowed twice", h, rs, ra) == 0 {
		t.Fatal("no rule compared")
	}
	n := 0
	for _, name := range []string{"sample.json", "edge.json"} {
		file, err := spec.Load(nil, filepath.Join("..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range file.Scenarios {
			for _, set := range []map[string]any{nil, {"enable_ipset": false}, {"comment_iptables_rules": false}} {
				st, err := sc.HostState(set)
				if err != nil {
					t.Fatal(err)
				}
				rs, err := firewall.Compile(st)
				if err != nil || len(rs.Rejected) > 0 {
					continue
				}
				h, err := moatrules.Host(st)
				if err != nil {
					t.Fatal(err)
				}
				n += checkOrigins(t, sc.Name, h, rs, st)
			}
		}
	}
	if n < 1000 {
		t.Fatalf("%d rules compared", n)
	}
}

func checkOrigins(t *testing.T, scenario string, h *trace.Host, rs *firewall.Ruleset, st *firewall.HostState) int {
	t.Helper()
	type key struct{ fam, table, chain, rule string }
	compiled := map[key]*hybrid.Origin{}
	for fam, ts := range map[string]*firewall.Tables{"IPv4": &rs.IPv4, "IPv6": &rs.IPv6} {
		for _, tb := range []*firewall.Table{&ts.Filter, &ts.Raw} {
			for _, cs := range [][]firewall.Chain{tb.Builtins, tb.Chains} {
				for _, c := range cs {
					for i, s := range c.Specs() {
						compiled[key{fam, tb.Name, c.Name, c.Rules[i]}] = s.Origin
					}
				}
			}
		}
	}
	n := 0
	for _, p := range st.Ports {
		ex, err := h.Explain(p.ID, "")
		if err != nil {
			continue // a port the rules do not name (trusted ports have no chains, but dispatch rules)
		}
		for _, row := range ex.Rows {
			want, ok := compiled[key{row.Family, row.Table, row.Chain, row.Rule}]
			if !ok {
				t.Errorf("%s: %s %s %s: not a compiled rule", scenario, row.Family, row.Chain, row.Rule)
				continue
			}
			n++
			if row.Kind == trace.OriginSGRule && want.Kind == hybrid.OriginICMPv6RA && len(want.Rules) > 0 {
				want = &hybrid.Origin{Kind: hybrid.OriginSGRule, Rules: want.Rules} // the exception
			}
			if row.Kind != string(want.Kind) {
				t.Errorf("%s: %s %s %s: trace says %s, the compiler %s", scenario, row.Family, row.Chain, row.Rule, row.Kind, want.Kind)
			}
			if row.Kind == trace.OriginSGRule && !slices.Equal(row.Rules, want.Rules) {
				t.Errorf("%s: %s %s %s: trace names %v, the compiler %v", scenario, row.Family, row.Chain, row.Rule, row.Rules, want.Rules)
			}
		}
	}
	return n
}
