package watch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

// follower applies a raw stream to a view, as an agent does.
type follower struct {
	mu       sync.Mutex
	view     *hostview.View
	bookmark int64
}

func follow(s *stream, host string) *follower {
	f := &follower{view: hostview.New(host)}
	go func() {
		var pending hostview.Delta
		for ev := range s.events {
			f.mu.Lock()
			switch ev.Type {
			case hostview.EventBookmark:
				f.bookmark = ev.Revision
			case hostview.EventSnapshot, hostview.EventDelta:
				pending.Merge(&ev.Delta)
				if !ev.More {
					if ev.Type == hostview.EventSnapshot {
						f.view = hostview.New(host)
					}
					f.view.Apply(&pending)
					f.view.Revision = ev.Revision
					pending = hostview.Delta{}
				}
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// TestStreamsMatchTheStore: through a random run of API changes — ports
// created, deleted, moved between hosts, readdressed and regrouped, rules
// added and removed, naming remote groups — every host's stream keeps its
// agent's view equal to the host's state in the store.
//
// Twice: with the defaults (rounds walk the shared chain and read only
// what changed), and with a chain of one change and rounds capped at one change
// (rounds read the change log and, capped, compare whole hosts).
func TestStreamsMatchTheStore(t *testing.T) {
	t.Run("chain", func(t *testing.T) { testStreamsMatchTheStore(t, watch.Config{}, true) })
	t.Run("log", func(t *testing.T) { testStreamsMatchTheStore(t, watch.Config{ChainLength: 1, MaxChanges: 1}, false) })
}

func testStreamsMatchTheStore(t *testing.T, cfg watch.Config, wantParts bool) {
	cfg.Bookmark = 20 * time.Millisecond
	e := newEnv(t, apitest.Config{Watch: cfg})
	hosts := []string{"h1", "h2", "h3"}
	groups := []string{e.group("a"), e.group("b"), e.group("c"), e.group("d")}
	rng := rand.New(rand.NewPCG(11, 3))
	var rules []string
	for i := 0; i < 4; i++ {
		rules = append(rules, e.rule(groups[i], map[string]any{"remote_group_id": groups[(i+1)%4]}))
	}
	followers := map[string]*follower{}
	for _, h := range hosts {
		followers[h] = follow(e.watch(h, 0, nil), h)
	}
	var ports []string
	ip := 10
	nextIP := func() string { ip++; return fmt.Sprintf("10.0.%d.%d", ip/200+1, ip%200+10) }
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	someGroups := func() []string {
		out := []string{pick(groups)}
		if rng.IntN(3) == 0 {
			out = append(out, pick(groups))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	check := func(step int, what string) {
		t.Helper()
		rev := e.latest()
		for _, h := range hosts {
			f := followers[h]
			deadline := time.Now().Add(wait)
			for {
				f.mu.Lock()
				caught := f.bookmark >= rev
				f.mu.Unlock()
				if caught {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("step %d (%s): %s's stream never reached revision %d", step, what, h, rev)
				}
				time.Sleep(5 * time.Millisecond)
			}
			var snap *store.HostSnapshot
			if err := e.srv.Store.Read(context.Background(), func(tx *store.Tx) error {
				var err error
				snap, err = tx.HostSnapshot(context.Background(), h)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			want := hostview.FromSnapshot(snap)
			f.mu.Lock()
			ok := hostview.Equal(f.view, want) && hostview.Equal(want, f.view)
			got := dump(f.view)
			f.mu.Unlock()
			if !ok {
				t.Fatalf("step %d (%s): %s's view differs from the store:\n got %s\nwant %s", step, what, h, got, dump(want))
			}
		}
	}
	for step := 0; step < 80; step++ {
		var what string
		switch op := rng.IntN(8); {
		case op == 0 || len(ports) < 3:
			what = "create a port"
			p := e.call("POST", "ports", map[string]any{"port": map[string]any{"network_id": e.net, "binding:host_id": pick(hosts),
				"security_groups": someGroups(), "fixed_ips": []any{map[string]any{"ip_address": nextIP()}}}}, 201)
			ports = append(ports, p["port"].(map[string]any)["id"].(string))
		case op == 1:
			what = "delete a port"
			i := rng.IntN(len(ports))
			e.call("DELETE", "ports/"+ports[i], nil, 204)
			ports = slices.Delete(ports, i, i+1)
		case op == 2:
			what = "move a port"
			e.call("PUT", "ports/"+pick(ports), map[string]any{"port": map[string]any{"binding:host_id": pick(hosts)}}, 200)
		case op == 3:
			what = "readdress a port"
			e.setIP(pick(ports), nextIP())
		case op == 4:
			what = "regroup a port"
			e.call("PUT", "ports/"+pick(ports), map[string]any{"port": map[string]any{"security_groups": someGroups()}}, 200)
		case op == 5:
			what = "add an address pair"
			e.call("PUT", "ports/"+pick(ports), map[string]any{"port": map[string]any{"allowed_address_pairs": []any{
				map[string]any{"ip_address": fmt.Sprintf("10.9.%d.0/24", rng.IntN(200))}}}}, 200)
		case op == 6:
			what = "add a rule"
			rules = append(rules, e.rule(pick(groups), map[string]any{"remote_group_id": pick(groups), "protocol": "tcp",
				"port_range_min": 1 + rng.IntN(60000), "port_range_max": 65000}))
		default:
			what = "delete a rule"
			if len(rules) > 0 {
				i := rng.IntN(len(rules))
				e.call("DELETE", "security-group-rules/"+rules[i], nil, 204)
				rules = slices.Delete(rules, i, i+1)
			}
		}
		if step%4 == 3 {
			check(step, what)
		}
	}
	check(80, "the end")
	var reads, parts int64
	for _, h := range hosts {
		st := e.srv.Watch.Host(h)
		reads, parts = reads+st.Reads, parts+st.PartReads
	}
	chain, log := e.srv.Watch.Rounds()
	if wantParts && (parts == 0 || chain == 0) {
		t.Errorf("no stream read only what changed, or walked the chain (%d whole reads, %d partial, %d rounds from the chain)", reads, parts, chain)
	}
	if !wantParts && (log == 0 || reads <= 3) {
		t.Errorf("no round read the log, or compared whole hosts (%d rounds from the log, %d whole reads)", log, reads)
	}
	t.Logf("whole host reads %d, partial reads %d; rounds from the chain %d, from the log %d", reads, parts, chain, log)
}

func dump(v *hostview.View) string {
	b, _ := json.Marshal(v)
	return string(b)
}
