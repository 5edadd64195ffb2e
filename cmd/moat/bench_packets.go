package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/packetbench"
)

func init() {
	var ports []int
	var backends []string
	var repeat, seconds int
	var asJSON, logged bool
	var labName string
	cmd := &cobra.Command{
		Use:   "packets [--ports 0,1000,5000] [--backend none,iptables-legacy,iptables-nft,nftables] [--json]",
		Short: "Throughput and RTT between two lab VMs with N other ports enforced on the host (root)",
		Long: `packets measures what the firewall costs each packet. For every backend and size
it builds a lab (moat lab: a host namespace with userspace Open vSwitch and two VM
namespaces), lets ICMP and iperf3's port in, then enforces the two VMs' ports and N
synthetic ports of the same group with the agent's own code, and measures between the
VMs: RTT (20 pings 0.1 s apart, average) and TCP throughput (iperf3), --repeat times
each, medians reported. "none" is the lab's wiring with no rule at all;
"conntrack-only" (not in the default list) is a diagnostic: no rule but one that sends
every forwarded packet through connection tracking, the floor of any stateful firewall.

The synthetic ports sort before the VMs' ports: in Neutron's layout every packet walks
their physdev jumps first, as on a full host. One JSON object per backend and size
(backend, ports, mbit_s, rtt_ms, the runs, apply_ms) with --json; a table without.
Needs root, iperf3, ping, nft and Open vSwitch; the machine's own firewall is not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("moat bench packets needs root (it creates network namespaces)")
			}
			for _, b := range backends {
				if err := packetbench.ValidBackend(b); err != nil {
					return err
				}
			}
			for _, t := range packetbench.Tools {
				if _, err := exec.LookPath(t); err != nil {
					return fmt.Errorf("moat bench packets needs %s (apt-get install iperf3 iputils-ping nftables)", t)
				}
			}
			logf := func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			if !asJSON {
				fmt.Fprintf(out, "%-16s %6s %10s %8s %10s\n", "backend", "ports", "Mbit/s", "RTT ms", "apply ms")
			}
			// Rows are printed as they come: a run at 5,000 ports takes minutes.
			for _, b := range backends {
				for _, n := range ports {
					rows, err := packetbench.Run(cmd.Context(), packetbench.Options{
						Ports: []int{n}, Backends: []string{b}, Repeat: repeat, Seconds: seconds, Logged: logged, Name: labName, Log: logf})
					if err != nil {
						return err
					}
					for _, r := range rows {
						if asJSON {
							enc.Encode(r)
						} else {
							fmt.Fprintf(out, "%-16s %6d %10.1f %8.3f %10.0f\n", r.Backend, r.Ports, r.MbitS, r.RTTms, r.ApplyMs)
						}
					}
				}
			}
			return nil
		},
	}
	all := []string{packetbench.None}
	for _, b := range agent.Backends() {
		all = append(all, string(b))
	}
	cmd.Flags().IntSliceVar(&ports, "ports", []int{0, 1000, 5000}, "numbers of other ports enforced on the host")
	cmd.Flags().StringSliceVar(&backends, "backend", all, "backends: none (no rules), conntrack-only (diagnostic), iptables-legacy, iptables-nft, nftables")
	cmd.Flags().IntVar(&repeat, "repeat", 3, "ping and iperf3 runs per backend and size (medians reported)")
	cmd.Flags().IntVar(&seconds, "seconds", 3, "length of one iperf3 run")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per backend and size")
	cmd.Flags().StringVar(&labName, "lab-name", "mpkt", "name of the throw-away lab (its namespaces are NAME-host, NAME-vm1, ...)")
	cmd.Flags().BoolVar(&logged, "logged", false, "a network log object (event ALL) on every port, and the NFLOG reader running: the cost of security-group logging")
	benchCmd.AddCommand(cmd)
}
