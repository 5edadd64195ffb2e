// Package apitest runs moat's Neutron v2.0 API for black-box tests with
// real clients: gophercloud and the openstack CLI talk to it over HTTP on
// loopback exactly as they would talk to Neutron.
//
// Start serves a fresh server with its own SQLite database in the test's
// temporary directory and stops it when the test ends.
package apitest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/testenv"
	"github.com/moat-sg/moat/internal/watch"
)

// AuthMode is how the test server learns who calls it.
type AuthMode string

const (
	// NoAuth is Neutron's auth_strategy=noauth: a request without
	// X-Project-Id is an admin of project "fake_project_id". The openstack
	// CLI with --os-auth-type none needs it.
	NoAuth AuthMode = "noauth"
	// Headers trusts X-User-Id, X-Project-Id and X-Roles as an auth proxy
	// sets them, so that a test can act as any project, member or admin.
	Headers AuthMode = "headers"
)

// Config selects how the test server runs.
type Config struct {
	// Auth is the identity mode; empty means NoAuth.
	Auth AuthMode
	// Quotas override the default per-project limits (see api.DefaultQuotas).
	Quotas map[string]int64
	// Networks is the ML2 configuration (network types, VLAN and VNI
	// ranges, flat networks, MTU); nil means neutron.DefaultNetworkConfig.
	Networks *neutron.NetworkConfig
	// Watch tunes the agents' watch server (its Store is the test's).
	Watch watch.Config
	// AgentTokens are per-host agent tokens, host → token.
	AgentTokens map[string]string
}

// Server is a running moat API.
type Server struct {
	// URL is the server's root, http://127.0.0.1:PORT, without a trailing
	// slash; the Neutron API lives under Endpoint.
	URL string
	// Store is the server's database, for tests that look behind the API.
	Store *store.Store
	// Watch is the server's watch server (compaction, agents' reports).
	Watch *watch.Server
	// CloseClientConnections cuts every open connection (watch streams
	// included), as a server crash would.
	CloseClientConnections func()
}

// Endpoint is the Neutron v2.0 endpoint, with the trailing slash that
// gophercloud's ServiceClient requires.
func (s *Server) Endpoint() string { return s.URL + "/v2.0/" }

// Start serves a fresh moat API over real HTTP on 127.0.0.1 with a new
// SQLite database in t.TempDir(). The server logs to the test's output and
// is shut down (and its database closed) when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	var auth api.Authenticator
	switch cfg.Auth {
	case NoAuth, "":
		auth = api.NoAuth{}
	case Headers:
		auth = api.HeaderAuth{}
	default:
		t.Fatalf("apitest.Start: unknown auth mode %q (want %q or %q)", cfg.Auth, NoAuth, Headers)
	}
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatalf("apitest.Start: open store: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	tokens, err := api.NewAgentTokens(cfg.AgentTokens)
	if err != nil {
		t.Fatalf("apitest.Start: %v", err)
	}
	wcfg := cfg.Watch
	wcfg.Store = st
	if wcfg.Logger == nil {
		wcfg.Logger = logger
	}
	ws := watch.New(wcfg)
	srv := httptest.NewServer(api.New(api.Options{Store: st, Auth: auth, Quotas: cfg.Quotas, Networks: cfg.Networks, Logger: logger,
		Watch: ws, AgentTokens: tokens}))
	t.Cleanup(func() {
		srv.Close()
		if err := st.Close(); err != nil {
			t.Errorf("apitest: close store: %v", err)
		}
	})
	return &Server{URL: srv.URL, Store: st, Watch: ws, CloseClientConnections: srv.CloseClientConnections}
}

const cliInstallHint = "apt-get install -y --no-install-recommends python3-openstackclient python3-neutronclient"

// LookCLI finds the openstack binary, or skips the test (fails it when
// MOAT_REQUIRE_CLI=1, as in CI).
func LookCLI(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("openstack")
	if err != nil {
		testenv.CLI.Missing(t, "the openstack CLI is not on PATH (%v); install it with `%s`", err, cliInstallHint)
	}
	return bin
}

// CLIEnv is a clean environment for the openstack CLI: a private HOME (no
// clouds.yaml, no cache), no OS_* variables, no Python bytecode or warnings.
func CLIEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home + "/.config",
		"XDG_CACHE_HOME=" + home + "/.cache",
		"LC_ALL=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONWARNINGS=ignore",
	}
}
