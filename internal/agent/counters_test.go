package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/watch"
)

// TestCountersOverTheWatch: the server asks the agent (over its watch
// stream, through the watch client) for a port's counters; the agent reads
// the port's chains of both families from the kernel (the iptables fake)
// and the answer carries each rule's text and counters. A port without
// chains here is named in the errors; rules that read none say so.
func TestCountersOverTheWatch(t *testing.T) {
	const token = "token-of-h1-0123456789"
	srv := apitest.Start(t, apitest.Config{AgentTokens: map[string]string{"h1": token},
		Watch: watch.Config{Poll: 50 * time.Millisecond}})
	netID := idOf(apiCall(t, srv, "POST", "networks", map[string]any{"network": map[string]any{"name": "n"}}, 201), "network")
	apiCall(t, srv, "POST", "subnets", map[string]any{"subnet": map[string]any{"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4}}, 201)
	web := idOf(apiCall(t, srv, "POST", "security-groups", map[string]any{"security_group": map[string]any{"name": "web"}}, 201), "security_group")
	apiCall(t, srv, "POST", "security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": web, "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}, 201)
	newPort := func(ip string) string {
		return idOf(apiCall(t, srv, "POST", "ports", map[string]any{"port": map[string]any{"network_id": netID, "binding:host_id": "h1",
			"security_groups": []string{web}, "fixed_ips": []any{map[string]any{"ip_address": ip}}}}, 201), "port")
	}
	p1 := newPort("10.0.0.11")

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := watch.NewClient(watch.ClientConfig{URL: srv.URL, Host: "h1", Token: token, Logger: quiet,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	k := iptablestest.New()
	synced := make(chan int64, 100)
	ev := &events{}
	cfg := DefaultConfig()
	cfg.Logger = quiet
	cfg.OnSynced = func(rev int64) { synced <- rev }
	a := New(cfg, client, IPTables(iptables.NewSyncer(k, iptables.Legacy)), &fakeSets{ev: ev},
		&fakeWiring{ev: ev, taps: map[string]bool{p1: true}}, &conntrack.Recorder{})
	client.SetCounters(a.Counters)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { client.Run(ctx); done <- struct{}{} }()
	go func() { a.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync")
	}

	in := hybrid.PortChain(hybrid.ChainIn, p1)
	var icmp string
	for _, l := range strings.Split(k.Save("ipv4", "filter"), "\n") {
		if r, ok := strings.CutPrefix(l, "-A "+in+" "); ok && strings.Contains(r, "-p icmp") {
			icmp = r
		}
	}
	if icmp == "" {
		t.Fatalf("no ICMP rule in %s:\n%s", in, k.Save("ipv4", "filter"))
	}
	k.Hit("ipv4", "filter", in, icmp, 5, 420)

	gone := "0f0f0f0f-0000-4000-8000-000000000000"
	ans, err := srv.Watch.Counters(ctx, "h1", []string{p1}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Error != "" || ans.ReadAt.IsZero() {
		t.Fatalf("answer %+v", ans)
	}
	fams := map[string]bool{}
	found := false
	for _, r := range ans.Ports[p1] {
		fams[r.Family] = true
		if r.Chain == in && r.Rule == icmp {
			found = true
			if r.Packets != 5 || r.Bytes != 420 || r.Number < 1 || r.Table != "filter" {
				t.Errorf("ICMP rule %+v, want 5 packets, 420 bytes", r)
			}
		} else if r.Packets != 0 {
			t.Errorf("rule %+v has counters nobody set", r)
		}
	}
	if !found || !fams["IPv4"] || !fams["IPv6"] {
		t.Errorf("answer %+v: want the ICMP rule of %s and both families", ans.Ports[p1], in)
	}

	// Straight from the agent: a port without chains on this host.
	direct := a.Counters(ctx, []string{p1, gone})
	if direct.Errors[gone] == "" || len(direct.Ports[p1]) != len(ans.Ports[p1]) || direct.Ports[gone] != nil {
		t.Errorf("direct answer %+v", direct)
	}
	// Rules that read no counters say so.
	none := New(cfg, client, &fakeRules{ev: ev}, &fakeSets{ev: ev}, &fakeWiring{ev: ev}, &conntrack.Recorder{})
	if got := none.Counters(ctx, []string{p1}); !strings.Contains(got.Error, "reads no counters") {
		t.Errorf("a backend without counters: %+v", got)
	}
}
