// Package hostview is what one host's agent compiles from, as the server
// sends it over the watch stream: the ports bound to the host, their
// networks, the security groups they carry with their rules, and the
// member addresses (by family) of every group those rules name as remote
// group, wherever the members live, and the address groups those rules
// name (their CIDRs, by family). It is pure: building a view from a
// store snapshot, diffing two views into a delta, applying a delta,
// choosing what a resuming agent needs, cutting a delta into bounded
// frames, and routing change-log entries to the hosts they concern. The
// watch server (internal/watch) and the agent's HTTP feed share it, so the
// protocol's vocabulary has one home.
package hostview

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// Port is a port bound to the host.
type Port struct {
	ID        string `json:"id"`
	MAC       string `json:"mac_address"`
	NetworkID string `json:"network_id"`
	// FixedIPs are the port's addresses as stored (an address that did
	// not parse reads "invalid IP": the agent rejects the port).
	FixedIPs       []string      `json:"fixed_ips,omitempty"`
	AddressPairs   []AddressPair `json:"allowed_address_pairs,omitempty"`
	PortSecurity   bool          `json:"port_security_enabled"`
	SecurityGroups []string      `json:"security_groups,omitempty"`
	DeviceOwner    string        `json:"device_owner,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	// Unreadable says why the port's stored state (or that of its network,
	// a group or a rule) does not read in full; the agent rejects it.
	Unreadable string `json:"unreadable,omitempty"`
}

// AddressPair is an allowed address pair.
type AddressPair struct {
	IP  string `json:"ip_address"`
	MAC string `json:"mac_address,omitempty"`
}

// Network is a port's network and its segment.
type Network struct {
	ID              string `json:"id"`
	MTU             int    `json:"mtu"`
	NetworkType     string `json:"network_type,omitempty"`
	PhysicalNetwork string `json:"physical_network,omitempty"`
	SegmentationID  int    `json:"segmentation_id,omitempty"`
}

// Group is a security group with its rules, in creation order.
type Group struct {
	ID       string `json:"id"`
	Stateful bool   `json:"stateful"`
	Rules    []Rule `json:"rules"`
}

// Rule is a security group rule, normalised as the compiler takes it:
// absent attributes are "", the remote prefix is given as stored and with
// its host bits cleared.
type Rule struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Ethertype string `json:"ethertype"`
	// Protocol is the stored value: "" for any, a name or a number.
	Protocol             string `json:"protocol,omitempty"`
	PortRangeMin         *int   `json:"port_range_min,omitempty"`
	PortRangeMax         *int   `json:"port_range_max,omitempty"`
	RemoteIPPrefix       string `json:"remote_ip_prefix,omitempty"`
	NormalizedCIDR       string `json:"normalized_cidr,omitempty"`
	RemoteGroupID        string `json:"remote_group_id,omitempty"`
	RemoteAddressGroupID string `json:"remote_address_group_id,omitempty"`
}

// Members are the addresses of a remote group's ports (fixed IPs and
// allowed-address-pair addresses), sorted, by family. Addresses that
// parse as neither family are in IPv4, so that the agent logs them.
type Members struct {
	Group string   `json:"security_group_id"`
	IPv4  []string `json:"ipv4"`
	IPv6  []string `json:"ipv6"`
}

// AddressGroup is an address group a rule names: its CIDRs (normalised,
// sorted) by family, and its name, for traces to show (never rendered
// into a rule). A change of its addresses travels as this object alone:
// the groups whose rules name it are not sent again.
type AddressGroup struct {
	ID   string   `json:"id"`
	Name string   `json:"name,omitempty"`
	IPv4 []string `json:"ipv4"`
	IPv6 []string `json:"ipv6"`
}

// Log is an enabled network log object (the logging extension) that
// covers ports of the host: what it logs (Event ACCEPT, DROP or ALL), the
// security group whose accepts it logs ("" for all), and the host's ports
// it covers, sorted.
type Log struct {
	ID         string   `json:"id"`
	ProjectID  string   `json:"project_id"`
	Event      string   `json:"event"`
	ResourceID string   `json:"resource_id,omitempty"`
	Ports      []string `json:"ports"`
}

// View is one host's desired state at a revision of the change log.
type View struct {
	Host          string
	Revision      int64
	Ports         map[string]*Port
	Networks      map[string]*Network
	Groups        map[string]*Group
	Members       map[string]*Members
	AddressGroups map[string]*AddressGroup
	// Logs are few (admin objects) and travel whole (Delta.LogsWhole).
	Logs map[string]*Log
}

// New is an empty view of host.
func New(host string) *View {
	return &View{Host: host, Ports: map[string]*Port{}, Networks: map[string]*Network{},
		Groups: map[string]*Group{}, Members: map[string]*Members{}, AddressGroups: map[string]*AddressGroup{},
		Logs: map[string]*Log{}}
}

// FromSnapshot is the view of a store snapshot.
func FromSnapshot(s *store.HostSnapshot) *View {
	v := New(s.Host)
	v.Revision = s.Revision
	for i := range s.Ports {
		p := &s.Ports[i]
		vp := &Port{ID: p.ID, MAC: p.MACAddress, NetworkID: p.NetworkID, PortSecurity: p.PortSecurityEnabled,
			SecurityGroups: slices.Clone(p.SecurityGroups), DeviceOwner: p.DeviceOwner, CreatedAt: p.CreatedAt.UTC(),
			Unreadable: s.PortErrors[p.ID]}
		for _, ip := range p.FixedIPs {
			vp.FixedIPs = append(vp.FixedIPs, ip.IPAddress.String())
		}
		for _, ap := range p.AllowedAddressPairs {
			vp.AddressPairs = append(vp.AddressPairs, AddressPair{IP: ap.IPAddress, MAC: ap.MACAddress})
		}
		v.Ports[p.ID] = vp
	}
	for id, n := range s.Networks {
		vn := &Network{ID: id, MTU: n.MTU, NetworkType: n.NetworkType}
		if n.PhysicalNetwork != nil {
			vn.PhysicalNetwork = *n.PhysicalNetwork
		}
		if n.SegmentationID != nil {
			vn.SegmentationID = *n.SegmentationID
		}
		v.Networks[id] = vn
	}
	for id, g := range s.Groups {
		vg := &Group{ID: id, Stateful: g.Stateful, Rules: make([]Rule, 0, len(g.Rules))}
		for i := range g.Rules {
			vg.Rules = append(vg.Rules, ruleFromNeutron(&g.Rules[i]))
		}
		v.Groups[id] = vg
	}
	for g, addrs := range s.Members {
		v.Members[g] = splitMembers(g, addrs)
	}
	for id, ag := range s.AddressGroups {
		m := splitMembers(id, ag.Addresses)
		v.AddressGroups[id] = &AddressGroup{ID: id, Name: ag.Name, IPv4: m.IPv4, IPv6: m.IPv6}
	}
	for _, l := range s.Logs {
		v.Logs[l.ID] = &Log{ID: l.ID, ProjectID: l.ProjectID, Event: l.Event, ResourceID: l.ResourceID, Ports: slices.Clone(l.Ports)}
	}
	return v
}

func ruleFromNeutron(r *neutron.SecurityGroupRule) Rule {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out := Rule{ID: r.ID, Direction: r.Direction, Ethertype: r.Ethertype, Protocol: str(r.Protocol),
		PortRangeMin: cloneInt(r.PortRangeMin), PortRangeMax: cloneInt(r.PortRangeMax),
		RemoteIPPrefix: str(r.RemoteIPPrefix), RemoteGroupID: str(r.RemoteGroupID),
		RemoteAddressGroupID: str(r.RemoteAddressGroupID)}
	if n := r.NormalizedCIDR(); n != nil {
		out.NormalizedCIDR = *n
	}
	return out
}

func cloneInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func splitMembers(g string, addrs []string) *Members {
	m := &Members{Group: g, IPv4: []string{}, IPv6: []string{}}
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			m.IPv6 = append(m.IPv6, a)
		} else {
			m.IPv4 = append(m.IPv4, a)
		}
	}
	sort.Strings(m.IPv4)
	sort.Strings(m.IPv6)
	return m
}

// Snapshot is the view as the agent's compiler input takes it (the same
// shape the store's HostSnapshot has), with ports sorted by id. (A few
// milliseconds at 5,000 ports; caching converted ports cost more than it
// saved.)
func (v *View) Snapshot() *store.HostSnapshot {
	s := &store.HostSnapshot{Revision: v.Revision, Host: v.Host, Networks: map[string]*neutron.Network{},
		Groups: map[string]*neutron.SecurityGroup{}, Members: map[string][]string{}, PortErrors: map[string]string{},
		AddressGroups: map[string]*neutron.AddressGroup{}, Ports: make([]neutron.Port, 0, len(v.Ports))}
	for _, id := range sortedKeys(v.Ports) {
		p := v.Ports[id]
		if p.Unreadable != "" {
			s.PortErrors[p.ID] = p.Unreadable
		}
		s.Ports = append(s.Ports, portToNeutron(p, v.Host))
	}
	for id, n := range v.Networks {
		nn := &neutron.Network{ID: id, MTU: n.MTU, NetworkType: n.NetworkType}
		if n.PhysicalNetwork != "" {
			pn := n.PhysicalNetwork
			nn.PhysicalNetwork = &pn
		}
		if n.SegmentationID != 0 {
			sid := n.SegmentationID
			nn.SegmentationID = &sid
		}
		s.Networks[id] = nn
	}
	for id, g := range v.Groups {
		ng := &neutron.SecurityGroup{ID: id, Stateful: g.Stateful, Rules: make([]neutron.SecurityGroupRule, 0, len(g.Rules))}
		for _, r := range g.Rules {
			ng.Rules = append(ng.Rules, r.neutron(id))
		}
		s.Groups[id] = ng
	}
	for id, m := range v.Members {
		all := make([]string, 0, len(m.IPv4)+len(m.IPv6))
		all = append(all, m.IPv4...)
		all = append(all, m.IPv6...)
		s.Members[id] = all
	}
	for id, ag := range v.AddressGroups {
		addrs := make([]string, 0, len(ag.IPv4)+len(ag.IPv6))
		addrs = append(addrs, ag.IPv4...)
		addrs = append(addrs, ag.IPv6...)
		s.AddressGroups[id] = &neutron.AddressGroup{ID: id, Name: ag.Name, Addresses: addrs}
	}
	for _, id := range sortedKeys(v.Logs) {
		l := v.Logs[id]
		s.Logs = append(s.Logs, store.HostLog{ID: l.ID, ProjectID: l.ProjectID, Event: l.Event, ResourceID: l.ResourceID, Ports: slices.Clone(l.Ports)})
	}
	return s
}

func portToNeutron(p *Port, host string) neutron.Port {
	np := neutron.Port{ID: p.ID, MACAddress: p.MAC, NetworkID: p.NetworkID, PortSecurityEnabled: p.PortSecurity,
		SecurityGroups: slices.Clone(p.SecurityGroups), DeviceOwner: p.DeviceOwner, HostID: host}
	np.CreatedAt = p.CreatedAt
	for _, ip := range p.FixedIPs {
		a, _ := netip.ParseAddr(ip) // "invalid IP" stays invalid: the agent rejects the port
		np.FixedIPs = append(np.FixedIPs, neutron.FixedIP{IPAddress: a})
	}
	for _, ap := range p.AddressPairs {
		np.AllowedAddressPairs = append(np.AllowedAddressPairs, neutron.AddressPair{IPAddress: ap.IP, MACAddress: ap.MAC})
	}
	return np
}

func (r Rule) neutron(group string) neutron.SecurityGroupRule {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return neutron.SecurityGroupRule{ID: r.ID, SecurityGroupID: group, Direction: r.Direction, Ethertype: r.Ethertype,
		Protocol: opt(r.Protocol), PortRangeMin: cloneInt(r.PortRangeMin), PortRangeMax: cloneInt(r.PortRangeMax),
		RemoteIPPrefix: opt(r.RemoteIPPrefix), RemoteGroupID: opt(r.RemoteGroupID),
		RemoteAddressGroupID: opt(r.RemoteAddressGroupID)}
}

// Clone is a deep copy (objects are replaced, never edited, so copying the
// maps is enough).
func (v *View) Clone() *View {
	c := &View{Host: v.Host, Revision: v.Revision, Ports: cloneMap(v.Ports), Networks: cloneMap(v.Networks),
		Groups: cloneMap(v.Groups), Members: cloneMap(v.Members), AddressGroups: cloneMap(v.AddressGroups),
		Logs: cloneMap(v.Logs)}
	return c
}

func cloneMap[V any](m map[string]*V) map[string]*V {
	out := make(map[string]*V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Prune drops what no port needs any more: networks and groups no port
// names, members of groups and address groups no kept group's rule
// names. A view built from
// a snapshot is already pruned; a view patched by a resume delta (which
// does not name what fell out of use) becomes equal to the server's.
func (v *View) Prune() {
	nets, groups := map[string]bool{}, map[string]bool{}
	for _, p := range v.Ports {
		nets[p.NetworkID] = true
		for _, g := range p.SecurityGroups {
			groups[g] = true
		}
	}
	remote, ags := map[string]bool{}, map[string]bool{}
	for id, g := range v.Groups {
		if !groups[id] {
			delete(v.Groups, id)
			continue
		}
		for _, r := range g.Rules {
			if r.RemoteGroupID != "" {
				remote[r.RemoteGroupID] = true
			}
			if r.RemoteAddressGroupID != "" {
				ags[r.RemoteAddressGroupID] = true
			}
		}
	}
	for id := range v.AddressGroups {
		if !ags[id] {
			delete(v.AddressGroups, id)
		}
	}
	for id := range v.Networks {
		if !nets[id] {
			delete(v.Networks, id)
		}
	}
	for id := range v.Members {
		if !remote[id] {
			delete(v.Members, id)
		}
	}
}

// HasUnreadable reports whether a port of v does not read in full.
func (v *View) HasUnreadable() bool {
	for _, p := range v.Ports {
		if p.Unreadable != "" {
			return true
		}
	}
	return false
}

// Equal reports whether two views hold the same objects (revisions aside).
func Equal(a, b *View) bool {
	d := Diff(a, b)
	return d.Empty()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
