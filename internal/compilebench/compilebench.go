// Package compilebench times the firewall compiler in-process on the
// workload of Neutron's reference benchmark (internal/firewall/workload,
// shared/reference/neutron/bench.py): `moat bench compile`. Like the other
// benchmark harnesses (see internal/syncbench) it lives outside the
// package it measures.
package compilebench

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/moat-sg/moat/internal/cputime"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

// MaxPorts is the largest host the workload can build: it addresses one
// /16 per 65536 ports, and conntrack zones end at 65535.
const MaxPorts = 60000

// CheckPorts says whether the workload can build a host of n ports.
func CheckPorts(n int) error {
	if n < 1 || n > MaxPorts {
		return fmt.Errorf("want 1..%d (the bench addresses one /16 per 65536 ports, zones end at 65535)", MaxPorts)
	}
	return nil
}

// Result is one host size: medians over Repeat runs, printed as one JSON
// line. *MS is wall time, *CPUMS the process's CPU time (user+system,
// garbage collection included). RulesIPv4/RulesIPv6 count the -A lines
// after both changes, as bench.py does.
type Result struct {
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

// Measure runs the phases repeat times on a host of n ports and returns
// the medians. Phases: prepare (compile every port on a fresh host), one
// rule added to "common" (every port affected), one rule added to one app
// group (a tenth of the ports), and a compile with nothing changed (noop).
func Measure(n, repeat int) (Result, error) {
	if err := CheckPorts(n); err != nil {
		return Result{}, err
	}
	if repeat < 1 {
		return Result{}, fmt.Errorf("repeat %d: want at least 1", repeat)
	}
	var runs []Result
	for i := 0; i < repeat; i++ {
		r, err := once(n)
		if err != nil {
			return Result{}, err
		}
		runs = append(runs, r)
	}
	res := runs[0]
	median := func(get func(Result) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = get(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	res.PrepareMS = median(func(r Result) float64 { return r.PrepareMS })
	res.RuleChangeAllMS = median(func(r Result) float64 { return r.RuleChangeAllMS })
	res.RuleChangeAppMS = median(func(r Result) float64 { return r.RuleChangeAppMS })
	res.PrepareCPUMS = median(func(r Result) float64 { return r.PrepareCPUMS })
	res.RuleChangeAllCPUMS = median(func(r Result) float64 { return r.RuleChangeAllCPUMS })
	res.RuleChangeAppCPUMS = median(func(r Result) float64 { return r.RuleChangeAppCPUMS })
	res.NoopMS = median(func(r Result) float64 { return r.NoopMS })
	res.NoopCPUMS = median(func(r Result) float64 { return r.NoopCPUMS })
	res.Repeat = repeat
	return res, nil
}

// once is one run of every phase, with one Compiler, as an agent would,
// feeding zones back.
func once(n int) (Result, error) {
	b := workload.NewBench(n)
	res := Result{Ports: n, GOMAXPROCS: runtime.GOMAXPROCS(0)}
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
	c, _ := cputime.Self()
	return c
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
