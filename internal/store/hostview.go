package store

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// HostSnapshot is everything one host's agent needs, read in one
// transaction at one revision of the change log: the ports bound to the
// host, their networks, every security group they carry (with rules), and
// the member addresses of every group those rules name as remote group,
// and the address groups those rules name.
type HostSnapshot struct {
	Revision int64
	Host     string
	Ports    []neutron.Port
	Networks map[string]*neutron.Network
	Groups   map[string]*neutron.SecurityGroup
	// Members maps a remote group to the addresses of all its ports on
	// any host: fixed IPs and allowed-address-pair addresses (as stored).
	Members map[string][]string
	// AddressGroups are the address groups the groups' rules name as
	// remote_address_group_id, by id; one that is gone is absent (its
	// rules match nothing).
	AddressGroups map[string]*neutron.AddressGroup
	// PortErrors maps the ports whose stored row, or the row of their
	// network, of a group they carry or of one of its rules, does not read
	// in full (a binding:profile that is not JSON, ...) to why. They are in Ports
	// with what could be read, which must not be enforced as if it were
	// the port: the agent rejects them (no traffic, status ERROR with the
	// reason). A bad row affects only its port.
	PortErrors map[string]string
	// BadRows maps the networks and groups read whose row (or a rule's)
	// does not read to why (nil if none).
	BadRows map[string]string
	// Logs are the enabled log objects that cover ports of the host
	// (whatever part of the host was read), by id.
	Logs []HostLog
}

func (s *HostSnapshot) badRow(id, why string) {
	if s.BadRows == nil {
		s.BadRows = map[string]string{}
	}
	s.BadRows[id] = why
}

// HostSnapshot reads what the agent of host needs.
func (t *Tx) HostSnapshot(ctx context.Context, host string) (*HostSnapshot, error) {
	return t.hostRead(ctx, host, nil)
}

// HostPart names what HostPart reads.
type HostPart struct {
	Ports, Networks, Groups, Members, AddressGroups []string
}

// HostPart reads part of what HostSnapshot reads, for a follower that
// holds the rest: of part.Ports those still bound to host, the networks
// part.Networks and those of the ports read, the groups part.Groups and
// those the ports read carry (with their rules), and the members of
// part.Members and of every group the groups read name as remote group,
// and the address groups part.AddressGroups and those the groups read name.
// A requested network or group that is gone is absent. PortErrors covers
// the ports read; BadRows every network and group read.
func (t *Tx) HostPart(ctx context.Context, host string, part HostPart) (*HostSnapshot, error) {
	return t.hostRead(ctx, host, &part)
}

func (t *Tx) hostRead(ctx context.Context, host string, part *HostPart) (*HostSnapshot, error) {
	rev, err := t.LatestRevision(ctx)
	if err != nil {
		return nil, err
	}
	snap := &HostSnapshot{Revision: rev, Host: host, Networks: map[string]*neutron.Network{},
		Groups: map[string]*neutron.SecurityGroup{}, Members: map[string][]string{}, PortErrors: map[string]string{},
		AddressGroups: map[string]*neutron.AddressGroup{}}
	netIDs, groupIDs, remote, ags := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	if part == nil {
		snap.Ports, err = t.portsOnHost(ctx, host, snap.PortErrors)
	} else {
		snap.Ports, err = t.portsOnHostByID(ctx, host, part.Ports, snap.PortErrors)
		for _, id := range part.Networks {
			netIDs[id] = true
		}
		for _, id := range part.Groups {
			groupIDs[id] = true
		}
		for _, id := range part.Members {
			remote[id] = true
		}
		for _, id := range part.AddressGroups {
			ags[id] = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	for _, p := range snap.Ports {
		netIDs[p.NetworkID] = true
		for _, g := range p.SecurityGroups {
			groupIDs[g] = true
		}
	}
	// A network, group or rule row that does not read rejects the ports
	// that depend on it, and only those.
	badNets, badGroups := map[string]string{}, map[string]string{}
	nets, err := t.networksByID(ctx, sortedKeys(netIDs), badNets)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	for i := range nets {
		snap.Networks[nets[i].ID] = &nets[i]
	}
	groups, err := t.securityGroupsByID(ctx, sortedKeys(groupIDs), badGroups)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	if err := t.loadRules(ctx, groups, badGroups); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	for _, p := range snap.Ports {
		if _, bad := snap.PortErrors[p.ID]; bad {
			continue
		}
		var why []string
		if r, bad := badNets[p.NetworkID]; bad {
			why = append(why, "its network "+p.NetworkID+" does not read: "+r)
		}
		for _, g := range p.SecurityGroups {
			if r, bad := badGroups[g]; bad {
				why = append(why, "its security group "+g+" does not read: "+r)
			}
		}
		if len(why) > 0 {
			snap.PortErrors[p.ID] = strings.Join(why, "; ")
		}
	}
	for id, why := range badNets {
		snap.badRow(id, "network: "+why)
	}
	for id, why := range badGroups {
		snap.badRow(id, "security group: "+why)
	}
	for i := range groups {
		g := &groups[i]
		snap.Groups[g.ID] = g
		for _, r := range g.Rules {
			if r.RemoteGroupID != nil {
				remote[*r.RemoteGroupID] = true
			}
			if r.RemoteAddressGroupID != nil {
				ags[*r.RemoteAddressGroupID] = true
			}
		}
	}
	if snap.Members, err = t.GroupMembers(ctx, sortedKeys(remote)); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	if snap.AddressGroups, err = t.addressGroupsByID(ctx, sortedKeys(ags)); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	if snap.Logs, err = t.LogsForHost(ctx, host); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", host, err)
	}
	return snap, nil
}

// portsOnHostByID reads those of ids bound to host.
func (t *Tx) portsOnHostByID(ctx context.Context, host string, ids []string, bad map[string]string) ([]neutron.Port, error) {
	var out []neutron.Port
	for _, chunk := range chunks(anySlice(ids), 400) {
		args := append([]any{host}, chunk...)
		ps, err := t.selectFilledPorts(ctx, bad, portSelect+` WHERE p.host_id = ? AND p.id IN (`+placeholders(len(chunk))+`) ORDER BY p.id`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// GroupMembers returns, per group, the sorted addresses of its ports
// (fixed IPs and allowed-address-pair addresses).
func (t *Tx) GroupMembers(ctx context.Context, groups []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(groups) == 0 {
		return out, nil
	}
	args := make([]any, len(groups))
	for i, g := range groups {
		args[i] = g
		out[g] = []string{}
	}
	for _, chunk := range chunks(args, 400) {
		in := "(" + placeholders(len(chunk)) + ")"
		for _, q := range []string{
			`SELECT b.security_group_id, a.ip_address FROM port_security_group_bindings b
				JOIN ip_allocations a ON a.port_id = b.port_id WHERE b.security_group_id IN ` + in,
			`SELECT b.security_group_id, ap.ip_address FROM port_security_group_bindings b
				JOIN port_address_pairs ap ON ap.port_id = b.port_id WHERE b.security_group_id IN ` + in,
		} {
			rows, err := t.query(ctx, q, chunk...)
			if err != nil {
				return nil, fmt.Errorf("read group members: %w", err)
			}
			for rows.Next() {
				var g, ip string
				if err := rows.Scan(&g, &ip); err != nil {
					rows.Close()
					return nil, fmt.Errorf("read group members: %w", err)
				}
				out[g] = append(out[g], ip)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("read group members: %w", err)
			}
		}
	}
	for g := range out {
		sort.Strings(out[g])
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
