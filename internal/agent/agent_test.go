package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// events records the calls of all fakes in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf(format, args...))
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.log
	e.log = nil
	return out
}

type fakeFeed struct {
	ev      *events
	mu      sync.Mutex
	snap    *store.HostSnapshot
	changed chan struct{}
}

func (f *fakeFeed) Snapshot(context.Context) (*store.HostSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *f.snap
	cp.Ports = append([]neutron.Port(nil), f.snap.Ports...)
	return &cp, nil
}

func (f *fakeFeed) LatestRevision(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap.Revision, nil
}

func (f *fakeFeed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeFeed) SetPortStatus(_ context.Context, id, status, reason string) error {
	if reason != "" {
		f.ev.add("status %s %s %s", id[:4], status, reason)
	} else {
		f.ev.add("status %s %s", id[:4], status)
	}
	return nil
}

// update changes the snapshot and wakes the agent.
func (f *fakeFeed) update(fn func(s *store.HostSnapshot)) {
	f.mu.Lock()
	fn(f.snap)
	f.snap.Revision++
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

type fakeRules struct {
	ev       *events
	fail     int // fail this many applies
	drift    []string
	zones    map[string]int
	applied  *firewall.Ruleset
	canaryOK bool
}

func (r *fakeRules) Apply(_ context.Context, rs *firewall.Ruleset) error {
	if r.fail > 0 {
		r.fail--
		r.ev.add("rules apply FAILED")
		return errors.New("iptables-restore: line 3 failed")
	}
	r.applied = rs
	r.canaryOK = true
	var chains []string
	for _, c := range rs.IPv4.Filter.Chains {
		if strings.HasPrefix(c.Name, "neutron-openvswi-i") {
			chains = append(chains, c.Name)
		}
	}
	r.ev.add("rules apply %s", strings.Join(chains, ","))
	return nil
}

func (r *fakeRules) Check(context.Context, *firewall.Ruleset) ([]string, error) {
	d := r.drift
	r.drift = nil
	return d, nil
}

func (r *fakeRules) CanaryPresent(context.Context) (bool, error) { return r.canaryOK, nil }
func (r *fakeRules) Invalidate()                                 { r.ev.add("rules invalidate") }
func (r *fakeRules) InstalledZones(context.Context) (map[string]int, error) {
	return r.zones, nil
}

type fakeSets struct{ ev *events }

func (s *fakeSets) Apply(_ context.Context, sets []firewall.IPSet) ([]string, error) {
	s.ev.add("sets apply %d", len(sets))
	return nil, nil
}
func (s *fakeSets) Destroy(_ context.Context, names []string) error { return nil }
func (s *fakeSets) Check(context.Context, []firewall.IPSet) ([]string, error) {
	return nil, nil
}
func (s *fakeSets) Invalidate() {}

type fakeWiring struct {
	ev      *events
	taps    map[string]bool // taps that exist
	plugged []Plugged
	plugErr map[string]error // Plug fails for these ports
}

func (w *fakeWiring) Plug(_ context.Context, p WirePort) error {
	if err := w.plugErr[p.ID]; err != nil {
		w.ev.add("plug %s FAILED", p.ID[:4])
		return err
	}
	w.ev.add("plug %s tag=%d mtu=%d", p.ID[:4], p.Tag, p.MTU)
	return nil
}

func (w *fakeWiring) AttachTap(_ context.Context, id string) (bool, error) {
	if !w.taps[id] {
		return false, nil
	}
	w.ev.add("attach %s", id[:4])
	return true, nil
}

func (w *fakeWiring) Unplug(_ context.Context, id string) error {
	w.ev.add("unplug %s", id[:4])
	return nil
}

func (w *fakeWiring) Plugged(context.Context) ([]Plugged, error) { return w.plugged, nil }

const (
	portA = "aaaa0000-0000-4000-8000-000000000001"
	portB = "bbbb0000-0000-4000-8000-000000000002"
	sgWeb = "5e000000-0000-4000-8000-000000000001"
	netA  = "0e000000-0000-4000-8000-000000000001"
)

func port(id, ip string, groups ...string) neutron.Port {
	return neutron.Port{ID: id, NetworkID: netA, MACAddress: "fa:16:3e:00:00:" + id[2:4], PortSecurityEnabled: true,
		Status: neutron.PortStatusDown, SecurityGroups: groups,
		FixedIPs: []neutron.FixedIP{{SubnetID: "s", IPAddress: netip.MustParseAddr(ip)}}}
}

func ptr[T any](v T) *T { return &v }

func webGroup(rules ...neutron.SecurityGroupRule) *neutron.SecurityGroup {
	return &neutron.SecurityGroup{ID: sgWeb, Stateful: true, Rules: rules}
}

func newFixture(t *testing.T) (*Agent, *fakeFeed, *fakeRules, *fakeWiring, *conntrack.Recorder, *events) {
	ev := &events{}
	feed := &fakeFeed{ev: ev, changed: make(chan struct{}), snap: &store.HostSnapshot{
		Revision: 1, Host: "h1",
		Ports:    []neutron.Port{port(portA, "192.168.1.12", sgWeb)},
		Networks: map[string]*neutron.Network{netA: {ID: netA, MTU: 1450}},
		Groups: map[string]*neutron.SecurityGroup{sgWeb: webGroup(
			neutron.SecurityGroupRule{Direction: "ingress", Ethertype: "IPv4", Protocol: ptr("tcp"), PortRangeMin: ptr(22), PortRangeMax: ptr(22)},
			neutron.SecurityGroupRule{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: ptr(sgWeb)},
		)},
		Members: map[string][]string{sgWeb: {"192.168.1.12", "192.168.1.13"}},
	}}
	rules := &fakeRules{ev: ev, zones: map[string]int{}}
	wiring := &fakeWiring{ev: ev, taps: map[string]bool{portA: true}}
	ct := &conntrack.Recorder{}
	cfg := DefaultConfig()
	cfg.PollInterval, cfg.CheckInterval, cfg.TapInterval = time.Hour, time.Hour, time.Hour
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a := New(cfg, feed, rules, &fakeSets{ev: ev}, wiring, ct)
	return a, feed, rules, wiring, ct, ev
}

func TestSyncOrderNeverLeavesAPortOpen(t *testing.T) {
	a, feed, _, _, _, ev := newFixture(t)
	ctx := context.Background()
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"plug aaaa tag=1 mtu=1450",
		"sets apply 1",
		"rules apply neutron-openvswi-iaaaa0000-0",
		"attach aaaa", // only once the chains exist
		"status aaaa ACTIVE",
	}
	if got := ev.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("first sync:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The port leaves the host: it is unplugged before its chains go.
	feed.update(func(s *store.HostSnapshot) { s.Ports = nil })
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want = []string{"unplug aaaa", "sets apply 0", "rules apply "}
	if got := ev.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("removal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunRetriesAFailedApplyAndReportsOnlyAfterSuccess(t *testing.T) {
	a, _, rules, _, _, ev := newFixture(t)
	rules.fail = 2
	a.cfg.MaxBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev.mu.Lock()
		n := len(ev.log)
		last := ""
		if n > 0 {
			last = ev.log[n-1]
		}
		ev.mu.Unlock()
		if strings.HasPrefix(last, "status") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status report: %v", ev.take())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ev.take(), "\n")
	for _, want := range []string{"rules apply FAILED\nrules invalidate", "rules apply FAILED\nrules invalidate"} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %q in\n%s", want, got)
		}
	}
	if strings.Index(got, "attach aaaa") < strings.LastIndex(got, "FAILED") || strings.Index(got, "status") < strings.LastIndex(got, "FAILED") {
		t.Fatalf("port connected or reported before its rules were applied:\n%s", got)
	}
}

func TestRemovedRuleAndMemberStopTheirFlows(t *testing.T) {
	a, feed, _, _, ct, _ := newFixture(t)
	ctx := context.Background()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	zone := uint16(a.zones[portA])
	if zone == 0 {
		t.Fatal("no zone")
	}
	// Remove the tcp/22 rule.
	feed.update(func(s *store.HostSnapshot) {
		s.Groups = map[string]*neutron.SecurityGroup{sgWeb: webGroup(
			neutron.SecurityGroupRule{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: ptr(sgWeb)},
		)}
	})
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ipv4 zone=%d proto=6 dst=192.168.1.12/32 dport=22-22", zone)
	if len(ct.Filters) != 1 || ct.Filters[0].String() != want {
		t.Fatalf("filters %v, want [%s]", ct.Filters, want)
	}
	// Remove a member of the remote group: its flows to the port stop.
	ct.Filters = nil
	feed.update(func(s *store.HostSnapshot) { s.Members = map[string][]string{sgWeb: {"192.168.1.12"}} })
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("ipv4 zone=%d src=192.168.1.13/32 dst=192.168.1.12/32", zone)
	if len(ct.Filters) != 1 || ct.Filters[0].String() != want {
		t.Fatalf("filters %v, want [%s]", ct.Filters, want)
	}
}

func TestRestartKeepsZonesAndTags(t *testing.T) {
	a, _, rules, wiring, _, ev := newFixture(t)
	rules.zones = map[string]int{portA: 4321}
	wiring.plugged = []Plugged{{ID: portA, NetworkID: netA, Tag: 7}}
	ctx := context.Background()
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a.zones[portA] != 4321 {
		t.Fatalf("zone %d, want the installed 4321", a.zones[portA])
	}
	if got := ev.take()[0]; got != "plug aaaa tag=7 mtu=1450" {
		t.Fatalf("first call %q: the network should keep tag 7", got)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	a, _, rules, _, _, ev := newFixture(t)
	ctx := context.Background()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ev.take()
	rules.drift = []string{"chain neutron-openvswi-iaaaa0000-0 differs"}
	if !a.drifted(ctx) {
		t.Fatal("drift not noticed")
	}
	if got := ev.take(); len(got) != 1 || got[0] != "rules invalidate" {
		t.Fatalf("got %v", got)
	}
	if a.drifted(ctx) {
		t.Fatal("no drift reported as drift")
	}
}

// halfWired reports every port as missing from br-int.
type halfWired struct{ *wiring.Fake }

func (w halfWired) Plugged(ctx context.Context) ([]wiring.Plugged, error) {
	ps, err := w.Fake.Plugged(ctx)
	for i := range ps {
		ps[i].InBrInt = false
	}
	return ps, err
}

func TestRestartDoesNotReplugCompleteWiring(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wirer func(*wiring.Fake) wiring.Wirer
		plugs int
	}{
		{"complete", func(f *wiring.Fake) wiring.Wirer { return f }, 0},
		{"half-wired", func(f *wiring.Fake) wiring.Wirer { return halfWired{f} }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, feed, rules, _, ct, ev := newFixture(t)
			fake := wiring.NewFake(wiring.KindOVS)
			ctx := context.Background()
			first := New(a.cfg, feed, rules, &fakeSets{ev: ev}, Wire(fake), ct)
			if err := first.recover(ctx); err != nil {
				t.Fatal(err)
			}
			if err := first.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if len(fake.Calls) == 0 || fake.Calls[0] != "plug "+portA {
				t.Fatalf("first run: calls %v, want a plug first", fake.Calls)
			}
			// A restart: the kernel keeps the zones and the wiring.
			rules.zones = first.zones
			fake.Calls = nil
			second := New(a.cfg, feed, rules, &fakeSets{ev: ev}, Wire(tc.wirer(fake)), ct)
			if err := second.recover(ctx); err != nil {
				t.Fatal(err)
			}
			if err := second.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			plugs := 0
			for _, c := range fake.Calls {
				if strings.HasPrefix(c, "plug ") {
					plugs++
				}
			}
			if plugs != tc.plugs {
				t.Fatalf("restart: %d plugs, want %d (calls %v)", plugs, tc.plugs, fake.Calls)
			}
		})
	}
}
