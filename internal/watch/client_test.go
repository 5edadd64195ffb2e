package watch_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startClient(t *testing.T, e *env, host, token string) *watch.Client {
	t.Helper()
	c, err := watch.NewClient(watch.ClientConfig{URL: e.srv.URL, Host: host, Token: token, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	return c
}

// run follows the stream until the test ends or stop is called.
func run(t *testing.T, c *watch.Client) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func snapshotOf(t *testing.T, c *watch.Client) *store.HostSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addrs(s *store.HostSnapshot, port string) []string {
	for _, p := range s.Ports {
		if p.ID == port {
			var out []string
			for _, ip := range p.FixedIPs {
				out = append(out, ip.IPAddress.String())
			}
			return out
		}
	}
	return nil
}

// TestClientFollowsResumesAndResyncs: the agent's client holds the view,
// applies deltas, resumes without a snapshot after the connection is cut,
// and takes a snapshot again after a resync.
func TestClientFollowsResumesAndResyncs(t *testing.T) {
	e := newEnv(t, apitest.Config{AgentTokens: map[string]string{"h1": "token-of-h1-0123456789"}})
	web, db := e.group("web"), e.group("db")
	e.rule(web, map[string]any{"remote_group_id": db})
	p1 := e.port("h1", "10.0.0.11", web)
	p2 := e.port("h2", "10.0.0.21", db)
	c, err := watch.NewClient(watch.ClientConfig{URL: e.srv.URL, Host: "h1", Token: "token-of-h1-0123456789", MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	s := snapshotOf(t, c)
	if len(s.Ports) != 1 || s.Ports[0].ID != p1 || !slices.Equal(s.Members[db], []string{"10.0.0.21"}) {
		t.Fatalf("first snapshot: %+v", s)
	}
	changed := c.Changed()
	e.setIP(p2, "10.0.0.22")
	select {
	case <-changed:
	case <-time.After(wait):
		t.Fatal("Changed did not fire")
	}
	if got := snapshotOf(t, c); !slices.Equal(got.Members[db], []string{"10.0.0.22"}) || got.Revision != e.latest() {
		t.Errorf("after the member moved: members %v at %d, want 10.0.0.22 at %d", got.Members[db], got.Revision, e.latest())
	}

	// The server drops every connection; meanwhile p1 changes address.
	e.srv.CloseClientConnections()
	e.setIP(p1, "10.0.0.12")
	waitFor(t, "the resumed view", func() bool { return slices.Equal(addrs(snapshotOf(t, c), p1), []string{"10.0.0.12"}) })
	if st := c.Stats(); st.Snapshots != 1 || st.Resumes < 1 || st.Connects < 2 {
		t.Errorf("stats after a reconnect: %+v, want one snapshot and a resume", st)
	}

	// Away (the agent stopped) while the log is compacted past it: a
	// resync and a snapshot when it is back.
	stop()
	e.rule(web, map[string]any{"protocol": "tcp"})
	e.rule(web, map[string]any{"protocol": "udp"})
	if _, err := e.srv.Watch.Compact(context.Background(), -time.Hour); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "the resync", func() bool { return c.Stats().Resyncs == 1 && c.Stats().Snapshots == 2 })
	waitFor(t, "the view after the resync", func() bool {
		s := snapshotOf(t, c)
		return s.Revision == e.latest() && len(s.Groups[web].Rules) == 5
	})
}

// TestClientRefusedCredentialsRetries: a client whose token is refused
// keeps retrying (and gets nothing) rather than giving up the host.
func TestClientRefusedCredentialsRetries(t *testing.T) {
	e := newEnv(t, apitest.Config{AgentTokens: map[string]string{"h1": "token-of-h1-0123456789"}})
	e.port("h2", "10.0.0.21", e.group("g"))
	c := startClient(t, e, "h2", "token-of-h1-0123456789")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Snapshot(ctx); err == nil {
		t.Fatalf("h1's token got a snapshot of h2")
	}
	if st := c.Stats(); st.Connects != 0 {
		t.Errorf("stats %+v: no stream should have opened", st)
	}
}

// TestClientTokenFuncIsAskedEachTime: a token renewed while the client
// is refused (an expired Keystone token replaced in the agent's token
// file) is used at the next attempt, without a restart.
func TestClientTokenFuncIsAskedEachTime(t *testing.T) {
	// With header identity an unknown token is nobody (noauth would make
	// it the admin).
	e := newEnv(t, apitest.Config{Auth: apitest.Headers, AgentTokens: map[string]string{"h1": "token-of-h1-0123456789"}})
	p1 := e.port("h1", "10.0.0.11", e.group("g"))
	var mu sync.Mutex
	tok := "expired-token-000000000"
	c, err := watch.NewClient(watch.ClientConfig{URL: e.srv.URL, Host: "h1", Token: "ignored-when-TokenFunc-is-set",
		TokenFunc:  func() string { mu.Lock(); defer mu.Unlock(); return tok },
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Snapshot(ctx); err == nil {
		t.Fatalf("a refused token got a snapshot")
	}
	mu.Lock()
	tok = "token-of-h1-0123456789"
	mu.Unlock()
	if s := snapshotOf(t, c); len(s.Ports) != 1 || s.Ports[0].ID != p1 {
		t.Fatalf("snapshot with the renewed token: %+v", s)
	}
}

// TestClientTriesTheNextReplica: with several servers, a client whose
// server does not answer moves to the next one and follows it there; a
// list with a bad URL is refused.
func TestClientTriesTheNextReplica(t *testing.T) {
	e := newEnv(t, apitest.Config{AgentTokens: map[string]string{"h1": "token-of-h1-0123456789"}})
	web := e.group("web")
	p1 := e.port("h1", "10.0.0.11", web)
	// Port 1 of loopback: nothing listens there.
	c, err := watch.NewClient(watch.ClientConfig{URL: "http://127.0.0.1:1, " + e.srv.URL + "/", Host: "h1", Token: "token-of-h1-0123456789",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	if s := snapshotOf(t, c); len(s.Ports) != 1 || s.Ports[0].ID != p1 {
		t.Fatalf("snapshot through the second server: %+v", s)
	}
	for _, bad := range []string{"http://a:1,", "http://a:1,ftp://b", ""} {
		if _, err := watch.NewClient(watch.ClientConfig{URL: bad, Host: "h1"}); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}

// streamRevisionHosts are the hosts moat_watch_stream_revision has a
// series for.
func streamRevisionHosts(t *testing.T) []string {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, mf := range mfs {
		if mf.GetName() != "moat_watch_stream_revision" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "host" {
					hosts = append(hosts, l.GetValue())
				}
			}
		}
	}
	return hosts
}

// TestStreamRevisionGoesWithTheStream: a host's stream revision is
// exported while its stream is open here, and not after (a stale value
// would show a lag that is not there once the agent follows another
// replica).
func TestStreamRevisionGoesWithTheStream(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	e.port("gauge-host", "10.0.0.31", e.group("g"))
	c, err := watch.NewClient(watch.ClientConfig{URL: e.srv.URL, Host: "gauge-host", MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	snapshotOf(t, c)
	waitFor(t, "the host's series", func() bool { return slices.Contains(streamRevisionHosts(t), "gauge-host") })
	stop()
	waitFor(t, "the series to go", func() bool { return !slices.Contains(streamRevisionHosts(t), "gauge-host") })
}
