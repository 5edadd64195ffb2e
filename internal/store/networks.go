package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

// Change kinds of the network half.
const (
	KindNetwork = "network"
	KindSubnet  = "subnet"
	KindPort    = "port"
	KindRBAC    = "rbac_policy"
	// KindSecurityGroupMember records that the set of addresses of a
	// group's ports changed (a port joined, left, or changed addresses):
	// agents update remote-group ipsets from it.
	KindSecurityGroupMember = "security_group_member"
)

const networkSelect = `SELECT n.id, n.project_id, n.name, n.admin_state_up, n.status, n.shared, n.mtu,
	n.port_security_enabled, n.network_type, n.physical_network, n.segmentation_id,
	sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM networks n JOIN standard_attrs sa ON sa.id = n.standard_attr_id`

var networkList = listSpec{
	base: networkSelect,
	cols: map[string]string{
		"id": "n.id", "name": "n.name", "admin_state_up": "n.admin_state_up", "status": "n.status",
		"tenant_id": "n.project_id", "project_id": "n.project_id", "shared": "n.shared", "mtu": "n.mtu",
		"port_security_enabled": "n.port_security_enabled", "provider:network_type": "n.network_type",
		"provider:physical_network": "n.physical_network", "provider:segmentation_id": "n.segmentation_id",
		"description": "sa.description", "revision_number": "sa.revision_number",
	},
	tagAttr: "sa.id",
}

// selectNetworks reads the networks q selects; bad as for selectPorts
// (it maps a network id to what of its row does not read).
func (t *Tx) selectNetworks(ctx context.Context, bad map[string]string, q string, args ...any) ([]neutron.Network, error) {
	return selectRows(ctx, t, "networks", q, args, func(r *networkRow, probs columnProblems) (neutron.Network, bool, error) {
		n := r.n
		n.AdminStateUp, n.Shared, n.PortSecurityEnabled = r.admin != 0, r.shared != 0, r.psec != 0
		n.MTU = int(r.mtu)
		n.PhysicalNetwork, n.SegmentationID = nullStr(r.physnet), nullInt(r.seg)
		n.Description = r.desc.String
		n.CreatedAt, n.UpdatedAt = parseTime(r.created), parseTime(r.updated)
		if len(probs) > 0 {
			if bad == nil || n.ID == "" {
				return n, false, fmt.Errorf("read network %s: %s", n.ID, probs)
			}
			bad[n.ID] = probs.String()
		}
		return n, true, nil
	})
}

// networkRow is what networkSelect scans into.
type networkRow struct {
	n                        neutron.Network
	admin, shared, psec, mtu int64
	physnet, desc            sql.NullString
	seg                      sql.NullInt64
	created, updated         string
}

func (r *networkRow) columns() scanColumns {
	n := &r.n
	return scanColumns{
		{"id", &n.ID}, {"project_id", &n.ProjectID}, {"name", &n.Name}, {"admin_state_up", &r.admin},
		{"status", &n.Status}, {"shared", &r.shared}, {"mtu", &r.mtu}, {"port_security_enabled", &r.psec},
		{"provider:network_type", &n.NetworkType}, {"provider:physical_network", &r.physnet},
		{"provider:segmentation_id", &r.seg}, {"standard_attr_id", &n.StandardAttrID}, {"description", &r.desc},
		{"revision_number", &n.RevisionNumber}, {"created_at", &r.created}, {"updated_at", &r.updated},
	}
}

// networkScope: members see their networks and shared ones.
func networkScope(q ListQuery) (string, []any) {
	if q.Scope == nil {
		return "", nil
	}
	return "(n.project_id = ? OR n.shared = 1)", []any{q.Scope.ProjectID}
}

// GetNetwork returns a network with its tags and subnet ids, or nil.
func (t *Tx) GetNetwork(ctx context.Context, id string) (*neutron.Network, error) {
	nets, err := t.selectNetworks(ctx, nil, networkSelect+` WHERE n.id = ?`, id)
	if err != nil || len(nets) == 0 {
		return nil, err
	}
	if err := t.fillNetworks(ctx, nets); err != nil {
		return nil, err
	}
	return &nets[0], nil
}

// ListNetworks returns the networks q selects.
func (t *Tx) ListNetworks(ctx context.Context, q ListQuery) ([]neutron.Network, error) {
	scope, args := networkScope(q)
	text, qargs := networkList.build(q, scope, args)
	all, err := t.selectNetworks(ctx, nil, text, qargs...)
	if err != nil {
		return nil, err
	}
	out := pageOf(all, func(n *neutron.Network) string { return n.ID }, q)
	return out, t.fillNetworks(ctx, out)
}

// networksByID returns the networks with the given ids that exist, as
// GetNetwork returns them, in the order of ids; bad as for selectNetworks.
func (t *Tx) networksByID(ctx context.Context, ids []string, bad map[string]string) ([]neutron.Network, error) {
	var found []neutron.Network
	for _, chunk := range chunks(anySlice(ids), 500) {
		part, err := t.selectNetworks(ctx, bad, networkSelect+` WHERE n.id IN (`+placeholders(len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, err
		}
		found = append(found, part...)
	}
	out := inOrder(found, func(n *neutron.Network) string { return n.ID }, ids)
	return out, t.fillNetworks(ctx, out)
}

func (t *Tx) fillNetworks(ctx context.Context, nets []neutron.Network) error {
	if err := fillTags(ctx, t, nets, func(n *neutron.Network) *neutron.StandardAttrs { return &n.StandardAttrs }); err != nil {
		return err
	}
	idx := make(map[string]int, len(nets))
	ids := make([]any, len(nets))
	for i := range nets {
		idx[nets[i].ID] = i
		ids[i] = nets[i].ID
		nets[i].Subnets = []string{}
	}
	for _, chunk := range chunks(ids, 500) {
		rows, err := t.query(ctx, `SELECT network_id, id FROM subnets WHERE network_id IN (`+placeholders(len(chunk))+`) ORDER BY network_id, id`, chunk...)
		if err != nil {
			return fmt.Errorf("read subnets of networks: %w", err)
		}
		for rows.Next() {
			var nid, sid string
			if err := rows.Scan(&nid, &sid); err != nil {
				rows.Close()
				return fmt.Errorf("read subnets of networks: %w", err)
			}
			nets[idx[nid]].Subnets = append(nets[idx[nid]].Subnets, sid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read subnets of networks: %w", err)
		}
	}
	return nil
}

func (t *Tx) stringColumn(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AllocateSegment reserves the segment a new network asks for, or picks
// the lowest free id of its type from the configured ranges. req has been
// checked by NetworkConfig.ValidateSegment.
func (t *Tx) AllocateSegment(ctx context.Context, cfg neutron.NetworkConfig, networkID string, req neutron.SegmentRequest) (physnet *string, segID *int, err error) {
	reserve := func(pn string, id int) error {
		_, err := t.exec(ctx, `INSERT INTO network_segments (network_type, physical_network, segmentation_id, network_id) VALUES (?, ?, ?, ?)`,
			req.NetworkType, pn, id, networkID)
		return err
	}
	taken := func(pn string, id int) (bool, error) {
		n, err := t.count(ctx, `SELECT COUNT(*) FROM network_segments WHERE network_type = ? AND physical_network = ? AND segmentation_id = ?`,
			req.NetworkType, pn, id)
		return n > 0, err
	}
	switch req.NetworkType {
	case neutron.NetTypeLocal:
		return nil, nil, nil
	case neutron.NetTypeFlat:
		busy, err := taken(req.PhysicalNetwork, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("allocate segment: %w", err)
		}
		if busy {
			return nil, nil, neutron.FlatNetworkInUse(req.PhysicalNetwork)
		}
		pn := req.PhysicalNetwork
		return &pn, nil, reserve(pn, 0)
	}
	if req.SegmentationID != nil {
		busy, err := taken(req.PhysicalNetwork, *req.SegmentationID)
		if err != nil {
			return nil, nil, fmt.Errorf("allocate segment: %w", err)
		}
		if busy {
			if req.NetworkType == neutron.NetTypeVLAN {
				return nil, nil, neutron.VlanIDInUse(*req.SegmentationID, req.PhysicalNetwork)
			}
			return nil, nil, neutron.TunnelIDInUse(*req.SegmentationID)
		}
		id := *req.SegmentationID
		if req.NetworkType == neutron.NetTypeVLAN {
			pn := req.PhysicalNetwork
			physnet = &pn
		}
		return physnet, &id, reserve(req.PhysicalNetwork, id)
	}
	for _, r := range cfg.TenantRanges(req.NetworkType, req.PhysicalNetwork) {
		used := map[int]bool{}
		rows, err := t.query(ctx, `SELECT segmentation_id FROM network_segments WHERE network_type = ? AND physical_network = ?
			AND segmentation_id BETWEEN ? AND ?`, req.NetworkType, r.Physnet, r.Range.Min, r.Range.Max)
		if err != nil {
			return nil, nil, fmt.Errorf("allocate segment: %w", err)
		}
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("allocate segment: %w", err)
			}
			used[id] = true
		}
		rows.Close()
		for id := r.Range.Min; id <= r.Range.Max; id++ {
			if !used[id] {
				if r.Physnet != "" {
					pn := r.Physnet
					physnet = &pn
				}
				return physnet, &id, reserve(r.Physnet, id)
			}
		}
	}
	return nil, nil, neutron.NoNetworkAvailable()
}

// CreateNetwork stores a network whose segment AllocateSegment reserved.
func (t *Tx) CreateNetwork(ctx context.Context, n *neutron.Network) error {
	if n.ID == "" {
		n.ID = uuid.NewString()
	}
	desc := n.Description
	sa, err := t.insertStandardAttrs(ctx, "networks", &desc)
	if err != nil {
		return err
	}
	n.StandardAttrs = sa
	n.Subnets = []string{}
	if _, err := t.exec(ctx, `INSERT INTO networks (id, project_id, name, admin_state_up, status, shared, mtu, port_security_enabled,
		network_type, physical_network, segmentation_id, standard_attr_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.ProjectID, n.Name, boolInt(n.AdminStateUp), n.Status, boolInt(n.Shared), n.MTU, boolInt(n.PortSecurityEnabled),
		n.NetworkType, n.PhysicalNetwork, n.SegmentationID, sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert network: %w", err)
	}
	// Neutron's new networks are at revision 1: the segment and the
	// port-security extension update them once more on create.
	if err := t.bumpRevision(ctx, sa.StandardAttrID); err != nil {
		return err
	}
	n.RevisionNumber = 1
	return t.logChange(ctx, KindNetwork, n.ID, OpCreate, n.ProjectID)
}

// UpdateNetwork saves a network's mutable attributes.
func (t *Tx) UpdateNetwork(ctx context.Context, n *neutron.Network) error {
	if _, err := t.exec(ctx, `UPDATE networks SET name = ?, admin_state_up = ?, shared = ?, mtu = ?, port_security_enabled = ? WHERE id = ?`,
		n.Name, boolInt(n.AdminStateUp), boolInt(n.Shared), n.MTU, boolInt(n.PortSecurityEnabled), n.ID); err != nil {
		return fmt.Errorf("update network %s: %w", n.ID, err)
	}
	if err := t.updateDescription(ctx, "network "+n.ID, &n.StandardAttrs, n.Description); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindNetwork, n.ID, OpUpdate, n.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &n.StandardAttrs)
}

func (t *Tx) refreshAttrs(ctx context.Context, sa *neutron.StandardAttrs) error {
	var updated string
	if err := t.queryRow(ctx, `SELECT revision_number, updated_at FROM standard_attrs WHERE id = ?`, sa.StandardAttrID).
		Scan(&sa.RevisionNumber, &updated); err != nil {
		return fmt.Errorf("read revision: %w", err)
	}
	sa.UpdatedAt = parseTime(updated)
	return nil
}

// DeleteNetwork removes a network whose ports and subnets are gone.
func (t *Tx) DeleteNetwork(ctx context.Context, n *neutron.Network) error {
	for _, q := range []string{
		`DELETE FROM network_segments WHERE network_id = ?`,
		`DELETE FROM networks WHERE id = ?`,
	} {
		if _, err := t.exec(ctx, q, n.ID); err != nil {
			return fmt.Errorf("delete network %s: %w", n.ID, err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, n.StandardAttrID); err != nil {
		return fmt.Errorf("delete network %s: %w", n.ID, err)
	}
	return t.logChange(ctx, KindNetwork, n.ID, OpDelete, n.ProjectID)
}

// CountNetworks counts a project's networks.
func (t *Tx) CountNetworks(ctx context.Context, projectID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM networks WHERE project_id = ?`, projectID)
}

func (t *Tx) count(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	if err := t.queryRow(ctx, q, args...).Scan(&n); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("count: %w", err)
	}
	return n, nil
}
