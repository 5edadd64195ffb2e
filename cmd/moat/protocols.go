package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/trace"
)

func init() {
	rootCmd.AddCommand(newProtocolsCmd())
}

func newProtocolsCmd() *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "protocols [--all]",
		Short: "The IP protocol numbers with IANA's, Neutron's and iptables' names, and where they disagree",
		Long: `protocols prints the IP protocol table: the number, IANA's keyword, the
names Neutron's API accepts, how iptables-save spells -p (the first name
/etc/protocols gives the number on Debian 12), and notes where the names
disagree. The one that matters most: Neutron's API name ipip is protocol 4
(IP-in-IP), but /etc/protocols, and so iptables' -p ipip, says ipip is 94;
4 is ipencap there. Give protocols to Neutron as numbers where in doubt.

Without --all only numbers with a name in Neutron or /etc/protocols (or a
note) are listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := trace.Protocols(all)
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tIANA\tNEUTRON API\tIPTABLES -p\tNOTE")
			for _, p := range rows {
				fmt.Fprintln(tw, strings.Join(p.ProtocolRowText(), "\t"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list all 256 numbers")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the table as JSON")
	return cmd
}
