package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/agent"
)

func init() {
	rootCmd.AddCommand(newAllinoneCmd())
}

func newAllinoneCmd() *cobra.Command {
	var sf serverFlags
	var af agentFlags
	cmd := &cobra.Command{
		Use:   "allinone",
		Short: "Serve the API and enforce it on this host, in one process (the embedded default)",
		Long: `Run the Neutron API server and this host's agent in one process over one database
(SQLite by default): what a single hypervisor, a lab or a laptop needs. The agent follows the
API's watch stream as a remote agent does (with a token made up at start), which wakes on every
committed change, so an API call is enforced in the kernel within milliseconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.readQuotas(cmd); err != nil {
				return err
			}
			log, err := newLogger(sf.logLevel)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := openServerStore(ctx, sf.migrate, sf.db)
			if err != nil {
				return err
			}
			defer st.Close()
			// The agent follows the API's watch stream as a remote agent
			// would, with a token of its own made up for this run.
			token, err := newToken()
			if err != nil {
				return err
			}
			// Either part failing stops both: an API without enforcement
			// (or the reverse) would mislead.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errc := make(chan error, 2)
			ready := make(chan string, 1)
			go func() {
				errc <- serveAPI(ctx, &sf, st, log.With("part", "api"),
					apiExtras{agentTokens: map[string]string{af.host: token}, ready: func(url string) { ready <- url }})
				cancel()
			}()
			go func() {
				var url string
				select {
				case url = <-ready:
				case <-ctx.Done():
					errc <- nil
					return
				}
				errc <- runWatchAgent(ctx, &af, url, func() string { return token }, log.With("part", "agent"))
				cancel()
			}()
			err1, err2 := <-errc, <-errc
			if err1 != nil {
				return err1
			}
			return err2
		},
	}
	sf.register(cmd)
	af.register(cmd, agent.NFTablesLayout)
	return cmd
}

// newToken is a random agent token.
func newToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make an agent token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
