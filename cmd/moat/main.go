// Command moat is OpenStack Neutron's security groups as one binary: the
// Neutron v2.0 API server, the host agent, and the tools that explain drops.
//
// Each subcommand lives in its own file and registers itself on rootCmd in an
// init function; this file holds only the root and main.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "moat",
	Short:         "Neutron security groups as one fast, dependable binary",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// benchCmd groups the benchmarks (`moat bench compile|api|...`).
var benchCmd = &cobra.Command{
	Use:   "bench",
	Short: "Measure moat's speed (results are JSON lines)",
}

func init() {
	rootCmd.AddCommand(benchCmd)
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "moat:", err)
		os.Exit(1)
	}
}
