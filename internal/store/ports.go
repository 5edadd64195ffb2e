package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

const portSelect = `SELECT p.id, p.project_id, p.network_id, p.name, p.mac_address, p.admin_state_up, p.status,
	p.device_id, p.device_owner, p.port_security_enabled, p.host_id, p.vnic_type, p.profile, p.vif_type,
	p.status_reason, sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM ports p JOIN standard_attrs sa ON sa.id = p.standard_attr_id`

var portList = listSpec{
	base: portSelect,
	cols: map[string]string{
		"id": "p.id", "name": "p.name", "network_id": "p.network_id", "admin_state_up": "p.admin_state_up",
		"mac_address": "p.mac_address", "device_id": "p.device_id", "device_owner": "p.device_owner",
		"tenant_id": "p.project_id", "project_id": "p.project_id", "status": "p.status",
		"port_security_enabled": "p.port_security_enabled", "binding:host_id": "p.host_id",
		"binding:vnic_type": "p.vnic_type", "description": "sa.description", "revision_number": "sa.revision_number",
	},
	tagAttr: "sa.id",
}

// selectPorts reads the port rows q selects, without what fillPorts adds.
// A row holding a value that does not read (a binding:profile that is not
// JSON; in SQLite, which keeps any value in any column, text in a number
// column) fails the read, unless bad is not nil: then the row is returned
// with what could be read and bad maps its id to why, and the other rows
// are read as usual. One bad row must not hide a host's other ports.
func (t *Tx) selectPorts(ctx context.Context, bad map[string]string, q string, args ...any) ([]neutron.Port, error) {
	return selectRows(ctx, t, "ports", q, args, func(r *portRow, probs columnProblems) (neutron.Port, bool, error) {
		p := r.p
		p.AdminStateUp, p.PortSecurityEnabled = r.admin != 0, r.psec != 0
		if err := json.Unmarshal([]byte(r.profile), &p.Profile); err != nil {
			probs.add("binding:profile", fmt.Sprintf("is not a JSON object (%v)", err))
			p.Profile = nil
		}
		p.Description = r.desc.String
		p.CreatedAt, p.UpdatedAt = parseTime(r.created), parseTime(r.updated)
		if len(probs) > 0 {
			if bad == nil || p.ID == "" { // a row without an id cannot even be named
				return p, false, fmt.Errorf("read port %s: %s", p.ID, probs)
			}
			bad[p.ID] = "stored port does not read: " + probs.String()
		}
		return p, true, nil
	})
}

// portRow is what portSelect scans into.
type portRow struct {
	p                         neutron.Port
	admin, psec               int64
	profile, created, updated string
	desc                      sql.NullString
}

func (r *portRow) columns() scanColumns {
	p := &r.p
	return scanColumns{
		{"id", &p.ID}, {"project_id", &p.ProjectID}, {"network_id", &p.NetworkID}, {"name", &p.Name},
		{"mac_address", &p.MACAddress}, {"admin_state_up", &r.admin}, {"status", &p.Status},
		{"device_id", &p.DeviceID}, {"device_owner", &p.DeviceOwner}, {"port_security_enabled", &r.psec},
		{"binding:host_id", &p.HostID}, {"binding:vnic_type", &p.VNICType}, {"binding:profile", &r.profile},
		{"binding:vif_type", &p.VIFType}, {"status_reason", &p.StatusReason},
		{"standard_attr_id", &p.StandardAttrID}, {"description", &r.desc}, {"revision_number", &p.RevisionNumber},
		{"created_at", &r.created}, {"updated_at", &r.updated},
	}
}

// selectFilledPorts is selectPorts followed by fillPorts.
func (t *Tx) selectFilledPorts(ctx context.Context, bad map[string]string, q string, args ...any) ([]neutron.Port, error) {
	ports, err := t.selectPorts(ctx, bad, q, args...)
	if err != nil {
		return nil, err
	}
	return ports, t.fillPorts(ctx, ports)
}

// fillPorts loads fixed IPs, address pairs, security groups and tags.
func (t *Tx) fillPorts(ctx context.Context, ports []neutron.Port) error {
	if len(ports) == 0 {
		return nil
	}
	idx := map[string]int{}
	ids := make([]any, len(ports))
	for i := range ports {
		idx[ports[i].ID] = i
		ids[i] = ports[i].ID
		ports[i].FixedIPs = []neutron.FixedIP{}
		ports[i].AllowedAddressPairs = []neutron.AddressPair{}
		ports[i].SecurityGroups = []string{}
	}
	for _, chunk := range chunks(ids, 500) {
		in := "(" + placeholders(len(chunk)) + ")"
		rows, err := t.query(ctx, `SELECT port_id, subnet_id, ip_address FROM ip_allocations WHERE port_id IN `+in+` ORDER BY port_id, position`, chunk...)
		if err != nil {
			return fmt.Errorf("read fixed IPs: %w", err)
		}
		for rows.Next() {
			var pid, sid, ip string
			if err := rows.Scan(&pid, &sid, &ip); err != nil {
				rows.Close()
				return err
			}
			a, _ := netip.ParseAddr(ip)
			ports[idx[pid]].FixedIPs = append(ports[idx[pid]].FixedIPs, neutron.FixedIP{SubnetID: sid, IPAddress: a})
		}
		rows.Close()
		rows, err = t.query(ctx, `SELECT port_id, ip_address, mac_address FROM port_address_pairs WHERE port_id IN `+in+` ORDER BY port_id, position`, chunk...)
		if err != nil {
			return fmt.Errorf("read address pairs: %w", err)
		}
		for rows.Next() {
			var pid string
			var ap neutron.AddressPair
			if err := rows.Scan(&pid, &ap.IPAddress, &ap.MACAddress); err != nil {
				rows.Close()
				return err
			}
			ports[idx[pid]].AllowedAddressPairs = append(ports[idx[pid]].AllowedAddressPairs, ap)
		}
		rows.Close()
		rows, err = t.query(ctx, `SELECT port_id, security_group_id FROM port_security_group_bindings WHERE port_id IN `+in+` ORDER BY port_id, security_group_id`, chunk...)
		if err != nil {
			return fmt.Errorf("read port security groups: %w", err)
		}
		for rows.Next() {
			var pid, sg string
			if err := rows.Scan(&pid, &sg); err != nil {
				rows.Close()
				return err
			}
			ports[idx[pid]].SecurityGroups = append(ports[idx[pid]].SecurityGroups, sg)
		}
		rows.Close()
	}
	return fillTags(ctx, t, ports, func(p *neutron.Port) *neutron.StandardAttrs { return &p.StandardAttrs })
}

// GetPort returns a port with everything attached, or nil.
func (t *Tx) GetPort(ctx context.Context, id string) (*neutron.Port, error) {
	ports, err := t.selectFilledPorts(ctx, nil, portSelect+` WHERE p.id = ?`, id)
	if err != nil || len(ports) == 0 {
		return nil, err
	}
	return &ports[0], nil
}

// PortScope is what a member sees: its ports and every port on networks it
// owns (Neutron's admin_owner_or_network_owner).
func portScope(q ListQuery) (string, []any) {
	if q.Scope == nil {
		return "", nil
	}
	return "(p.project_id = ? OR p.network_id IN (SELECT id FROM networks WHERE project_id = ?))",
		[]any{q.Scope.ProjectID, q.Scope.ProjectID}
}

// ListPorts returns the ports q selects. Besides column filters it
// understands security_groups (ports bound to any of the groups) and
// fixed_ips ("ip_address=X", "subnet_id=Y", "ip_address_substr=Z").
func (t *Tx) ListPorts(ctx context.Context, q ListQuery) ([]neutron.Port, error) {
	scope, args := portScope(q)
	var extra []string
	var extraArgs []any
	filters := neutron.Filters{}
	for k, v := range q.Filters {
		filters[k] = v
	}
	if sgs, ok := filters["security_groups"]; ok {
		delete(filters, "security_groups")
		extra = append(extra, "p.id IN (SELECT port_id FROM port_security_group_bindings WHERE security_group_id IN ("+placeholders(len(sgs))+"))")
		extraArgs = append(extraArgs, sgs...)
	}
	if fips, ok := filters["fixed_ips"]; ok {
		delete(filters, "fixed_ips")
		for _, f := range fips {
			k, v, _ := strings.Cut(fmt.Sprint(f), "=")
			switch k {
			case "ip_address":
				extra = append(extra, "p.id IN (SELECT port_id FROM ip_allocations WHERE ip_address = ?)")
				extraArgs = append(extraArgs, v)
			case "subnet_id":
				extra = append(extra, "p.id IN (SELECT port_id FROM ip_allocations WHERE subnet_id = ?)")
				extraArgs = append(extraArgs, v)
			case "ip_address_substr":
				extra = append(extra, "p.id IN (SELECT port_id FROM ip_allocations WHERE ip_address LIKE ?)")
				extraArgs = append(extraArgs, "%"+strings.NewReplacer("%", "", "_", "").Replace(v)+"%")
			default:
				extra = append(extra, "1 = 0")
			}
		}
	}
	if scope != "" {
		extra = append([]string{scope}, extra...)
		extraArgs = append(append([]any{}, args...), extraArgs...)
	}
	q.Filters = filters
	text, qargs := portList.build(q, strings.Join(extra, " AND "), extraArgs)
	all, err := t.selectPorts(ctx, nil, text, qargs...)
	if err != nil {
		return nil, err
	}
	out := pageOf(all, func(p *neutron.Port) string { return p.ID }, q)
	return out, t.fillPorts(ctx, out)
}

// PortsOfNetwork lists a network's ports.
func (t *Tx) PortsOfNetwork(ctx context.Context, networkID string) ([]neutron.Port, error) {
	return t.selectFilledPorts(ctx, nil, portSelect+` WHERE p.network_id = ? ORDER BY p.id`, networkID)
}

// PortsOnHost lists the ports bound to a host.
func (t *Tx) PortsOnHost(ctx context.Context, host string) ([]neutron.Port, error) {
	return t.portsOnHost(ctx, host, nil)
}

// portsOnHost lists the ports bound to a host; bad as for selectPorts.
func (t *Tx) portsOnHost(ctx context.Context, host string, bad map[string]string) ([]neutron.Port, error) {
	return t.selectFilledPorts(ctx, bad, portSelect+` WHERE p.host_id = ? ORDER BY p.id`, host)
}

// MACInUse reports whether a MAC is taken on a network.
func (t *Tx) MACInUse(ctx context.Context, networkID, mac string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND mac_address = ?`, networkID, mac)
	return n > 0, err
}

// CreatePort stores a port with its addresses, pairs and groups.
func (t *Tx) CreatePort(ctx context.Context, p *neutron.Port) error {
	if p.ID == "" {
		p.ID = uuid.NewString()
	}
	desc := p.Description
	sa, err := t.insertStandardAttrs(ctx, "ports", &desc)
	if err != nil {
		return err
	}
	p.StandardAttrs = sa
	profile, _ := json.Marshal(p.Profile)
	if p.Profile == nil {
		profile = []byte("{}")
	}
	if _, err := t.exec(ctx, `INSERT INTO ports (id, project_id, network_id, name, mac_address, admin_state_up, status, device_id,
		device_owner, port_security_enabled, host_id, vnic_type, profile, vif_type, standard_attr_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.ProjectID, p.NetworkID, p.Name, p.MACAddress, boolInt(p.AdminStateUp), p.Status, p.DeviceID, p.DeviceOwner,
		boolInt(p.PortSecurityEnabled), p.HostID, p.VNICType, string(profile), p.VIFType, sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert port: %w", err)
	}
	if err := t.writePortChildren(ctx, p); err != nil {
		return err
	}
	// Neutron's new ports are at revision 1 (their addresses and groups
	// are added after the port row).
	if err := t.bumpRevision(ctx, sa.StandardAttrID); err != nil {
		return err
	}
	p.RevisionNumber = 1
	if err := t.logChange(ctx, KindPort, p.ID, OpCreate, p.ProjectID); err != nil {
		return err
	}
	return t.logMembers(ctx, p.ProjectID, p.SecurityGroups)
}

func (t *Tx) writePortChildren(ctx context.Context, p *neutron.Port) error {
	for i, ip := range p.FixedIPs {
		if _, err := t.exec(ctx, `INSERT INTO ip_allocations (port_id, subnet_id, network_id, ip_address, position) VALUES (?, ?, ?, ?, ?)`,
			p.ID, ip.SubnetID, p.NetworkID, ip.IPAddress.String(), i); err != nil {
			return fmt.Errorf("allocate %s: %w", ip.IPAddress, err)
		}
	}
	for i, ap := range p.AllowedAddressPairs {
		if _, err := t.exec(ctx, `INSERT INTO port_address_pairs (port_id, position, ip_address, mac_address) VALUES (?, ?, ?, ?)`,
			p.ID, i, ap.IPAddress, ap.MACAddress); err != nil {
			return fmt.Errorf("add address pair: %w", err)
		}
	}
	for _, sg := range p.SecurityGroups {
		if _, err := t.exec(ctx, `INSERT INTO port_security_group_bindings (port_id, security_group_id) VALUES (?, ?)`, p.ID, sg); err != nil {
			return fmt.Errorf("bind security group %s: %w", sg, err)
		}
	}
	return nil
}

func (t *Tx) clearPortChildren(ctx context.Context, id string) error {
	for _, q := range []string{
		`DELETE FROM ip_allocations WHERE port_id = ?`,
		`DELETE FROM port_address_pairs WHERE port_id = ?`,
		`DELETE FROM port_security_group_bindings WHERE port_id = ?`,
	} {
		if _, err := t.exec(ctx, q, id); err != nil {
			return fmt.Errorf("clear port %s: %w", id, err)
		}
	}
	return nil
}

// logMembers records that the members of groups changed.
func (t *Tx) logMembers(ctx context.Context, project string, groups []string) error {
	for _, g := range neutron.SortedIDs(groups) {
		if err := t.logChange(ctx, KindSecurityGroupMember, g, OpUpdate, project); err != nil {
			return err
		}
	}
	return nil
}

// UpdatePort saves a port; old is the port as it was, so that the groups
// whose members changed are logged.
func (t *Tx) UpdatePort(ctx context.Context, old, p *neutron.Port) error {
	profile, _ := json.Marshal(p.Profile)
	if p.Profile == nil {
		profile = []byte("{}")
	}
	if _, err := t.exec(ctx, `UPDATE ports SET name = ?, mac_address = ?, admin_state_up = ?, status = ?, device_id = ?,
		device_owner = ?, port_security_enabled = ?, host_id = ?, vnic_type = ?, profile = ?, vif_type = ? WHERE id = ?`,
		p.Name, p.MACAddress, boolInt(p.AdminStateUp), p.Status, p.DeviceID, p.DeviceOwner, boolInt(p.PortSecurityEnabled),
		p.HostID, p.VNICType, string(profile), p.VIFType, p.ID); err != nil {
		return fmt.Errorf("update port %s: %w", p.ID, err)
	}
	if err := t.updateDescription(ctx, "port "+p.ID, &p.StandardAttrs, p.Description); err != nil {
		return err
	}
	if err := t.clearPortChildren(ctx, p.ID); err != nil {
		return err
	}
	if err := t.writePortChildren(ctx, p); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindPort, p.ID, OpUpdate, p.ProjectID); err != nil {
		return err
	}
	if err := t.logMembers(ctx, p.ProjectID, membershipChanges(old, p)); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &p.StandardAttrs)
}

// membershipChanges lists the groups whose member addresses differ between
// two versions of a port.
func membershipChanges(old, p *neutron.Port) []string {
	addrs := func(x *neutron.Port) string {
		var s []string
		for _, ip := range x.FixedIPs {
			s = append(s, ip.IPAddress.String())
		}
		for _, ap := range x.AllowedAddressPairs {
			s = append(s, ap.IPAddress+"/"+ap.MACAddress)
		}
		sort.Strings(s)
		return strings.Join(s, ",") + "|" + x.MACAddress
	}
	sameAddrs := addrs(old) == addrs(p)
	in := func(list []string, g string) bool {
		for _, x := range list {
			if x == g {
				return true
			}
		}
		return false
	}
	var out []string
	for _, g := range old.SecurityGroups {
		if !sameAddrs || !in(p.SecurityGroups, g) {
			out = append(out, g)
		}
	}
	for _, g := range p.SecurityGroups {
		if !sameAddrs || !in(old.SecurityGroups, g) {
			out = append(out, g)
		}
	}
	return out
}

// PortForStatus reads what ReportPortStatus needs of a port (id, project,
// host, status and reason, standard attributes), or nil. Unlike GetPort it
// reads no other column, so that a port whose stored row does not read in
// full can still be reported ERROR with the reason.
func (t *Tx) PortForStatus(ctx context.Context, id string) (*neutron.Port, error) {
	var p neutron.Port
	err := t.queryRow(ctx, `SELECT id, project_id, host_id, status, status_reason, standard_attr_id FROM ports WHERE id = ?`, id).
		Scan(&p.ID, &p.ProjectID, &p.HostID, &p.Status, &p.StatusReason, &p.StandardAttrID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read port %s: %w", id, err)
	}
	return &p, nil
}

// SetPortStatus records what a host agent reports (ACTIVE once wired and
// filtered, DOWN when unwired), without a reason.
func (t *Tx) SetPortStatus(ctx context.Context, p *neutron.Port, status string) error {
	return t.ReportPortStatus(ctx, p, status, "")
}

// ReportPortStatus records a host agent's status of a port and, for
// ERROR, why; a change bumps the port's revision and is logged.
func (t *Tx) ReportPortStatus(ctx context.Context, p *neutron.Port, status, reason string) error {
	if p.Status == status && p.StatusReason == reason {
		return nil
	}
	if _, err := t.exec(ctx, `UPDATE ports SET status = ?, status_reason = ? WHERE id = ?`, status, reason, p.ID); err != nil {
		return fmt.Errorf("set status of port %s: %w", p.ID, err)
	}
	p.Status, p.StatusReason = status, reason
	if err := t.bumpRevision(ctx, p.StandardAttrID); err != nil {
		return err
	}
	return t.logChange(ctx, KindPort, p.ID, OpUpdate, p.ProjectID)
}

// DeletePort removes a port and everything attached to it.
func (t *Tx) DeletePort(ctx context.Context, p *neutron.Port) error {
	if err := t.clearPortChildren(ctx, p.ID); err != nil {
		return err
	}
	if err := t.deleteLogsWhere(ctx, "target_id", p.ID); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM ports WHERE id = ?`, p.ID); err != nil {
		return fmt.Errorf("delete port %s: %w", p.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, p.StandardAttrID); err != nil {
		return fmt.Errorf("delete port %s: %w", p.ID, err)
	}
	if err := t.logChange(ctx, KindPort, p.ID, OpDelete, p.ProjectID); err != nil {
		return err
	}
	return t.logMembers(ctx, p.ProjectID, p.SecurityGroups)
}

// CountPorts counts a project's ports.
func (t *Tx) CountPorts(ctx context.Context, projectID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM ports WHERE project_id = ?`, projectID)
}

// PortsUsingSubnet counts the ports other than network:dhcp ones with an
// address on a subnet.
func (t *Tx) PortsUsingSubnet(ctx context.Context, subnetID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM ip_allocations a JOIN ports p ON p.id = a.port_id
		WHERE a.subnet_id = ? AND p.device_owner <> ?`, subnetID, neutron.DeviceOwnerDHCP)
}

// FindPort resolves a port id or a unique prefix of one to the port.
func (t *Tx) FindPort(ctx context.Context, prefix string) (*neutron.Port, error) {
	ids, err := t.stringColumn(ctx, `SELECT id FROM ports WHERE id LIKE ? ORDER BY id LIMIT 2`,
		strings.NewReplacer("%", "", "_", "").Replace(prefix)+"%")
	if err != nil {
		return nil, fmt.Errorf("find port %s: %w", prefix, err)
	}
	switch len(ids) {
	case 0:
		return nil, nil
	case 1:
		return t.GetPort(ctx, ids[0])
	}
	return nil, fmt.Errorf("port id prefix %q is not unique", prefix)
}
