package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/firewall/spec"
)

func init() {
	rootCmd.AddCommand(newRenderCmd())
}

func newRenderCmd() *cobra.Command {
	var input, scenario, backend string
	var compat bool
	cmd := &cobra.Command{
		Use:   "render --input FILE [--scenario NAME]",
		Short: "Print the rules a fresh host holds for a scenario, as iptables-save, ip6tables-save and ipset save would",
		Long: `render compiles one scenario of a spec file in the Neutron reference harness's
format (shared/reference/neutron/sample.json) and prints what a fresh host holds
after every port in its "ports" list is prepared: three sections, introduced by
"# iptables-save", "# ip6tables-save" and "# ipset save", each in that tool's
own format (tables in legacy iptables order, zero counters, no date comments;
ipset entries sorted as ipset save -sorted prints them, without initval).
The scenario's options (enable_ipset, comment_iptables_rules) apply.

A port the compiler rejects (a bad id, MAC or address, a group it cannot
render, a name it would share with another port) is left out as an agent
leaves it out: no chains, its traffic dropped. render prints the rest and
exits non-zero, naming each rejected port and why.

--input - reads the spec from standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRender(cmd.OutOrStdout(), cmd.InOrStdin(), input, scenario, compat, backend)
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "spec file (JSON), - for standard input")
	cmd.Flags().StringVar(&scenario, "scenario", "", "scenario to render; required when the file holds several")
	cmd.Flags().BoolVar(&compat, "neutron-compat", false, "reproduce Neutron 21 exactly, including the bugs moat fixes (docs/compatibility.md)")
	cmd.Flags().StringVar(&backend, "backend", "iptables", "iptables (iptables-save, ip6tables-save and ipset save) or nftables (the nft -f script of moat's nftables tables, docs/nftables.md)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func runRender(w io.Writer, stdin io.Reader, input, scenario string, compat bool, backend string) error {
	if backend != "iptables" && backend != "nftables" {
		return fmt.Errorf("--backend %q: want iptables or nftables", backend)
	}
	file, err := spec.Load(stdin, input)
	if err != nil {
		return err
	}
	if scenario == "" && len(file.Scenarios) > 1 {
		return fmt.Errorf("%s holds %d scenarios, choose one with --scenario: %s",
			input, len(file.Scenarios), strings.Join(file.Names(), ", "))
	}
	st, name, err := file.CompileState(input, scenario, compat)
	if err != nil {
		return err
	}
	rs, err := firewall.Compile(st)
	if err != nil {
		return fmt.Errorf("scenario %s: %w", name, err)
	}
	// Rejected ports are left out of the output (their traffic is
	// dropped), which an agent would report per port; render prints the
	// rest and fails.
	rejected := rs.RejectedError()
	if backend == "nftables" {
		out, err := nftrender.Render(rs)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		script, err := nftables.Script(out)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		if _, err := w.Write(script); err != nil {
			return err
		}
		if rejected != nil {
			return fmt.Errorf("scenario %s: %w", name, rejected)
		}
		return nil
	}
	bw := bufio.NewWriter(w)
	sections := []struct {
		title string
		write func(io.Writer) error
	}{
		{"iptables-save", func(w io.Writer) error { return firewall.WriteSave(w, &rs.IPv4.Filter, &rs.IPv4.Raw) }},
		{"ip6tables-save", func(w io.Writer) error { return firewall.WriteSave(w, &rs.IPv6.Filter, &rs.IPv6.Raw) }},
		{"ipset save", func(w io.Writer) error { return firewall.WriteIPSetSave(w, rs.IPSets) }},
	}
	for _, s := range sections {
		fmt.Fprintf(bw, "# %s\n", s.title)
		if err := s.write(bw); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if rejected != nil {
		return fmt.Errorf("scenario %s: %w", name, rejected)
	}
	return nil
}
