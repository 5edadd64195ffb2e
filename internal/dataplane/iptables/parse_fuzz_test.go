package iptables

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
)

// FuzzParseSave feeds arbitrary text to the parser of iptables-save output
// (the seeds, in testdata/fuzz/FuzzParseSave, are real dumps and their
// corner cases). Whatever the input, the parser returns an error or the
// wanted tables, never panics, and what it returns survives a round trip:
// written back as iptables-save output (firewall.WriteSave, what the syncer
// restores) and parsed again, it is the same.
func FuzzParseSave(f *testing.F) {
	f.Add("*filter\n:INPUT ACCEPT [0:0]\n:neutron-openvswi-sg-chain - [0:0]\n-A INPUT -j neutron-openvswi-sg-chain\n-A neutron-openvswi-sg-chain -j ACCEPT\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSave(s, "filter", "raw")
		if err != nil {
			return
		}
		if len(got) != 2 || got["filter"] == nil || got["raw"] == nil {
			t.Fatalf("tables %v, want filter and raw", slices.Sorted(maps.Keys(got)))
		}
		var b strings.Builder
		for _, name := range []string{"filter", "raw"} {
			ts := got[name]
			if !slices.IsSortedFunc(ts.owned, func(a, b firewall.Chain) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("%s: owned chains not sorted: %v", name, ts.owned)
			}
			for _, c := range ts.owned {
				if !Owned(c.Name) {
					t.Errorf("%s: chain %q kept as moat's", name, c.Name)
				}
			}
			for _, c := range slices.Concat(ts.builtins, ts.owned) {
				if c.Name == "" || strings.ContainsAny(c.Name, " \t\n") {
					t.Errorf("%s: chain name %q", name, c.Name)
				}
				for _, r := range c.Rules {
					if strings.Contains(r, "\n") {
						t.Errorf("%s: rule %q of %s spans lines", name, r, c.Name)
					}
				}
			}
			if err := firewall.WriteSave(&b, &firewall.Table{Name: name, Builtins: ts.builtins, Chains: ts.owned}); err != nil {
				t.Fatal(err)
			}
		}
		again, err := parseSave(b.String(), "filter", "raw")
		if err != nil {
			t.Fatalf("parsing what was written: %v\ninput:\n%s\nwritten:\n%s", err, s, b.String())
		}
		for _, name := range []string{"filter", "raw"} {
			if a, w := normal(got[name]), normal(again[name]); !reflect.DeepEqual(a, w) {
				t.Fatalf("%s: round trip changed the table:\nparsed  %+v\nreparsed %+v\ninput:\n%s\nwritten:\n%s", name, a, w, s, b.String())
			}
		}
	})
}

// normal makes empty rule lists nil, for comparison.
func normal(ts *tableState) tableState {
	out := tableState{}
	for _, cs := range []struct {
		in  []firewall.Chain
		out *[]firewall.Chain
	}{{ts.builtins, &out.builtins}, {ts.owned, &out.owned}} {
		for _, c := range cs.in {
			if len(c.Rules) == 0 {
				c.Rules = nil
			}
			*cs.out = append(*cs.out, c)
		}
	}
	return out
}
