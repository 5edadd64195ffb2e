package firewall_test

import (
	"fmt"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

// The phases of the Neutron reference benchmark (bench.py), compile only:
// prepare every port on a fresh host, then add one rule to the group every
// port carries, or to a group a tenth of the ports carry.

func BenchmarkPrepare(b *testing.B) {
	for _, n := range []int{100, 500, 1000, 5000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			w := workload.NewBench(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := firewall.NewCompiler().Compile(w.State); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRuleChangeAll(b *testing.B) {
	benchmarkRuleChange(b, func(w *workload.Bench) string { return w.Common })
}
func BenchmarkRuleChangeApp(b *testing.B) {
	benchmarkRuleChange(b, func(w *workload.Bench) string { return w.Apps[0] })
}

func benchmarkRuleChange(b *testing.B, group func(*workload.Bench) string) {
	for _, n := range []int{100, 500, 1000, 5000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			w := workload.NewBench(n)
			c := firewall.NewCompiler()
			rs, err := c.Compile(w.State)
			if err != nil {
				b.Fatal(err)
			}
			w.State.Zones = rs.ZoneAssignments
			port := 10000
			b.ReportAllocs()
			for b.Loop() {
				// Each iteration adds a new rule, so every compile has a
				// real change to process.
				port++
				w.AddRule(group(w), port)
				if _, err := c.Compile(w.State); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWithLogging is what security-group logging adds to a compile:
// the log rules of every port of the host (accepts and drops), after a
// compile that found nothing changed (the agent's steady state).
func BenchmarkWithLogging(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			w := workload.NewBench(n)
			rs, err := firewall.Compile(w.State)
			if err != nil {
				b.Fatal(err)
			}
			var ports []firewall.LogPort
			for _, p := range w.State.Ports {
				ports = append(ports, firewall.LogPort{PortID: p.ID, Accept: true, Drop: true})
			}
			o := firewall.LogOptions{Group: 27, Rate: 100, Burst: 25}
			b.Run("fresh", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, index := firewall.WithLogging(rs, ports, o); len(index) == 0 {
						b.Fatal("no log rule")
					}
				}
			})
			b.Run("cached", func(b *testing.B) { // an agent's sync after a change elsewhere
				var lc firewall.LogCache
				lc.WithLogging(rs, ports, o)
				b.ReportAllocs()
				for b.Loop() {
					if _, index := lc.WithLogging(rs, ports, o); len(index) == 0 {
						b.Fatal("no log rule")
					}
				}
			})
		})
	}
}
