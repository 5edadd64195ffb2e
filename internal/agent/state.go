package agent

import (
	"maps"
	"net"
	"slices"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// HostState turns a store snapshot into the compiler's input. zones are the
// conntrack zones already in use (kept stable across compiles and restarts).
// Rules carry their ids, so that what the compiler renders can be traced
// back to them.
func HostState(snap *store.HostSnapshot, opts firewall.Options, zones map[string]int) *firewall.HostState {
	hs := &firewall.HostState{Options: opts, GroupMembers: snap.Members, Zones: zones}
	for _, p := range snap.Ports {
		fp := firewall.Port{
			ID: p.ID, MAC: p.MACAddress, SecurityGroups: p.SecurityGroups,
			PortSecurityDisabled: !p.PortSecurityEnabled, DeviceOwner: p.DeviceOwner, CreatedAt: p.CreatedAt,
			Unreadable: snap.PortErrors[p.ID], // the compiler rejects such a port: no traffic, ERROR
		}
		for _, ip := range p.FixedIPs {
			fp.FixedIPs = append(fp.FixedIPs, ip.IPAddress.String())
		}
		for _, ap := range p.AllowedAddressPairs {
			fp.AllowedAddressPairs = append(fp.AllowedAddressPairs, firewall.AddressPair{IP: ap.IPAddress, MAC: ap.MACAddress})
		}
		hs.Ports = append(hs.Ports, fp)
	}
	for _, id := range slices.Sorted(maps.Keys(snap.Groups)) {
		g := snap.Groups[id]
		fg := firewall.SecurityGroup{ID: g.ID, Stateless: !g.Stateful}
		for _, r := range g.Rules {
			fg.Rules = append(fg.Rules, firewall.RuleFromNeutron(&r))
		}
		hs.SecurityGroups = append(hs.SecurityGroups, fg)
	}
	for _, id := range slices.Sorted(maps.Keys(snap.AddressGroups)) {
		ag := snap.AddressGroups[id]
		hs.AddressGroups = append(hs.AddressGroups, firewall.AddressGroup{ID: ag.ID, Name: ag.Name, Addresses: ag.Addresses})
	}
	return hs
}

// portAddrs maps each port to its addresses (fixed IPs as host routes,
// allowed address pairs as given), for conntrack filters.
func portAddrs(snap *store.HostSnapshot) map[string][]*net.IPNet {
	out := map[string][]*net.IPNet{}
	for _, p := range snap.Ports {
		for _, ip := range p.FixedIPs {
			if ip.IPAddress.IsValid() { // a stored address that did not parse: the port is rejected
				out[p.ID] = append(out[p.ID], hostNet(net.IP(ip.IPAddress.AsSlice())))
			}
		}
		for _, ap := range p.AllowedAddressPairs {
			if n := parseNet(ap.IPAddress); n != nil {
				out[p.ID] = append(out[p.ID], n)
			}
		}
	}
	return out
}

func hostNet(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// parseNet reads an address or CIDR.
func parseNet(s string) *net.IPNet {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n
	}
	if ip := net.ParseIP(s); ip != nil {
		return hostNet(ip)
	}
	return nil
}

// LogPorts is what each port of snap logs, from the host's log objects:
// the union of the logs that cover it (a log whose resource is a group
// logs the accepts of that group's rules only, as Neutron's OVS log
// driver), sorted by port, and each port's project and log ids for the
// events.
func LogPorts(snap *store.HostSnapshot) ([]firewall.LogPort, map[string]netlog.PortLogs) {
	project := map[string]string{}
	for i := range snap.Ports {
		project[snap.Ports[i].ID] = snap.Ports[i].ProjectID
	}
	byPort := map[string]*firewall.LogPort{}
	allGroups := map[string]bool{}
	info := map[string]netlog.PortLogs{}
	for _, l := range snap.Logs {
		for _, id := range l.Ports {
			lp := byPort[id]
			if lp == nil {
				lp = &firewall.LogPort{PortID: id}
				byPort[id] = lp
			}
			accept := l.Event == neutron.LogEventAll || l.Event == neutron.LogEventAccept
			lp.Accept = lp.Accept || accept
			lp.Drop = lp.Drop || l.Event == neutron.LogEventAll || l.Event == neutron.LogEventDrop
			if accept {
				if l.ResourceID == "" {
					allGroups[id] = true
				} else if !slices.Contains(lp.AcceptGroups, l.ResourceID) {
					lp.AcceptGroups = append(lp.AcceptGroups, l.ResourceID)
				}
			}
			pi := info[id]
			pi.ProjectID = project[id]
			if pi.ProjectID == "" {
				pi.ProjectID = l.ProjectID
			}
			pi.LogIDs = append(pi.LogIDs, l.ID)
			info[id] = pi
		}
	}
	out := make([]firewall.LogPort, 0, len(byPort))
	for _, id := range slices.Sorted(maps.Keys(byPort)) {
		lp := *byPort[id]
		if allGroups[id] {
			lp.AcceptGroups = nil
		} else {
			slices.Sort(lp.AcceptGroups)
		}
		out = append(out, lp)
	}
	return out, info
}
