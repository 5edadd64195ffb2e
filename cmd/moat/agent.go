package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// agentFlags are the flags of `moat agent` (and `moat allinone`).
type agentFlags struct {
	host           string
	backend        string
	bridge         string
	ovsdb          string
	datapathType   string
	bridgeMappings string
	metricsListen  string
	noIPSet        bool
	noComments     bool
	checkInterval  time.Duration
	pollInterval   time.Duration
	// Security-group logging (docs/logging.md).
	logGroup   uint16
	logRate    uint32
	logBurst   uint32
	logFile    string
	noLogging  bool
	logServers []string // where events are posted (the --server replicas), none: nowhere
	logToken   func() string
}

// register adds the flags; defaultBackend is iptables-nft for `moat agent`
// (Neutron's layout, as on the hosts it replaces) and nftables for
// allinone (docs/agent.md, "Which backend by default").
func (f *agentFlags) register(cmd *cobra.Command, defaultBackend agent.Backend) {
	host, _ := os.Hostname()
	cmd.Flags().StringVar(&f.host, "host", host, "this host's name: the agent enforces the ports whose binding:host_id is this")
	cmd.Flags().StringVar(&f.backend, "backend", string(defaultBackend), "firewall backend: iptables-legacy, iptables-nft (Neutron's iptables layout) or nftables (moat's nftables layout, docs/nftables.md)")
	cmd.Flags().StringVar(&f.bridge, "bridge", wiring.ModeAuto, "br-int: ovs, linux (a Linux bridge: no VLAN isolation) or auto (OVS when it answers)")
	cmd.Flags().StringVar(&f.ovsdb, "ovsdb", "", "OVSDB to use (ovs-vsctl --db), e.g. unix:/run/openvswitch/db.sock; empty: the default")
	cmd.Flags().StringVar(&f.datapathType, "datapath-type", "system", "datapath type of a br-int the agent creates: system or netdev (userspace)")
	cmd.Flags().StringVar(&f.bridgeMappings, "bridge-mappings", "", "physical networks and the OVS bridges of their uplinks, PHYSNET:BRIDGE[,...] (Neutron's bridge_mappings, e.g. physnet1:br-eth1): VLAN and flat networks leave the host there, their local tags translated; needs --bridge ovs")
	cmd.Flags().StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9697); empty: none (allinone serves them on the API's listener)")
	cmd.Flags().BoolVar(&f.noIPSet, "no-ipset", false, "match remote groups rule by rule instead of with ipsets (Neutron's enable_ipset = False)")
	cmd.Flags().BoolVar(&f.noComments, "no-comments", false, "leave comments off the rules (Neutron's comment_iptables_rules = False)")
	def := agent.DefaultConfig()
	cmd.Flags().DurationVar(&f.checkInterval, "check-interval", def.CheckInterval, "how often the kernel is re-read to repair drift")
	cmd.Flags().DurationVar(&f.pollInterval, "poll-interval", def.PollInterval, "with --db, how often the change log is polled for other processes' changes; with --server, how often a failed report is retried")
	cmd.Flags().Uint16Var(&f.logGroup, "log-group", defaultLogGroup, "netlink log group of the security-group log rules (NFLOG, nft log group): the agent reads it")
	cmd.Flags().Uint32Var(&f.logRate, "log-rate-limit", 100, "log rules log at most this many packets a second each (Neutron's [network_log] rate_limit)")
	cmd.Flags().Uint32Var(&f.logBurst, "log-burst-limit", 25, "and at most this many at once (Neutron's [network_log] burst_limit)")
	cmd.Flags().StringVar(&f.logFile, "log-file", "/var/lib/moat/log-events.jsonl", "where logged packets are written, one JSON object a line (moat logs --file reads it)")
	cmd.Flags().BoolVar(&f.noLogging, "no-logging", false, "ignore network log objects: no log rules, no reader")
}

// defaultLogGroup is the netlink log group moat's log rules use unless
// told otherwise (0 is the kernel's catch-all, kept clear).
const defaultLogGroup = 27

// startLogging starts the NFLOG reader and its sinks; the returned
// function stops them.
func startLogging(ctx context.Context, f *agentFlags, ix *netlog.Index, log *slog.Logger) (func(), error) {
	file, err := netlog.OpenFile(f.logFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var poster *netlog.Poster
	if len(f.logServers) > 0 {
		poster = netlog.NewPoster(f.logServers, f.host, f.logToken, log)
		go poster.Run(ctx)
	}
	emit := netlog.Emitter(file, poster, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := netlog.Read(ctx, f.logGroup, 0, f.host, ix, emit, log); err != nil {
			log.Error("security-group logging: the reader stopped", "err", err)
		}
	}()
	log.Info("security-group logging", "group", f.logGroup, "rate_limit", f.logRate, "burst_limit", f.logBurst, "file", f.logFile)
	return func() { cancel(); <-done; file.Close() }, nil
}

// newAgent builds the agent of this host over a feed (the server's watch,
// or the store in the deprecated --db mode), with the real kernel behind it
// (in this process's network namespace).
func newAgent(ctx context.Context, f *agentFlags, feed agent.Feed, log *slog.Logger) (*agent.Agent, func(), error) {
	if f.host == "" {
		return nil, nil, fmt.Errorf("--host is empty and the hostname is unknown")
	}
	backend, err := agent.ParseBackend(f.backend)
	if err != nil {
		return nil, nil, err
	}
	for _, bin := range backend.Binaries() {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, nil, fmt.Errorf("%s is not installed (apt-get install iptables ipset nftables): %w", bin, err)
		}
	}
	rules, sets, err := backend.Kernel(dataplane.Host{})
	if err != nil {
		return nil, nil, err
	}
	mappings, err := wiring.ParseBridgeMappings(f.bridgeMappings, hybrid.IntegrationBridge)
	if err != nil {
		return nil, nil, fmt.Errorf("--bridge-mappings: %w", err)
	}
	wire, err := wiring.New(ctx, wiring.Config{Mode: f.bridge, OVSDB: f.ovsdb, DatapathType: f.datapathType, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("set up br-int: %w", err)
	}
	log.Info("wiring ports", "bridge", wire.Kind(), "host", f.host, "backend", backend)
	cfg := agent.DefaultConfig()
	if len(mappings) > 0 {
		p, err := wiring.NewProvider(ctx, wire, mappings)
		if err != nil {
			wire.Close()
			return nil, nil, fmt.Errorf("--bridge-mappings: %w", err)
		}
		for _, m := range mappings {
			log.Info("physical network", "physnet", m.Physnet, "bridge", m.Bridge)
		}
		cfg.Provider = p
	}
	cfg.Options = firewall.Options{EnableIPSet: !f.noIPSet, CommentRules: !f.noComments}
	cfg.CheckInterval, cfg.PollInterval = f.checkInterval, f.pollInterval
	cfg.Logger = log
	cfg.Previous = backend.Previous(dataplane.Host{})
	stopLogging := func() {}
	if !f.noLogging {
		if f.logGroup == 0 || f.logRate == 0 || f.logBurst == 0 {
			wire.Close()
			return nil, nil, fmt.Errorf("--log-group, --log-rate-limit and --log-burst-limit must not be 0 (--no-logging turns logging off)")
		}
		ix := &netlog.Index{}
		cfg.Logging = &agent.Logging{Options: firewall.LogOptions{Group: f.logGroup, Rate: f.logRate, Burst: f.logBurst}, Index: ix}
		if stopLogging, err = startLogging(ctx, f, ix, log); err != nil {
			wire.Close()
			return nil, nil, err
		}
	}
	a := agent.New(cfg, feed, rules, sets, agent.Wire(wire), conntrack.Netlink{})
	return a, func() { stopLogging(); wire.Close() }, nil
}

// runWatchAgent runs the agent over the server's watch stream until ctx
// ends.
func runWatchAgent(ctx context.Context, f *agentFlags, server string, token func() string, log *slog.Logger) error {
	if f.host == "" {
		return fmt.Errorf("--host is empty and the hostname is unknown")
	}
	client, err := watch.NewClient(watch.ClientConfig{URL: server, Host: f.host, TokenFunc: token, Logger: log.With("part", "watch")})
	if err != nil {
		return err
	}
	if f.logServers, err = watch.ParseServers(server); err != nil {
		return err // NewClient has accepted it already
	}
	f.logToken = token
	a, closeFn, err := newAgent(ctx, f, client, log)
	if err != nil {
		return err
	}
	defer closeFn()
	client.SetCounters(a.Counters) // the server's counters requests (docs/agent.md)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.metricsListen != "" {
		stop, err := serveMetrics(ctx, f.metricsListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	done := make(chan struct{})
	go func() { defer close(done); client.Run(ctx) }()
	log.Info("following the server", "server", server, "host", f.host)
	err = a.Run(ctx)
	cancel()
	<-done
	return err
}

// serveMetrics serves /metrics on addr until stop is called.
func serveMetrics(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(metrics.Path, metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+metrics.Path)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// fileToken gives the token in path as it is now: it reads the file again
// when it has changed since (its size or modification time), so that an
// operator's or a cron job's renewal is picked up; a file that became
// unreadable or empty keeps the last good token (and says so once).
func fileToken(path, first string, log *slog.Logger) func() string {
	var mu sync.Mutex
	tok := first
	var seen os.FileInfo
	if fi, err := os.Stat(path); err == nil {
		seen = fi
	}
	warned := false
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		fi, err := os.Stat(path)
		if err == nil && seen != nil && fi.ModTime().Equal(seen.ModTime()) && fi.Size() == seen.Size() {
			return tok
		}
		t, rerr := readToken(path)
		if err != nil || rerr != nil {
			if !warned {
				log.Warn("token file unreadable, still sending the last token read", "file", path, "err", errors.Join(err, rerr))
				warned = true
			}
			return tok
		}
		if t != tok {
			log.Info("token file changed, sending its new token", "file", path)
		}
		tok, seen, warned = t, fi, false
		return tok
	}
}

// readToken reads a token file ("" : no token).
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", path)
	}
	return tok, nil
}

func init() {
	rootCmd.AddCommand(newAgentCmd())
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	var db, server, tokenFile string
	var logLevel string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Enforce security groups on this host (wiring, iptables, ipsets, conntrack)",
		Long: `Follow the server's watch stream for the ports bound to this host (binding:host_id =
--host), wire them the hybrid way (tap, qbr, qvb/qvo, br-int) and enforce their security
groups with iptables in Neutron's layout; report the ports' statuses to the server. Rules stay
installed when the agent stops; a restarted agent takes over without an open window.

  moat agent --server http://controller:9696 --host compute1 --token-file /etc/moat/agent.token

--db URL instead of --server reads the database directly (deprecated: the host then needs
the database's credentials).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch {
			case server != "" && cmd.Flags().Changed("db"):
				return fmt.Errorf("--server and --db exclude each other: the agent follows the server (or, deprecated, reads the database)")
			case server != "":
				token, err := readToken(tokenFile)
				if err != nil {
					return err
				}
				tokenFn := func() string { return token }
				if tokenFile != "" {
					tokenFn = fileToken(tokenFile, token, log)
				}
				return runWatchAgent(ctx, &f, server, tokenFn, log)
			case tokenFile != "":
				return fmt.Errorf("--token-file is for --server")
			}
			// Deprecated: the agent reads its host from the database and
			// writes only port statuses. It never creates or migrates the
			// database (the server does, or moat db upgrade) and refuses a
			// schema other than its own.
			log.Warn("--db is deprecated: the host needs the database's credentials; use --server URL")
			st, err := store.OpenMode(ctx, db, store.Existing)
			if err != nil {
				return fmt.Errorf("open database %s: %w", store.Redact(db), err)
			}
			defer st.Close()
			a, closeFn, err := newAgent(ctx, &f, agent.StoreFeed{Store: st, Host: f.host}, log)
			if err != nil {
				return err
			}
			defer closeFn()
			return a.Run(ctx)
		},
	}
	f.register(cmd, agent.IPTablesNFT)
	cmd.Flags().StringVar(&server, "server", "", "the moat server to follow, e.g. http://controller:9696 (its watch stream; reports go there too); several replicas comma separated, tried in turn when a stream is lost")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding this host's agent token (or a Keystone service user's token), sent as X-Auth-Token; empty: none (noauth)")
	cmd.Flags().StringVar(&db, "db", store.DefaultURL, "deprecated: read the database the server writes instead of --server (sqlite:///path/file.db or postgres://...)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
