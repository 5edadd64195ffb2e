package conntrack

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestFilterMatches(t *testing.T) {
	flow := &netlink.ConntrackFlow{Zone: 4097, Forward: netlink.IPTuple{
		Protocol: 6, SrcIP: net.ParseIP("10.0.0.5"), DstIP: net.ParseIP("192.168.1.12"), SrcPort: 40000, DstPort: 22,
	}}
	cases := []struct {
		f    Filter
		want bool
	}{
		{Filter{Family: 4, Zone: 4097}, true},
		{Filter{Family: 4, Zone: 4098}, false},
		{Filter{Family: 4, Zone: 4097, Proto: 17}, false},
		{Filter{Family: 4, Zone: 4097, Proto: 6, DstPortMin: 22, DstPortMax: 22}, true},
		{Filter{Family: 4, Zone: 4097, Proto: 6, DstPortMin: 80, DstPortMax: 90}, false},
		{Filter{Family: 4, Zone: 4097, Src: mustNet("10.0.0.0/8"), Dst: mustNet("192.168.1.12/32")}, true},
		{Filter{Family: 4, Zone: 4097, Src: mustNet("10.1.0.0/16")}, false},
		{Filter{Family: 4, Zone: 4097, Dst: mustNet("192.168.1.13/32")}, false},
	}
	for _, c := range cases {
		if got := c.f.MatchConntrackFlow(flow); got != c.want {
			t.Errorf("%s: %v, want %v", c.f, got, c.want)
		}
	}
}

// TestNetlinkDeleteInANamespace creates conntrack entries in a scratch
// network namespace with the conntrack tool and deletes some over netlink.
func TestNetlinkDeleteInANamespace(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "conntrack")
	ns := netnstest.New(t, "moatct")
	ctx := context.Background()
	insert := func(zone int, src, dst string, dport int) {
		t.Helper()
		_, err := ns.Run(ctx, nil, "conntrack", "-I", "-s", src, "-d", dst, "-p", "tcp", "--sport", "40000",
			"--dport", fmt.Sprint(dport), "--state", "ESTABLISHED", "--timeout", "300", "-u", "ASSURED", "-w", fmt.Sprint(zone))
		if err != nil {
			t.Fatal(err)
		}
	}
	insert(4097, "10.0.0.5", "192.168.1.12", 22) // deleted: tcp/22 to the port in its zone
	insert(4097, "10.0.0.5", "192.168.1.12", 80) // kept: another port
	insert(4098, "10.0.0.5", "192.168.1.13", 22) // kept: another zone
	insert(4097, "192.168.1.12", "10.0.0.9", 22) // kept: the port's own outgoing ssh
	n, err := Netlink{Handle: netnstest.Handle(t, ns.Name)}.Delete([]Filter{{Family: 4, Zone: 4097, Proto: 6, Dst: mustNet("192.168.1.12/32"), DstPortMin: 22, DstPortMax: 22}})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("deleted %d entries, want 1", n)
	}
	out, err := ns.Run(ctx, nil, "conntrack", "-L")
	if err != nil {
		t.Fatal(err)
	}
	left := string(out)
	if strings.Count(left, "\n") != 3 || strings.Contains(left, "dst=192.168.1.12 sport=40000 dport=22 ") {
		t.Fatalf("left:\n%s", left)
	}
}
