package wiring

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Provider networks between hosts, as Neutron's OVS agent builds them
// (bridge_mappings): each physical network has an OVS bridge (br-eth1)
// holding the host's uplink, joined to br-int by the patch ports
// int-br-eth1 / phy-br-eth1. A network's frames carry its local VLAN on
// br-int; leaving through phy-br-eth1 the tag becomes the network's
// segmentation id (VLAN) or is stripped (flat), and back arriving through
// int-br-eth1. Frames of a physical network that no local network uses are
// dropped at both patch ports.
//
//	br-int   table 0: priority=3,in_port=int-br-eth1,dl_vlan=SEG actions=mod_vlan_vid:LOCAL,NORMAL
//	                  priority=2,in_port=int-br-eth1 actions=drop
//	                  priority=0 actions=NORMAL
//	br-eth1  table 0: priority=4,in_port=phy-br-eth1,dl_vlan=LOCAL actions=mod_vlan_vid:SEG,NORMAL
//	                  priority=2,in_port=phy-br-eth1 actions=drop
//	                  priority=0 actions=NORMAL
//
// The physical bridges run in fail_mode secure: if ovs-vswitchd restarts
// and forgets the flows, they pass nothing (rather than local tags onto
// the wire) until the agent puts the flows back.

// Network types that leave a host through a physical bridge.
const (
	NetworkTypeVLAN = "vlan"
	NetworkTypeFlat = "flat"
)

// BridgeMapping maps a physical network to the OVS bridge of its uplink.
type BridgeMapping struct {
	Physnet string
	Bridge  string
}

// ParseBridgeMappings parses Neutron's bridge_mappings:
// "physnet1:br-eth1[,physnet2:br-eth2...]". A physical network or a bridge
// named twice is an error, as is a bridge named like br-int.
func ParseBridgeMappings(s, intBridge string) ([]BridgeMapping, error) {
	var out []BridgeMapping
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	physnets, bridges := map[string]bool{}, map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		physnet, bridge, ok := strings.Cut(item, ":")
		physnet, bridge = strings.TrimSpace(physnet), strings.TrimSpace(bridge)
		if !ok || physnet == "" || bridge == "" {
			return nil, fmt.Errorf("bridge mapping %q: want PHYSNET:BRIDGE", item)
		}
		if err := checkOVSName(bridge); err != nil {
			return nil, fmt.Errorf("bridge mapping %q: %w", item, err)
		}
		if strings.ContainsAny(physnet, " \t\"'\\,:") {
			return nil, fmt.Errorf("bridge mapping %q: physical network %q has a character Neutron does not allow", item, physnet)
		}
		if bridge == intBridge {
			return nil, fmt.Errorf("bridge mapping %q: %s is the integration bridge", item, bridge)
		}
		if physnets[physnet] {
			return nil, fmt.Errorf("bridge mappings: physical network %s mapped twice", physnet)
		}
		if bridges[bridge] {
			return nil, fmt.Errorf("bridge mappings: bridge %s mapped twice", bridge)
		}
		physnets[physnet], bridges[bridge] = true, true
		out = append(out, BridgeMapping{Physnet: physnet, Bridge: bridge})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Physnet < out[j].Physnet })
	return out, nil
}

// checkOVSName accepts a bridge name usable as an interface name and in
// ovs-vsctl/ovs-ofctl arguments.
func checkOVSName(name string) error {
	if len(name) > hybrid.MaxDeviceNameLen {
		return fmt.Errorf("bridge name %q is longer than %d characters", name, hybrid.MaxDeviceNameLen)
	}
	if err := hybrid.CheckDeviceID(name); err != nil {
		return fmt.Errorf("bridge name %q: want letters, digits, '-', '_' and '.'", name)
	}
	return nil
}

// Segment is a network with ports on this host: its local VLAN on br-int
// and where it lives outside the host.
type Segment struct {
	NetworkID      string
	LocalVLAN      int
	NetworkType    string // vlan, flat, vxlan, local...
	Physnet        string // vlan and flat
	SegmentationID int    // the provider VLAN (vlan only)
}

// ProviderFlows returns the OpenFlow table of br-int and of every mapped
// bridge for the segments (ovs-ofctl flow syntax, one flow a line,
// sorted), and the segments that cannot leave the host: a VLAN or flat
// network whose physical network has no mapping here. Other types
// (vxlan, local) stay on the host without a word: there is no tunnel
// bridge.
func ProviderFlows(intBridge string, mappings []BridgeMapping, segs []Segment) (flows map[string][]string, unmapped []Segment) {
	bridgeOf := map[string]BridgeMapping{}
	flows = map[string][]string{intBridge: {"priority=0,actions=NORMAL"}}
	for _, m := range mappings {
		bridgeOf[m.Physnet] = m
		intPort, phyPort := hybrid.IntPatchPort(m.Bridge), hybrid.PhyPatchPort(m.Bridge)
		flows[intBridge] = append(flows[intBridge], fmt.Sprintf("priority=2,in_port=%s,actions=drop", intPort))
		flows[m.Bridge] = []string{"priority=0,actions=NORMAL", fmt.Sprintf("priority=2,in_port=%s,actions=drop", phyPort)}
	}
	for _, s := range segs {
		if s.NetworkType != NetworkTypeVLAN && s.NetworkType != NetworkTypeFlat {
			continue
		}
		m, ok := bridgeOf[s.Physnet]
		if !ok || s.LocalVLAN < MinVLAN || s.LocalVLAN > MaxVLAN {
			unmapped = append(unmapped, s)
			continue
		}
		intPort, phyPort := hybrid.IntPatchPort(m.Bridge), hybrid.PhyPatchPort(m.Bridge)
		switch s.NetworkType {
		case NetworkTypeVLAN:
			if s.SegmentationID < MinVLAN || s.SegmentationID > MaxVLAN {
				unmapped = append(unmapped, s)
				continue
			}
			flows[intBridge] = append(flows[intBridge], fmt.Sprintf("priority=3,in_port=%s,dl_vlan=%d,actions=mod_vlan_vid:%d,NORMAL", intPort, s.SegmentationID, s.LocalVLAN))
			flows[m.Bridge] = append(flows[m.Bridge], fmt.Sprintf("priority=4,in_port=%s,dl_vlan=%d,actions=mod_vlan_vid:%d,NORMAL", phyPort, s.LocalVLAN, s.SegmentationID))
		case NetworkTypeFlat:
			flows[intBridge] = append(flows[intBridge], fmt.Sprintf("priority=3,in_port=%s,vlan_tci=0x0000/0x1fff,actions=mod_vlan_vid:%d,NORMAL", intPort, s.LocalVLAN))
			flows[m.Bridge] = append(flows[m.Bridge], fmt.Sprintf("priority=4,in_port=%s,dl_vlan=%d,actions=strip_vlan,NORMAL", phyPort, s.LocalVLAN))
		}
	}
	for br := range flows {
		sort.Strings(flows[br])
	}
	return flows, unmapped
}

// Provider keeps the physical bridges and their flows. It is not safe for
// concurrent use (the agent's sync loop owns it).
type Provider struct {
	o        *ovsBridge
	mappings []BridgeMapping
	rundir   string
	applied  map[string]string // bridge -> flows last written
}

// NewProvider creates (when missing) the bridge of every mapping, with
// br-int's datapath type and fail_mode secure, and the patch ports
// between it and br-int. The operator adds the uplink (eth1) to the bridge,
// as with Neutron. w must be an OVS Wirer.
func NewProvider(ctx context.Context, w Wirer, mappings []BridgeMapping) (*Provider, error) {
	ww, ok := w.(*wirer)
	if !ok || ww.br == nil {
		return nil, fmt.Errorf("bridge mappings need Open vSwitch as br-int")
	}
	o, ok := ww.br.(*ovsBridge)
	if !ok {
		return nil, fmt.Errorf("bridge mappings need Open vSwitch as br-int (br-int is a Linux bridge)")
	}
	p := &Provider{o: o, mappings: mappings, applied: map[string]string{}}
	// ovs-ofctl reaches a bridge at RUNDIR/BRIDGE.mgmt: next to the
	// database's socket when --ovsdb names one, else OVS's default.
	if path, ok := strings.CutPrefix(o.db, "unix:"); ok {
		p.rundir = filepath.Dir(path)
	}
	dp, err := o.vsctl(ctx, "get", "Bridge", o.name, "datapath_type")
	if err != nil {
		return nil, fmt.Errorf("read datapath_type of %s: %w", o.name, err)
	}
	datapath := strings.Trim(strings.TrimSpace(string(dp)), `"`)
	if datapath == "" {
		datapath = "system"
	}
	for _, m := range mappings {
		intPort, phyPort := hybrid.IntPatchPort(m.Bridge), hybrid.PhyPatchPort(m.Bridge)
		_, exists := o.vsctl(ctx, "br-exists", m.Bridge)
		if _, err := o.vsctl(ctx,
			"--", "--may-exist", "add-br", m.Bridge,
			"--", "set", "Bridge", m.Bridge, "fail_mode=secure",
			"--", "--may-exist", "add-port", o.name, intPort,
			"--", "set", "Interface", intPort, "type=patch", "options:peer="+phyPort,
			"--", "--may-exist", "add-port", m.Bridge, phyPort,
			"--", "set", "Interface", phyPort, "type=patch", "options:peer="+intPort); err != nil {
			return nil, fmt.Errorf("physical network %s: bridge %s and patch ports %s/%s: %w", m.Physnet, m.Bridge, intPort, phyPort, err)
		}
		if exists != nil {
			if _, err := o.vsctl(ctx, "set", "Bridge", m.Bridge, "datapath_type="+datapath); err != nil {
				return nil, fmt.Errorf("set datapath_type of %s: %w", m.Bridge, err)
			}
			o.log.Info("created OVS physical bridge (add the uplink to it)", "bridge", m.Bridge, "physnet", m.Physnet, "datapath_type", datapath)
		}
		for _, port := range []string{m.Bridge, intPort, phyPort} {
			if err := o.checkInterface(ctx, port); err != nil {
				return nil, fmt.Errorf("physical network %s: %w", m.Physnet, err)
			}
		}
	}
	return p, nil
}

// Mappings returns the bridge mappings.
func (p *Provider) Mappings() []BridgeMapping { return p.mappings }

// Sync makes the flows of br-int and of the physical bridges translate
// the segments' tags; unchanged tables are not rewritten unless force
// (which repairs flows someone removed, or that an ovs-vswitchd restart
// lost). It returns the segments that cannot leave the host.
func (p *Provider) Sync(ctx context.Context, segs []Segment, force bool) ([]Segment, error) {
	flows, unmapped := ProviderFlows(p.o.name, p.mappings, segs)
	// The physical bridges (sorted by physnet) before br-int: a frame
	// br-int sends meanwhile with a tag its bridge does not translate yet
	// is dropped there (priority=2), never put on the wire as it is.
	bridges := make([]string, 0, len(flows))
	for _, m := range p.mappings {
		bridges = append(bridges, m.Bridge)
	}
	bridges = append(bridges, p.o.name)
	for _, br := range bridges {
		text := strings.Join(flows[br], "\n") + "\n"
		if !force && p.applied[br] == text {
			continue
		}
		if err := p.replaceFlows(ctx, br, text); err != nil {
			delete(p.applied, br)
			return unmapped, err
		}
		p.applied[br] = text
	}
	return unmapped, nil
}

// replaceFlows makes text the bridge's flow table in one OpenFlow bundle
// (ovs-ofctl replace-flows changes only the flows that differ).
func (p *Provider) replaceFlows(ctx context.Context, bridge, text string) error {
	target := bridge
	if p.rundir != "" {
		target = "unix:" + filepath.Join(p.rundir, bridge+".mgmt")
	}
	if _, err := p.o.exec.Run(ctx, []byte(text), "ovs-ofctl", "-O", "OpenFlow14", "--bundle", "replace-flows", target, "-"); err != nil {
		return fmt.Errorf("write the flows of %s: %w", bridge, err)
	}
	return nil
}

// Flows reads a bridge's flow table (ovs-ofctl dump-flows, without
// statistics), for tests and diagnostics.
func (p *Provider) Flows(ctx context.Context, bridge string) ([]string, error) {
	target := bridge
	if p.rundir != "" {
		target = "unix:" + filepath.Join(p.rundir, bridge+".mgmt")
	}
	out, err := p.o.exec.Run(ctx, nil, "ovs-ofctl", "--no-stats", "--names", "dump-flows", target)
	if err != nil {
		return nil, fmt.Errorf("read the flows of %s: %w", bridge, err)
	}
	var flows []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "NXST_FLOW") && !strings.HasPrefix(l, "OFPST_FLOW") {
			flows = append(flows, l)
		}
	}
	sort.Strings(flows)
	return flows, nil
}
