package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/capture"
	"github.com/moat-sg/moat/internal/hybrid"
)

func init() {
	var port, netns, vmNetns, physical, filter string
	var seconds int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "capture --port ID [--seconds N] [--filter BPF]",
		Short: "Watch every hop of a port's path at once and say where packets stop",
		Long: `capture listens at the same time on each hop of a port's path in the hybrid
layout — the VM's interface (when the VM is a lab namespace), the tap, the qbr
bridge, the qvb/qvo veth pair, br-int, and a physical interface if you name one —
for --seconds, then prints how many packets each hop saw and, flow by flow, where
they stopped. Packets seen on qvb but not on the tap (or the reverse) were dropped
by the host firewall: capture then prints the moat trace command that names the
rule. Run it in the host's namespace, or give --netns. Needs tcpdump.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(port) < 11 {
				return fmt.Errorf("--port %q: give the port id (at least its first 11 characters)", port)
			}
			if seconds < 1 || seconds > 3600 {
				return fmt.Errorf("--seconds %d: want 1..3600", seconds)
			}
			if err := capture.CheckTools(); err != nil {
				return err
			}
			ctx := cmd.Context()
			tap := hybrid.TapName(port)
			vmDev := ""
			if vmNetns == "" {
				var err error
				if vmNetns, vmDev, err = capture.VMSide(ctx, netns, tap); err != nil {
					return fmt.Errorf("find the port's tap %s: %w", tap, err)
				}
			} else {
				vmDev = "eth0"
			}
			hops := capture.Path(port, netns, vmNetns, vmDev, physical)
			fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %d hops for %ds...\n", len(hops), seconds)
			res := capture.Watch(ctx, capture.Tcpdump{}, hops, filter, time.Duration(seconds)*time.Second)
			rep := capture.Analyze(port, netns, res)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return capture.WriteText(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringVar(&port, "port", "", "port id")
	cmd.Flags().IntVar(&seconds, "seconds", 5, "how long to capture")
	cmd.Flags().StringVar(&filter, "filter", "", "tcpdump (BPF) filter, e.g. \"icmp or ip proto 4\"")
	cmd.Flags().StringVar(&netns, "netns", "", "the host's network namespace (where tap, qbr, qvb, qvo and br-int are); default: this one")
	cmd.Flags().StringVar(&vmNetns, "vm-netns", "", "the VM's namespace (default: found from the tap's veth peer, for lab VMs)")
	cmd.Flags().StringVar(&physical, "physical", "", "also watch this physical interface of the host")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	rootCmd.AddCommand(cmd)
}
