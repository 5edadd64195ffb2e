package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

// KindLog is a network log object (the logging extension) in the change
// log.
const KindLog = "log"

// resLog is the standard attributes' resource type of logs, as Neutron
// names it.
const resLog = "logs"

const logSelect = `SELECT l.id, l.project_id, l.name, l.resource_type, l.resource_id, l.target_id, l.event, l.enabled,
	sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM logs l JOIN standard_attrs sa ON sa.id = l.standard_attr_id`

var logList = listSpec{
	base: logSelect,
	cols: map[string]string{
		"id": "l.id", "project_id": "l.project_id", "tenant_id": "l.project_id", "name": "l.name",
		"resource_type": "l.resource_type", "resource_id": "l.resource_id", "target_id": "l.target_id",
		"event": "l.event", "enabled": "l.enabled", "description": "sa.description", "revision_number": "sa.revision_number",
	},
}

func (t *Tx) selectLogs(ctx context.Context, q string, args ...any) ([]neutron.Log, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	var out []neutron.Log
	for rows.Next() {
		var (
			l                neutron.Log
			res, target      sql.NullString
			desc             sql.NullString
			enabled          int64
			created, updated string
		)
		if err := rows.Scan(&l.ID, &l.ProjectID, &l.Name, &l.ResourceType, &res, &target, &l.Event, &enabled,
			&l.StandardAttrID, &desc, &l.RevisionNumber, &created, &updated); err != nil {
			return nil, fmt.Errorf("read logs: %w", err)
		}
		l.ResourceID, l.TargetID, l.Description = res.String, target.String, desc.String
		l.Enabled = enabled != 0
		l.CreatedAt, l.UpdatedAt = parseTime(created), parseTime(updated)
		l.Tags = []string{}
		out = append(out, l)
	}
	return out, rows.Err()
}

// GetLog returns a log object or nil.
func (t *Tx) GetLog(ctx context.Context, id string) (*neutron.Log, error) {
	ls, err := t.selectLogs(ctx, logSelect+` WHERE l.id = ?`, id)
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	return &ls[0], nil
}

// ListLogs returns the logs q selects (logs are for admins: no scope).
func (t *Tx) ListLogs(ctx context.Context, q ListQuery) ([]neutron.Log, error) {
	scope, args := "", []any(nil)
	if q.Scope != nil {
		scope, args = "l.project_id = ?", []any{q.Scope.ProjectID}
	}
	text, qargs := logList.build(q, scope, args)
	all, err := t.selectLogs(ctx, text, qargs...)
	if err != nil {
		return nil, err
	}
	return pageOf(all, func(l *neutron.Log) string { return l.ID }, q), nil
}

// AllLogs returns every log object, by id.
func (t *Tx) AllLogs(ctx context.Context) ([]neutron.Log, error) {
	return t.selectLogs(ctx, logSelect+` ORDER BY l.id`)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateLog stores a log object.
func (t *Tx) CreateLog(ctx context.Context, l *neutron.Log) error {
	if l.ID == "" {
		l.ID = uuid.NewString()
	}
	sa, err := t.insertStandardAttrs(ctx, resLog, &l.Description)
	if err != nil {
		return err
	}
	l.StandardAttrs = sa
	if _, err := t.exec(ctx, `INSERT INTO logs (id, project_id, name, resource_type, resource_id, target_id, event, enabled, standard_attr_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, l.ID, l.ProjectID, l.Name, l.ResourceType, nullIfEmpty(l.ResourceID),
		nullIfEmpty(l.TargetID), l.Event, boolInt(l.Enabled), sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert log: %w", err)
	}
	return t.logChange(ctx, KindLog, l.ID, OpCreate, l.ProjectID)
}

// UpdateLog saves a log's name, description and enabled flag and bumps
// its revision.
func (t *Tx) UpdateLog(ctx context.Context, l *neutron.Log) error {
	if _, err := t.exec(ctx, `UPDATE logs SET name = ?, enabled = ? WHERE id = ?`, l.Name, boolInt(l.Enabled), l.ID); err != nil {
		return fmt.Errorf("update log %s: %w", l.ID, err)
	}
	if err := t.updateDescription(ctx, "log "+l.ID, &l.StandardAttrs, l.Description); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindLog, l.ID, OpUpdate, l.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &l.StandardAttrs)
}

// DeleteLog removes a log object.
func (t *Tx) DeleteLog(ctx context.Context, l *neutron.Log) error {
	if _, err := t.exec(ctx, `DELETE FROM logs WHERE id = ?`, l.ID); err != nil {
		return fmt.Errorf("delete log %s: %w", l.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, l.StandardAttrID); err != nil {
		return fmt.Errorf("delete log %s: %w", l.ID, err)
	}
	return t.logChange(ctx, KindLog, l.ID, OpDelete, l.ProjectID)
}

// deleteLogsWhere removes the logs bound to a group or port that goes
// (Neutron's logging plugin cleans them up after the delete).
func (t *Tx) deleteLogsWhere(ctx context.Context, column, id string) error {
	ls, err := t.selectLogs(ctx, logSelect+` WHERE l.`+column+` = ? ORDER BY l.id`, id)
	if err != nil {
		return err
	}
	for i := range ls {
		if err := t.DeleteLog(ctx, &ls[i]); err != nil {
			return err
		}
	}
	return nil
}

// PortHasGroup reports whether a port carries a security group.
func (t *Tx) PortHasGroup(ctx context.Context, portID, sgID string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM port_security_group_bindings WHERE port_id = ? AND security_group_id = ?`, portID, sgID)
	return n > 0, err
}

// HostLog is an enabled log object as one host's agent needs it: what it
// logs and the ports of the host it covers (sorted): its target port, the
// ports that carry its group, or with neither every port of its project.
type HostLog struct {
	ID         string
	ProjectID  string
	Event      string
	ResourceID string
	Ports      []string
}

// LogsForHost returns the enabled logs that cover a port bound to host,
// by id.
func (t *Tx) LogsForHost(ctx context.Context, host string) ([]HostLog, error) {
	logs, err := t.selectLogs(ctx, logSelect+` WHERE l.enabled = 1 ORDER BY l.id`)
	if err != nil || len(logs) == 0 {
		return nil, err
	}
	type hostPort struct {
		project string
		groups  map[string]bool
	}
	ports := map[string]*hostPort{}
	rows, err := t.query(ctx, `SELECT id, project_id FROM ports WHERE host_id = ? ORDER BY id`, host)
	if err != nil {
		return nil, fmt.Errorf("read ports of %s for logs: %w", host, err)
	}
	var order []string
	for rows.Next() {
		var id, project string
		if err := rows.Scan(&id, &project); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read ports of %s for logs: %w", host, err)
		}
		ports[id] = &hostPort{project: project, groups: map[string]bool{}}
		order = append(order, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ports of %s for logs: %w", host, err)
	}
	rows, err = t.query(ctx, `SELECT b.port_id, b.security_group_id FROM port_security_group_bindings b
		JOIN ports p ON p.id = b.port_id WHERE p.host_id = ?`, host)
	if err != nil {
		return nil, fmt.Errorf("read groups of %s for logs: %w", host, err)
	}
	for rows.Next() {
		var port, group string
		if err := rows.Scan(&port, &group); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read groups of %s for logs: %w", host, err)
		}
		if p := ports[port]; p != nil {
			p.groups[group] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read groups of %s for logs: %w", host, err)
	}
	var out []HostLog
	for _, l := range logs {
		hl := HostLog{ID: l.ID, ProjectID: l.ProjectID, Event: l.Event, ResourceID: l.ResourceID}
		for _, id := range order {
			p := ports[id]
			switch {
			case l.TargetID != "" && l.TargetID != id:
			case l.ResourceID != "" && !p.groups[l.ResourceID]:
			case l.TargetID == "" && l.ResourceID == "" && p.project != l.ProjectID:
			default:
				hl.Ports = append(hl.Ports, id)
			}
		}
		if len(hl.Ports) > 0 {
			out = append(out, hl)
		}
	}
	return out, nil
}
