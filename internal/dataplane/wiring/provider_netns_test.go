package wiring

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/netnstest"
)

// countExec counts ovs-ofctl runs.
type countExec struct {
	dataplane.Exec
	ofctl int
}

func (c *countExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if name == "ovs-ofctl" {
		c.ofctl++
	}
	return c.Exec.Run(ctx, stdin, name, args...)
}

// TestProviderBridges wires three ports of three networks to br-int and
// maps physnet1 to br-eth1, whose uplink eth1 leads to a "switch"
// namespace: VLAN 102 (a VLAN interface) and untagged frames (the flat
// network) meet addresses there. Real packets show the local tags becoming
// the provider VLAN and back, the isolation of another VLAN, a flat
// network untagged, and flows lost and put back.
func TestProviderBridges(t *testing.T) {
	needRoot(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := scratchNetns(t, "mwh")
	sw := scratchNetns(t, "mws")
	o := netnstest.OVS(t, host)
	ex := &countExec{Exec: dataplane.Netns{Name: host}}
	w, err := New(ctx, Config{Mode: ModeOVS, OVSDB: o.DB(), DatapathType: "netdev", Netns: host, Exec: ex, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mappings, err := ParseBridgeMappings("physnet1:br-eth1", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProvider(ctx, w, mappings)
	if err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, o, "get", "Bridge", "br-eth1", "fail_mode"); got != "secure" {
		t.Errorf("br-eth1 fail_mode %s, want secure", got)
	}
	if got := vsctl(t, o, "get", "Bridge", "br-eth1", "datapath_type"); got != "netdev" {
		t.Errorf("br-eth1 datapath_type %s, want br-int's netdev", got)
	}
	if got := vsctl(t, o, "get", "Interface", "int-br-eth1", "options:peer"); got != `"phy-br-eth1"` && got != "phy-br-eth1" {
		t.Errorf("int-br-eth1 peer %s", got)
	}
	// A second NewProvider (an agent restart) keeps what is there.
	if _, err := NewProvider(ctx, w, mappings); err != nil {
		t.Fatalf("NewProvider again: %v", err)
	}

	// The uplink: eth1 in br-eth1, its peer up0 a trunk port of the
	// switch's own OVS (this kernel has no 802.1Q devices), whose access
	// ports lead to the "gateways" 10.0.102.1 (VLAN 102) and 10.0.0.1
	// (untagged) in the namespace gw.
	gw := scratchNetns(t, "mwg")
	so := netnstest.OVS(t, sw)
	run(t, host, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "up0", "netns", sw)
	run(t, host, "ip", "link", "set", "eth1", "up")
	vsctl(t, o, "add-port", "br-eth1", "eth1")
	run(t, sw, "ip", "link", "set", "up0", "up")
	vsctl(t, so, "add-br", "br-phys", "--", "set", "Bridge", "br-phys", "datapath_type=netdev")
	vsctl(t, so, "add-port", "br-phys", "up0")
	for _, a := range []struct{ dev, ip, tag string }{{"g102", "10.0.102.1/24", "102"}, {"gflat", "10.0.0.1/24", ""}} {
		run(t, sw, "ip", "link", "add", a.dev, "type", "veth", "peer", "name", a.dev, "netns", gw)
		run(t, sw, "ip", "link", "set", a.dev, "up")
		args := []string{"add-port", "br-phys", a.dev}
		if a.tag != "" {
			args = append(args, "tag="+a.tag)
		} else {
			args = append(args, "vlan_mode=native-untagged", "tag=0")
		}
		vsctl(t, so, args...)
		run(t, gw, "ip", "addr", "add", a.ip, "dev", a.dev)
		run(t, gw, "ip", "link", "set", a.dev, "up")
		run(t, gw, "ethtool", "-K", a.dev, "tx", "off")
	}
	gw102 := vm{ns: gw, ip: "10.0.102.1"}
	gwFlat := vm{ns: gw, ip: "10.0.0.1"}

	ports := []Port{
		{ID: "aa000001-0000-4000-8000-000000000001", MAC: "fa:16:3e:00:00:01", NetworkID: "n102", Tag: 1, MTU: 1500},
		{ID: "aa000002-0000-4000-8000-000000000002", MAC: "fa:16:3e:00:00:02", NetworkID: "n103", Tag: 2, MTU: 1500},
		{ID: "aa000003-0000-4000-8000-000000000003", MAC: "fa:16:3e:00:00:03", NetworkID: "nflat", Tag: 3, MTU: 1500},
	}
	ips := []string{"10.0.102.11", "10.0.102.12", "10.0.0.11"}
	vms := make([]vm, len(ports))
	for i, pt := range ports {
		if err := w.Plug(ctx, pt); err != nil {
			t.Fatal(err)
		}
		vms[i] = addVM(t, host, pt, ips[i])
		if ok, err := w.AttachTap(ctx, pt.ID); !ok || err != nil {
			t.Fatalf("AttachTap %s = %v, %v", pt.ID, ok, err)
		}
	}
	// No flows yet: br-eth1 (fail_mode secure) passes nothing.
	cannotPing(t, vms[0], gw102)

	segs := []Segment{
		{NetworkID: "n102", LocalVLAN: 1, NetworkType: "vlan", Physnet: "physnet1", SegmentationID: 102},
		{NetworkID: "n103", LocalVLAN: 2, NetworkType: "vlan", Physnet: "physnet1", SegmentationID: 103},
		{NetworkID: "nflat", LocalVLAN: 3, NetworkType: "flat", Physnet: "physnet1"},
	}
	if unmapped, err := p.Sync(ctx, segs, false); err != nil || len(unmapped) != 0 {
		t.Fatalf("Sync = %v, %v", unmapped, err)
	}
	flows, err := p.Flows(ctx, "br-eth1")
	if err != nil {
		t.Fatal(err)
	}
	if !containsFlow(flows, `in_port="phy-br-eth1",dl_vlan=1 actions=mod_vlan_vid:102,NORMAL`) {
		t.Errorf("br-eth1 flows lack the VLAN 1 -> 102 translation:\n%s", strings.Join(flows, "\n"))
	}
	canPing(t, vms[0], gw102)    // local VLAN 1 on the wire as 102, and back
	cannotPing(t, vms[1], gw102) // VLAN 103: nobody at 10.0.102.1 there
	canPing(t, vms[2], gwFlat)   // flat: untagged

	// Unchanged segments: no ovs-ofctl run.
	n := ex.ofctl
	if _, err := p.Sync(ctx, segs, false); err != nil {
		t.Fatal(err)
	}
	if ex.ofctl != n {
		t.Errorf("Sync of unchanged segments ran ovs-ofctl %d times", ex.ofctl-n)
	}
	// Flows lost (ovs-vswitchd restarted, or someone ran del-flows):
	// nothing passes until a forced Sync puts them back.
	run(t, host, "ovs-ofctl", "del-flows", "unix:"+o.Dir+"/br-eth1.mgmt")
	soonCannotPing(t, vms[0], gw102)
	if _, err := p.Sync(ctx, segs, true); err != nil {
		t.Fatal(err)
	}
	canPing(t, vms[0], gw102)

	// The network leaves the host: its frames no longer reach the wire.
	if _, err := p.Sync(ctx, segs[1:], false); err != nil {
		t.Fatal(err)
	}
	soonCannotPing(t, vms[0], gw102)
	canPing(t, vms[2], gwFlat)
}

// soonCannotPing is cannotPing after a flow table change: the userspace
// datapath's cached flows are revalidated shortly after the table
// changes, not with it, so a ping may still pass for a moment.
func soonCannotPing(t *testing.T, from, to vm) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pingOnce(from, to, 1) == nil {
		if time.Now().After(deadline) {
			t.Errorf("%s (%s) still pings %s 5 s after the flows changed, want isolation", from.ns, from.port.ID, to.ip)
			return
		}
	}
	cannotPing(t, from, to)
}

func containsFlow(flows []string, sub string) bool {
	for _, f := range flows {
		if strings.Contains(f, sub) {
			return true
		}
	}
	return false
}
