package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
)

// A rule create on PostgreSQL is otherwise eight round trips (BEGIN, the
// write lock, quotas, the group, the group's lock, the duplicate check,
// the insert, COMMIT), and round trips, not the work in them, were most
// of a create's CPU in moat and in PostgreSQL. moat_create_rule does the
// common case in one statement run as its own transaction: the same
// locks in the same order as the general path (WriteConcurrent,
// concurrent.go), the same reads, each statement of the function seeing
// what committed before it took its lock (READ COMMITTED takes a
// snapshot per statement), and the same writes. It decides only the
// create that succeeds: anything else — an over-quota project, a missing
// or foreign group or remote group, a duplicate — returns NULL having
// written nothing, and the caller runs the general path, which answers
// with Neutron's exact error (and decides again, under its own locks).
const createRuleFunction = `CREATE FUNCTION moat_create_rule(
	p_write_lock BIGINT, p_lock_class INTEGER, p_project_key TEXT, p_group_key TEXT,
	p_quota_resource TEXT, p_default_limit BIGINT, p_admin BOOLEAN,
	p_id TEXT, p_project TEXT, p_sg TEXT, p_remote_group TEXT, p_direction TEXT, p_ethertype TEXT,
	p_protocol TEXT, p_port_min INTEGER, p_port_max INTEGER, p_prefix TEXT, p_key TEXT,
	p_resource_type TEXT, p_description TEXT, p_now TEXT, p_kind TEXT, p_op TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
	v_limit BIGINT;
	v_used BIGINT;
	v_project TEXT;
	v_group_sa BIGINT;
	v_sa BIGINT;
BEGIN
	PERFORM pg_advisory_xact_lock_shared(p_write_lock);
	SELECT hard_limit INTO v_limit FROM quotas WHERE project_id = p_project AND resource = p_quota_resource;
	IF NOT FOUND THEN
		v_limit := p_default_limit;
	END IF;
	IF v_limit >= 0 THEN
		PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(p_project_key));
		SELECT COUNT(*) INTO v_used FROM security_group_rules WHERE project_id = p_project;
		IF v_used + 1 > v_limit THEN
			RETURN NULL;
		END IF;
	END IF;
	IF p_remote_group IS NOT NULL THEN
		SELECT project_id INTO v_project FROM security_groups WHERE id = p_remote_group;
		IF NOT FOUND OR (NOT p_admin AND v_project <> p_project) THEN
			RETURN NULL;
		END IF;
	END IF;
	SELECT project_id, standard_attr_id INTO v_project, v_group_sa FROM security_groups WHERE id = p_sg;
	IF NOT FOUND OR (NOT p_admin AND v_project <> p_project) THEN
		RETURN NULL;
	END IF;
	PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(p_group_key));
	PERFORM 1 FROM security_group_rules WHERE security_group_id = p_sg AND rule_key = p_key LIMIT 1;
	IF FOUND THEN
		RETURN NULL;
	END IF;
	INSERT INTO standard_attrs (resource_type, description, revision_number, created_at, updated_at)
		VALUES (p_resource_type, p_description, 0, p_now, p_now) RETURNING id INTO v_sa;
	INSERT INTO security_group_rules (id, project_id, security_group_id, remote_group_id,
		remote_address_group_id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, rule_key, standard_attr_id)
		VALUES (p_id, p_project, p_sg, p_remote_group, NULL, p_direction, p_ethertype,
		p_protocol, p_port_min, p_port_max, p_prefix, p_key, v_sa);
	INSERT INTO pending_changes (kind, object_id, op, project_id, created_at) VALUES (p_kind, p_id, p_op, p_project, p_now);
	UPDATE standard_attrs SET revision_number = revision_number + 1, updated_at = p_now WHERE id = v_group_sa;
	IF v_limit < 0 THEN
		PERFORM pg_advisory_xact_lock_shared(p_lock_class, hashtext(p_project_key));
	END IF;
	RETURN v_sa;
END
$$`

// RuleCreate is what CreateRuleAtOnce needs to know of the request
// beyond the rule.
type RuleCreate struct {
	// Admin: the caller may put rules into (and point them at) any
	// project's groups.
	Admin bool
	// Quota names the rules' quota resource (its rows in quotas).
	Quota string
	// DefaultLimit is the project's rule quota when it has no override of
	// its own; negative is unlimited.
	DefaultLimit int64
}

// CreateRuleAtOnce creates one rule (normalised, checked as far as it
// can be without the database) in one statement when it can: on
// PostgreSQL, when the rule's project is under its quota, its group and
// remote group (if any) exist and belong to the rule's project (or the
// caller is an admin), it has no remote address group, and the group has
// no duplicate of it. Then it assigns r's id (when empty) and standard
// attributes, records the change and returns true. Otherwise it returns
// false having written nothing: the caller creates the rule through
// WriteConcurrent, whose checks answer with the precise error. On SQLite
// it always returns false.
func (s *Store) CreateRuleAtOnce(ctx context.Context, r *neutron.SecurityGroupRule, c RuleCreate) (bool, error) {
	if s.pg == nil || r.RemoteAddressGroupID != nil {
		return false, nil
	}
	if s.writer == nil {
		return false, ErrReadOnly
	}
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	now := s.now()
	at := fmtTime(now)
	var id *int64
	var err error
	for attempt := 1; ; attempt++ {
		err = s.writer.QueryRowContext(ctx, `SELECT moat_create_rule($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
			$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
			int64(writeLockKey), int32(writeLockKey), projectRulesKey(r.ProjectID), groupRulesKey(r.SecurityGroupID),
			c.Quota, c.DefaultLimit, c.Admin,
			r.ID, r.ProjectID, r.SecurityGroupID, r.RemoteGroupID, r.Direction, r.Ethertype,
			r.Protocol, r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix, neutron.RuleKey(r),
			resSecurityGroupRule, r.Description, at, KindSecurityGroupRule, OpCreate).Scan(&id)
		// A deadlock victim (with a concurrent count of the project's
		// rules) is tried again, as WriteConcurrent does.
		if err == nil || attempt == maxConcurrentAttempts || !isDeadlock(err) {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("create security group rule: %w", err)
	}
	if id == nil {
		return false, nil
	}
	r.StandardAttrs = neutron.StandardAttrs{StandardAttrID: *id, CreatedAt: now, UpdatedAt: now, Tags: []string{}}
	s.kickSequencer()
	return true, nil
}
