package moatrules

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/firewall/specgen"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
	"github.com/moat-sg/moat/internal/trace"
)

// TestNFTDifferential is the differential test of the two backends: for
// the reference scenarios and random specs, and random packets through
// every port in both directions, the iptables tracer on the iptables
// rendering and the nftables tracer on the nftables rendering (loaded
// into a scratch namespace's kernel and listed back with nft -j) agree on
// every verdict and on what decided it.
func TestNFTDifferential(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft")
	ns := netnstest.New(t, "moat-nftd")
	syncer := nft.NewSyncer(ns)
	ctx := context.Background()

	type named struct {
		name string
		st   *firewall.HostState
	}
	var states []named
	for _, file := range []string{"sample.json", "edge.json"} {
		sf, err := spec.Load(nil, filepath.Join("..", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range sf.Names() {
			st, _, err := sf.CompileState(file, n, false)
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, named{file + "/" + n, st})
		}
	}
	random := 0
	for seed := uint64(1); random < 12 && seed < 100; seed++ {
		sc := specgen.Generate(seed, fmt.Sprintf("random-%d", seed), specgen.Config{Fixes: seed%2 == 0})
		st, err := sc.HostState(nil)
		if err != nil {
			continue // a spec the API refuses as a whole
		}
		states = append(states, named{sc.Name, st})
		random++
	}
	if random < 12 {
		t.Fatalf("only %d random specs could be used", random)
	}

	total := 0
	kinds := map[string]int{}
	for _, s := range states {
		rs, err := firewall.Compile(s.st)
		if err != nil {
			t.Fatal(err)
		}
		if rs.RejectedError() != nil {
			continue // Host refuses partial hosts
		}
		ipt, err := Host(s.st)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		rendered, err := nftrender.Render(rs)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, err := syncer.Apply(ctx, rendered); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		out, err := ns.Run(ctx, nil, "nft", "-j", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		nh, err := trace.LoadNFT(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		nh.Provenance = ipt.Provenance
		r := rand.New(rand.NewPCG(uint64(total), 7))
		for _, q := range queries(r, s.st, 40) {
			total++
			a, errA := ipt.Trace(q)
			b, errB := nh.Trace(q)
			if (errA == nil) != (errB == nil) {
				t.Errorf("%s %+v: iptables error %v, nftables error %v", s.name, q, errA, errB)
				continue
			}
			if errA != nil {
				continue
			}
			kinds[a.Verdict+" "+kind(a)]++
			if a.Verdict != b.Verdict || kind(a) != kind(b) || a.Suggestion != b.Suggestion {
				var ta, tb bytes.Buffer
				_ = trace.WriteText(&ta, a)
				_ = trace.WriteText(&tb, b)
				t.Errorf("%s %+v:\niptables: %s (%s)\nnftables: %s (%s)\n--- iptables trace:\n%s\n--- nftables trace:\n%s",
					s.name, q, a.Verdict, kind(a), b.Verdict, kind(b), ta.String(), tb.String())
			}
		}
	}
	if total < 500 {
		t.Fatalf("only %d packets traced: the test did not test enough", total)
	}
	// The packets must reach the different decisions, or agreement
	// would say little.
	for _, want := range []string{"DROP " + trace.OriginDefaultDrop, "DROP " + trace.OriginAntiSpoofing, "DROP " + trace.OriginInvalid,
		"ACCEPT " + trace.OriginSGRule, "ACCEPT " + trace.OriginEstablished} {
		if kinds[want] == 0 {
			t.Errorf("no packet was decided by %s: %v", want, kinds)
		}
	}
	t.Logf("%d packets through %d hosts: the tracers agree; decisions %v", total, len(states), kinds)
}

// kind is what decided a trace: the origin kind, with the two ways a
// port's chain lets a packet through taken as the rule that returned it.
func kind(r *trace.Result) string {
	if r.DecidedBy == nil {
		return ""
	}
	k := r.DecidedBy.OriginKind
	if k == trace.OriginPolicy {
		return "accepted without a port chain"
	}
	return k
}

// queries are random packets through the ports of st: both directions,
// the protocols and ports the rules name and others, addresses of the
// host's ports and remote members and others, MACs of the port and not.
func queries(r *rand.Rand, st *firewall.HostState, n int) []trace.Query {
	var addrs4, addrs6 []string
	add := func(a string) {
		if ip, err := netip.ParseAddr(a); err == nil {
			if ip.Is4() {
				addrs4 = append(addrs4, a)
			} else {
				addrs6 = append(addrs6, a)
			}
		}
	}
	for _, p := range st.Ports {
		for _, a := range p.FixedIPs {
			add(a)
		}
		for _, ap := range p.AllowedAddressPairs {
			if pfx, err := netip.ParsePrefix(ap.IP); err == nil {
				add(pfx.Addr().String())
			} else {
				add(ap.IP)
			}
		}
	}
	for _, ms := range st.GroupMembers {
		for _, m := range ms {
			add(m)
		}
	}
	addrs4 = append(addrs4, "203.0.113.9", "10.0.0.1", "192.168.1.250", "0.0.0.0", "255.255.255.255")
	addrs6 = append(addrs6, "2001:db8::99", "fe80::1", "ff02::1", "::")
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	var out []trace.Query
	for len(out) < n {
		p := st.Ports[r.IntN(len(st.Ports))]
		q := trace.Query{Port: p.ID, Direction: trace.Ingress}
		if r.IntN(2) == 0 {
			q.Direction = trace.Egress
		}
		v6 := r.IntN(3) == 0
		pool := addrs4
		if v6 {
			pool = addrs6
		}
		own := ""
		for _, a := range p.FixedIPs {
			if ip, err := netip.ParseAddr(a); err == nil && ip.Is6() == v6 {
				own = a
			}
		}
		if own == "" || r.IntN(6) == 0 {
			own = pick(pool)
		}
		remote := pick(pool)
		if q.Direction == trace.Ingress {
			q.Src, q.Dst = remote, own
		} else {
			q.Src, q.Dst = own, remote
			q.SrcMAC = p.MAC
			if r.IntN(5) == 0 {
				q.SrcMAC = "fa:16:3e:00:e2:e2"
			}
		}
		switch r.IntN(7) {
		case 0, 1:
			q.Protocol = "tcp"
			q.DstPort = strconv.Itoa([]int{22, 80, 443, 5000, 5005, 8080, 1}[r.IntN(7)])
			q.SrcPort = strconv.Itoa([]int{40000, 67, 68, 22}[r.IntN(4)])
		case 2, 3:
			q.Protocol = "udp"
			q.DstPort = strconv.Itoa([]int{53, 67, 68, 546, 547, 5001, 7001}[r.IntN(7)])
			q.SrcPort = strconv.Itoa([]int{67, 68, 546, 547, 40000}[r.IntN(5)])
		case 4:
			if v6 {
				q.Protocol = "ipv6-icmp"
				q.ICMPType = strconv.Itoa([]int{128, 129, 130, 131, 133, 134, 135, 136, 143}[r.IntN(9)])
			} else {
				q.Protocol = "icmp"
				q.ICMPType = strconv.Itoa([]int{0, 3, 8, 11}[r.IntN(4)])
			}
			if r.IntN(2) == 0 {
				q.ICMPCode = "0"
			}
		case 5:
			q.Protocol = []string{"4", "94", "47", "50", "132"}[r.IntN(5)]
		case 6:
			q.Protocol = "icmp"
			if v6 {
				q.Protocol = "ipv6-icmp"
			}
		}
		q.State = []string{"new", "new", "new", "established", "related", "invalid"}[r.IntN(6)]
		out = append(out, q)
	}
	return out
}
