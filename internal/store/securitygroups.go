package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

// Resource types of standard attributes, as Neutron names them.
const (
	resSecurityGroup     = "securitygroups"
	resSecurityGroupRule = "securitygrouprules"
)

// insertStandardAttrs creates the standard attributes row of a new object.
func (t *Tx) insertStandardAttrs(ctx context.Context, resourceType string, description *string) (neutron.StandardAttrs, error) {
	now := fmtTime(t.now)
	var id int64
	err := t.queryRow(ctx, `INSERT INTO standard_attrs (resource_type, description, revision_number, created_at, updated_at)
		VALUES (?, ?, 0, ?, ?) RETURNING id`, resourceType, description, now, now).Scan(&id)
	if err != nil {
		return neutron.StandardAttrs{}, fmt.Errorf("insert standard attributes: %w", err)
	}
	return neutron.StandardAttrs{StandardAttrID: id, CreatedAt: t.now, UpdatedAt: t.now, Tags: []string{}}, nil
}

// bumpRevision increments an object's revision number and update time,
// once per transaction as Neutron's revision plugin does.
// updateDescription saves an updated object's description and bumps its
// revision; what names the object in errors.
func (t *Tx) updateDescription(ctx context.Context, what string, sa *neutron.StandardAttrs, description string) error {
	if _, err := t.exec(ctx, `UPDATE standard_attrs SET description = ? WHERE id = ?`, description, sa.StandardAttrID); err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	}
	return t.bumpRevision(ctx, sa.StandardAttrID)
}

func (t *Tx) bumpRevision(ctx context.Context, standardAttrID int64) error {
	if t.bumped == nil {
		t.bumped = map[int64]bool{}
	}
	if t.bumped[standardAttrID] {
		return nil
	}
	t.bumped[standardAttrID] = true
	_, err := t.exec(ctx, `UPDATE standard_attrs SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
		fmtTime(t.now), standardAttrID)
	if err != nil {
		return fmt.Errorf("bump revision: %w", err)
	}
	return nil
}

const sgSelect = `SELECT sg.id, sg.project_id, sg.name, sg.stateful, sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM security_groups sg JOIN standard_attrs sa ON sa.id = sg.standard_attr_id`

var sgList = listSpec{
	base: sgSelect,
	cols: map[string]string{
		"id": "sg.id", "name": "sg.name", "tenant_id": "sg.project_id", "project_id": "sg.project_id",
		"description": "sa.description", "revision_number": "sa.revision_number",
	},
	tagAttr: "sa.id",
}

func scanSecurityGroup(sc interface{ Scan(...any) error }) (neutron.SecurityGroup, error) {
	var r sgRow
	err := sc.Scan(r.columns().pointers()...)
	return r.group(), err
}

// sgRow is what sgSelect scans into.
type sgRow struct {
	g                neutron.SecurityGroup
	stateful         int64
	desc             sql.NullString
	created, updated string
}

func (r *sgRow) columns() scanColumns {
	g := &r.g
	return scanColumns{
		{"id", &g.ID}, {"project_id", &g.ProjectID}, {"name", &g.Name}, {"stateful", &r.stateful},
		{"standard_attr_id", &g.StandardAttrID}, {"description", &r.desc}, {"revision_number", &g.RevisionNumber},
		{"created_at", &r.created}, {"updated_at", &r.updated},
	}
}

func (r *sgRow) group() neutron.SecurityGroup {
	g := r.g
	g.Stateful = r.stateful != 0
	g.Description = r.desc.String
	g.CreatedAt, g.UpdatedAt = parseTime(r.created), parseTime(r.updated)
	return g
}

// sharedWithSQL selects the groups shared with a project (one parameter).
const sharedWithSQL = `SELECT object_id FROM rbac_policies WHERE object_type = 'security_group'
	AND action = 'access_as_shared' AND target_tenant IN (?, '*')`

// markShared sets Shared on each group: whether an RBAC policy shares it
// with caller or with everyone, which is what Neutron shows.
func (t *Tx) markShared(ctx context.Context, groups []neutron.SecurityGroup, caller string) error {
	if len(groups) == 0 {
		return nil
	}
	shared, err := t.stringColumn(ctx, sharedWithSQL, caller)
	if err != nil {
		return fmt.Errorf("read shared security groups: %w", err)
	}
	set := map[string]bool{}
	for _, id := range shared {
		set[id] = true
	}
	for i := range groups {
		groups[i].Shared = set[groups[i].ID]
	}
	return nil
}

// SecurityGroupSharedWith reports whether a group is shared with a project.
func (t *Tx) SecurityGroupSharedWith(ctx context.Context, id, project string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE object_type = 'security_group' AND object_id = ?
		AND action = 'access_as_shared' AND target_tenant IN (?, '*')`, id, project)
	return n > 0, err
}

// GetSecurityGroupFor returns a group as caller sees it (with Shared set),
// or nil.
func (t *Tx) GetSecurityGroupFor(ctx context.Context, id, caller string) (*neutron.SecurityGroup, error) {
	g, err := t.GetSecurityGroup(ctx, id)
	if err != nil || g == nil {
		return g, err
	}
	g.Shared, err = t.SecurityGroupSharedWith(ctx, id, caller)
	return g, err
}

// GetSecurityGroup returns the group with id, with its tags but not its
// rules, or nil if there is none.
func (t *Tx) GetSecurityGroup(ctx context.Context, id string) (*neutron.SecurityGroup, error) {
	g, err := t.SecurityGroupHead(ctx, id)
	if g == nil || err != nil {
		return g, err
	}
	groups := []neutron.SecurityGroup{*g}
	if err := t.loadSGTags(ctx, groups); err != nil {
		return nil, err
	}
	return &groups[0], nil
}

// SecurityGroupHead returns the group with id without its tags or rules
// (its own row and standard attributes: one query), or nil if there is
// none: for checks that need only its project, as a rule create's.
func (t *Tx) SecurityGroupHead(ctx context.Context, id string) (*neutron.SecurityGroup, error) {
	g, err := scanSecurityGroup(t.queryRow(ctx, sgSelect+` WHERE sg.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get security group %s: %w", id, err)
	}
	// A group's standard attributes row never changes: bumpGroups need
	// not look it up again in this transaction.
	if t.groupAttrs == nil {
		t.groupAttrs = map[string]int64{}
	}
	t.groupAttrs[g.ID] = g.StandardAttrID
	return &g, nil
}

// securityGroupsByID returns the groups with the given ids that exist, as
// GetSecurityGroup returns them, in the order of ids; bad as for
// selectSecurityGroups.
func (t *Tx) securityGroupsByID(ctx context.Context, ids []string, bad map[string]string) ([]neutron.SecurityGroup, error) {
	var found []neutron.SecurityGroup
	for _, chunk := range chunks(anySlice(ids), 500) {
		part, err := t.selectSecurityGroups(ctx, bad, sgSelect+` WHERE sg.id IN (`+placeholders(len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, err
		}
		found = append(found, part...)
	}
	out := inOrder(found, func(g *neutron.SecurityGroup) string { return g.ID }, ids)
	return out, t.loadSGTags(ctx, out)
}

// selectSecurityGroups reads the groups q selects; bad as for selectPorts
// (it maps a group id to what of its row does not read).
func (t *Tx) selectSecurityGroups(ctx context.Context, bad map[string]string, q string, args ...any) ([]neutron.SecurityGroup, error) {
	return selectRows(ctx, t, "security groups", q, args, func(r *sgRow, probs columnProblems) (neutron.SecurityGroup, bool, error) {
		g := r.group()
		if len(probs) > 0 {
			if bad == nil || g.ID == "" {
				return g, false, fmt.Errorf("read security group %s: %s", g.ID, probs)
			}
			bad[g.ID] = probs.String()
		}
		return g, true, nil
	})
}

// ListSecurityGroups returns the groups q selects, in order, with tags.
func (t *Tx) ListSecurityGroups(ctx context.Context, q ListQuery) ([]neutron.SecurityGroup, error) {
	scope, scopeArgs := "", []any(nil)
	if q.Scope != nil {
		scope = "(sg.project_id = ? OR sg.id IN (" + sharedWithSQL + "))"
		scopeArgs = []any{q.Scope.ProjectID, q.Scope.ProjectID}
	}
	// shared depends on who asks; it is filtered below, after it is known.
	sharedFilter, hasShared := q.Filters["shared"]
	if hasShared {
		f := neutron.Filters{}
		for k, v := range q.Filters {
			if k != "shared" {
				f[k] = v
			}
		}
		q.Filters = f
	}
	text, args := sgList.build(q, scope, scopeArgs)
	all, err := t.selectSecurityGroups(ctx, nil, text, args...)
	if err != nil {
		return nil, err
	}
	if err := t.markShared(ctx, all, q.Caller); err != nil {
		return nil, err
	}
	if hasShared {
		kept := all[:0]
		for _, g := range all {
			for _, v := range sharedFilter {
				if b, ok := v.(bool); ok && b == g.Shared {
					kept = append(kept, g)
					break
				}
			}
		}
		all = kept
	}
	out := pageOf(all, func(g *neutron.SecurityGroup) string { return g.ID }, q)
	if err := t.loadSGTags(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Tx) loadSGTags(ctx context.Context, groups []neutron.SecurityGroup) error {
	return fillTags(ctx, t, groups, func(g *neutron.SecurityGroup) *neutron.StandardAttrs { return &g.StandardAttrs })
}

// LoadRules fills in the rules of each group, in creation order.
func (t *Tx) LoadRules(ctx context.Context, groups []neutron.SecurityGroup) error {
	return t.loadRules(ctx, groups, nil)
}

// loadRules is LoadRules; bad as for selectRules.
func (t *Tx) loadRules(ctx context.Context, groups []neutron.SecurityGroup, bad map[string]string) error {
	if len(groups) == 0 {
		return nil
	}
	idx := map[string]int{}
	ids := make([]any, len(groups))
	for i := range groups {
		idx[groups[i].ID] = i
		ids[i] = groups[i].ID
		groups[i].Rules = []neutron.SecurityGroupRule{}
	}
	for _, chunk := range chunks(ids, 500) {
		rules, err := t.selectRules(ctx, bad, ruleSelect+` WHERE r.security_group_id IN (`+placeholders(len(chunk))+`) ORDER BY sa.id`, chunk...)
		if err != nil {
			return err
		}
		for _, r := range rules {
			i := idx[r.SecurityGroupID]
			groups[i].Rules = append(groups[i].Rules, r)
		}
	}
	return nil
}

// CreateSecurityGroup stores a new group and its initial rules (Neutron's
// egress rules, and for a default group the same-group ingress ones) and
// fills in ids, revisions and timestamps. isDefault makes it the project's
// default group.
func (t *Tx) CreateSecurityGroup(ctx context.Context, g *neutron.SecurityGroup, rules []neutron.SecurityGroupRule, isDefault bool) error {
	if g.ID == "" {
		g.ID = uuid.NewString()
	}
	desc := g.Description
	sa, err := t.insertStandardAttrs(ctx, resSecurityGroup, &desc)
	if err != nil {
		return err
	}
	g.StandardAttrs = sa
	if _, err := t.exec(ctx, `INSERT INTO security_groups (id, project_id, name, stateful, standard_attr_id) VALUES (?, ?, ?, ?, ?)`,
		g.ID, g.ProjectID, g.Name, boolInt(g.Stateful), sa.StandardAttrID); err != nil {
		return fmt.Errorf("insert security group: %w", err)
	}
	if isDefault {
		if _, err := t.exec(ctx, `INSERT INTO default_security_groups (project_id, security_group_id) VALUES (?, ?)`,
			g.ProjectID, g.ID); err != nil {
			return fmt.Errorf("record default security group of %s: %w", g.ProjectID, err)
		}
	}
	if err := t.logChange(ctx, KindSecurityGroup, g.ID, OpCreate, g.ProjectID); err != nil {
		return err
	}
	ptrs := make([]*neutron.SecurityGroupRule, len(rules))
	for i := range rules {
		rules[i].SecurityGroupID = g.ID
		ptrs[i] = &rules[i]
	}
	if err := t.CreateRules(ctx, ptrs); err != nil {
		return err
	}
	g.Rules = rules
	return t.refreshAttrs(ctx, &g.StandardAttrs)
}

// UpdateSecurityGroup saves a group's name, description and stateful flag
// and bumps its revision.
func (t *Tx) UpdateSecurityGroup(ctx context.Context, g *neutron.SecurityGroup) error {
	if _, err := t.exec(ctx, `UPDATE security_groups SET name = ?, stateful = ? WHERE id = ?`,
		g.Name, boolInt(g.Stateful), g.ID); err != nil {
		return fmt.Errorf("update security group %s: %w", g.ID, err)
	}
	if err := t.updateDescription(ctx, "security group "+g.ID, &g.StandardAttrs, g.Description); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindSecurityGroup, g.ID, OpUpdate, g.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &g.StandardAttrs)
}

// DeleteSecurityGroup removes a group, its rules, and the rules of other
// groups that name it as their remote group (Neutron's foreign key cascades
// there too); each removed rule is logged and bumps its group's revision.
func (t *Tx) DeleteSecurityGroup(ctx context.Context, g *neutron.SecurityGroup) error {
	rules, err := t.selectRules(ctx, nil, ruleSelect+` WHERE r.security_group_id = ? OR r.remote_group_id = ? ORDER BY sa.id`, g.ID, g.ID)
	if err != nil {
		return err
	}
	for i := range rules {
		if err := t.deleteRule(ctx, &rules[i], rules[i].SecurityGroupID != g.ID); err != nil {
			return err
		}
	}
	if err := t.DeleteRBACPoliciesOf(ctx, g.ID); err != nil {
		return err
	}
	if err := t.deleteLogsWhere(ctx, "resource_id", g.ID); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM default_security_groups WHERE security_group_id = ?`, g.ID); err != nil {
		return fmt.Errorf("delete security group %s: %w", g.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM security_groups WHERE id = ?`, g.ID); err != nil {
		return fmt.Errorf("delete security group %s: %w", g.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, g.StandardAttrID); err != nil {
		return fmt.Errorf("delete security group %s: %w", g.ID, err)
	}
	return t.logChange(ctx, KindSecurityGroup, g.ID, OpDelete, g.ProjectID)
}

// DefaultSecurityGroupID returns the id of a project's default group, or "".
func (t *Tx) DefaultSecurityGroupID(ctx context.Context, projectID string) (string, error) {
	var id string
	err := t.queryRow(ctx, `SELECT security_group_id FROM default_security_groups WHERE project_id = ?`, projectID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get default security group of %s: %w", projectID, err)
	}
	return id, nil
}

// CountSecurityGroups counts a project's groups, as Neutron's quota does.
func (t *Tx) CountSecurityGroups(ctx context.Context, projectID string) (int, error) {
	return t.count(ctx, `SELECT COUNT(*) FROM security_groups WHERE project_id = ?`, projectID)
}

// ---- rules

const ruleSelect = `SELECT r.id, r.project_id, r.security_group_id, r.direction, r.ethertype, r.protocol,
	r.port_range_min, r.port_range_max, r.remote_ip_prefix, r.remote_group_id, r.remote_address_group_id,
	sa.id, sa.description, sa.revision_number, sa.created_at, sa.updated_at
	FROM security_group_rules r JOIN standard_attrs sa ON sa.id = r.standard_attr_id`

var ruleList = listSpec{
	base: ruleSelect,
	cols: map[string]string{
		"id": "r.id", "security_group_id": "r.security_group_id", "remote_group_id": "r.remote_group_id",
		"direction": "r.direction", "protocol": "r.protocol", "port_range_min": "r.port_range_min",
		"port_range_max": "r.port_range_max", "ethertype": "r.ethertype", "remote_ip_prefix": "r.remote_ip_prefix",
		"tenant_id": "r.project_id", "project_id": "r.project_id", "remote_address_group_id": "r.remote_address_group_id",
		"description": "sa.description", "revision_number": "sa.revision_number",
	},
}

// selectRules reads the rules q selects. A rule whose row does not read
// fails the read, unless bad is not nil: then the rule is left out and bad
// maps its group to why (the group's rules are not all known, so neither
// are its ports').
func (t *Tx) selectRules(ctx context.Context, bad map[string]string, q string, args ...any) ([]neutron.SecurityGroupRule, error) {
	return selectRows(ctx, t, "security group rules", q, args, func(rr *ruleRow, probs columnProblems) (neutron.SecurityGroupRule, bool, error) {
		r := rr.r
		if len(probs) > 0 {
			if bad == nil || r.SecurityGroupID == "" {
				return r, false, fmt.Errorf("read security group rule %s: %s", r.ID, probs)
			}
			if _, seen := bad[r.SecurityGroupID]; !seen {
				bad[r.SecurityGroupID] = "rule " + r.ID + ": " + probs.String()
			}
			return r, false, nil
		}
		r.Protocol = nullStr(rr.proto)
		r.RemoteIPPrefix = nullStr(rr.prefix)
		r.RemoteGroupID = nullStr(rr.remoteGroup)
		r.RemoteAddressGroupID = nullStr(rr.remoteAG)
		r.Description = nullStr(rr.desc)
		r.PortRangeMin, r.PortRangeMax = nullInt(rr.pmin), nullInt(rr.pmax)
		r.CreatedAt, r.UpdatedAt = parseTime(rr.created), parseTime(rr.updated)
		r.Tags = []string{}
		return r, true, nil
	})
}

// ruleRow is what ruleSelect scans into.
type ruleRow struct {
	r                                          neutron.SecurityGroupRule
	proto, prefix, remoteGroup, remoteAG, desc sql.NullString
	pmin, pmax                                 sql.NullInt64
	created, updated                           string
}

func (rr *ruleRow) columns() scanColumns {
	r := &rr.r
	return scanColumns{
		{"id", &r.ID}, {"project_id", &r.ProjectID}, {"security_group_id", &r.SecurityGroupID},
		{"direction", &r.Direction}, {"ethertype", &r.Ethertype}, {"protocol", &rr.proto},
		{"port_range_min", &rr.pmin}, {"port_range_max", &rr.pmax}, {"remote_ip_prefix", &rr.prefix},
		{"remote_group_id", &rr.remoteGroup}, {"remote_address_group_id", &rr.remoteAG},
		{"standard_attr_id", &r.StandardAttrID}, {"description", &rr.desc}, {"revision_number", &r.RevisionNumber},
		{"created_at", &rr.created}, {"updated_at", &rr.updated},
	}
}

// GetRule returns the rule with id, or nil.
func (t *Tx) GetRule(ctx context.Context, id string) (*neutron.SecurityGroupRule, error) {
	rules, err := t.selectRules(ctx, nil, ruleSelect+` WHERE r.id = ?`, id)
	if err != nil || len(rules) == 0 {
		return nil, err
	}
	return &rules[0], nil
}

// ListRules returns the rules q selects. A scoped caller sees the rules it
// owns and the rules in groups it owns (Neutron's admin_or_owner or
// sg_owner policy).
func (t *Tx) ListRules(ctx context.Context, q ListQuery) ([]neutron.SecurityGroupRule, error) {
	scope, scopeArgs := "", []any(nil)
	if q.Scope != nil {
		scope = "(r.project_id = ? OR r.security_group_id IN (SELECT id FROM security_groups WHERE project_id = ?))"
		scopeArgs = []any{q.Scope.ProjectID, q.Scope.ProjectID}
	}
	text, args := ruleList.build(q, scope, scopeArgs)
	all, err := t.selectRules(ctx, nil, text, args...)
	if err != nil {
		return nil, err
	}
	return pageOf(all, func(r *neutron.SecurityGroupRule) string { return r.ID }, q), nil
}

// RuleWithKey returns the id of a rule of the group with one of the
// duplicate keys (neutron.RuleKey), in creation order, or "".
func (t *Tx) RuleWithKey(ctx context.Context, sgID string, keys []string) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	// Concurrent creates into this group wait until this one commits.
	if err := t.lockKey(ctx, groupRulesKey(sgID), false); err != nil {
		return "", err
	}
	args := []any{sgID}
	for _, k := range keys {
		args = append(args, k)
	}
	ids, err := t.stringColumn(ctx, `SELECT r.id FROM security_group_rules r JOIN standard_attrs sa ON sa.id = r.standard_attr_id
		WHERE r.security_group_id = ? AND r.rule_key IN (`+placeholders(len(keys))+`) ORDER BY sa.id LIMIT 1`, args...)
	if err != nil {
		return "", fmt.Errorf("look for duplicate rules: %w", err)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// RulesOfGroup lists a group's rules in creation order.
func (t *Tx) RulesOfGroup(ctx context.Context, sgID string) ([]neutron.SecurityGroupRule, error) {
	return t.selectRules(ctx, nil, ruleSelect+` WHERE r.security_group_id = ? ORDER BY sa.id`, sgID)
}

// CreateRules stores new rules (ids are assigned when empty) and bumps the
// revision of each group they join.
func (t *Tx) CreateRules(ctx context.Context, rules []*neutron.SecurityGroupRule) error {
	groups := map[string]bool{}
	for _, r := range rules {
		// The group's duplicate check and the project's rule count (if
		// a concurrent transaction counts) see this rule or wait for it.
		if err := t.lockKey(ctx, groupRulesKey(r.SecurityGroupID), false); err != nil {
			return err
		}
		if r.ID == "" {
			r.ID = uuid.NewString()
		}
		if t.d.name() == "postgres" {
			if err := t.insertRulePG(ctx, r, len(rules) == 1); err != nil {
				return err
			}
			groups[r.SecurityGroupID] = true
			continue
		}
		if err := t.lockKey(ctx, projectRulesKey(r.ProjectID), true); err != nil {
			return err
		}
		sa, err := t.insertStandardAttrs(ctx, resSecurityGroupRule, r.Description)
		if err != nil {
			return err
		}
		r.StandardAttrs = sa
		if _, err := t.exec(ctx, `INSERT INTO security_group_rules (id, project_id, security_group_id, remote_group_id,
			remote_address_group_id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, rule_key, standard_attr_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.ProjectID, r.SecurityGroupID, r.RemoteGroupID, r.RemoteAddressGroupID, r.Direction, r.Ethertype,
			r.Protocol, r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix, neutron.RuleKey(r), sa.StandardAttrID); err != nil {
			return fmt.Errorf("insert security group rule: %w", err)
		}
		if err := t.logChange(ctx, KindSecurityGroupRule, r.ID, OpCreate, r.ProjectID); err != nil {
			return err
		}
		groups[r.SecurityGroupID] = true
	}
	return t.bumpGroups(ctx, groups)
}

// insertRulePG inserts a rule, its standard attributes and its pending
// change in one statement, one round trip instead of three (SQLite has no
// data-modifying WITH). In a concurrent transaction the same statement
// takes the project's rule-count lock, shared (see concurrent.go: taking
// it in the insert's statement is enough, since what it orders is this
// transaction's commit against a count's); and with bump, when the
// group's standard attributes were read in this transaction, it bumps the
// group's revision too (CreateRules' bumpGroups then skips it).
func (t *Tx) insertRulePG(ctx context.Context, r *neutron.SecurityGroupRule, bump bool) error {
	now := fmtTime(t.now)
	q := `WITH sa AS (INSERT INTO standard_attrs (resource_type, description, revision_number, created_at, updated_at)
			VALUES (?, ?, 0, ?, ?) RETURNING id),
		rule AS (INSERT INTO security_group_rules (id, project_id, security_group_id, remote_group_id,
			remote_address_group_id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, rule_key, standard_attr_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT id FROM sa)) RETURNING standard_attr_id),
		logged AS (INSERT INTO pending_changes (kind, object_id, op, project_id, created_at) VALUES (?, ?, ?, ?, ?))`
	args := []any{resSecurityGroupRule, r.Description, now, now,
		r.ID, r.ProjectID, r.SecurityGroupID, r.RemoteGroupID, r.RemoteAddressGroupID, r.Direction, r.Ethertype,
		r.Protocol, r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix, neutron.RuleKey(r),
		KindSecurityGroupRule, r.ID, OpCreate, r.ProjectID, now}
	groupSA, known := t.groupAttrs[r.SecurityGroupID]
	bump = bump && known && !t.bumped[groupSA]
	if bump {
		q += `,
		bumped AS (UPDATE standard_attrs SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?)`
		args = append(args, now, groupSA)
	}
	lock := t.concurrent && !t.locked["s:"+projectRulesKey(r.ProjectID)] && !t.locked["x:"+projectRulesKey(r.ProjectID)]
	if lock {
		q += `,
		locked AS (SELECT pg_advisory_xact_lock_shared(?, hashtext(?)) AS l)
		SELECT standard_attr_id FROM rule, locked`
		args = append(args, int32(writeLockKey), projectRulesKey(r.ProjectID))
	} else {
		q += `
		SELECT standard_attr_id FROM rule`
	}
	var id int64
	if err := t.queryRow(ctx, q, args...).Scan(&id); err != nil {
		return fmt.Errorf("insert security group rule: %w", err)
	}
	r.StandardAttrs = neutron.StandardAttrs{StandardAttrID: id, CreatedAt: t.now, UpdatedAt: t.now, Tags: []string{}}
	t.logged = true
	if lock {
		if t.locked == nil {
			t.locked = map[string]bool{}
		}
		t.locked["s:"+projectRulesKey(r.ProjectID)] = true
	}
	if bump {
		if t.bumped == nil {
			t.bumped = map[int64]bool{}
		}
		t.bumped[groupSA] = true
	}
	return nil
}

func (t *Tx) bumpGroups(ctx context.Context, groups map[string]bool) error {
	for _, id := range sortedKeys(groups) {
		sa, ok := t.groupAttrs[id]
		if !ok {
			if err := t.queryRow(ctx, `SELECT standard_attr_id FROM security_groups WHERE id = ?`, id).Scan(&sa); err != nil {
				return fmt.Errorf("bump revision of security group %s: %w", id, err)
			}
		}
		if err := t.bumpRevision(ctx, sa); err != nil {
			return err
		}
	}
	return nil
}

// UpdateRuleDescription saves a rule's description; the rule and its group
// get new revisions.
func (t *Tx) UpdateRuleDescription(ctx context.Context, r *neutron.SecurityGroupRule) error {
	// A rule's description may be NULL: not updateDescription's string.
	if _, err := t.exec(ctx, `UPDATE standard_attrs SET description = ? WHERE id = ?`, r.Description, r.StandardAttrID); err != nil {
		return fmt.Errorf("update security group rule %s: %w", r.ID, err)
	}
	if err := t.bumpRevision(ctx, r.StandardAttrID); err != nil {
		return err
	}
	if err := t.bumpGroups(ctx, map[string]bool{r.SecurityGroupID: true}); err != nil {
		return err
	}
	if err := t.logChange(ctx, KindSecurityGroupRule, r.ID, OpUpdate, r.ProjectID); err != nil {
		return err
	}
	return t.refreshAttrs(ctx, &r.StandardAttrs)
}

// DeleteRule removes a rule and bumps its group's revision.
func (t *Tx) DeleteRule(ctx context.Context, r *neutron.SecurityGroupRule) error {
	return t.deleteRule(ctx, r, true)
}

func (t *Tx) deleteRule(ctx context.Context, r *neutron.SecurityGroupRule, bumpGroup bool) error {
	if _, err := t.exec(ctx, `DELETE FROM security_group_rules WHERE id = ?`, r.ID); err != nil {
		return fmt.Errorf("delete security group rule %s: %w", r.ID, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM standard_attrs WHERE id = ?`, r.StandardAttrID); err != nil {
		return fmt.Errorf("delete security group rule %s: %w", r.ID, err)
	}
	if bumpGroup {
		if err := t.bumpGroups(ctx, map[string]bool{r.SecurityGroupID: true}); err != nil {
			return err
		}
	}
	return t.logChange(ctx, KindSecurityGroupRule, r.ID, OpDelete, r.ProjectID)
}

// CountRules counts the rules a project owns, as Neutron's quota does.
func (t *Tx) CountRules(ctx context.Context, projectID string) (int, error) {
	// The count holds until commit: concurrent creates of the project's
	// rules wait for this transaction, or it for them.
	if err := t.lockKey(ctx, projectRulesKey(projectID), false); err != nil {
		return 0, err
	}
	return t.count(ctx, `SELECT COUNT(*) FROM security_group_rules WHERE project_id = ?`, projectID)
}

func nullStr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	v := s.String
	return &v
}

func nullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// anySlice converts query arguments.
func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// inOrder returns the items of found in the order of ids, leaving out ids
// no item has.
func inOrder[T any](found []T, id func(*T) string, ids []string) []T {
	byID := make(map[string]int, len(found))
	for i := range found {
		byID[id(&found[i])] = i
	}
	out := make([]T, 0, len(found))
	for _, x := range ids {
		if i, ok := byID[x]; ok {
			out = append(out, found[i])
		}
	}
	return out
}

func chunks(vals []any, size int) [][]any {
	var out [][]any
	for len(vals) > size {
		out = append(out, vals[:size])
		vals = vals[size:]
	}
	if len(vals) > 0 {
		out = append(out, vals)
	}
	return out
}

// SecurityGroupInUse reports whether ports use the group.
func (t *Tx) SecurityGroupInUse(ctx context.Context, id string) (bool, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM port_security_group_bindings WHERE security_group_id = ?`, id)
	return n > 0, err
}
