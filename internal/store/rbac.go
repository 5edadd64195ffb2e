package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

const rbacSelect = `SELECT rp.id, rp.project_id, rp.object_type, rp.object_id, rp.action, rp.target_tenant FROM rbac_policies rp`

var rbacList = listSpec{
	base: rbacSelect,
	cols: map[string]string{
		"id": "rp.id", "tenant_id": "rp.project_id", "project_id": "rp.project_id", "object_type": "rp.object_type",
		"object_id": "rp.object_id", "action": "rp.action", "target_tenant": "rp.target_tenant",
	},
}

func (t *Tx) selectRBAC(ctx context.Context, q string, args ...any) ([]neutron.RBACPolicy, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read RBAC policies: %w", err)
	}
	defer rows.Close()
	var out []neutron.RBACPolicy
	for rows.Next() {
		var p neutron.RBACPolicy
		if err := rows.Scan(&p.ID, &p.ProjectID, &p.ObjectType, &p.ObjectID, &p.Action, &p.TargetTenant); err != nil {
			return nil, fmt.Errorf("read RBAC policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// GetRBACPolicy returns a policy or nil.
func (t *Tx) GetRBACPolicy(ctx context.Context, id string) (*neutron.RBACPolicy, error) {
	ps, err := t.selectRBAC(ctx, rbacSelect+` WHERE rp.id = ?`, id)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	return &ps[0], nil
}

// ListRBACPolicies returns the policies q selects; members see the
// policies they own.
func (t *Tx) ListRBACPolicies(ctx context.Context, q ListQuery) ([]neutron.RBACPolicy, error) {
	scope, args := "", []any(nil)
	if q.Scope != nil {
		scope, args = "rp.project_id = ?", []any{q.Scope.ProjectID}
	}
	text, qargs := rbacList.build(q, scope, args)
	all, err := t.selectRBAC(ctx, text, qargs...)
	if err != nil {
		return nil, err
	}
	return pageOf(all, func(p *neutron.RBACPolicy) string { return p.ID }, q), nil
}

// RBACPolicyExists reports whether the same sharing already exists.
func (t *Tx) RBACPolicyExists(ctx context.Context, p *neutron.RBACPolicy) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE object_type = ? AND object_id = ? AND action = ? AND target_tenant = ?`,
		p.ObjectType, p.ObjectID, p.Action, p.TargetTenant)
	return n > 0, err
}

// CreateRBACPolicy stores a policy.
func (t *Tx) CreateRBACPolicy(ctx context.Context, p *neutron.RBACPolicy) error {
	if p.ID == "" {
		p.ID = uuid.NewString()
	}
	if _, err := t.exec(ctx, `INSERT INTO rbac_policies (id, project_id, object_type, object_id, action, target_tenant) VALUES (?, ?, ?, ?, ?, ?)`,
		p.ID, p.ProjectID, p.ObjectType, p.ObjectID, p.Action, p.TargetTenant); err != nil {
		return fmt.Errorf("insert RBAC policy: %w", err)
	}
	return t.logChange(ctx, KindRBAC, p.ID, OpCreate, p.ProjectID)
}

// UpdateRBACTarget changes whom a policy shares with.
func (t *Tx) UpdateRBACTarget(ctx context.Context, p *neutron.RBACPolicy) error {
	if _, err := t.exec(ctx, `UPDATE rbac_policies SET target_tenant = ? WHERE id = ?`, p.TargetTenant, p.ID); err != nil {
		return fmt.Errorf("update RBAC policy %s: %w", p.ID, err)
	}
	return t.logChange(ctx, KindRBAC, p.ID, OpUpdate, p.ProjectID)
}

// DeleteRBACPolicy removes a policy.
func (t *Tx) DeleteRBACPolicy(ctx context.Context, p *neutron.RBACPolicy) error {
	if _, err := t.exec(ctx, `DELETE FROM rbac_policies WHERE id = ?`, p.ID); err != nil {
		return fmt.Errorf("delete RBAC policy %s: %w", p.ID, err)
	}
	return t.logChange(ctx, KindRBAC, p.ID, OpDelete, p.ProjectID)
}

// DeleteRBACPoliciesOf removes the policies of an object (when it goes).
func (t *Tx) DeleteRBACPoliciesOf(ctx context.Context, objectID string) error {
	ps, err := t.selectRBAC(ctx, rbacSelect+` WHERE rp.object_id = ?`, objectID)
	if err != nil {
		return err
	}
	for i := range ps {
		if err := t.DeleteRBACPolicy(ctx, &ps[i]); err != nil {
			return err
		}
	}
	return nil
}

// ProjectsUsingGroup lists the projects whose ports use a group, sorted.
func (t *Tx) ProjectsUsingGroup(ctx context.Context, sgID string) ([]string, error) {
	return t.stringColumn(ctx, `SELECT DISTINCT p.project_id FROM port_security_group_bindings b JOIN ports p ON p.id = b.port_id
		WHERE b.security_group_id = ? ORDER BY p.project_id`, sgID)
}

// OtherSharingTargets lists the targets, other than the given policy's, a
// group is shared with.
func (t *Tx) OtherSharingTargets(ctx context.Context, p *neutron.RBACPolicy) ([]string, error) {
	return t.stringColumn(ctx, `SELECT target_tenant FROM rbac_policies WHERE object_id = ? AND action = ? AND id <> ? ORDER BY target_tenant`,
		p.ObjectID, p.Action, p.ID)
}

// CountRBACPolicies counts a project's policies.
func (t *Tx) CountRBACPolicies(ctx context.Context, projectID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE project_id = ?`, projectID)
}
