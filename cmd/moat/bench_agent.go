package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/agentbench"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/syncbench"
)

func init() {
	var ports []int
	var backends []string
	var repeat, changes int
	var skipSyncer, skipLatency bool
	var feeds []string
	cmd := &cobra.Command{
		Use:   "agent [--ports 1000,5000] [--backend iptables-nft,iptables-legacy,nftables] [--changes 50]",
		Short: "Time the agent against the kernel (root; scratch network namespaces)",
		Long: `agent measures the host agent against real iptables and ipset in scratch network
namespaces (it needs root; the machine's own firewall is not touched):

  - the iptables syncer on the compiler benchmark's workload: a full apply into an
    empty namespace next to a bare iptables-restore of the same rules, one rule
    change, a no-op, a restart, a drift check (one JSON line per phase);
  - with --backend nftables, the nftables syncer as the agent drives it (render,
    plan, one nft -f) on the same workload, each transaction it commits replayed
    by a bare nft -f into a namespace holding the same state (full apply, one
    rule, a port added), and a no-op, a restart, a drift check;
  - API call to enforced-in-kernel latency: an API server and an agent following
    its watch stream (--feed store: reading the server's store directly); rules
    are created over HTTP and the clock stops when the agent's apply of that
    revision returned (p50, p99, max over --changes rules), split into the time
    until the agent's sync began and the sync; then, for the iptables backends,
    bare iptables-restore runs into the same ruleset (an empty transaction, one
    rule, the last change again) for the floor the kernel and the tool set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("moat bench agent needs root (it creates network namespaces)")
			}
			var bs []iptables.Backend // the iptables syncer's
			var all []agent.Backend
			nft := false
			for _, b := range backends {
				pb, err := agent.ParseBackend(b)
				if err != nil {
					return err
				}
				all = append(all, pb)
				if pb == agent.NFTablesLayout {
					nft = true
				} else {
					bs = append(bs, iptables.Backend(pb))
				}
			}
			logf := func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
			out := json.NewEncoder(cmd.OutOrStdout())
			if !skipSyncer && len(bs) > 0 {
				rows, err := syncbench.Run(cmd.Context(), syncbench.Options{Ports: ports, Backends: bs, Repeat: repeat, Log: logf})
				if err != nil {
					return err
				}
				for _, r := range rows {
					out.Encode(r.Line())
				}
			}
			if !skipSyncer && nft {
				rows, err := syncbench.RunNFT(cmd.Context(), syncbench.Options{Ports: ports, Repeat: repeat, Log: logf})
				if err != nil {
					return err
				}
				for _, r := range rows {
					out.Encode(r.Line())
				}
			}
			if !skipLatency {
				for _, n := range ports {
					for _, b := range all {
						for _, feed := range feeds {
							res, err := agentbench.Run(cmd.Context(), agentbench.Options{Backend: b, Ports: n, Changes: changes, Feed: feed, Log: logf})
							if err != nil {
								return err
							}
							out.Encode(map[string]any{"bench": "api_to_kernel", "result": res})
						}
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().IntSliceVar(&ports, "ports", []int{1000, 5000}, "host sizes")
	cmd.Flags().StringSliceVar(&backends, "backend", []string{string(iptables.NFT), string(iptables.Legacy)}, "backends: iptables-nft, iptables-legacy, nftables")
	cmd.Flags().IntVar(&repeat, "repeat", 3, "syncer runs per size and backend (medians reported)")
	cmd.Flags().IntVar(&changes, "changes", 50, "rules created for the latency measurement")
	cmd.Flags().StringSliceVar(&feeds, "feed", []string{agentbench.FeedWatch}, "the latency's agent feeds: watch (the stream, as moat agent --server), store (the deprecated --db)")
	cmd.Flags().BoolVar(&skipSyncer, "skip-syncer", false, "skip the syncer phases")
	cmd.Flags().BoolVar(&skipLatency, "skip-latency", false, "skip the API-to-kernel latency")
	benchCmd.AddCommand(cmd)
}
