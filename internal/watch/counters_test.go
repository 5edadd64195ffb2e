package watch_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/watch"
)

// nextCounters skips to the stream's next counters request.
func (s *stream) nextCounters() *hostview.CountersRequest {
	s.t.Helper()
	for {
		ev := s.next()
		if ev.Type == hostview.EventCounters {
			if ev.Counters == nil {
				s.t.Fatalf("counters event without a request: %+v", ev)
			}
			return ev.Counters
		}
	}
}

// TestCounters: a counters request goes down the host's stream, the
// agent's answer (with its own token only) reaches the waiter, and the
// waiter gives up after its timeout; bad answers are 400s.
func TestCounters(t *testing.T) {
	h1 := map[string]string{"X-Auth-Token": "token-of-h1-0123456789"}
	h2 := map[string]string{"X-Auth-Token": "token-of-h2-0123456789"}
	e := newEnv(t, apitest.Config{Auth: apitest.Headers, AgentTokens: map[string]string{
		"h1": h1["X-Auth-Token"], "h2": h2["X-Auth-Token"]}})
	g := e.group("g")
	p1, p2 := e.port("h1", "10.0.0.11", g), e.port("h2", "10.0.0.21", g)

	// No stream of h1 on this server yet.
	out := callAs(t, e.srv.URL, adminHeaders, "GET", "moat/hosts/h1/counters?port_id="+p1, nil, 409)
	if err := out["NeutronError"].(map[string]any); err["type"] != "HostNotConnected" {
		t.Errorf("not connected: %v", out)
	}
	s := e.watch("h1", 0, h1)
	if typ, _, _ := s.complete(); typ != hostview.EventSnapshot {
		t.Fatalf("got %s", typ)
	}
	// Asking for a port of another host, or for none.
	callAs(t, e.srv.URL, adminHeaders, "GET", "moat/hosts/h1/counters?port_id="+p2, nil, 403)
	callAs(t, e.srv.URL, adminHeaders, "GET", "moat/hosts/h1/counters", nil, 400)
	// A member may not ask; h2's token may not ask for h1.
	callAs(t, e.srv.URL, map[string]string{"X-User-Id": "u", "X-Project-Id": "admin-project", "X-Roles": "member"},
		"GET", "moat/hosts/h1/counters?port_id="+p1, nil, 403)
	callAs(t, e.srv.URL, h2, "GET", "moat/hosts/h1/counters?port_id="+p1, nil, 403)

	got := make(chan map[string]any, 1)
	go func() {
		got <- callAs(t, e.srv.URL, adminHeaders, "GET", "moat/hosts/h1/counters?port_id="+p1, nil, 200)
	}()
	req := s.nextCounters()
	if req.ID == "" || !slices.Equal(req.Ports, []string{p1}) {
		t.Fatalf("request %+v, want ports [%s]", req, p1)
	}
	rules := []any{map[string]any{"family": "IPv4", "table": "filter", "chain": "neutron-openvswi-i" + p1[:10],
		"rule_number": 1, "rule": "-m state --state INVALID -j DROP", "packets": 7, "bytes": 588}}
	answer := map[string]any{"request_id": req.ID, "read_at": "2026-12-03T10:00:00Z", "ports": map[string]any{p1: rules}}
	callAs(t, e.srv.URL, h2, "POST", "moat/hosts/h1/counters", answer, 403) // another host's token
	callAs(t, e.srv.URL, h2, "POST", "moat/hosts/h2/counters", answer, 403) // a request not sent to h2
	for _, bad := range []any{
		map[string]any{"ports": map[string]any{p1: rules}},
		map[string]any{"request_id": req.ID, "extra": 1},
		map[string]any{"request_id": req.ID, "ports": map[string]any{p2: rules}},
		map[string]any{"request_id": req.ID, "ports": map[string]any{p1: []any{map[string]any{"family": "IPv5", "chain": "c", "rule_number": 1}}}},
		map[string]any{"request_id": req.ID, "ports": map[string]any{p1: []any{map[string]any{"family": "IPv4", "chain": "c", "rule_number": 0}}}},
		map[string]any{"request_id": req.ID, "ports": []any{1}},
		[]any{1},
	} {
		callAs(t, e.srv.URL, h1, "POST", "moat/hosts/h1/counters", bad, 400)
	}
	callAs(t, e.srv.URL, h1, "POST", "moat/hosts/h1/counters", map[string]any{"request_id": "0123456789abcdef"}, 404)
	callAs(t, e.srv.URL, h1, "POST", "moat/hosts/h1/counters", answer, 204)
	callAs(t, e.srv.URL, h1, "POST", "moat/hosts/h1/counters", answer, 204) // again: ignored
	select {
	case out := <-got:
		c := out["counters"].(map[string]any)
		rs := c["ports"].(map[string]any)[p1].([]any)
		if c["request_id"] != req.ID || len(rs) != 1 || rs[0].(map[string]any)["packets"] != float64(7) {
			t.Errorf("answer: %v", out)
		}
	case <-time.After(wait):
		t.Fatal("the waiter got no answer")
	}

	// Nobody answers: the waiter gives up.
	start := time.Now()
	_, err := e.srv.Watch.Counters(context.Background(), "h1", []string{p1}, 200*time.Millisecond)
	if !errors.Is(err, watch.ErrCountersTimeout) {
		t.Errorf("unanswered request: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the timeout took %s", d)
	}
	late := s.nextCounters()
	// A late answer is accepted and dropped.
	if err := e.srv.Watch.Answer("h1", hostview.CountersAnswer{RequestID: late.ID}); err != nil {
		t.Errorf("late answer: %v", err)
	}
	// The stream gone, the host is not connected any more.
	s.cancel()
	deadline := time.Now().Add(wait)
	for {
		_, err := e.srv.Watch.Counters(context.Background(), "h1", []string{p1}, 100*time.Millisecond)
		if errors.Is(err, watch.ErrHostNotConnected) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the stream ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClientAnswersCounters: the agent's client answers a counters
// request with what its CountersFunc reads; a read that hangs or panics
// holds up neither the stream nor the next request.
func TestClientAnswersCounters(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	g := e.group("g")
	p1 := e.port("h1", "10.0.0.11", g)
	c := startClient(t, e, "h1", "")
	hang := make(chan struct{})
	defer close(hang)
	mode := make(chan string, 10)
	c.SetCounters(func(ctx context.Context, ports []string) hostview.CountersAnswer {
		switch <-mode {
		case "hang":
			select {
			case <-hang:
			case <-ctx.Done():
			}
			return hostview.CountersAnswer{}
		case "panic":
			panic("boom")
		}
		return hostview.CountersAnswer{Ports: map[string][]hostview.RuleCounter{ports[0]: {
			{Family: "IPv4", Table: "filter", Chain: "c", Number: 1, Rule: "-j DROP", Packets: 3, Bytes: 252}}}}
	})
	snapshotOf(t, c)
	waitFor(t, "the stream on the server", func() bool { return e.srv.Watch.Host("h1").Watches == 1 })
	ctx := context.Background()

	mode <- "ok"
	a, err := e.srv.Watch.Counters(ctx, "h1", []string{p1}, wait)
	if err != nil || a.Ports[p1][0].Packets != 3 || a.ReadAt.IsZero() {
		t.Fatalf("answer %+v, %v", a, err)
	}
	mode <- "hang"
	if _, err := e.srv.Watch.Counters(ctx, "h1", []string{p1}, 300*time.Millisecond); !errors.Is(err, watch.ErrCountersTimeout) {
		t.Errorf("hanging read: %v, want a timeout", err)
	}
	// The stream still follows the server while a read hangs.
	e.port("h1", "10.0.0.12", g)
	waitFor(t, "the new port", func() bool { return len(snapshotOf(t, c).Ports) == 2 })
	mode <- "panic"
	a, err = e.srv.Watch.Counters(ctx, "h1", []string{p1}, wait)
	if err != nil || a.Error == "" || len(a.Ports) != 0 {
		t.Errorf("a panicking read: %+v, %v, want an answer with an error", a, err)
	}
}
