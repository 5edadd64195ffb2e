package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/console"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/httpserve"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// serverFlags are the flags of `moat server` (and later `moat allinone`).
type serverFlags struct {
	listen      string
	db          string
	migrate     string
	auth        string
	keystoneURL string
	// keystoneTimeout bounds one token validation (503 beyond).
	keystoneTimeout time.Duration
	logLevel        string
	quotas          map[string]int64

	tenantNetworkType string
	vniRanges         string
	vlanRanges        string
	flatNetworks      string
	physnetMTU        int

	agentTokenFile     string
	changeLogRetention time.Duration
	bookmarkInterval   time.Duration
	// console serves the web console at /ui/.
	console bool
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:9696", "address to serve the Neutron API on")
	cmd.Flags().StringVar(&f.db, "db", store.DefaultURL, "database: sqlite:///path/file.db (add ?synchronous=normal to skip the sync per commit, at the risk of losing the last changes on power loss) or postgres://user:pass@host/db")
	cmd.Flags().StringVar(&f.migrate, "migrate", migrateAuto, migrateUsage)
	cmd.Flags().StringVar(&f.auth, "auth", "noauth", "identity: noauth (Neutron's noauth), headers (trust X-User-Id/X-Project-Id/X-Roles from an auth proxy) or keystone")
	cmd.Flags().StringVar(&f.keystoneURL, "keystone-url", "", "Keystone v3 URL that validates X-Auth-Token (with --auth keystone)")
	cmd.Flags().DurationVar(&f.keystoneTimeout, "keystone-timeout", api.DefaultKeystoneTimeout, "how long to wait for Keystone to validate a token before answering 503 (with --auth keystone)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&f.tenantNetworkType, "tenant-network-type", "vxlan", "type of networks created without provider attributes: vxlan, vlan or local")
	cmd.Flags().StringVar(&f.vniRanges, "vni-ranges", "1:1000", "VXLAN ids for tenant networks, MIN:MAX[,MIN:MAX...]")
	cmd.Flags().StringVar(&f.vlanRanges, "network-vlan-ranges", "", "physical networks for VLANs, PHYSNET[:MIN:MAX][,...] (as Neutron's network_vlan_ranges)")
	cmd.Flags().StringVar(&f.flatNetworks, "flat-networks", "*", "physical networks usable by flat networks, comma separated (* for any)")
	cmd.Flags().IntVar(&f.physnetMTU, "physnet-mtu", 1500, "MTU of the physical network (VXLAN networks get 50 less)")
	cmd.Flags().StringVar(&f.agentTokenFile, "agent-token-file", "", "per-host agent tokens, one \"HOST TOKEN\" per line (mode 600): an agent token may watch and report its host only")
	cmd.Flags().DurationVar(&f.changeLogRetention, "change-log-retention", 24*time.Hour, "how long the change log keeps changes; an agent away longer resyncs from a snapshot (0: keep forever)")
	cmd.Flags().DurationVar(&f.bookmarkInterval, "watch-bookmark-interval", watch.DefaultBookmark, "how often an idle watch stream gets a bookmark (its heartbeat)")
	cmd.Flags().BoolVar(&f.console, "console", true, "serve the web console at /ui/ (docs/console.md)")
	f.quotas = api.DefaultQuotas()
	for _, name := range api.QuotaResourceNames() {
		flag := "quota-" + strings.ReplaceAll(name, "_", "-")
		cmd.Flags().Int64(flag, f.quotas[name], fmt.Sprintf("default per-project limit of %s (-1: unlimited)", name))
	}
}

// networkConfig turns the ML2 flags into the API's configuration.
func (f *serverFlags) networkConfig() (*neutron.NetworkConfig, error) {
	cfg := neutron.DefaultNetworkConfig()
	switch f.tenantNetworkType {
	case neutron.NetTypeVXLAN, neutron.NetTypeVLAN, neutron.NetTypeLocal:
		cfg.TenantNetworkType = f.tenantNetworkType
	default:
		return nil, fmt.Errorf("--tenant-network-type %q: want vxlan, vlan or local", f.tenantNetworkType)
	}
	var err error
	if cfg.VNIRanges, err = neutron.ParseRanges(f.vniRanges, neutron.MaxVNI); err != nil {
		return nil, fmt.Errorf("--vni-ranges: %w", err)
	}
	if cfg.VLANRanges, err = neutron.ParseVLANRanges(f.vlanRanges); err != nil {
		return nil, fmt.Errorf("--network-vlan-ranges: %w", err)
	}
	cfg.FlatNetworks = nil
	for _, n := range strings.Split(f.flatNetworks, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.FlatNetworks = append(cfg.FlatNetworks, n)
		}
	}
	if f.physnetMTU < 1280 || f.physnetMTU > 65535 {
		return nil, fmt.Errorf("--physnet-mtu %d: want 1280..65535", f.physnetMTU)
	}
	cfg.PhysnetMTU = f.physnetMTU
	return &cfg, nil
}

// readQuotas copies the --quota-* flags into f.quotas.
func (f *serverFlags) readQuotas(cmd *cobra.Command) error {
	for _, name := range api.QuotaResourceNames() {
		v, err := cmd.Flags().GetInt64("quota-" + strings.ReplaceAll(name, "_", "-"))
		if err != nil {
			return err
		}
		if v < -1 {
			return fmt.Errorf("--quota-%s must be -1 (unlimited) or more, not %d", strings.ReplaceAll(name, "_", "-"), v)
		}
		f.quotas[name] = v
	}
	return nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func init() {
	rootCmd.AddCommand(newServerCmd())
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the Neutron v2.0 security-group API",
		Long: `Serve the Neutron v2.0 API (security groups, rules, quotas, tags) so that the
openstack CLI, gophercloud and Neutron's own clients work against moat unchanged.
State lives in SQLite by default (--db sqlite:///var/lib/moat/moat.db), created and
upgraded at start; a PostgreSQL database is upgraded with moat db upgrade (see --migrate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.readQuotas(cmd); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, &f)
		},
	}
	f.register(cmd)
	return cmd
}

// runServer serves the API until ctx ends, then shuts down gracefully.
func runServer(ctx context.Context, f *serverFlags) error {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	st, err := openServerStore(ctx, f.migrate, f.db)
	if err != nil {
		return err
	}
	defer st.Close()
	return serveAPI(ctx, f, st, log, apiExtras{})
}

// apiExtras are what allinone adds to a server: its own agent's token and
// a callback with the API's URL once it listens.
type apiExtras struct {
	agentTokens map[string]string
	ready       func(url string)
}

// consoleURL is the console's address for the log ("" when it is off).
func consoleURL(on bool, url string) string {
	if !on {
		return ""
	}
	return url + console.Prefix + "/"
}

// serveAPI serves the Neutron API over st until ctx ends.
func serveAPI(ctx context.Context, f *serverFlags, st *store.Store, log *slog.Logger, x apiExtras) error {
	auth, err := api.NewAuthenticator(api.IdentityConfig{Mode: f.auth, KeystoneURL: f.keystoneURL, KeystoneTimeout: f.keystoneTimeout})
	if err != nil {
		return err
	}
	netcfg, err := f.networkConfig()
	if err != nil {
		return err
	}
	tokens, err := api.NewAgentTokens(x.agentTokens)
	if err != nil {
		return err
	}
	if f.agentTokenFile != "" {
		if tokens, err = api.LoadAgentTokens(f.agentTokenFile); err != nil {
			return err
		}
		for host, tok := range x.agentTokens {
			if err := tokens.Add(host, tok); err != nil {
				return err
			}
		}
	}
	if f.changeLogRetention < 0 || f.bookmarkInterval < 0 {
		return fmt.Errorf("--change-log-retention and --watch-bookmark-interval must not be negative")
	}
	ws := watch.New(watch.Config{Store: st, Logger: log.With("part", "watch"), Bookmark: f.bookmarkInterval})
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	var handler http.Handler = api.New(api.Options{Store: st, Auth: auth, Quotas: f.quotas, Networks: netcfg, Logger: log,
		Watch: ws, AgentTokens: tokens})
	if f.console {
		c, err := console.New(console.Options{API: handler, Store: st, Auth: f.auth, KeystoneURL: f.keystoneURL, Logger: log.With("part", "console"),
			Counters: func(ctx context.Context, host string, ports []string) (*hostview.CountersAnswer, error) {
				return ws.Counters(ctx, host, ports, 0)
			}})
		if err != nil {
			return err
		}
		handler = console.Mount(handler, c)
	}
	srv := httpserve.New(handler, httpserve.Defaults, log)
	srv.RegisterOnShutdown(ws.Close) // watch streams are never idle: end them
	url := "http://" + ln.Addr().String()
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		url = fmt.Sprintf("http://127.0.0.1:%d", a.Port)
	}
	log.Info("serving the Neutron API", "url", url, "console", consoleURL(f.console, url), "db", store.Redact(f.db), "auth", f.auth, "agent_tokens", tokens.Len(),
		"change_log_retention", f.changeLogRetention)
	if f.changeLogRetention > 0 {
		go ws.RunCompaction(ctx, f.changeLogRetention)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if x.ready != nil {
		x.ready(url)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down the API")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
