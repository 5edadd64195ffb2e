package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/lab"
)

func init() {
	labCmd := &cobra.Command{
		Use:   "lab",
		Short: "Throw-away VMs (network namespaces) wired to ports of a moat of their own",
		Long: `moat lab builds, in network namespaces, a host running moat allinone with a
private Open vSwitch (userspace datapath) as br-int, and "VMs" whose eth0 is
wired through a tap to a port created through the API. Every port is in the
security group "lab", which like every new group allows only egress: the VMs
cannot reach each other until a rule says so. Nothing is configured in the
initial namespace. Needs root, iproute2, openvswitch-switch and ethtool.`,
	}

	var vms, hosts, replicas int
	var asJSON, keep bool
	var backend, stateDir string
	var timeout time.Duration
	up := &cobra.Command{
		Use:   "up NAME",
		Short: "Build lab NAME: namespaces NAME-host and NAME-vm1..N",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg := lab.Config{
				Name: args[0], VMs: vms, Hosts: hosts, Replicas: replicas, Backend: backend, StateDir: stateDir,
				Timeout: timeout, KeepOnFailure: keep, Progress: cmd.ErrOrStderr(),
			}
			l, err := lab.Up(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(l)
			}
			printLabSummary(cmd.OutOrStdout(), args[0], l)
			return nil
		},
	}
	up.Flags().IntVar(&vms, "vms", 2, "number of VMs (namespaces NAME-vm1..N)")
	up.Flags().IntVar(&replicas, "replicas", 1, "moat server replicas of a lab of several hosts (on a PostgreSQL the lab starts, listening on a unix socket in its state directory); every agent knows them all")
	up.Flags().IntVar(&hosts, "hosts", 1, "number of hosts: 1 runs moat allinone in NAME-host; more run moat server in NAME-api and an agent on each of NAME-host1..N, the VMs spread over them and joined by provider VLAN 102 through a switch namespace NAME-sw")
	up.Flags().BoolVar(&asJSON, "json", false, "print the API URL and namespace, the hosts and, per VM, its namespace, host, port id, IP, MAC and tap as JSON")
	up.Flags().StringVar(&backend, "backend", string(lab.DefaultBackend), "firewall backend of the agent: "+string(iptables.Legacy)+", "+string(iptables.NFT)+" or nftables")
	up.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for the API and for every port to become ACTIVE")
	up.Flags().BoolVar(&keep, "keep-on-failure", false, "leave a lab that failed to come up in place, for inspection")
	up.Flags().StringVar(&stateDir, "state-dir", "", "state directory (default /run/moat-lab/NAME)")

	var downStateDir string
	down := &cobra.Command{
		Use:   "down NAME",
		Short: "Stop lab NAME's moat and Open vSwitch and delete its namespaces and state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.Down(cmd.Context(), args[0], downStateDir)
		},
	}
	down.Flags().StringVar(&downStateDir, "state-dir", "", "state directory (default /run/moat-lab/NAME)")

	labCmd.AddCommand(up, down)
	rootCmd.AddCommand(labCmd)
}

func printLabSummary(w io.Writer, name string, l *lab.Lab) {
	fmt.Fprintf(w, "lab %s is up: the Neutron API is %s inside namespace %s (state in %s)\n", name, l.API, l.APINetns, l.StateDir)
	if len(l.Replicas) > 1 {
		fmt.Fprintf(w, "server replicas (one PostgreSQL):")
		for _, r := range l.Replicas {
			fmt.Fprintf(w, " %s", r)
		}
		fmt.Fprintln(w)
	}
	if len(l.Hosts) > 1 {
		fmt.Fprintf(w, "hosts (each an agent and an Open vSwitch with br-int and br-eth1 on the VLAN trunk):")
		for _, h := range l.Hosts {
			fmt.Fprintf(w, " %s", h.Netns)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n  %-14s %-15s %-17s %-14s %-14s %s\n", "VM (netns)", "IP", "MAC", "host", "tap", "port")
	for _, v := range l.VMs {
		fmt.Fprintf(w, "  %-14s %-15s %-17s %-14s %-14s %s\n", v.Netns, v.IP, v.MAC, v.Host, v.Tap, v.PortID)
	}
	osc := fmt.Sprintf("ip netns exec %s openstack --os-auth-type none --os-endpoint %s", l.APINetns, l.API)
	save := "nft list ruleset"
	if b := iptables.Backend(l.Backend); b.Valid() {
		save = b.Command(iptables.IPv4, "save")
	}
	fmt.Fprintf(w, "\nEvery port is in security group %q, which allows only egress: the VMs cannot reach\neach other until a rule says so. Try:\n\n", lab.GroupName)
	if len(l.VMs) >= 2 {
		a, b := l.VMs[0], l.VMs[1]
		fmt.Fprintf(w, "  ip netns exec %s ping -c1 -W1 %s          # dropped\n", a.Netns, b.IP)
		fmt.Fprintf(w, "  %s security group rule create %s --protocol icmp\n", osc, lab.GroupName)
		fmt.Fprintf(w, "  ip netns exec %s ping -c1 -W1 %s          # answered\n", a.Netns, b.IP)
	} else {
		fmt.Fprintf(w, "  %s security group rule create %s --protocol icmp\n", osc, lab.GroupName)
	}
	fmt.Fprintf(w, "  %s port list\n", osc)
	host := l.Hosts[0].Netns
	fmt.Fprintf(w, "  ip netns exec %s %s       # the rules the agent applied\n", host, save)
	fmt.Fprintf(w, "\nTear it down with: moat lab down %s\n", name)
}
