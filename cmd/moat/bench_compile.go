package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/compilebench"
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
				if err := compilebench.CheckPorts(n); err != nil {
					return fmt.Errorf("--ports %d: %w", n, err)
				}
			}
			return benchCompile(cmd.OutOrStdout(), ports, repeat)
		},
	}
	cmd.Flags().IntSliceVar(&ports, "ports", nil, "number of ports (repeat the flag or give a comma list)")
	cmd.Flags().IntVar(&repeat, "repeat", 5, "runs per port count; the median is reported")
	return cmd
}

// benchCompile prints one JSON line per host size.
func benchCompile(w io.Writer, ports []int, repeat int) error {
	enc := json.NewEncoder(w)
	for _, n := range ports {
		res, err := compilebench.Measure(n, repeat)
		if err != nil {
			return fmt.Errorf("%d ports: %w", n, err)
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return nil
}
