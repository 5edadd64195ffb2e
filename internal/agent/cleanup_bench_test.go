package agent

import (
	"net"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

// BenchmarkFlowsToForget measures the per-sync conntrack diff at 5,000
// ports: a sync that changed nothing, one that added a rule to an app
// group (500 port chains changed, nothing removed), and one that removed
// a member of a remote group (so every rule matching its set is looked
// at).
func BenchmarkFlowsToForget(b *testing.B) {
	w := workload.NewBench(5000)
	c := firewall.NewCompiler()
	old, err := c.Compile(w.State)
	if err != nil {
		b.Fatal(err)
	}
	addrs := map[string][]*net.IPNet{}
	for _, p := range w.State.Ports {
		for _, ip := range p.FixedIPs {
			addrs[p.ID] = append(addrs[p.ID], parseNet(ip))
		}
	}
	same, err := c.Compile(w.State)
	if err != nil {
		b.Fatal(err)
	}
	members := w.State.GroupMembers[w.Common]
	gone := members[0]
	w.State.GroupMembers[w.Common] = slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == gone })
	less, err := c.Compile(w.State)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		cur  *firewall.Ruleset
		old  *firewall.Ruleset
		want int
	}{{"unchanged", same, old, 0}, {"member-removed", less, old, 1}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if n := len(flowsToForget(bc.old, bc.cur, func() map[string][]*net.IPNet { return addrs })); (n == 0) != (bc.want == 0) {
					b.Fatalf("%d filters", n)
				}
			}
		})
	}
	// Each sync's previous ruleset is one the diff has not read yet (its
	// chains' specs are built on first use), as in the agent.
	b.Run("rule-added", func(b *testing.B) {
		prev := less
		port := 20000
		for b.Loop() {
			b.StopTimer()
			w.AddRule(w.Apps[0], port)
			port++
			cur, err := c.Compile(w.State)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if n := len(flowsToForget(prev, cur, func() map[string][]*net.IPNet { return addrs })); n != 0 {
				b.Fatalf("%d filters for an added rule", n)
			}
			prev = cur
		}
	})
}
