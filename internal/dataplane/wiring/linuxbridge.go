package wiring

import (
	"context"
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// linuxBridge is the fallback br-int: a plain Linux bridge. It cannot
// isolate networks (no VLAN tags; the kernels this runs on may lack
// CONFIG_BRIDGE_VLAN_FILTERING), so Port.Tag is ignored.
type linuxBridge struct {
	name  string
	links *links
}

func (b *linuxBridge) kind() string { return KindLinuxBridge }

func (b *linuxBridge) ensure() error {
	link, err := b.links.get(b.name)
	if err != nil {
		return err
	}
	if link != nil && link.Type() != "bridge" {
		return fmt.Errorf("%s exists but is a %s device, not a Linux bridge (an OVS bridge whose ovsdb-server is down?)", b.name, link.Type())
	}
	br, err := b.links.ensureBridge(b.name, 0, "")
	if err != nil {
		return err
	}
	if err := b.links.disableIPv6(b.name); err != nil {
		return err
	}
	return b.links.up(br)
}

func (b *linuxBridge) addPort(_ context.Context, qvo string, _ Port) error {
	br, err := b.links.get(b.name)
	if err != nil {
		return err
	}
	if br == nil {
		return fmt.Errorf("add %s to %s: bridge %s is gone", qvo, b.name, b.name)
	}
	link, err := b.links.get(qvo)
	if err != nil {
		return err
	}
	if link == nil {
		return fmt.Errorf("add %s to %s: no such device", qvo, b.name)
	}
	return b.links.setMaster(link, br)
}

// delPort: deleting the veth removes qvo from the bridge.
func (b *linuxBridge) delPort(context.Context, string) error { return nil }

func (b *linuxBridge) ports(context.Context) (map[string]bridgePort, error) {
	br, err := b.links.get(b.name)
	if err != nil || br == nil {
		return nil, err
	}
	all, err := b.links.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	res := map[string]bridgePort{}
	for _, l := range all {
		devID, ok := strings.CutPrefix(l.Attrs().Name, hybrid.OVSVethPrefix)
		if ok && l.Attrs().MasterIndex == br.Attrs().Index && hybrid.CheckDeviceID(devID) == nil {
			res[devID] = bridgePort{}
		}
	}
	return res, nil
}
