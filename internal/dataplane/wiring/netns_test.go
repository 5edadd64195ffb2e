package wiring

// Tests against the kernel: everything happens in scratch network
// namespaces this file creates (root only), with a private Open vSwitch
// (userspace datapath) or the Linux bridge fallback.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/testenv"
)

// needRoot skips (fails with MOAT_REQUIRE_KERNEL=1) unless the test can
// create namespaces and has ping and, with ovs, Open vSwitch.
func needRoot(t *testing.T, ovs bool) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "ping")
	if ovs {
		testenv.RequireOVS(t)
	}
}

// scratchNetns creates a network namespace deleted at the end of the test.
func scratchNetns(t *testing.T, prefix string) string {
	t.Helper()
	name := netnstest.New(t, prefix).Name
	run(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// run runs a command in a namespace and returns its output.
func run(t *testing.T, ns string, name string, args ...string) string {
	t.Helper()
	return netnstest.Run(t, dataplane.Netns{Name: ns}, "", name, args...)
}

// vm is a VM namespace whose eth0's peer is the port's "tap" in the host.
type vm struct {
	ns   string
	ip   string
	port Port
}

// addVM creates the VM namespace and a veth tap<id> (host) / eth0 (VM).
func addVM(t *testing.T, host string, p Port, ip string) vm {
	t.Helper()
	vmNS := scratchNetns(t, "mwv")
	vfd, err := netns.GetFromName(vmNS)
	if err != nil {
		t.Fatal(err)
	}
	defer vfd.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hybrid.TapName(p.ID)
	mac, _ := net.ParseMAC(p.MAC)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(vfd), PeerHardwareAddr: mac}
	if err := netnstest.Handle(t, host).LinkAdd(veth); err != nil {
		t.Fatalf("create %s/eth0: %v", attrs.Name, err)
	}
	run(t, vmNS, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	run(t, vmNS, "ip", "link", "set", "eth0", "up")
	if testenv.HaveTool(t, "ethtool") {
		run(t, vmNS, "ethtool", "-K", "eth0", "tx", "off")
	}
	return vm{ns: vmNS, ip: ip, port: p}
}

func pingOnce(from vm, to vm, count int) error {
	_, err := dataplane.Netns{Name: from.ns}.Run(context.Background(), nil, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", to.ip)
	return err
}

// canPing retries (ARP, MAC learning) for a bounded time.
func canPing(t *testing.T, from, to vm) {
	t.Helper()
	var err error
	for i := 0; i < 10; i++ {
		if err = pingOnce(from, to, 1); err == nil {
			return
		}
	}
	t.Errorf("%s (%s) cannot ping %s: %v", from.ns, from.port.ID, to.ip, err)
}

func cannotPing(t *testing.T, from, to vm) {
	t.Helper()
	if err := pingOnce(from, to, 3); err == nil {
		t.Errorf("%s (%s) can ping %s, want isolation", from.ns, from.port.ID, to.ip)
	}
}

type linkDetail struct {
	IfName   string `json:"ifname"`
	Master   string `json:"master"`
	MTU      int    `json:"mtu"`
	OperUp   []string
	Flags    []string `json:"flags"`
	Address  string   `json:"address"`
	IfAlias  string   `json:"ifalias"`
	LinkInfo struct {
		Kind     string         `json:"info_kind"`
		Data     map[string]any `json:"info_data"`
		SlaveKnd string         `json:"info_slave_kind"`
	} `json:"linkinfo"`
}

// links returns `ip -d -j link` of a namespace by name.
func linksIn(t *testing.T, ns string) map[string]linkDetail {
	t.Helper()
	var ls []linkDetail
	if err := json.Unmarshal([]byte(run(t, ns, "ip", "-d", "-j", "link", "show")), &ls); err != nil {
		t.Fatal(err)
	}
	m := map[string]linkDetail{}
	for _, l := range ls {
		m[l.IfName] = l
	}
	return m
}

func (l linkDetail) up() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

func sysctlIn(t *testing.T, ns, key string) string {
	t.Helper()
	return strings.TrimSpace(run(t, ns, "cat", "/proc/sys/"+strings.ReplaceAll(key, ".", "/")))
}

// checkWired asserts the devices of a plugged port (and its tap when
// attached) in the host namespace.
func checkWired(t *testing.T, host string, ls map[string]linkDetail, p Port, brint string, tapAttached bool) {
	t.Helper()
	qbr, qvb, qvo, tap := hybrid.BridgeName(p.ID), hybrid.BridgeVethName(p.ID), hybrid.OVSVethName(p.ID), hybrid.TapName(p.ID)
	br, ok := ls[qbr]
	if !ok || br.LinkInfo.Kind != "bridge" {
		t.Fatalf("%s: missing or not a bridge: %+v", qbr, br)
	}
	if br.MTU != p.MTU || !br.up() {
		t.Errorf("%s: mtu %d up %v, want %d and up", qbr, br.MTU, br.up(), p.MTU)
	}
	if br.LinkInfo.Data["stp_state"] != float64(0) || br.LinkInfo.Data["forward_delay"] != float64(0) {
		t.Errorf("%s: stp_state %v forward_delay %v, want 0 and 0", qbr, br.LinkInfo.Data["stp_state"], br.LinkInfo.Data["forward_delay"])
	}
	if want := (portAlias{id: p.ID, network: p.NetworkID, mac: p.MAC, mtu: p.MTU}).String(); br.IfAlias != want {
		t.Errorf("%s: alias %q, want %q", qbr, br.IfAlias, want)
	}
	for _, name := range []string{qvb, qvo} {
		l := ls[name]
		if l.LinkInfo.Kind != "veth" || l.MTU != p.MTU || !l.up() {
			t.Errorf("%s: kind %q mtu %d up %v, want veth, %d, up", name, l.LinkInfo.Kind, l.MTU, l.up(), p.MTU)
		}
	}
	if ls[qvb].Master != qbr {
		t.Errorf("%s: master %q, want %s", qvb, ls[qvb].Master, qbr)
	}
	if brint != "" && ls[qvo].Master != brint {
		t.Errorf("%s: master %q, want %s", qvo, ls[qvo].Master, brint)
	}
	devs := []string{qbr, qvb, qvo}
	if tapAttached {
		devs = append(devs, tap)
		if l := ls[tap]; l.Master != qbr || l.MTU != p.MTU || !l.up() {
			t.Errorf("%s: master %q mtu %d up %v, want %s, %d, up", tap, l.Master, l.MTU, l.up(), qbr, p.MTU)
		}
	} else if l, ok := ls[tap]; ok && l.Master != "" {
		t.Errorf("%s: master %q, want none", tap, l.Master)
	}
	for _, d := range devs {
		if v := sysctlIn(t, host, "net/ipv6/conf/"+d+"/disable_ipv6"); v != "1" {
			t.Errorf("%s: disable_ipv6 = %s, want 1", d, v)
		}
	}
}

func vsctl(t *testing.T, o *ovsd.OVS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ovs-vsctl", append([]string{"--db=" + o.DB(), "--timeout=10"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ovs-vsctl %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func checkOVSPort(t *testing.T, o *ovsd.OVS, p Port) {
	t.Helper()
	qvo := hybrid.OVSVethName(p.ID)
	if got := vsctl(t, o, "port-to-br", qvo); got != "br-int" {
		t.Errorf("%s is on bridge %q, want br-int", qvo, got)
	}
	if got := vsctl(t, o, "get", "Port", qvo, "tag"); got != fmt.Sprint(p.Tag) {
		t.Errorf("%s: tag %s, want %d", qvo, got, p.Tag)
	}
	if got := unquote(vsctl(t, o, "get", "Port", qvo, "other_config:net_uuid")); got != p.NetworkID {
		t.Errorf("%s: other_config:net_uuid %s, want %q", qvo, got, p.NetworkID)
	}
	want := fmt.Sprintf(`{attached-mac="%s", iface-id="%s", iface-status=active}`, p.MAC, p.ID)
	if got := vsctl(t, o, "get", "Interface", qvo, "external_ids"); got != want {
		t.Errorf("%s: external_ids %s, want %s", qvo, got, want)
	}
	if got := vsctl(t, o, "get", "Interface", qvo, "error"); got != "[]" {
		t.Errorf("%s: error %s", qvo, got)
	}
}

func linkNames(ls map[string]linkDetail) []string {
	var names []string
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func wantNames(extra []string, plugged []Port, taps []Port) []string {
	names := append([]string{"lo"}, extra...)
	for _, p := range plugged {
		names = append(names, hybrid.BridgeName(p.ID), hybrid.BridgeVethName(p.ID), hybrid.OVSVethName(p.ID))
	}
	for _, p := range taps {
		names = append(names, hybrid.TapName(p.ID))
	}
	sort.Strings(names)
	return names
}

func ifindexes(ls map[string]linkDetail, h *netlink.Handle, t *testing.T) map[string]int {
	m := map[string]int{}
	for n := range ls {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		m[n] = l.Attrs().Index
	}
	return m
}

func testPorts() []Port {
	return []Port{
		{ID: "c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", MAC: "fa:16:3e:c3:ea:d5", NetworkID: "net-a", Tag: 1, MTU: 1450},
		{ID: "5f2b7e1d-9a4c-4d2b-8c1e-0b9a8f7e6d5c", MAC: "fa:16:3e:7d:21:9b", NetworkID: "net-b", Tag: 2, MTU: 1400},
		{ID: "9e41d2c7-b0a1-4f3e-8d2c-1a2b3c4d5e6f", MAC: "fa:16:3e:11:22:33", NetworkID: "net-a", Tag: 1, MTU: 1450},
	}
}

func TestOVSWiring(t *testing.T) {
	needRoot(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := scratchNetns(t, "mwh")
	o := netnstest.OVS(t, host)
	cfg := Config{Mode: ModeOVS, OVSDB: o.DB(), DatapathType: "netdev", Netns: host, Logger: slog.New(slog.DiscardHandler)}
	w, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Kind() != KindOVS {
		t.Fatalf("Kind = %s", w.Kind())
	}
	if got := vsctl(t, o, "get", "Bridge", "br-int", "datapath_type"); got != "netdev" {
		t.Errorf("br-int datapath_type %s", got)
	}
	ports := testPorts()
	// OVS's userspace datapath adds its own devices to the namespace.
	ovsDevs := []string{"br-int", "ovs-netdev"}

	// Plug, twice: the second changes nothing.
	for _, p := range ports {
		if err := w.Plug(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	h := netnstest.Handle(t, host)
	before := ifindexes(linksIn(t, host), h, t)
	for _, p := range ports {
		if err := w.Plug(ctx, p); err != nil {
			t.Fatal(err)
		}
		if ok, err := w.AttachTap(ctx, p.ID); ok || err != nil {
			t.Fatalf("AttachTap without a tap = %v, %v; want false, nil", ok, err)
		}
	}
	ls := linksIn(t, host)
	if got := ifindexes(ls, h, t); !reflect.DeepEqual(got, before) {
		t.Errorf("second Plug changed devices: %v -> %v", before, got)
	}
	if got, want := linkNames(ls), wantNames(ovsDevs, ports, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("devices after Plug: %v, want %v", got, want)
	}
	for _, p := range ports {
		checkWired(t, host, ls, p, "", false)
		checkOVSPort(t, o, p)
	}

	// The hypervisor's taps appear; AttachTap enslaves them (twice).
	vms := make([]vm, len(ports))
	for i, p := range ports {
		vms[i] = addVM(t, host, p, fmt.Sprintf("192.168.1.%d", 11+i))
	}
	for round := 0; round < 2; round++ {
		for _, p := range ports {
			if ok, err := w.AttachTap(ctx, p.ID); !ok || err != nil {
				t.Fatalf("AttachTap(%s) = %v, %v", p.ID, ok, err)
			}
		}
	}
	ls = linksIn(t, host)
	if got, want := linkNames(ls), wantNames(ovsDevs, ports, ports); !reflect.DeepEqual(got, want) {
		t.Errorf("devices after AttachTap: %v, want %v", got, want)
	}
	for _, p := range ports {
		checkWired(t, host, ls, p, "", true)
	}

	// VLAN isolation: ports 0 and 2 share net-a (tag 1), port 1 is alone on tag 2.
	canPing(t, vms[0], vms[2])
	cannotPing(t, vms[0], vms[1])
	cannotPing(t, vms[1], vms[2])

	// A restarted agent finds the wiring and its tags.
	w.Close()
	w, err = New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.Plugged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []Plugged
	for _, p := range ports {
		want = append(want, Plugged{PortID: p.ID, DevID: hybrid.DevID(p.ID), NetworkID: p.NetworkID, MAC: p.MAC, Tag: p.Tag, MTU: p.MTU,
			Bridge: true, Veth: true, InBrInt: true, TapAttached: true})
	}
	sortPlugged(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plugged after restart:\n got %+v\nwant %+v", got, want)
	}
	vl := NewVLANs()
	for _, p := range got {
		if err := vl.Seed(p.PortID, p.NetworkID, p.Tag); err != nil {
			t.Fatal(err)
		}
	}
	if tag, _ := vl.Assign("new-port", "net-c"); tag != 3 {
		t.Errorf("new network after seeding got tag %d, want 3", tag)
	}

	// Re-plugging with another tag moves the port: now everyone talks.
	ports[1].Tag = 1
	if err := w.Plug(ctx, ports[1]); err != nil {
		t.Fatal(err)
	}
	checkOVSPort(t, o, ports[1])
	canPing(t, vms[0], vms[1])

	// Unplug (twice): the tap stays, detached; everything else goes.
	for round := 0; round < 2; round++ {
		if err := w.Unplug(ctx, ports[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	ls = linksIn(t, host)
	if got, want := linkNames(ls), wantNames(ovsDevs, ports[1:], ports); !reflect.DeepEqual(got, want) {
		t.Errorf("devices after Unplug: %v, want %v", got, want)
	}
	if m := ls[hybrid.TapName(ports[0].ID)].Master; m != "" {
		t.Errorf("tap of the unplugged port still in %s", m)
	}
	if out := vsctl(t, o, "list-ports", "br-int"); strings.Contains(out, hybrid.OVSVethName(ports[0].ID)) {
		t.Errorf("qvo still on br-int: %s", out)
	}
	if got, _ := w.Plugged(ctx); len(got) != 2 {
		t.Errorf("Plugged after Unplug: %+v", got)
	}
	cannotPing(t, vms[0], vms[2])
}

// Leftovers: a qvo on br-int without qbr, and a qbr without its veth, are
// reported (incomplete) and unplugged by DevID.
func TestOVSLeftovers(t *testing.T) {
	needRoot(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := scratchNetns(t, "mwh")
	o := netnstest.OVS(t, host)
	w, err := New(ctx, Config{Mode: ModeOVS, OVSDB: o.DB(), DatapathType: "netdev", Netns: host, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ports := testPorts()
	for _, p := range ports[:2] {
		if err := w.Plug(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	run(t, host, "ip", "link", "del", hybrid.BridgeName(ports[0].ID))
	run(t, host, "ip", "link", "del", hybrid.BridgeVethName(ports[1].ID))
	got, err := w.Plugged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byDev := map[string]Plugged{}
	for _, p := range got {
		byDev[p.DevID] = p
	}
	a, b := byDev[hybrid.DevID(ports[0].ID)], byDev[hybrid.DevID(ports[1].ID)]
	if a.Complete() || a.Bridge || !a.InBrInt || a.PortID != ports[0].ID || a.Tag != 1 || a.NetworkID != "net-a" {
		t.Errorf("qvo-only leftover: %+v", a)
	}
	// qvo went with its veth peer; OVS keeps the port row (with an error).
	if b.Complete() || !b.Bridge || b.Veth || b.PortID != ports[1].ID {
		t.Errorf("qbr-only leftover: %+v", b)
	}
	for _, p := range got {
		if err := w.Unplug(ctx, p.DevID); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := w.Plugged(ctx); len(got) != 0 {
		t.Errorf("Plugged after unplugging leftovers: %+v", got)
	}
	if out := vsctl(t, o, "list-ports", "br-int"); out != "" {
		t.Errorf("ports left on br-int: %q", out)
	}
	// Re-plugging over a half-built port repairs it.
	if err := w.Plug(ctx, ports[0]); err != nil {
		t.Fatal(err)
	}
	run(t, host, "ip", "link", "del", hybrid.OVSVethName(ports[0].ID))
	if err := w.Plug(ctx, ports[0]); err != nil {
		t.Fatalf("re-plug after losing the veth: %v", err)
	}
	checkWired(t, host, linksIn(t, host), ports[0], "", false)
	checkOVSPort(t, o, ports[0])
}

func TestLinuxBridgeWiring(t *testing.T) {
	needRoot(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := scratchNetns(t, "mwh")
	var logs bytes.Buffer
	cfg := Config{Mode: ModeLinux, Netns: host, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	w, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Kind() != KindLinuxBridge {
		t.Fatalf("Kind = %s", w.Kind())
	}
	if !strings.Contains(logs.String(), "NO VLAN ISOLATION") {
		t.Errorf("no loud warning in the log: %s", logs.String())
	}
	ports := testPorts()[:2] // two networks
	vms := make([]vm, len(ports))
	for i, p := range ports {
		vms[i] = addVM(t, host, p, fmt.Sprintf("192.168.1.%d", 11+i)) // taps first, this time
	}
	for round := 0; round < 2; round++ {
		for _, p := range ports {
			if err := w.Plug(ctx, p); err != nil {
				t.Fatal(err)
			}
			if ok, err := w.AttachTap(ctx, p.ID); !ok || err != nil {
				t.Fatalf("AttachTap = %v, %v", ok, err)
			}
		}
	}
	ls := linksIn(t, host)
	if got, want := linkNames(ls), wantNames([]string{"br-int"}, ports, ports); !reflect.DeepEqual(got, want) {
		t.Errorf("devices: %v, want %v", got, want)
	}
	if ls["br-int"].LinkInfo.Kind != "bridge" || !ls["br-int"].up() {
		t.Errorf("br-int: %+v", ls["br-int"])
	}
	for _, p := range ports {
		checkWired(t, host, ls, p, "br-int", true)
	}
	// No VLAN isolation: different networks reach each other.
	canPing(t, vms[0], vms[1])

	w.Close()
	if w, err = New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.Plugged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []Plugged
	for _, p := range ports {
		want = append(want, Plugged{PortID: p.ID, DevID: hybrid.DevID(p.ID), NetworkID: p.NetworkID, MAC: p.MAC, MTU: p.MTU,
			Bridge: true, Veth: true, InBrInt: true, TapAttached: true})
	}
	sortPlugged(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plugged after restart:\n got %+v\nwant %+v", got, want)
	}
	for round := 0; round < 2; round++ {
		for _, p := range ports {
			if err := w.Unplug(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	ls = linksIn(t, host)
	if got, want := linkNames(ls), wantNames([]string{"br-int"}, nil, ports); !reflect.DeepEqual(got, want) {
		t.Errorf("devices after Unplug: %v, want %v", got, want)
	}
	cannotPing(t, vms[0], vms[1])
}

func TestAdoptTap(t *testing.T) {
	needRoot(t, false)
	ctx := context.Background()
	host := scratchNetns(t, "mwh")
	w, err := New(ctx, Config{Mode: ModeLinux, Netns: host, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := testPorts()[0]
	// A stand-in for a hypervisor's tap (this kernel has no dummy driver).
	run(t, host, "ip", "link", "add", "vnet7", "type", "veth", "peer", "name", "vnet7p")
	run(t, host, "ip", "link", "set", "vnet7", "up")
	for round := 0; round < 2; round++ {
		if err := w.AdoptTap(ctx, p.ID, "vnet7"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Plug(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.AttachTap(ctx, p.ID); !ok || err != nil {
		t.Fatalf("AttachTap = %v, %v", ok, err)
	}
	ls := linksIn(t, host)
	if _, ok := ls["vnet7"]; ok {
		t.Error("vnet7 not renamed")
	}
	if l := ls[hybrid.TapName(p.ID)]; l.Master != hybrid.BridgeName(p.ID) || !l.up() {
		t.Errorf("adopted tap: %+v", l)
	}
	if err := w.AdoptTap(ctx, testPorts()[1].ID, "nosuchdev"); err == nil {
		t.Error("AdoptTap of a missing device succeeded")
	}
}

// The package-level AdoptTap (`moat plug`) renames the tap without setting
// up an integration bridge.
func TestAdoptTapWithoutWirer(t *testing.T) {
	needRoot(t, false)
	host := scratchNetns(t, "mwa")
	p := testPorts()[0]
	run(t, host, "ip", "link", "add", "vnet7", "type", "veth", "peer", "name", "vnet7p")
	run(t, host, "ip", "link", "set", "vnet7", "up")
	for round := 0; round < 2; round++ {
		if err := AdoptTap(host, p.ID, "vnet7"); err != nil {
			t.Fatal(err)
		}
	}
	ls := linksIn(t, host)
	if _, ok := ls["vnet7"]; ok {
		t.Error("vnet7 not renamed")
	}
	if l, ok := ls[hybrid.TapName(p.ID)]; !ok || !l.up() {
		t.Errorf("adopted tap: %+v (present %v), want it up", l, ok)
	}
	if _, ok := ls["br-int"]; ok {
		t.Error("AdoptTap created br-int")
	}
	if err := AdoptTap(host, testPorts()[1].ID, "nosuchdev"); err == nil {
		t.Error("AdoptTap of a missing device succeeded")
	}
	if err := AdoptTap(host, "no/such", "vnet7p"); err == nil {
		t.Error("AdoptTap with an invalid port id succeeded")
	}
}

// New's choice of bridge, and its errors.
func TestNewDetect(t *testing.T) {
	needRoot(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	noDB := "unix:/nonexistent/moat-test/db.sock"
	quiet := slog.New(slog.DiscardHandler)
	// With the openvswitch module loaded the kernel datapath works, so its
	// "module missing" error cannot be provoked: the test never unloads
	// the host's modules.
	kernelOVS := false
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		kernelOVS = true
	}
	cases := []struct {
		name     string
		needOVS  bool
		ovs      bool   // start a private OVS and point OVSDB at it
		brint    string // pre-existing br-int of this type (not a bridge)
		cfg      Config
		kind     string
		err      string
		errNoOVS bool
		skip     bool
	}{
		{name: "auto without OVS falls back to a Linux bridge", cfg: Config{OVSDB: noDB}, kind: KindLinuxBridge},
		{name: "ovs without OVS", cfg: Config{Mode: ModeOVS, OVSDB: noDB}, err: "does not answer", errNoOVS: true},
		{name: "auto with OVS", needOVS: true, ovs: true, cfg: Config{DatapathType: "netdev"}, kind: KindOVS},
		{name: "linux with OVS running", needOVS: true, ovs: true, cfg: Config{Mode: ModeLinux}, kind: KindLinuxBridge},
		{name: "OVS kernel datapath without the module", needOVS: true, ovs: true, cfg: Config{Mode: ModeAuto}, err: "openvswitch module", skip: kernelOVS},
		{name: "linux with a br-int that is not a bridge", brint: "veth", cfg: Config{Mode: ModeLinux}, err: "not a Linux bridge"},
		{name: "neither works", brint: "veth", cfg: Config{OVSDB: noDB}, err: "no usable integration bridge"},
		{name: "bad mode", cfg: Config{Mode: "bridge"}, err: "want auto, ovs or linux"},
		{name: "bad datapath", cfg: Config{DatapathType: "dpdk"}, err: "want system or netdev"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip {
				// Not a missing prerequisite (MOAT_REQUIRE_KERNEL does not
				// fail it): hosts without the module, as CI's, run it.
				t.Skip("the openvswitch kernel module is loaded on this host, so the kernel datapath's missing-module error cannot be provoked here (the test does not unload host modules)")
			}
			if c.needOVS {
				testenv.RequireOVS(t)
			}
			host := scratchNetns(t, "mwh")
			cfg := c.cfg
			cfg.Netns, cfg.Logger, cfg.Timeout = host, quiet, 5*time.Second
			if c.ovs {
				cfg.OVSDB = netnstest.OVS(t, host).DB()
			}
			if c.brint != "" {
				run(t, host, "ip", "link", "add", "br-int", "type", c.brint, "peer", "name", "br-int-peer")
			}
			w, err := New(ctx, cfg)
			if c.err != "" {
				if err == nil {
					w.Close()
					t.Fatalf("New succeeded (%s), want error %q", w.Kind(), c.err)
				}
				if !strings.Contains(err.Error(), c.err) || errors.Is(err, ErrNoOVS) != c.errNoOVS {
					t.Fatalf("New error %q (ErrNoOVS %v), want %q (ErrNoOVS %v)", err, errors.Is(err, ErrNoOVS), c.err, c.errNoOVS)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if w.Kind() != c.kind {
				t.Errorf("Kind = %s, want %s", w.Kind(), c.kind)
			}
		})
	}
}
