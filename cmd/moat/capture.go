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
	var peerPort, peerNetns, peerVMNetns, peerPhysical string
	var seconds int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "capture --port ID [--peer-port ID --peer-netns NS] [--seconds N] [--filter BPF]",
		Short: "Watch every hop of a port's path at once and say where packets stop",
		Long: `capture listens at the same time on each hop of a port's path in the hybrid
layout — the VM's interface (when the VM is a lab namespace), the tap, the qbr
bridge, the qvb/qvo veth pair, br-int, and a physical interface if you name one —
for --seconds, then prints how many packets each hop saw and, flow by flow, where
they stopped. Packets seen on qvb but not on the tap (or the reverse) were dropped
by the host firewall: capture then prints the moat trace command that names the
rule. Run it in the host's namespace, or give --netns. Needs tcpdump.

Between two hosts, --peer-port names the port at the other end (the receiver)
and --peer-netns its host's namespace (a lab host; on real hosts run capture on
each): the path is then the sender's hops, its uplink (--physical), the
receiver's uplink (--peer-physical) and the receiver's hops, the uplinks showing
the provider VLAN tag each frame carried, and the verdict names the host and the
hop where packets stop.`,
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
			side := func(port, netns, vmNetns, physical string) (capture.Side, error) {
				s := capture.Side{Host: netns, Netns: netns, PortID: port, VMNetns: vmNetns, Physical: physical}
				if s.Host == "" {
					s.Host = "local"
				}
				if vmNetns != "" {
					s.VMDev = "eth0"
					return s, nil
				}
				tap := hybrid.TapName(port)
				var err error
				if s.VMNetns, s.VMDev, err = capture.VMSide(ctx, netns, tap); err != nil {
					return s, fmt.Errorf("find the port's tap %s: %w", tap, err)
				}
				return s, nil
			}
			a, err := side(port, netns, vmNetns, physical)
			if err != nil {
				return err
			}
			var hops []capture.Hop
			var b capture.Side
			if peerPort != "" {
				if len(peerPort) < 11 {
					return fmt.Errorf("--peer-port %q: give the port id (at least its first 11 characters)", peerPort)
				}
				if peerNetns == netns {
					return fmt.Errorf("--peer-netns: the peer's host must be another namespace than --netns (on one host, capture each port on its own)")
				}
				if physical == "" || peerPhysical == "" {
					return fmt.Errorf("between two hosts, name both uplinks: --physical and --peer-physical (e.g. eth1)")
				}
				if b, err = side(peerPort, peerNetns, peerVMNetns, peerPhysical); err != nil {
					return err
				}
				hops = capture.PathBetween(a, b)
			} else {
				hops = capture.Path(port, netns, a.VMNetns, a.VMDev, physical)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %d hops for %ds...\n", len(hops), seconds)
			res := capture.Watch(ctx, capture.Tcpdump{}, hops, filter, time.Duration(seconds)*time.Second)
			var rep capture.Report
			if peerPort != "" {
				rep = capture.AnalyzeBetween(a, b, res)
			} else {
				rep = capture.Analyze(port, netns, res)
			}
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
	cmd.Flags().StringVar(&peerPort, "peer-port", "", "the port at the other end, on another host: capture the path between the two")
	cmd.Flags().StringVar(&peerNetns, "peer-netns", "", "the peer port's host namespace")
	cmd.Flags().StringVar(&peerVMNetns, "peer-vm-netns", "", "the peer VM's namespace (default: found from its tap)")
	cmd.Flags().StringVar(&peerPhysical, "peer-physical", "", "the peer host's uplink (e.g. eth1)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	rootCmd.AddCommand(cmd)
}
