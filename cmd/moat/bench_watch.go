package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/pgcluster"
	"github.com/moat-sg/moat/internal/watchbench"
)

func init() {
	var cfg watchbench.Config
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch [--agents 100] [--replicas 2] [--db URL] [--json]",
		Short: "Many agents on the server's watch streams: change-to-applied latency, bytes, restarts, a replica killed",
		Long: `watch runs --agents agents — the real agent loop and watch client with fake
dataplanes, each a host with --ports ports — against --replicas moat servers in
this process, behind a small load balancer, over one database. It measures an
API change (a rule created in one of --groups groups) until every agent with a
port in that group applied it (p50, p99, max; pairs missed), the bytes a host
receives per change (hosts of the last group are never concerned: they should
get nothing), the heap per watch, every agent restarted at once (snapshots
counted), with two replicas or more a replica killed under its agents (they
resume on another without a snapshot), one host cut off while its group changes
and the change log is compacted past it (it must resync), and 4 writers
committing 40 rules with random delays inside their transactions (every host's
view must then equal the database's: no revision lost).

Several replicas need PostgreSQL: without --db, watch starts a private
PostgreSQL cluster of its own (root, Debian's postgresql package) and removes
it afterwards. One replica without --db runs on a temporary SQLite file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Log = func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
			if cfg.DB == "" && cfg.Replicas > 1 {
				cfg.Log("watch bench: starting a private PostgreSQL cluster")
				c, err := pgcluster.Start()
				if err != nil {
					return fmt.Errorf("%d replicas need PostgreSQL: give --db postgres://..., or run as root with postgresql installed: %w", cfg.Replicas, err)
				}
				defer c.Stop()
				if cfg.DB, err = c.NewDatabase(ctx); err != nil {
					return err
				}
			}
			res, err := watchbench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d agents (%d ports each, %d groups) on %d replica(s), %s\n", res.Agents, res.Ports, res.Groups, res.Replicas, res.DB)
			fmt.Fprintf(w, "  first sync of every agent   %.2f s (setup %.1f s), heap %.0f KB per watch (server and agent in one process)\n", res.FirstSyncSecond, res.SetupSeconds, res.HeapPerWatchKB)
			fmt.Fprintf(w, "  change -> applied           p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d changes x %.1f hosts; %d missed\n",
				res.ChangeP50Ms, res.ChangeP99Ms, res.ChangeMaxMs, res.Changes, res.InterestedHostsPerChange, res.Missed)
			fmt.Fprintf(w, "  bytes per change and host   %.0f to a host it concerns, %.1f to one it does not\n", res.BytesPerChangeInterested, res.BytesPerChangeUninterested)
			fmt.Fprintf(w, "  one reader stalled          the others' p99 %.1f ms (%d missed); it caught up %.1f ms after reading again, %d snapshot(s)\n",
				res.StalledOthersP99Ms, res.StalledChangesMissed, res.StalledCaughtUpMs, res.StalledSnapshots)
			fmt.Fprintf(w, "  all agents restarted        synced again in %.2f s, %d snapshots\n", res.RestartAllSeconds, res.RestartSnapshots)
			if res.Replicas > 1 {
				fmt.Fprintf(w, "  a replica killed            %d resumes, %d snapshots; the next change applied within %.1f ms\n", res.KillReplicaResumes, res.KillReplicaSnapshots, res.AfterKillMaxMs)
			}
			fmt.Fprintf(w, "  a host away past compaction %d resync(s), the changes it missed enforced %.2f s after it was back\n", res.CompactResyncs, res.CompactRecoveredS)
			fmt.Fprintf(w, "  concurrent late commits     %d writes, %d host(s) whose view differs from the database\n", res.ConcurrentWrites, res.LostHosts)
			return nil
		},
	}
	cmd.Flags().IntVar(&cfg.Agents, "agents", 100, "agents (hosts)")
	cmd.Flags().IntVar(&cfg.Replicas, "replicas", 2, "moat servers over the database")
	cmd.Flags().StringVar(&cfg.DB, "db", "", "database URL (default: a private PostgreSQL, or SQLite for one replica)")
	cmd.Flags().IntVar(&cfg.Ports, "ports", 5, "ports per host")
	cmd.Flags().IntVar(&cfg.Groups, "groups", 10, "security groups (a host's ports are in one; the last group gets no change)")
	cmd.Flags().IntVar(&cfg.Changes, "changes", 100, "rules created, one at a time")
	cmd.Flags().DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "how long one change may take to reach every interested agent")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	benchCmd.AddCommand(cmd)
}
