package ipam

import (
	"context"

	"github.com/moat-sg/moat/internal/neutron"
)

// DHCPSubnets are the subnets a network's DHCP port has an address on:
// those with DHCP enabled, except SLAAC ones (hosts configure themselves
// there) and gone, a subnet about to be deleted ("" for none).
func DHCPSubnets(subnets []neutron.Subnet, gone string) []*neutron.Subnet {
	var want []*neutron.Subnet
	for i := range subnets {
		if subnets[i].EnableDHCP && !subnets[i].IsSLAAC() && subnets[i].ID != gone {
			want = append(want, &subnets[i])
		}
	}
	return want
}

// Readdress gives a port one address on each subnet of want, in want's
// order: the one it has there already, or a free one. changed reports
// whether the result differs from have (an address added or dropped).
func Readdress(ctx context.Context, st Store, have []neutron.FixedIP, want []*neutron.Subnet) (ips []neutron.FixedIP, changed bool, err error) {
	held := map[string]neutron.FixedIP{}
	for _, ip := range have {
		held[ip.SubnetID] = ip
	}
	for _, sn := range want {
		if ip, ok := held[sn.ID]; ok {
			ips = append(ips, ip)
			delete(held, sn.ID)
			continue
		}
		ip, err := Allocate(ctx, st, sn, ips)
		if err != nil {
			return nil, false, err
		}
		ips = append(ips, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
		changed = true
	}
	return ips, changed || len(held) > 0, nil
}

// GetsAutoAddress reports whether a port already on a network gets its
// EUI-64 address on a new SLAAC subnet (Neutron's
// _add_auto_addrs_on_network_ports): router interfaces do not, nor does
// moat's DHCP port (see DHCPSubnets).
func GetsAutoAddress(owner string) bool {
	return !neutron.IsRouterInterface(owner) && owner != neutron.DeviceOwnerDHCP
}

// WithoutSubnet is a port's addresses once a SLAAC subnet goes (Neutron
// deletes automatic allocations with their subnet). ok is false when the
// port keeps its addresses: it has none there, or it is a router
// interface, whose address keeps the subnet in use.
func WithoutSubnet(p *neutron.Port, subnetID string) (ips []neutron.FixedIP, ok bool) {
	for _, f := range p.FixedIPs {
		if f.SubnetID != subnetID {
			ips = append(ips, f)
		}
	}
	if len(ips) == len(p.FixedIPs) || neutron.IsRouterInterface(p.DeviceOwner) {
		return nil, false
	}
	if ips == nil {
		ips = []neutron.FixedIP{}
	}
	return ips, true
}
