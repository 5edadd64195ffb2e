package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/trace"
)

func init() {
	rootCmd.AddCommand(newExplainCmd())
}

func newExplainCmd() *cobra.Command {
	var src ruleSource
	var port, tap string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain --port ID",
		Short: "List a port's rules with their packet and byte counters and what each stands for",
		Long: `explain prints the rules of one port as a table: its conntrack zone rules
(raw), its dispatch rules in the shared chains, and its i (to the VM), o (from
the VM) and s (anti-spoofing) chains in full, each with its packet and byte
counters and its meaning: which security group rule (with its id when moat
compiled the rules), or which built-in protection. Run it before and after
sending traffic to see which rule the traffic hits.

The rules are read as for moat trace: from the kernel (iptables-save -c,
--netns NAME for another namespace), from files (--iptables-save FILE ...),
or compiled from a spec (--input FILE, counters are then zero). On a host of
the nftables backend (--backend auto finds it, or --backend nftables, or
--nft-json FILE) it lists the port's forward-map and zone-map entries and its
i and o chains with their counters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if src.src.NFT(cmd.Context()) {
				h, where, err := src.loadNFT(cmd.Context(), cmd.InOrStdin(), port)
				if err != nil {
					return err
				}
				ex, err := h.Explain(port, tap)
				if err != nil {
					return err
				}
				if asJSON {
					return writeIndentedJSON(cmd.OutOrStdout(), ex)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rules:  %s\n", where)
				return trace.WriteExplainText(cmd.OutOrStdout(), ex)
			}
			h, where, err := src.load(cmd.Context(), cmd.InOrStdin(), port, false)
			if err != nil {
				return err
			}
			ex, err := h.Explain(port, tap)
			if err != nil {
				return err
			}
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), ex)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rules:  %s\n", where)
			return trace.WriteExplainText(cmd.OutOrStdout(), ex)
		},
	}
	src.flags(cmd)
	cmd.Flags().StringVar(&port, "port", "", "port id, or a unique prefix of one")
	cmd.Flags().StringVar(&tap, "tap", "", "the port's tap device, instead of --port")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the table as JSON")
	return cmd
}
