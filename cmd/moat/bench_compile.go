package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/apibench"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

func init() {
	benchCmd.AddCommand(newBenchCompileCmd())
}

func newBenchCompileCmd() *cobra.Command {
	var ports []int
	var repeat int
	cmd := &cobra.Command{
		Use:   "compile --ports N [--ports M ...]",
		Short: "Time the firewall compiler on the Neutron reference benchmark's workload",
		Long: `compile times the firewall compiler in-process on the workload of Neutron's
reference benchmark (shared/reference/neutron/bench.py): 11 groups of 10 rules,
every port in "common" and one of 10 app groups, 5 members per group elsewhere,
ipsets on. Phases: prepare (compile every port on a fresh host), one rule added
to "common" (every port affected), one rule added to one app group (a tenth of
the ports), and a compile with nothing changed (noop). Each result is the median of --repeat runs; *_ms is wall time,
*_cpu_ms the process's CPU time (user+system, garbage collection included).
rules_ipv4/rules_ipv6 count the -A lines after both changes, as bench.py does.
One JSON object per line and port count.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ports) == 0 {
				return fmt.Errorf("give at least one --ports N")
			}
			if repeat < 1 {
				return fmt.Errorf("--repeat must be at least 1")
			}
			for _, n := range ports {
				if n < 1 || n > 60000 {
					return fmt.Errorf("--ports %d: want 1..60000 (the bench addresses one /16 per 65536 ports, zones end at 65535)", n)
				}
			}
			return benchCompile(cmd.OutOrStdout(), ports, repeat)
		},
	}
	cmd.Flags().IntSliceVar(&ports, "ports", nil, "number of ports (repeat the flag or give a comma list)")
	cmd.Flags().IntVar(&repeat, "repeat", 5, "runs per port count; the median is reported")
	return cmd
}

// compileResult is one line of output.
type compileResult struct {
	Ports              int     `json:"ports"`
	RulesIPv4          int     `json:"rules_ipv4"`
	RulesIPv6          int     `json:"rules_ipv6"`
	IPSets             int     `json:"ipsets"`
	PrepareMS          float64 `json:"prepare_ms"`
	RuleChangeAllMS    float64 `json:"rule_change_all_ms"`
	RuleChangeAppMS    float64 `json:"rule_change_app_ms"`
	PrepareCPUMS       float64 `json:"prepare_cpu_ms"`
	RuleChangeAllCPUMS float64 `json:"rule_change_all_cpu_ms"`
	RuleChangeAppCPUMS float64 `json:"rule_change_app_cpu_ms"`
	NoopMS             float64 `json:"noop_ms"`
	NoopCPUMS          float64 `json:"noop_cpu_ms"`
	PortsRecompiledAll int     `json:"ports_recompiled_all"`
	PortsRecompiledApp int     `json:"ports_recompiled_app"`
	Repeat             int     `json:"repeat"`
	GOMAXPROCS         int     `json:"gomaxprocs"`
}

func benchCompile(w io.Writer, ports []int, repeat int) error {
	enc := json.NewEncoder(w)
	for _, n := range ports {
		var runs []compileResult
		for i := 0; i < repeat; i++ {
			r, err := benchCompileOnce(n)
			if err != nil {
				return fmt.Errorf("%d ports: %w", n, err)
			}
			runs = append(runs, r)
		}
		res := runs[0]
		median := func(get func(compileResult) float64) float64 {
			xs := make([]float64, len(runs))
			for i, r := range runs {
				xs[i] = get(r)
			}
			slices.Sort(xs)
			return xs[len(xs)/2]
		}
		res.PrepareMS = median(func(r compileResult) float64 { return r.PrepareMS })
		res.RuleChangeAllMS = median(func(r compileResult) float64 { return r.RuleChangeAllMS })
		res.RuleChangeAppMS = median(func(r compileResult) float64 { return r.RuleChangeAppMS })
		res.PrepareCPUMS = median(func(r compileResult) float64 { return r.PrepareCPUMS })
		res.RuleChangeAllCPUMS = median(func(r compileResult) float64 { return r.RuleChangeAllCPUMS })
		res.RuleChangeAppCPUMS = median(func(r compileResult) float64 { return r.RuleChangeAppCPUMS })
		res.NoopMS = median(func(r compileResult) float64 { return r.NoopMS })
		res.NoopCPUMS = median(func(r compileResult) float64 { return r.NoopCPUMS })
		res.Repeat = repeat
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return nil
}

func benchCompileOnce(n int) (compileResult, error) {
	b := workload.NewBench(n)
	res := compileResult{Ports: n, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	c := firewall.NewCompiler()
	var rs *firewall.Ruleset
	phase := func(wall, cpu *float64) error {
		// Start every phase from a clean heap, so that one phase's garbage
		// is not collected on the next one's time.
		runtime.GC()
		c0 := cpuTime()
		t0 := time.Now()
		var err error
		rs, err = c.Compile(b.State)
		*wall = ms(time.Since(t0))
		*cpu = ms(cpuTime() - c0)
		if err == nil {
			b.State.Zones = rs.ZoneAssignments
		}
		return err
	}
	if err := phase(&res.PrepareMS, &res.PrepareCPUMS); err != nil {
		return res, err
	}
	b.AddRule(b.Common, 5555)
	if err := phase(&res.RuleChangeAllMS, &res.RuleChangeAllCPUMS); err != nil {
		return res, err
	}
	res.PortsRecompiledAll = c.Stats().PortsRecompiled
	b.AddRule(b.Apps[0], 5556)
	if err := phase(&res.RuleChangeAppMS, &res.RuleChangeAppCPUMS); err != nil {
		return res, err
	}
	res.PortsRecompiledApp = c.Stats().PortsRecompiled
	if err := phase(&res.NoopMS, &res.NoopCPUMS); err != nil {
		return res, err
	}
	res.RulesIPv4 = rs.IPv4.Filter.RuleCount() + rs.IPv4.Raw.RuleCount()
	res.RulesIPv6 = rs.IPv6.Filter.RuleCount() + rs.IPv6.Raw.RuleCount()
	res.IPSets = len(rs.IPSets)
	return res, nil
}

// cpuTime is the CPU time this process used so far (all threads), 0 if
// it cannot be read.
func cpuTime() time.Duration {
	c, _ := apibench.SelfCPU()
	return c
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
