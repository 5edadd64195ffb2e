package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// apiCall makes an admin (noauth) request to srv and returns the decoded
// body.
func apiCall(t *testing.T, srv *apitest.Server, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+"/v2.0/"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out
}

func idOf(obj map[string]any, kind string) string { return obj[kind].(map[string]any)["id"].(string) }

// TestAgentFollowsTheServer: an agent whose feed is the server's watch
// stream (a real server in this process, the agent's own token) compiles
// its host, reports its port ACTIVE through the API with the revision it
// enforces, and follows later changes as deltas — a member's address on
// another host reaches its ipset — without ever taking a second snapshot.
func TestAgentFollowsTheServer(t *testing.T) {
	const token = "token-of-h1-0123456789"
	srv := apitest.Start(t, apitest.Config{AgentTokens: map[string]string{"h1": token},
		Watch: watch.Config{Poll: 50 * time.Millisecond}})
	netID := idOf(apiCall(t, srv, "POST", "networks", map[string]any{"network": map[string]any{"name": "n"}}, 201), "network")
	apiCall(t, srv, "POST", "subnets", map[string]any{"subnet": map[string]any{"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4}}, 201)
	web := idOf(apiCall(t, srv, "POST", "security-groups", map[string]any{"security_group": map[string]any{"name": "web"}}, 201), "security_group")
	apiCall(t, srv, "POST", "security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": web, "direction": "ingress", "remote_group_id": web}}, 201)
	newPort := func(host, ip string) string {
		return idOf(apiCall(t, srv, "POST", "ports", map[string]any{"port": map[string]any{"network_id": netID, "binding:host_id": host,
			"security_groups": []string{web}, "fixed_ips": []any{map[string]any{"ip_address": ip}}}}, 201), "port")
	}
	p1 := newPort("h1", "10.0.0.11")
	p2 := newPort("h2", "10.0.0.21")
	latest := func() int64 {
		var rev int64
		if err := srv.Store.Read(context.Background(), func(tx *store.Tx) error {
			var err error
			rev, err = tx.LatestRevision(context.Background())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return rev
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := watch.NewClient(watch.ClientConfig{URL: srv.URL, Host: "h1", Token: token, Logger: quiet,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	synced := make(chan int64, 100)
	ev := &events{}
	rules := &fakeRules{ev: ev}
	sets := &fakeSets{ev: ev}
	cfg := DefaultConfig()
	cfg.Logger = quiet
	cfg.OnSynced = func(rev int64) { synced <- rev }
	a := New(cfg, client, rules, sets, &fakeWiring{ev: ev, taps: map[string]bool{p1: true}}, &conntrack.Recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { client.Run(ctx); done <- struct{}{} }()
	go func() { a.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	// waitSynced waits for a sync at rev or later.
	waitSynced := func(rev int64) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case got := <-synced:
				if got >= rev {
					return
				}
			case <-deadline:
				t.Fatalf("no sync at revision %d", rev)
			}
		}
	}
	members := func() []string {
		for _, s := range rules.applied.IPSets {
			if s.Family == "inet" {
				return s.Members
			}
		}
		return nil
	}
	rev := latest()
	waitSynced(rev)
	if got := members(); !slices.Equal(got, []string{"10.0.0.11", "10.0.0.21"}) {
		t.Errorf("ipset members %v, want both ports", got)
	}
	// The report: ACTIVE on the port, the revision on the host, no entry
	// in the change log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := apiCall(t, srv, "GET", "ports/"+p1, nil, 200)["port"].(map[string]any)
		if p["status"] == neutron.PortStatusActive && srv.Watch.Host("h1").EnforcedRevision == rev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s is %v, host %+v: want ACTIVE at revision %d", p1, p["status"], srv.Watch.Host("h1"), rev)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if latest() != rev {
		t.Errorf("the agent's report added to the change log")
	}

	apiCall(t, srv, "PUT", "ports/"+p2, map[string]any{"port": map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.22"}}}}, 200)
	rev = latest()
	waitSynced(rev)
	if got := members(); !slices.Equal(got, []string{"10.0.0.11", "10.0.0.22"}) {
		t.Errorf("ipset members after h2's port moved %v", got)
	}
	if st := client.Stats(); st.Snapshots != 1 || st.Deltas < 1 {
		t.Errorf("watch stats %+v: want one snapshot, then deltas", st)
	}
	// p1 leaves the host: unplugged, and the host's view holds nothing.
	apiCall(t, srv, "PUT", "ports/"+p1, map[string]any{"port": map[string]any{"binding:host_id": "h3"}}, 200)
	waitSynced(latest())
	if got := members(); got != nil {
		t.Errorf("ipsets after the host's last port left: %v", got)
	}
}
