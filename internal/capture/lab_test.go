package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	moatbin.Remove()
	os.Exit(code)
}

// TestCaptureInALab pings from one lab VM to another, whose group allows
// no ingress: capture must see the echo requests up to qvb and not on the
// tap, blame the host firewall and print the trace command.
func TestCaptureInALab(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "tcpdump", "ping", "ethtool", "iptables-nft-restore")
	testenv.RequireOVS(t)
	bin := moatbin.Build(t)
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

// TestCaptureBetweenHosts pings from a VM on one host of a two-host lab to
// a VM on the other, whose group allows no ingress: the capture along
// both hosts' paths sees the requests leave host1 and arrive on host2's
// uplink tagged with the provider VLAN, and blames host2's firewall.
func TestCaptureBetweenHosts(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "tcpdump", "ping", "ethtool", "nft")
	testenv.RequireOVS(t)
	bin := moatbin.Build(t)
	var r [3]byte
	rand.Read(r[:])
	name := "cap" + hex.EncodeToString(r[:])
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Config{Name: name, VMs: 2, Hosts: 2, Moat: bin})
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
	a := Side{Host: vm1.Host, Netns: vm1.Host, PortID: vm1.PortID, VMNetns: vm1.Netns, VMDev: "eth0", Physical: lab.Uplink}
	b := Side{Host: vm2.Host, Netns: vm2.Host, PortID: vm2.PortID, VMNetns: vm2.Netns, VMDev: "eth0", Physical: lab.Uplink}
	rep := AnalyzeBetween(a, b, Watch(ctx, Tcpdump{}, PathBetween(a, b), "icmp", 2500*time.Millisecond))
	for _, h := range rep.Hops {
		if h.Error != "" && !h.Partial {
			t.Fatalf("hop %s of %s: %s", h.Name, h.Host, h.Error)
		}
		if h.Name == HopPhys && (h.Packets < 5 || len(h.VLANs) != 1 || h.VLANs[0] != lab.SegmentationID) {
			t.Errorf("%s's uplink: %d packets, VLANs %v; want the echo requests tagged %d", h.Host, h.Packets, h.VLANs, lab.SegmentationID)
		}
	}
	if len(rep.Stops) == 0 || !rep.Stops[0].Firewall || rep.Stops[0].Host != vm2.Host ||
		!strings.Contains(rep.Verdict, "on host "+vm2.Host+": the host firewall dropped them") {
		t.Fatalf("report %+v", rep)
	}
}
