package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

// KindAddressGroup is an address group in the change log: created,
// renamed, its addresses changed (update) or deleted.
const KindAddressGroup = "address_group"

// resAddressGroup is the standard attributes' resource type of an address
// group, as Neutron names it.
const resAddressGroup = "addressgroups"

const agSelect = `SELECT ag.id, ag.project_id, ag.name, sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM address_groups ag JOIN standard_attrs sa ON sa.id = ag.standard_attr_id`

var agList = listSpec{
	base: agSelect,
	cols: map[string]string{
		"id": "ag.id", "name": "ag.name", "tenant_id": "ag.project_id", "project_id": "ag.project_id",
		"description": "sa.description",
	},
}

// agSharedWithSQL selects the address groups shared with a project (one
// parameter).
const agSharedWithSQL = `SELECT object_id FROM rbac_policies WHERE object_type = 'address_group'
	AND action = 'access_as_shared' AND target_tenant IN (?, '*')`

// agRow is what agSelect scans into.
type agRow struct {
	g                neutron.AddressGroup
	desc             sql.NullString
	created, updated string
}

func (r *agRow) columns() scanColumns {
	g := &r.g
	return scanColumns{
		{"id", &g.ID}, {"project_id", &g.ProjectID}, {"name", &g.Name},
		{"standard_attr_id", &g.StandardAttrID}, {"description", &r.desc}, {"revision_number", &g.RevisionNumber},
		{"created_at", &r.created}, {"updated_at", &r.updated},
	}
}

func (t *Tx) selectAddressGroups(ctx context.Context, q string, args ...any) ([]neutron.AddressGroup, error) {
	groups, err := selectRows(ctx, t, "address groups", q, args, func(r *agRow, probs columnProblems) (neutron.AddressGroup, bool, error) {
		g := r.g
		if len(probs) > 0 {
			return g, false, fmt.Errorf("read address group %s: %s", g.ID, probs)
		}
		g.Description = r.desc.String
		g.CreatedAt, g.UpdatedAt = parseTime(r.created), parseTime(r.updated)
		g.Tags = []string{}
		return g, true, nil
	})
	if err != nil {
		return nil, err
	}
	return groups, t.loadAddresses(ctx, groups)
}

// loadAddresses fills in each group's addresses.
func (t *Tx) loadAddresses(ctx context.Context, groups []neutron.AddressGroup) error {
	if len(groups) == 0 {
		return nil
	}
	idx := make(map[string]int, len(groups))
	ids := make([]any, len(groups))
	for i := range groups {
		idx[groups[i].ID] = i
		ids[i] = groups[i].ID
		groups[i].Addresses = []string{}
	}
	for _, chunk := range chunks(ids, 500) {
		rows, err := t.query(ctx, `SELECT address_group_id, address FROM address_associations
			WHERE address_group_id IN (`+placeholders(len(chunk))+`)`, chunk...)
		if err != nil {
			return fmt.Errorf("read addresses of address groups: %w", err)
		}
		for rows.Next() {
			var id, addr string
			if err := rows.Scan(&id, &addr); err != nil {
				rows.Close()
				return fmt.Errorf("read addresses of address groups: %w", err)
			}
			g := &groups[idx[id]]
			g.Addresses = append(g.Addresses, addr)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read addresses of address groups: %w", err)
		}
	}
	for i := range groups {
		neutron.SortAddresses(groups[i].Addresses)
	}
	return nil
}

// GetAddressGroup returns the address group with id, with its addresses,
// or nil.
func (t *Tx) GetAddressGroup(ctx context.Context, id string) (*neutron.AddressGroup, error) {
	gs, err := t.selectAddressGroups(ctx, agSelect+` WHERE ag.id = ?`, id)
	if err != nil || len(gs) == 0 {
		return nil, err
	}
	return &gs[0], nil
}

// GetAddressGroupFor returns an address group as caller sees it (Shared
// set), or nil.
func (t *Tx) GetAddressGroupFor(ctx context.Context, id, caller string) (*neutron.AddressGroup, error) {
	g, err := t.GetAddressGroup(ctx, id)
	if err != nil || g == nil {
		return g, err
	}
	g.Shared, err = t.AddressGroupSharedWith(ctx, id, caller)
	return g, err
}

// AddressGroupSharedWith reports whether an RBAC policy shares an address
// group with a project (or with every project).
func (t *Tx) AddressGroupSharedWith(ctx context.Context, id, project string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE object_type = 'address_group' AND object_id = ?
		AND action = 'access_as_shared' AND target_tenant IN (?, '*')`, id, project)
	return n > 0, err
}

// ListAddressGroups returns the address groups q selects, with their
// addresses; a scoped caller sees its own and those shared with it.
func (t *Tx) ListAddressGroups(ctx context.Context, q ListQuery) ([]neutron.AddressGroup, error) {
	scope, scopeArgs := "", []any(nil)
	if q.Scope != nil {
		scope = "(ag.project_id = ? OR ag.id IN (" + agSharedWithSQL + "))"
		scopeArgs = []any{q.Scope.ProjectID, q.Scope.ProjectID}
	}
	text, args := agList.build(q, scope, scopeArgs)
	all, err := t.selectAddressGroups(ctx, text, args...)
	if err != nil {
		return nil, err
	}
	return pageOf(all, func(g *neutron.AddressGroup) string { return g.ID }, q), nil
}

// CreateAddressGroup stores a new address group with its addresses
// (normalised already) and fills in its id and standard attributes.
func (t *Tx) CreateAddressGroup(ctx context.Context, g *neutron.AddressGroup) error {
	if g.ID == "" {
		g.ID = uuid.NewString()
	}
	desc := g.Description
	sa, err := t.insertStandardAttrs(ctx, resAddressGroup, &desc)
	if err != nil {
		return err
	}
	g.StandardAttrs = sa
	if _, err := t.exec(ctx, `INSERT INTO address_groups (id, project_id, name, standard_attr_id) VALUES (?, ?, ?, ?)`,
		g.ID, g.ProjectID, g.Name, sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert address group: %w", err)
	}
	if err := t.insertAddresses(ctx, g.ID, g.Addresses); err != nil {
		return err
	}
	if g.Addresses == nil {
		g.Addresses = []string{}
	}
	return t.logChange(ctx, KindAddressGroup, g.ID, OpCreate, g.ProjectID)
}

func (t *Tx) insertAddresses(ctx context.Context, id string, addrs []string) error {
	for _, a := range addrs {
		if _, err := t.exec(ctx, `INSERT INTO address_associations (address_group_id, address) VALUES (?, ?)`, id, a); err != nil {
			return fmt.Errorf("add address %s to address group %s: %w", a, id, err)
		}
	}
	return nil
}

// UpdateAddressGroup saves an address group's name and description and
// bumps its revision.
func (t *Tx) UpdateAddressGroup(ctx context.Context, g *neutron.AddressGroup) error {
	if _, err := t.exec(ctx, `UPDATE address_groups SET name = ? WHERE id = ?`, g.Name, g.ID); err != nil {
		return fmt.Errorf("update address group %s: %w", g.ID, err)
	}
	if err := t.updateDescription(ctx, "address group "+g.ID, &g.StandardAttrs, g.Description); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindAddressGroup, g.ID, OpUpdate, g.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &g.StandardAttrs)
}

// ChangeAddresses adds and removes addresses of an address group (both
// normalised; the caller checked that the added are new and the removed
// held), bumps its revision and logs the change, then reloads g.
func (t *Tx) ChangeAddresses(ctx context.Context, g *neutron.AddressGroup, add, remove []string) error {
	for _, a := range remove {
		if _, err := t.exec(ctx, `DELETE FROM address_associations WHERE address_group_id = ? AND address = ?`, g.ID, a); err != nil {
			return fmt.Errorf("remove address %s from address group %s: %w", a, g.ID, err)
		}
	}
	if err := t.insertAddresses(ctx, g.ID, add); err != nil {
		return err
	}
	if len(add)+len(remove) > 0 {
		if err := t.bumpRevision(ctx, g.StandardAttrID); err != nil {
			return err
		}
		if err := t.logChange(ctx, KindAddressGroup, g.ID, OpUpdate, g.ProjectID); err != nil {
			return err
		}
	}
	if err := t.refreshAttrs(ctx, &g.StandardAttrs); err != nil {
		return err
	}
	groups := []neutron.AddressGroup{*g}
	if err := t.loadAddresses(ctx, groups); err != nil {
		return err
	}
	*g = groups[0]
	return nil
}

// DeleteAddressGroup removes an address group, its addresses and the RBAC
// policies that share it (the caller checked that no rule names it).
func (t *Tx) DeleteAddressGroup(ctx context.Context, g *neutron.AddressGroup) error {
	if err := t.DeleteRBACPoliciesOf(ctx, g.ID); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM address_associations WHERE address_group_id = ?`,
		`DELETE FROM address_groups WHERE id = ?`,
	} {
		if _, err := t.exec(ctx, q, g.ID); err != nil {
			return fmt.Errorf("delete address group %s: %w", g.ID, err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, g.StandardAttrID); err != nil {
		return fmt.Errorf("delete address group %s: %w", g.ID, err)
	}
	return t.logChange(ctx, KindAddressGroup, g.ID, OpDelete, g.ProjectID)
}

// AddressGroupInUse reports whether a rule of any project names the
// address group as its remote.
func (t *Tx) AddressGroupInUse(ctx context.Context, id string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM security_group_rules WHERE remote_address_group_id = ?`, id)
	return n > 0, err
}

// ProjectsUsingAddressGroup lists the projects whose rules name an address
// group (Neutron's get_bound_project_ids), sorted.
func (t *Tx) ProjectsUsingAddressGroup(ctx context.Context, id string) ([]string, error) {
	return t.stringColumn(ctx, `SELECT DISTINCT project_id FROM security_group_rules WHERE remote_address_group_id = ?
		ORDER BY project_id`, id)
}

// AddressGroupHead returns an address group's owner and name without its
// addresses, or nil: for the checks of a rule create.
func (t *Tx) AddressGroupHead(ctx context.Context, id string) (*neutron.AddressGroup, error) {
	var g neutron.AddressGroup
	err := t.queryRow(ctx, `SELECT id, project_id, name FROM address_groups WHERE id = ?`, id).Scan(&g.ID, &g.ProjectID, &g.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get address group %s: %w", id, err)
	}
	return &g, nil
}

// addressGroupsByID returns the address groups with these ids that exist,
// with their addresses, by id.
func (t *Tx) addressGroupsByID(ctx context.Context, ids []string) (map[string]*neutron.AddressGroup, error) {
	out := map[string]*neutron.AddressGroup{}
	for _, chunk := range chunks(anySlice(ids), 500) {
		gs, err := t.selectAddressGroups(ctx, agSelect+` WHERE ag.id IN (`+placeholders(len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, err
		}
		for i := range gs {
			out[gs[i].ID] = &gs[i]
		}
	}
	return out, nil
}
