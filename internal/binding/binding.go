// Package binding holds ML2's rules for a port as moat's server applies
// them: its binding to a host (binding:host_id, vif_type, vif_details),
// its port security, its security groups and allowed address pairs and how
// they must agree, and which device owners Neutron trusts. It takes typed
// requests from internal/neutron's validation; what it needs to know of
// security groups it asks through GroupStore. Everything else is pure.
package binding

import (
	"github.com/moat-sg/moat/internal/neutron"
)

// VIFType is the binding of a port on host: the OVS hybrid plug when the
// port is bound to a host, unbound otherwise.
func VIFType(host string) string {
	if host != "" {
		return neutron.VIFTypeOVS
	}
	return neutron.VIFTypeUnbound
}

// VIFDetails are what the binding reports to the hypervisor: the OVS
// hybrid plug with an iptables firewall, as ML2/OVS does.
func VIFDetails(vifType string) map[string]any {
	if vifType != neutron.VIFTypeOVS {
		return map[string]any{}
	}
	return map[string]any{
		"connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": true,
		"datapath_type": "system", "bridge_name": "br-int",
	}
}

// PortSecurity is Neutron's _determine_port_security for a new port: what
// the request asks, else the network's setting; trusted ports (DHCP,
// routers) have none, whatever the request says.
func PortSecurity(requested neutron.Opt[bool], network bool, owner string) bool {
	if neutron.IsTrustedOwner(owner) {
		return false
	}
	if requested.Set {
		return requested.V
	}
	return network
}

// NewPort is the port a create request describes on network n, before its
// MAC, addresses and groups: DOWN until an agent wires it, bound when the
// request names a host.
func NewPort(id string, req *neutron.PortRequest, n *neutron.Network) *neutron.Port {
	p := &neutron.Port{
		ID: id, ProjectID: req.ProjectID, NetworkID: n.ID, Name: req.Name.V, Description: req.Description.V,
		AdminStateUp: req.AdminStateUp.V, Status: neutron.PortStatusDown, DeviceID: req.DeviceID.V,
		DeviceOwner: req.DeviceOwner.V, HostID: req.HostID.V, VNICType: req.VNICType.V, Profile: map[string]any{},
		VIFType: VIFType(req.HostID.V),
	}
	p.PortSecurityEnabled = PortSecurity(req.PortSecurityEnabled, n.PortSecurityEnabled, p.DeviceOwner)
	if req.Profile.Set {
		p.Profile = req.Profile.V
	}
	return p
}

// NewDHCPPort is a network's DHCP port, before its addresses: owned by the
// network's project, trusted (no port security, no groups), active from
// the start (no agent wires it), on no host.
func NewDHCPPort(id string, n *neutron.Network, mac string) *neutron.Port {
	return &neutron.Port{
		ID: id, ProjectID: n.ProjectID, NetworkID: n.ID, MACAddress: mac, AdminStateUp: true,
		Status: neutron.PortStatusActive, DeviceID: "dhcp-" + n.ID, DeviceOwner: neutron.DeviceOwnerDHCP,
		PortSecurityEnabled: false, VNICType: neutron.VNICNormal, VIFType: VIFType(""),
		Profile: map[string]any{}, SecurityGroups: []string{}, AllowedAddressPairs: []neutron.AddressPair{},
	}
}

// Update applies what an update request changes that needs no database:
// names, device, binding and port security (not the MAC, addresses,
// groups and pairs). A new host rebinds the port: DOWN until that host's
// agent wires it.
func Update(p *neutron.Port, req *neutron.PortRequest) {
	set(&p.Name, req.Name)
	set(&p.Description, req.Description)
	set(&p.AdminStateUp, req.AdminStateUp)
	set(&p.DeviceID, req.DeviceID)
	set(&p.DeviceOwner, req.DeviceOwner)
	set(&p.VNICType, req.VNICType)
	set(&p.Profile, req.Profile)
	if req.HostID.Set && req.HostID.V != p.HostID {
		p.HostID = req.HostID.V
		p.VIFType = VIFType(p.HostID)
		p.Status = neutron.PortStatusDown
	}
	set(&p.PortSecurityEnabled, req.PortSecurityEnabled)
}

func set[T any](dst *T, o neutron.Opt[T]) {
	if o.Set {
		*dst = o.V
	}
}
