package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/watch"
)

// TestServerServesAgents: moat server with --agent-token-file serves a
// host's watch to its token only, refuses a token file others may read,
// and shuts down at once with streams open.
func TestServerServesAgents(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "agent-tokens")
	if err := os.WriteFile(tokens, []byte("# host token\nh1 token-of-h1-0123456789\nh2 token-of-h2-0123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var f serverFlags
	cmd := &cobra.Command{}
	f.register(cmd)
	if err := cmd.ParseFlags([]string{"--listen", "127.0.0.1:0", "--db", "sqlite://" + filepath.Join(dir, "moat.db"),
		"--agent-token-file", tokens, "--watch-bookmark-interval", "100ms"}); err != nil {
		t.Fatal(err)
	}
	if err := f.readQuotas(cmd); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := openServerStore(ctx, f.migrate, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := serveAPI(ctx, &f, st, log, apiExtras{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file others may read: %v", err)
	}
	if err := os.Chmod(tokens, 0o600); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serveAPI(ctx, &f, st, log, apiExtras{ready: func(u string) { ready <- u }}) }()
	url := <-ready

	// The agents outlive the server: its shutdown must end their streams.
	agentCtx, stopAgents := context.WithCancel(context.Background())
	defer stopAgents()
	client := func(host, token string) *watch.Client {
		c, err := watch.NewClient(watch.ClientConfig{URL: url, Host: host, Token: token, Logger: log,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go c.Run(agentCtx)
		return c
	}
	own, other := client("h1", "token-of-h1-0123456789"), client("h2", "token-of-h1-0123456789")
	sctx, scancel := context.WithTimeout(agentCtx, 10*time.Second)
	defer scancel()
	if _, err := own.Snapshot(sctx); err != nil {
		t.Fatalf("h1's agent got no snapshot: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if st := other.Stats(); st.Connects != 0 {
		t.Errorf("h1's token opened h2's stream: %+v", st)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("the server did not shut down with a stream open")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("shutdown took %s with a stream open", el)
	}
}

// TestAgentFlags: --server and --db exclude each other; --token-file
// needs --server and a readable, non-empty file.
func TestAgentFlags(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "http://127.0.0.1:1", "--db", "sqlite:///nonexistent"}, "exclude each other"},
		{[]string{"--token-file", empty}, "--token-file is for --server"},
		{[]string{"--server", "http://127.0.0.1:1", "--token-file", empty}, "is empty"},
		{[]string{"--server", "http://127.0.0.1:1", "--token-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"--server", "ftp://x", "--host", "h"}, "want http://host:port"},
	} {
		_, err := runCmd(t, newAgentCmd, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("moat agent %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
