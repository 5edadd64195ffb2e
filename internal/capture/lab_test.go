package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestCaptureInALab pings from one lab VM to another, whose group allows
// no ingress: capture must see the echo requests up to qvb and not on the
// tap, blame the host firewall and print the trace command.
func TestCaptureInALab(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "tcpdump", "ping", "ethtool", "iptables-nft-restore")
	testenv.RequireOVS(t)
	bin := moatbin.Build(t)
	defer moatbin.Remove()
	var r [3]byte
	rand.Read(r[:])
	name := "cap" + hex.EncodeToString(r[:])
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Config{Name: name, VMs: 2, Moat: bin, StateDir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Down(context.Background(), name, l.StateDir) })
	vm1, vm2 := l.VMs[0], l.VMs[1]

	ping := exec.Command("ip", "netns", "exec", vm1.Netns, "ping", "-i", "0.2", "-c", "20", vm2.IP)
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer ping.Process.Kill()
	netns, dev, err := VMSide(ctx, l.HostNetns, vm2.Tap)
	if err != nil || netns != vm2.Netns || dev != "eth0" {
		t.Fatalf("VMSide: %q %q %v, want %s eth0", netns, dev, err, vm2.Netns)
	}
	hops := Path(vm2.PortID, l.HostNetns, netns, dev, "")
	rep := Analyze(vm2.PortID, l.HostNetns, Watch(ctx, Tcpdump{}, hops, "icmp", 2500*time.Millisecond))
	counts := map[string]int{}
	for _, h := range rep.Hops {
		counts[h.Name] = h.Packets
		if h.Error != "" && !h.Partial {
			t.Fatalf("hop %s: %s", h.Name, h.Error)
		}
	}
	if counts[HopQvb] < 5 || counts[HopQvo] < 5 || counts[HopTap] != 0 || counts[HopVM] != 0 {
		t.Fatalf("counts %v: want the echo requests on qvo and qvb only", counts)
	}
	want := "moat trace --netns " + l.HostNetns + " --port " + vm2.PortID + " --direction ingress --protocol 1 --src " + vm1.IP + " --dst " + vm2.IP + " --icmp-type 8 --icmp-code 0"
	if len(rep.Stops) == 0 || !rep.Stops[0].Firewall || rep.Stops[0].Next != want ||
		!strings.Contains(rep.Verdict, "the host firewall dropped them") {
		t.Fatalf("report %+v\nwant next %q", rep, want)
	}
}
