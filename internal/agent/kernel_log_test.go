package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/ipset"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/testenv"
)

// Security-group logging with real packets, on each backend: a log
// object on two ports; an allowed ping is one ACCEPT event naming its
// rule, a dropped one a DROP event per packet within a second, a flood
// of drops stays within the rate limit, and the same traffic passes and
// drops with and without the log object.

const (
	sgDB       = "5e000000-0000-4000-8000-0000000000db"
	ruleICMPIn = "1c000000-0000-4000-8000-000000000001"
	logAll     = "10000000-0000-4000-8000-000000000001"
	testGroup  = 27
)

func TestKernelLogging(t *testing.T) {
	backends := []string{string(iptables.Legacy), string(iptables.NFT), "nftables"}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			if b == "nftables" {
				testenv.RequireNetns(t)
				testenv.RequireTools(t, "nft", "ping", "python3")
				testenv.RequireBrNetfilter(t)
			} else {
				needKernel(t, iptables.Backend(b))
				testenv.RequireTools(t, "python3")
			}
			testKernelLogging(t, b)
		})
	}
}

// events collects what the reader emits.
type logEvents struct {
	mu  sync.Mutex
	evs []netlog.Event
}

func (l *logEvents) add(ev netlog.Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }

// count counts the IPv4 events of port with verdict and protocol (since
// index from): the VMs' own IPv6 chatter (MLD, router solicitations) is
// logged too.
func (l *logEvents) count(from int, port, verdict string, proto int) (n int, last netlog.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs[min(from, len(l.evs)):] {
		if ev.PortID == port && ev.Verdict == verdict && ev.Ethertype == "IPv4" && ev.Protocol == proto {
			n++
			last = ev
		}
	}
	return n, last
}

func (l *logEvents) len() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.evs) }

func testKernelLogging(t *testing.T, backend string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := netnstest.New(t, "moat-aglog")
	host := ns.Name
	nsRun(t, host, "ip", "link", "set", "lo", "up")
	nsRun(t, host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeLinux, Netns: host, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })

	// A (web) takes pings; B (db) takes nothing.
	web := &neutron.SecurityGroup{ID: sgWeb, Stateful: true, Rules: []neutron.SecurityGroupRule{
		{ID: "e0000000-0000-4000-8000-00000000000a", Direction: "egress", Ethertype: "IPv4"},
		{ID: ruleICMPIn, Direction: "ingress", Ethertype: "IPv4", Protocol: ptr("icmp")},
	}}
	db := &neutron.SecurityGroup{ID: sgDB, Stateful: true, Rules: []neutron.SecurityGroupRule{
		{ID: "e0000000-0000-4000-8000-00000000000b", Direction: "egress", Ethertype: "IPv4"},
	}}
	pa, pb := port(portA, "192.168.1.12", sgWeb), port(portB, "192.168.1.13", sgDB)
	feed := &fakeFeed{ev: &events{}, changed: make(chan struct{}), snap: &store.HostSnapshot{
		Revision: 1, Host: "h1", Ports: []neutron.Port{pa, pb},
		Networks: map[string]*neutron.Network{netA: {ID: netA, MTU: 1450}},
		Groups:   map[string]*neutron.SecurityGroup{sgWeb: web, sgDB: db},
		Members:  map[string][]string{},
		Logs:     []store.HostLog{{ID: logAll, ProjectID: "p", Event: neutron.LogEventAll, Ports: []string{portA, portB}}},
	}}
	ix := &netlog.Index{}
	cfg := DefaultConfig()
	cfg.Logger = logger
	cfg.Logging = &Logging{Options: firewall.LogOptions{Group: testGroup, Rate: 100, Burst: 25}, Index: ix}
	var rules Rules
	var sets Sets
	if backend == "nftables" {
		rules, sets = NFTables(nftables.NewSyncer(ns)), NoSets()
	} else {
		rules, sets = IPTables(iptables.NewSyncer(ns, iptables.Backend(backend))), ipset.NewSyncer(ns)
	}
	a := New(cfg, feed, rules, sets, Wire(w), &conntrack.Recorder{})
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	vmA, vmB := addKernelVM(t, host, pa), addKernelVM(t, host, pb)
	mustSync(t, a)
	if ix.Len() == 0 {
		t.Fatal("the sync indexed no log rule")
	}

	// The reader, in the host's namespace.
	nsFile, err := os.Open("/run/netns/" + host)
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	got := &logEvents{}
	readDone := make(chan error, 1)
	go func() { readDone <- netlog.Read(ctx, testGroup, int(nsFile.Fd()), "h1", ix, got.add, logger) }()
	time.Sleep(300 * time.Millisecond) // bound before the first packet
	select {
	case err := <-readDone:
		t.Fatalf("reader: %v", err)
	default:
	}

	// B pings A: allowed by A's ICMP rule, one session: one ACCEPT event
	// at A's ingress naming the rule.
	canPing(t, vmB, vmA)
	from := got.len()
	if !pings(vmB, vmA, 3) {
		t.Fatal("B cannot ping A")
	}
	time.Sleep(500 * time.Millisecond)
	if n, ev := got.count(from, portA, "ACCEPT", 1); n != 1 || ev.SecurityGroupRuleID != ruleICMPIn || ev.Direction != "ingress" ||
		ev.Src != vmB.ip || ev.Dst != vmA.ip || ev.Protocol != 1 || ev.LogIDs[0] != logAll || ev.Host != "h1" {
		t.Errorf("%d ACCEPT events for A's ingress, want 1 naming rule %s; last %+v", n, ruleICMPIn, ev)
	}

	// A pings B: dropped at B's ingress, an event per packet, each within
	// a second.
	from = got.len()
	start := time.Now()
	cannotPing(t, vmA, vmB)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n, _ := got.count(from, portB, "DROP", 1); n >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, ev := got.count(from, portB, "DROP", 1); n != 3 || ev.Protection != "default-drop" || ev.Direction != "ingress" || ev.Src != vmA.ip {
		t.Errorf("%d DROP events for B within %v of the pings, want 3 (default-drop); last %+v", n, time.Since(start), ev)
	}

	// A flood of 2000 dropped UDP datagrams stays within the rate limit:
	// the burst plus the rate over the flood's time.
	from = got.len()
	start = time.Now()
	nsRun(t, vmA.ns, "python3", "-c", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"+
		"for _ in range(2000): s.sendto(b'x', ('"+vmB.ip+"', 9))")
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	n, _ := got.count(from, portB, "DROP", 17)
	limit := 25 + int(100*(elapsed.Seconds()+0.5))
	if n > limit || n < 25 {
		t.Errorf("a flood of 2000 dropped datagrams in %v made %d DROP events, want 25 to %d", elapsed, n, limit)
	}
	t.Logf("flood: 2000 datagrams in %v, %d DROP events (limit %d)", elapsed.Round(time.Millisecond), n, limit)

	// The verdicts are the same without the log object, and no log rule
	// is left.
	feed.update(func(s *store.HostSnapshot) { s.Logs = nil })
	mustSync(t, a)
	if ix.Len() != 0 {
		t.Errorf("%d log rules indexed without log objects", ix.Len())
	}
	var dump string
	if backend == "nftables" {
		dump = nsRun(t, host, "nft", "list", "ruleset")
	} else {
		dump = nsRun(t, host, iptables.Backend(backend).Command(iptables.IPv4, "save"))
	}
	if strings.Contains(dump, "moat_") {
		t.Errorf("log rules left without log objects:\n%s", dump)
	}
	canPing(t, vmB, vmA)
	cannotPing(t, vmA, vmB)
	from = got.len()
	pings(vmB, vmA, 2)
	if got.len() != from {
		t.Errorf("events without log objects")
	}
}
