package apibench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// Server is a moat API server running inside this process, as `moat server
// --auth headers` would serve it, for a benchmark.
type Server struct {
	// URL is where it listens (http://127.0.0.1:port).
	URL string
	// DB is the database URL it uses.
	DB string

	st    *store.Store
	watch *watch.Server
	srv   *http.Server
	done  chan error
	dir   string // temporary directory to remove, if any
}

// StartServer starts a moat API server on a free loopback port over the
// database at dbURL, or over a fresh SQLite database in a temporary
// directory when dbURL is empty. log receives the server's warnings and
// errors (nil: discarded).
func StartServer(ctx context.Context, dbURL string, log io.Writer) (*Server, error) {
	return StartWatchServer(ctx, dbURL, log, nil)
}

// StartWatchServer is StartServer with the agents' side too: the watch
// streams (/v2.0/moat/hosts/...) and an agent token per host of
// agentTokens (nil: no watch).
func StartWatchServer(ctx context.Context, dbURL string, log io.Writer, agentTokens map[string]string) (*Server, error) {
	s := &Server{DB: dbURL, done: make(chan error, 1)}
	if dbURL == "" {
		dir, err := os.MkdirTemp("", "moat-bench-api-")
		if err != nil {
			return nil, fmt.Errorf("temporary database directory: %w", err)
		}
		s.dir = dir
		s.DB = "sqlite://" + filepath.Join(dir, "moat.db")
	}
	st, err := store.Open(ctx, s.DB)
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("open database %s: %w", s.DB, err)
	}
	s.st = st
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		s.removeDir()
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	if log == nil {
		log = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := api.Options{Store: st, Auth: api.HeaderAuth{}, Logger: logger}
	if agentTokens != nil {
		tokens, err := api.NewAgentTokens(agentTokens)
		if err != nil {
			st.Close()
			ln.Close()
			s.removeDir()
			return nil, err
		}
		s.watch = watch.New(watch.Config{Store: st, Logger: logger})
		opts.Watch, opts.AgentTokens = s.watch, tokens
	}
	s.srv = &http.Server{
		Handler:           api.New(opts),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if s.watch != nil {
		s.srv.RegisterOnShutdown(s.watch.Close)
	}
	s.URL = "http://" + ln.Addr().String()
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// StartReplicas starts n moat API servers in this process over one
// PostgreSQL database, as n `moat server` replicas would run: each with its
// own store (connection pool, change log sequencer candidate and
// listener), opened at once (they migrate the database in turn under the
// migration lock). On error every started one is closed.
func StartReplicas(ctx context.Context, dbURL string, n int, log io.Writer) ([]*Server, error) {
	return StartWatchReplicas(ctx, dbURL, n, log, nil)
}

// StartWatchReplicas is StartReplicas with watch streams and agent tokens
// (StartWatchServer).
func StartWatchReplicas(ctx context.Context, dbURL string, n int, log io.Writer, agentTokens map[string]string) ([]*Server, error) {
	if n < 1 {
		return nil, fmt.Errorf("%d replicas: want at least 1", n)
	}
	if n > 1 {
		if d, err := store.Driver(dbURL); err != nil || d != "postgres" {
			return nil, fmt.Errorf("%d replicas need a PostgreSQL database (--db postgres://...), not %q", n, store.Redact(dbURL))
		}
	}
	if n == 1 {
		srv, err := StartWatchServer(ctx, dbURL, log, agentTokens)
		if err != nil {
			return nil, err
		}
		return []*Server{srv}, nil
	}
	out := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i], errs[i] = StartWatchServer(ctx, dbURL, log, agentTokens) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range out {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	return out, nil
}

// Watch is the server's watch streams (nil unless started with agent
// tokens).
func (s *Server) Watch() *watch.Server { return s.watch }

// Store is the server's database handle.
func (s *Server) Store() *store.Store { return s.st }

// Close stops the server, closes its database and removes a temporary one.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := s.st.Close(); err == nil {
		err = cerr
	}
	if rerr := s.removeDir(); err == nil {
		err = rerr
	}
	return err
}

// Target names the server in the results: moat-sqlite or moat-postgres,
// after its database.
func (s *Server) Target() string {
	if strings.HasPrefix(s.DB, "sqlite:") || strings.HasPrefix(s.DB, "sqlite3:") {
		return "moat-sqlite"
	}
	return "moat-postgres"
}

func (s *Server) removeDir() error {
	if s.dir == "" {
		return nil
	}
	return os.RemoveAll(s.dir)
}
