package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

const subnetSelect = `SELECT s.id, s.project_id, s.network_id, s.name, s.ip_version, s.cidr, s.gateway_ip, s.enable_dhcp,
	s.ipv6_ra_mode, s.ipv6_address_mode, s.allocation_pools, s.dns_nameservers, s.host_routes,
	sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM subnets s JOIN standard_attrs sa ON sa.id = s.standard_attr_id`

var subnetList = listSpec{
	base: subnetSelect,
	cols: map[string]string{
		"id": "s.id", "name": "s.name", "ip_version": "s.ip_version", "network_id": "s.network_id",
		"cidr": "s.cidr", "gateway_ip": "s.gateway_ip", "tenant_id": "s.project_id", "project_id": "s.project_id",
		"enable_dhcp": "s.enable_dhcp", "ipv6_ra_mode": "s.ipv6_ra_mode", "ipv6_address_mode": "s.ipv6_address_mode",
		"description": "sa.description", "revision_number": "sa.revision_number",
	},
	tagAttr: "sa.id",
}

type poolJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type routeJSON struct {
	Destination string `json:"destination"`
	Nexthop     string `json:"nexthop"`
}

func (t *Tx) selectSubnets(ctx context.Context, q string, args ...any) ([]neutron.Subnet, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read subnets: %w", err)
	}
	defer rows.Close()
	var out []neutron.Subnet
	for rows.Next() {
		var s neutron.Subnet
		var cidr, pools, dns, routes, created, updated string
		var gw, ra, am, desc sql.NullString
		var dhcp int
		if err := rows.Scan(&s.ID, &s.ProjectID, &s.NetworkID, &s.Name, &s.IPVersion, &cidr, &gw, &dhcp, &ra, &am,
			&pools, &dns, &routes, &s.StandardAttrID, &desc, &s.RevisionNumber, &created, &updated); err != nil {
			return nil, fmt.Errorf("read subnets: %w", err)
		}
		s.CIDR, _ = netip.ParsePrefix(cidr)
		if gw.Valid {
			a, _ := netip.ParseAddr(gw.String)
			s.GatewayIP = &a
		}
		s.EnableDHCP = dhcp != 0
		s.IPv6RAMode, s.IPv6AddressMode = nullStr(ra), nullStr(am)
		var pj []poolJSON
		var rj []routeJSON
		if err := json.Unmarshal([]byte(pools), &pj); err != nil {
			return nil, fmt.Errorf("subnet %s pools: %w", s.ID, err)
		}
		for _, p := range pj {
			a, _ := netip.ParseAddr(p.Start)
			b, _ := netip.ParseAddr(p.End)
			s.AllocationPools = append(s.AllocationPools, neutron.Pool{Start: a, End: b})
		}
		if err := json.Unmarshal([]byte(dns), &s.DNSNameservers); err != nil {
			return nil, fmt.Errorf("subnet %s nameservers: %w", s.ID, err)
		}
		if err := json.Unmarshal([]byte(routes), &rj); err != nil {
			return nil, fmt.Errorf("subnet %s routes: %w", s.ID, err)
		}
		for _, r := range rj {
			s.HostRoutes = append(s.HostRoutes, neutron.HostRoute{Destination: r.Destination, Nexthop: r.Nexthop})
		}
		s.Description = desc.String
		s.CreatedAt, s.UpdatedAt = parseTime(created), parseTime(updated)
		out = append(out, s)
	}
	return out, rows.Err()
}

func subnetJSON(s *neutron.Subnet) (pools, dns, routes string) {
	pj := []poolJSON{}
	for _, p := range s.AllocationPools {
		pj = append(pj, poolJSON{p.Start.String(), p.End.String()})
	}
	rj := []routeJSON{}
	for _, r := range s.HostRoutes {
		rj = append(rj, routeJSON{r.Destination, r.Nexthop})
	}
	d := s.DNSNameservers
	if d == nil {
		d = []string{}
	}
	a, _ := json.Marshal(pj)
	b, _ := json.Marshal(d)
	c, _ := json.Marshal(rj)
	return string(a), string(b), string(c)
}

func gatewayString(s *neutron.Subnet) *string {
	if s.GatewayIP == nil {
		return nil
	}
	g := s.GatewayIP.String()
	return &g
}

// subnetScope: members see subnets of networks they may see.
func subnetScope(q ListQuery) (string, []any) {
	if q.Scope == nil {
		return "", nil
	}
	return "(s.project_id = ? OR s.network_id IN (SELECT id FROM networks WHERE project_id = ? OR shared = 1))",
		[]any{q.Scope.ProjectID, q.Scope.ProjectID}
}

// GetSubnet returns a subnet with its tags, or nil.
func (t *Tx) GetSubnet(ctx context.Context, id string) (*neutron.Subnet, error) {
	subs, err := t.selectSubnets(ctx, subnetSelect+` WHERE s.id = ?`, id)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	if err := t.fillSubnetTags(ctx, subs); err != nil {
		return nil, err
	}
	return &subs[0], nil
}

// SubnetsOfNetwork lists a network's subnets ordered by id.
func (t *Tx) SubnetsOfNetwork(ctx context.Context, networkID string) ([]neutron.Subnet, error) {
	return t.selectSubnets(ctx, subnetSelect+` WHERE s.network_id = ? ORDER BY s.id`, networkID)
}

// ListSubnets returns the subnets q selects.
func (t *Tx) ListSubnets(ctx context.Context, q ListQuery) ([]neutron.Subnet, error) {
	scope, args := subnetScope(q)
	text, qargs := subnetList.build(q, scope, args)
	all, err := t.selectSubnets(ctx, text, qargs...)
	if err != nil {
		return nil, err
	}
	out := pageOf(all, func(s *neutron.Subnet) string { return s.ID }, q)
	return out, t.fillSubnetTags(ctx, out)
}

func (t *Tx) fillSubnetTags(ctx context.Context, subs []neutron.Subnet) error {
	return fillTags(ctx, t, subs, func(s *neutron.Subnet) *neutron.StandardAttrs { return &s.StandardAttrs })
}

// CreateSubnet stores a subnet.
func (t *Tx) CreateSubnet(ctx context.Context, s *neutron.Subnet) error {
	if s.ID == "" {
		s.ID = uuid.NewString()
	}
	desc := s.Description
	sa, err := t.insertStandardAttrs(ctx, "subnets", &desc)
	if err != nil {
		return err
	}
	s.StandardAttrs = sa
	pools, dns, routes := subnetJSON(s)
	if _, err := t.exec(ctx, `INSERT INTO subnets (id, project_id, network_id, name, ip_version, cidr, gateway_ip, enable_dhcp,
		ipv6_ra_mode, ipv6_address_mode, allocation_pools, dns_nameservers, host_routes, standard_attr_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.ProjectID, s.NetworkID, s.Name, s.IPVersion, neutron.FormatCIDR(s.CIDR), gatewayString(s), boolInt(s.EnableDHCP),
		s.IPv6RAMode, s.IPv6AddressMode, pools, dns, routes, sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert subnet: %w", err)
	}
	if err := t.bumpNetwork(ctx, s.NetworkID); err != nil {
		return err
	}
	return t.logChange(ctx, KindSubnet, s.ID, OpCreate, s.ProjectID)
}

// bumpNetwork gives a network a new revision (its subnets changed).
func (t *Tx) bumpNetwork(ctx context.Context, networkID string) error {
	var sa int64
	if err := t.queryRow(ctx, `SELECT standard_attr_id FROM networks WHERE id = ?`, networkID).Scan(&sa); err != nil {
		return fmt.Errorf("bump network %s: %w", networkID, err)
	}
	return t.bumpRevision(ctx, sa)
}

// UpdateSubnet saves a subnet's mutable attributes.
func (t *Tx) UpdateSubnet(ctx context.Context, s *neutron.Subnet) error {
	pools, dns, routes := subnetJSON(s)
	if _, err := t.exec(ctx, `UPDATE subnets SET name = ?, gateway_ip = ?, enable_dhcp = ?, allocation_pools = ?,
		dns_nameservers = ?, host_routes = ? WHERE id = ?`,
		s.Name, gatewayString(s), boolInt(s.EnableDHCP), pools, dns, routes, s.ID); err != nil {
		return fmt.Errorf("update subnet %s: %w", s.ID, err)
	}
	if err := t.updateDescription(ctx, "subnet "+s.ID, &s.StandardAttrs, s.Description); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindSubnet, s.ID, OpUpdate, s.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &s.StandardAttrs)
}

// DeleteSubnet removes a subnet that no port uses any more.
func (t *Tx) DeleteSubnet(ctx context.Context, s *neutron.Subnet) error {
	if _, err := t.exec(ctx, `DELETE FROM subnets WHERE id = ?`, s.ID); err != nil {
		return fmt.Errorf("delete subnet %s: %w", s.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, s.StandardAttrID); err != nil {
		return fmt.Errorf("delete subnet %s: %w", s.ID, err)
	}
	if err := t.bumpNetwork(ctx, s.NetworkID); err != nil {
		return err
	}
	return t.logChange(ctx, KindSubnet, s.ID, OpDelete, s.ProjectID)
}

// CountSubnets counts a project's subnets.
func (t *Tx) CountSubnets(ctx context.Context, projectID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM subnets WHERE project_id = ?`, projectID)
}

// UsedAddresses lists the addresses allocated in a subnet.
func (t *Tx) UsedAddresses(ctx context.Context, subnetID string) (map[netip.Addr]bool, error) {
	ips, err := t.stringColumn(ctx, `SELECT ip_address FROM ip_allocations WHERE subnet_id = ?`, subnetID)
	if err != nil {
		return nil, fmt.Errorf("read allocations of %s: %w", subnetID, err)
	}
	out := make(map[netip.Addr]bool, len(ips))
	for _, s := range ips {
		a, _ := netip.ParseAddr(s)
		out[a] = true
	}
	return out, nil
}
