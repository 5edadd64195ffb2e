package firewall_test

import (
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/parity"
)

// TestParityWithDeliberateFixes compiles every golden case the way moat
// runs by default and compares it with what Neutron installed, normalising
// exactly the deliberate fixes of docs/compatibility.md and nothing else:
//
//   - rules whose stored protocol is "ipip" (moat: IP protocol 4, Neutron:
//     94), "ip" or "hopopt" (moat: no -p, so an apply converges), and
//   - rules with a remote address group (moat: restricted to the group's
//     addresses, Neutron: open to all).
//
// For such a rule, the lines it renders to, as moat renders it and as
// Neutron does, are left out of both sides of the port chains of ports
// that carry the rule; every other line of every table, and every ipset,
// must be identical. Scenarios without such rules are compared exactly.
func TestParityWithDeliberateFixes(t *testing.T) {
	normalised := 0
	forEachCase(t, func(t *testing.T, dir string, c parity.Case) { normalised += checkFixed(t, dir, c) })
	t.Logf("%d dumps needed the deliberate fixes normalised", normalised)
	if normalised == 0 {
		t.Error("no golden case exercises the deliberate fixes")
	}
}

// checkFixed compares one case compiled with the fixes with Neutron's
// result and returns how many dumps needed normalising.
func checkFixed(t *testing.T, dir string, c parity.Case) (normalised int) {
	sc, want, got := compileCase(t, dir, c, false)
	dumps, err := sc.Dumps(c.Set)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		skip := fixedLines(t, dumps[i].State)
		if skip != nil {
			normalised++
		}
		if diffs := parity.CompareExcept(got[i], want[i], skip); len(diffs) > 0 {
			t.Errorf("dump %s:\n%s", want[i].Label, strings.Join(diffs, "\n"))
		}
	}
	return normalised
}

// isFix reports whether moat renders a stored rule differently from
// Neutron on purpose.
func isFix(r firewall.Rule) bool {
	switch r.Protocol {
	case "ipip", "ip", "hopopt":
		return true
	}
	return r.RemoteAddressGroupID != ""
}

// fixedLines returns a filter for the rules the deliberate fixes change in
// a state, or nil if the state has none. The lines are found by compiling,
// for each such rule, a probe port whose only group holds just that rule,
// with and without NeutronCompat, and taking what the rule adds to the
// port's chains.
func fixedLines(t *testing.T, st *firewall.HostState) func(chain, rule string) bool {
	t.Helper()
	chainLines := map[string]map[string]bool{} // port chain -> lines to skip
	for _, g := range st.SecurityGroups {
		var lines []string
		for _, r := range g.Rules {
			if !isFix(r) {
				continue
			}
			for _, compat := range []bool{false, true} {
				lines = append(lines, probe(t, st, g.Stateless, r, compat)...)
			}
		}
		if lines == nil {
			continue
		}
		for _, p := range st.Ports {
			if !contains(p.SecurityGroups, g.ID) {
				continue
			}
			for _, kind := range []string{"i", "o"} {
				chain := "neutron-openvswi-" + truncate(kind+p.ID, 11)
				if chainLines[chain] == nil {
					chainLines[chain] = map[string]bool{}
				}
				for _, l := range lines {
					chainLines[chain][l] = true
				}
			}
		}
	}
	if len(chainLines) == 0 {
		return nil
	}
	return func(chain, rule string) bool { return chainLines[chain][rule] }
}

const probeID = "ffffffff-0000-4000-8000-000000000000"

// probe returns the lines one rule adds to a probe port's i and o chains.
func probe(t *testing.T, st *firewall.HostState, stateless bool, r firewall.Rule, compat bool) []string {
	t.Helper()
	chains := func(rules []firewall.Rule) map[string]int {
		ps := &firewall.HostState{
			Options:       st.Options,
			AddressGroups: st.AddressGroups,
			GroupMembers:  st.GroupMembers,
			SecurityGroups: []firewall.SecurityGroup{
				{ID: "probe-group", Stateless: stateless, Rules: rules},
			},
			Ports: []firewall.Port{{ID: probeID, MAC: "fa:16:3e:ff:ff:ff", SecurityGroups: []string{"probe-group"}}},
		}
		ps.Options.NeutronCompat = compat
		rs, err := firewall.Compile(ps)
		if err != nil {
			t.Fatalf("probe %+v: %v", r, err)
		}
		count := map[string]int{}
		for _, tb := range []*firewall.Table{&rs.IPv4.Filter, &rs.IPv6.Filter} {
			for _, kind := range []string{"i", "o"} {
				c, _ := tb.Chain("neutron-openvswi-" + truncate(kind+probeID, 11))
				for _, l := range c.Rules {
					count[l]++
				}
			}
		}
		return count
	}
	with, without := chains([]firewall.Rule{r}), chains(nil)
	var added []string
	for l, n := range with {
		if n > without[l] {
			added = append(added, l)
		}
	}
	return added
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
