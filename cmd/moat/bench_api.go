package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/apibench"
	"github.com/moat-sg/moat/internal/store"
)

// benchAPIFlags are the flags of `moat bench api`.
type benchAPIFlags struct {
	url        string
	db         string
	target     string
	rules      int
	listRules  int
	bulkBatch  int
	conc       int
	groups     int
	listRepeat int
	project    string
	serverPIDs []int
	timeout    time.Duration
	progress   int
	cleanup    bool
	cpuProfile string
	replicas   int
	replicaURL []string
}

func init() {
	var f benchAPIFlags
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Load-test a Neutron-compatible API: rule creates/s and list latency",
		Long: `Measure a Neutron v2.0 security-group API: --rules rule creates (one POST each,
--concurrency clients, spread over --groups groups of one fresh project whose
quotas are lifted first), then --list-repeat admin GETs of all rules and of all
groups with their embedded rules. With --list-rules above --rules, the rules
beyond --rules are created with bulk POSTs before listing.

Without --url the bench starts moat's API in this process on a free loopback
port over a fresh SQLite database (or --db). Identity is sent as
X-User-Id/X-Project-Id/X-Roles headers: run moat with --auth headers and
Neutron with NEUTRON_AUTH=headers.

Each result is one JSON line on stdout; progress and a summary go to stderr.
cpu_s is this process's CPU time (with an in-process server it includes the
server); server_cpu_s is that of the --server-pid processes and their
descendants.`,
		Example: `  moat bench api
  moat bench api --db postgres://moat:moat@127.0.0.1:55432/moat
  moat bench api --db postgres://moat:moat@127.0.0.1:55432/moat --replicas 2 --rules 5000 --list-repeat 0
  moat bench api --url http://127.0.0.1:9696 --target neutron --server-pid $(cat /tmp/neutron-ref/neutron.pid)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBenchAPI(ctx, &f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "Neutron API endpoint to measure, e.g. http://127.0.0.1:9696 (default: an in-process moat server)")
	fl.StringVar(&f.db, "db", "", "database of the in-process moat server (default: fresh SQLite in a temporary directory)")
	fl.StringVar(&f.target, "target", "", "name of the endpoint in the results (default: moat-sqlite, moat-postgres or the URL)")
	fl.IntVar(&f.rules, "rules", 10000, "rules to create one POST each (the timed create phase)")
	fl.IntVar(&f.listRules, "list-rules", 0, "rules to have created before the list phase; those beyond --rules are bulk-created (default: --rules)")
	fl.IntVar(&f.bulkBatch, "bulk-batch", 500, "rules per bulk POST when filling up to --list-rules")
	fl.IntVar(&f.conc, "concurrency", 4, "concurrent clients creating rules")
	fl.IntVar(&f.groups, "groups", 10, "security groups the rules are spread over")
	fl.IntVar(&f.listRepeat, "list-repeat", 20, "timed GETs of each list")
	fl.StringVar(&f.project, "project", "", "project id owning the rules (default: a fresh random one)")
	fl.IntSliceVar(&f.serverPIDs, "server-pid", nil, "pid of a server process to charge CPU time to, with its descendants (repeatable; e.g. neutron-server and the postmaster)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "timeout of each HTTP request")
	fl.IntVar(&f.progress, "progress-every", 1000, "creates between progress lines on stderr")
	fl.BoolVar(&f.cleanup, "cleanup", false, "delete the bench's groups and rules at the end")
	fl.IntVar(&f.replicas, "replicas", 1, "in-process moat servers on the one --db (PostgreSQL for more than 1); creates go round-robin over them")
	fl.StringSliceVar(&f.replicaURL, "replica-url", nil, "more endpoints of the --url API (server replicas on one database; repeatable): creates go round-robin over all")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (client and in-process servers) to this file")
	benchCmd.AddCommand(cmd)
}

// runBenchAPI runs the API benchmark, writing JSON lines to out and
// progress and a summary to errw.
func runBenchAPI(ctx context.Context, f *benchAPIFlags, out, errw io.Writer) error {
	if f.rules < 0 || f.listRules < 0 || f.listRepeat < 0 {
		return fmt.Errorf("--rules, --list-rules and --list-repeat must not be negative")
	}
	if f.conc < 1 || f.groups < 1 || f.bulkBatch < 1 || f.progress < 1 {
		return fmt.Errorf("--concurrency, --groups, --bulk-batch and --progress-every must be at least 1")
	}
	if f.url != "" && f.db != "" {
		return fmt.Errorf("--db configures the in-process server; it cannot be used with --url")
	}
	if f.replicas == 0 { // unset: one server
		f.replicas = 1
	}
	if f.replicas < 1 {
		return fmt.Errorf("--replicas must be at least 1")
	}
	if f.url != "" && f.replicas > 1 {
		return fmt.Errorf("--replicas starts in-process servers; it cannot be used with --url (list other endpoints with --replica-url)")
	}
	if f.url == "" && len(f.replicaURL) > 0 {
		return fmt.Errorf("--replica-url adds endpoints to --url")
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	url, target := f.url, f.target
	replicaURLs := f.replicaURL
	if url == "" {
		srvs, err := apibench.StartReplicas(ctx, f.db, f.replicas, errw)
		if err != nil {
			return fmt.Errorf("start in-process moat server: %w", err)
		}
		defer func() {
			for _, srv := range srvs {
				if err := srv.Close(); err != nil {
					fmt.Fprintln(errw, "moat bench api: stop in-process server:", err)
				}
			}
		}()
		url = srvs[0].URL
		for _, srv := range srvs[1:] {
			replicaURLs = append(replicaURLs, srv.URL)
		}
		if target == "" {
			target = srvs[0].Target()
		}
		for _, srv := range srvs {
			fmt.Fprintf(errw, "in-process moat server on %s, database %s\n", srv.URL, store.Redact(srv.DB))
		}
	}
	cfg := apibench.Config{
		URL: url, ReplicaURLs: replicaURLs, Target: target, Rules: f.rules, ListRules: f.listRules, BulkBatch: f.bulkBatch,
		Concurrency: f.conc, Groups: f.groups, ListRepeat: f.listRepeat, Project: f.project,
		ServerPIDs: f.serverPIDs, Timeout: f.timeout, Progress: errw, ProgressEvery: f.progress,
		Cleanup: f.cleanup,
	}
	enc := json.NewEncoder(out)
	var results []apibench.Result
	var encErr error
	err := apibench.Run(ctx, cfg, func(r apibench.Result) {
		results = append(results, r)
		if e := enc.Encode(r); e != nil && encErr == nil {
			encErr = fmt.Errorf("write result: %w", e)
		}
	})
	if len(results) > 0 {
		apibench.Summarize(errw, results)
	}
	if err != nil {
		return err
	}
	return encErr
}
