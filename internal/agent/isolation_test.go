package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// Tests of issue 9, findings 2 and 3: a tap joins its bridge only once its
// own rules are in the kernel, and one bad port is isolated while the
// rest of the host converges.

const (
	portC = "cccc0000-0000-4000-8000-000000000003"
	// portA2 shares portA's chain names (its first ten characters) but
	// not its devices (eleven).
	portA2 = "aaaa0000-0f00-4000-8000-000000000009"
)

func mustSync(t *testing.T, a *Agent) {
	t.Helper()
	if err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func wantEvents(t *testing.T, ev *events, step string, want ...string) {
	t.Helper()
	if got := ev.take(); !slices.Equal(got, want) {
		t.Fatalf("%s:\n%s\nwant\n%s", step, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// noEvent fails if any event of ev starts with one of prefixes.
func noEvent(t *testing.T, ev *events, step string, prefixes ...string) []string {
	t.Helper()
	got := ev.take()
	for _, e := range got {
		for _, p := range prefixes {
			if strings.HasPrefix(e, p) {
				t.Fatalf("%s: %q in\n%s", step, e, strings.Join(got, "\n"))
			}
		}
	}
	return got
}

// TestTapJoinsOnlyAfterItsOwnRules: the tap of a port whose apply failed
// stays out of its bridge, whatever the tap timer finds, until an apply
// with the port's chains succeeds; the same after a later failed apply or
// drift, for a port whose tap appears only then.
func TestTapJoinsOnlyAfterItsOwnRules(t *testing.T) {
	a, feed, rules, wiring, _, ev := newFixture(t)
	ctx := context.Background()
	mustSync(t, a)
	ev.take()

	// B arrives, its tap exists, and the apply with its chains fails.
	wiring.taps[portB] = true
	feed.update(func(s *store.HostSnapshot) { s.Ports = append(s.Ports, port(portB, "192.168.1.13", sgWeb)) })
	rules.fail = 1
	if err := a.Sync(ctx); err == nil {
		t.Fatal("sync succeeded with a failing apply")
	}
	wantEvents(t, ev, "failed apply", "plug bbbb tag=1 mtu=1450", "sets apply 1", "rules apply FAILED")
	a.attachTaps(ctx) // the tap timer: an earlier apply succeeded, but not B's
	noEvent(t, ev, "tap timer after the failed apply", "attach")
	mustSync(t, a)
	wantEvents(t, ev, "retry", "sets apply 1", "rules apply neutron-openvswi-iaaaa0000-0,neutron-openvswi-ibbbb0000-0",
		"attach bbbb", "status bbbb ACTIVE")

	// C's rules are applied before its tap exists; then an apply fails
	// (a table may be half written) and C's tap appears.
	feed.update(func(s *store.HostSnapshot) { s.Ports = append(s.Ports, port(portC, "192.168.1.14", sgWeb)) })
	mustSync(t, a)
	noEvent(t, ev, "C without tap", "attach")
	feed.update(func(s *store.HostSnapshot) { s.Members[sgWeb] = append(s.Members[sgWeb], "192.168.1.99") })
	rules.fail = 1
	if err := a.Sync(ctx); err == nil {
		t.Fatal("sync succeeded with a failing apply")
	}
	wiring.taps[portC] = true
	a.attachTaps(ctx)
	noEvent(t, ev, "tap timer after a later failed apply", "attach")
	mustSync(t, a)
	if got := ev.take(); !slices.Contains(got, "attach cccc") {
		t.Fatalf("C not attached after a successful apply: %v", got)
	}

	// Drift (someone flushed the chains) holds back a new tap the same way.
	feed.update(func(s *store.HostSnapshot) {
		p := port("dddd0000-0000-4000-8000-000000000004", "192.168.1.15", sgWeb)
		s.Ports = append(s.Ports, p)
	})
	mustSync(t, a)
	ev.take()
	rules.drift = []string{"chain neutron-openvswi-idddd0000-0 missing"}
	if !a.drifted(ctx) {
		t.Fatal("drift not noticed")
	}
	wiring.taps["dddd0000-0000-4000-8000-000000000004"] = true
	a.attachTaps(ctx)
	noEvent(t, ev, "tap timer after drift", "attach")
	mustSync(t, a)
	if got := ev.take(); !slices.Contains(got, "attach dddd") {
		t.Fatalf("D not attached after the repair: %v", got)
	}
}

// TestRunNeverAttachesATapWhoseApplyFails drives Run with a fast tap
// timer while, after a first successful apply, every apply containing B's
// chains fails.
func TestRunNeverAttachesATapWhoseApplyFails(t *testing.T) {
	a, feed, rules, wiring, _, ev := newFixture(t)
	a.cfg.TapInterval, a.cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	mustSync(t, a) // A's rules are in; the kernel has seen a successful apply
	ev.take()
	wiring.taps[portB] = true
	feed.snap.Ports = append(feed.snap.Ports, port(portB, "192.168.1.13", sgWeb))
	feed.snap.Revision++
	rules.fail = 1 << 30
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	// Let the timer fire many times between failing applies.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ev.mu.Lock()
		fails := strings.Count(strings.Join(ev.log, "\n"), "FAILED")
		ev.mu.Unlock()
		if fails >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not enough retries")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	noEvent(t, ev, "Run with failing applies", "attach", "status")
}

// TestBadPortIsIsolated: a port the compiler rejects is unwired (its tap
// leaves its bridge) and reported ERROR with the reason; the other ports
// keep converging (a revocation still removes their flows); fixing the
// data brings the port back.
func TestBadPortIsIsolated(t *testing.T) {
	a, feed, _, wiring, ct, ev := newFixture(t)
	wiring.taps[portB] = true
	feed.snap.Ports = append(feed.snap.Ports, port(portB, "192.168.1.13", sgWeb))
	mustSync(t, a)
	ev.take()

	// B's MAC turns bad (a row written around the API).
	feed.update(func(s *store.HostSnapshot) { s.Ports[1].MACAddress = "fa:16:3e:zz:00:bb" })
	mustSync(t, a)
	wantEvents(t, ev, "bad MAC",
		"unplug bbbb", // before its chains go
		`status bbbb ERROR bad MAC "fa:16:3e:zz:00:bb"`,
		"sets apply 1", "rules apply neutron-openvswi-iaaaa0000-0")
	if a.attached[portB] || a.wired[portB] != (WirePort{}) {
		t.Fatalf("rejected port still wired or attached")
	}
	a.attachTaps(context.Background())
	noEvent(t, ev, "tap timer", "attach")

	// The rest of the host converges: a revoked rule stops A's flows.
	feed.update(func(s *store.HostSnapshot) {
		s.Groups = map[string]*neutron.SecurityGroup{sgWeb: webGroup(
			neutron.SecurityGroupRule{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: ptr(sgWeb)})}
	})
	ct.Filters = nil
	mustSync(t, a)
	if len(ct.Filters) != 1 || !strings.Contains(ct.Filters[0].String(), "dport=22-22") {
		t.Fatalf("revocation while B is bad: conntrack filters %v", ct.Filters)
	}
	noEvent(t, ev, "revocation", "status bbbb", "plug bbbb")

	// Fixed: B is wired, filtered, connected and ACTIVE again.
	feed.update(func(s *store.HostSnapshot) {
		s.Ports[1].MACAddress = "fa:16:3e:00:00:bb"
		s.Ports[1].Status, s.Ports[1].StatusReason = neutron.PortStatusError, `bad MAC "fa:16:3e:zz:00:bb"`
	})
	mustSync(t, a)
	wantEvents(t, ev, "fixed", "plug bbbb tag=1 mtu=1450", "sets apply 1",
		"rules apply neutron-openvswi-iaaaa0000-0,neutron-openvswi-ibbbb0000-0", "attach bbbb", "status bbbb ACTIVE")
}

// TestChainClashKeepsTheRunningPort: a port whose chain names would be a
// running port's is rejected, reported with the running port's id, and
// the running port is not touched, also after an agent restart.
func TestChainClashKeepsTheRunningPort(t *testing.T) {
	a, feed, rules, wiring, ct, ev := newFixture(t)
	mustSync(t, a)
	ev.take()
	wiring.taps[portA2] = true
	newcomer := port(portA2, "192.168.1.19", sgWeb)
	newcomer.CreatedAt = time.Unix(1, 0) // older: still the running port wins
	feed.update(func(s *store.HostSnapshot) { s.Ports = append(s.Ports, newcomer) })
	mustSync(t, a)
	want := "status aaaa ERROR its chains neutron-openvswi-iaaaa0000-0 would also be those of port " + portA + ", which keeps them"
	wantEvents(t, ev, "clash", want, "sets apply 1", "rules apply neutron-openvswi-iaaaa0000-0")
	// A restart: the kernel holds A's zone and wiring.
	rules.zones = a.zones
	wiring.plugged = []Plugged{{ID: portA, NetworkID: netA, MAC: "fa:16:3e:00:00:aa", Tag: 1, MTU: 1450}}
	b := New(a.cfg, feed, rules, &fakeSets{ev: ev}, wiring, ct)
	if err := b.recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := noEvent(t, ev, "restart", "unplug aaaa", "plug aaaa")
	if !slices.Contains(got, want) {
		t.Errorf("after the restart the newcomer is not the rejected one: %v", got)
	}
	if _, ok := b.wired[portA2]; ok || b.attached[portA2] || !b.attached[portA] {
		t.Errorf("after the restart: wired %v attached %v", b.wired, b.attached)
	}
}

// TestPlugFailureHoldsUpNoOtherPort: a port the wiring refuses (a bad
// network id, an MTU out of range) is reported ERROR and retried; the
// other ports are filtered, connected and ACTIVE meanwhile.
func TestPlugFailureHoldsUpNoOtherPort(t *testing.T) {
	a, feed, _, wiring, _, ev := newFixture(t)
	wiring.taps[portB] = true
	wiring.plugErr = map[string]error{portB: errors.New(`plug port bbbb: network: port id "x y": bad`)}
	feed.snap.Ports = append(feed.snap.Ports, port(portB, "192.168.1.13", sgWeb))
	err := a.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "plug 1 port(s)") {
		t.Fatalf("sync error %v, want the failed plug (to retry it)", err)
	}
	wantEvents(t, ev, "plug failure", "plug aaaa tag=1 mtu=1450", "plug bbbb FAILED", "sets apply 1",
		"rules apply neutron-openvswi-iaaaa0000-0,neutron-openvswi-ibbbb0000-0", "attach aaaa", "status aaaa ACTIVE",
		fmt.Sprintf("status bbbb ERROR wiring: %v", wiring.plugErr[portB]))
	delete(wiring.plugErr, portB)
	mustSync(t, a)
	wantEvents(t, ev, "retry", "plug bbbb tag=1 mtu=1450", "sets apply 1",
		"rules apply neutron-openvswi-iaaaa0000-0,neutron-openvswi-ibbbb0000-0", "attach bbbb", "status bbbb ACTIVE")
}
