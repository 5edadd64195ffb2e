package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/hybrid"
)

// plug and unplug are for hosts whose hypervisor creates the VM's tap
// (a libvirt hook can call them): plug gives the tap its Neutron name so
// that the agent connects it to the port's bridge once the port's rules
// are in place; unplug takes the port's wiring down.
func init() {
	var portID, tap string
	plug := &cobra.Command{
		Use:   "plug --port ID --tap DEV",
		Short: "Hand a hypervisor-created tap to the agent for a port",
		Long: `Rename DEV to the port's tap name (tap + port id[:11]) so that the agent of this host
connects it to the port's qbr bridge. The agent connects a tap only once the port's chains
exist, so a VM is never connected unfiltered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(portID) < 11 {
				return fmt.Errorf("--port %q: want a Neutron port id", portID)
			}
			// Renaming needs netlink only: br-int is the agent's to set up.
			if err := wiring.AdoptTap("", portID, tap); err != nil {
				return err
			}
			fmt.Printf("%s is %s; the agent connects it once port %s is filtered\n", tap, hybrid.TapName(portID), portID)
			return nil
		},
	}
	plug.Flags().StringVar(&portID, "port", "", "Neutron port id")
	plug.Flags().StringVar(&tap, "tap", "", "the tap device the hypervisor created")
	plug.MarkFlagRequired("port")
	plug.MarkFlagRequired("tap")

	var uPort, uBridge, uOVSDB string
	unplug := &cobra.Command{
		Use:   "unplug --port ID",
		Short: "Take a port's wiring down (the tap is detached, not deleted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := wiring.New(cmd.Context(), wiring.Config{Mode: uBridge, OVSDB: uOVSDB, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
			if err != nil {
				return err
			}
			defer w.Close()
			return w.Unplug(cmd.Context(), uPort)
		},
	}
	unplug.Flags().StringVar(&uPort, "port", "", "Neutron port id")
	unplug.Flags().StringVar(&uBridge, "bridge", wiring.ModeAuto, "br-int kind: ovs, linux or auto")
	unplug.Flags().StringVar(&uOVSDB, "ovsdb", "", "OVSDB to use (ovs-vsctl --db)")
	unplug.MarkFlagRequired("port")
	rootCmd.AddCommand(plug, unplug)
}
