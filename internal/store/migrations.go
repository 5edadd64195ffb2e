package store

import (
	"context"
	"fmt"
	"strings"
)

// migration is one schema version. Statements use {{AUTOINC}} where the
// dialects differ; everything else is portable SQL (TEXT ids and
// timestamps, INTEGER booleans).
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations are applied in order, each in its own transaction, and never
// edited once released: a change is a new version.
var migrations = []migration{
	{1, "security groups, rules, tags, quotas, change log", []string{
		`CREATE TABLE standard_attrs (
			id {{AUTOINC}},
			resource_type TEXT NOT NULL,
			description TEXT,
			revision_number BIGINT NOT NULL DEFAULT 0,
			created_at TEXT NOT NULL,
			updated_at TEXT NOT NULL
		)`,
		`CREATE TABLE security_groups (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			name TEXT NOT NULL,
			stateful INTEGER NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX security_groups_project ON security_groups(project_id)`,
		`CREATE TABLE default_security_groups (
			project_id TEXT PRIMARY KEY,
			security_group_id TEXT NOT NULL UNIQUE REFERENCES security_groups(id) ON DELETE CASCADE
		)`,
		`CREATE TABLE security_group_rules (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			security_group_id TEXT NOT NULL REFERENCES security_groups(id),
			remote_group_id TEXT REFERENCES security_groups(id),
			remote_address_group_id TEXT,
			direction TEXT NOT NULL,
			ethertype TEXT NOT NULL,
			protocol TEXT,
			port_range_min INTEGER,
			port_range_max INTEGER,
			remote_ip_prefix TEXT,
			-- neutron.RuleKey: what makes two rules duplicates
			rule_key TEXT NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX security_group_rules_group ON security_group_rules(security_group_id, rule_key)`,
		`CREATE INDEX security_group_rules_remote_group ON security_group_rules(remote_group_id)`,
		`CREATE INDEX security_group_rules_project ON security_group_rules(project_id)`,
		`CREATE TABLE tags (
			standard_attr_id BIGINT NOT NULL REFERENCES standard_attrs(id) ON DELETE CASCADE,
			tag TEXT NOT NULL,
			PRIMARY KEY (standard_attr_id, tag)
		)`,
		`CREATE TABLE quotas (
			project_id TEXT NOT NULL,
			resource TEXT NOT NULL,
			hard_limit BIGINT NOT NULL,
			PRIMARY KEY (project_id, resource)
		)`,
		`CREATE TABLE changes (
			revision {{AUTOINC}},
			kind TEXT NOT NULL,
			object_id TEXT NOT NULL,
			op TEXT NOT NULL,
			project_id TEXT NOT NULL,
			created_at TEXT NOT NULL
		)`,
	}},
	{2, "networks, subnets, ports, port bindings, RBAC", []string{
		`CREATE TABLE networks (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			name TEXT NOT NULL,
			admin_state_up INTEGER NOT NULL,
			status TEXT NOT NULL,
			shared INTEGER NOT NULL,
			mtu INTEGER NOT NULL,
			port_security_enabled INTEGER NOT NULL,
			network_type TEXT NOT NULL,
			physical_network TEXT,
			segmentation_id INTEGER,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX networks_project ON networks(project_id)`,
		// One network per segment; NULLs (vxlan and local have no
		// physnet, flat and local no id) are spelled '' and 0 here so the
		// unique constraint holds on both databases.
		`CREATE TABLE network_segments (
			network_type TEXT NOT NULL,
			physical_network TEXT NOT NULL,
			segmentation_id INTEGER NOT NULL,
			network_id TEXT NOT NULL,
			PRIMARY KEY (network_type, physical_network, segmentation_id)
		)`,
		`CREATE TABLE subnets (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			network_id TEXT NOT NULL REFERENCES networks(id),
			name TEXT NOT NULL,
			ip_version INTEGER NOT NULL,
			cidr TEXT NOT NULL,
			gateway_ip TEXT,
			enable_dhcp INTEGER NOT NULL,
			ipv6_ra_mode TEXT,
			ipv6_address_mode TEXT,
			allocation_pools TEXT NOT NULL,
			dns_nameservers TEXT NOT NULL,
			host_routes TEXT NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX subnets_network ON subnets(network_id)`,
		`CREATE TABLE ports (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			network_id TEXT NOT NULL REFERENCES networks(id),
			name TEXT NOT NULL,
			mac_address TEXT NOT NULL,
			admin_state_up INTEGER NOT NULL,
			status TEXT NOT NULL,
			device_id TEXT NOT NULL,
			device_owner TEXT NOT NULL,
			port_security_enabled INTEGER NOT NULL,
			host_id TEXT NOT NULL,
			vnic_type TEXT NOT NULL,
			profile TEXT NOT NULL,
			vif_type TEXT NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id),
			UNIQUE (network_id, mac_address)
		)`,
		`CREATE INDEX ports_project ON ports(project_id)`,
		`CREATE INDEX ports_host ON ports(host_id)`,
		`CREATE TABLE ip_allocations (
			port_id TEXT NOT NULL REFERENCES ports(id),
			subnet_id TEXT NOT NULL REFERENCES subnets(id),
			network_id TEXT NOT NULL,
			ip_address TEXT NOT NULL,
			position INTEGER NOT NULL,
			PRIMARY KEY (subnet_id, ip_address)
		)`,
		`CREATE INDEX ip_allocations_port ON ip_allocations(port_id)`,
		`CREATE TABLE port_address_pairs (
			port_id TEXT NOT NULL REFERENCES ports(id),
			position INTEGER NOT NULL,
			ip_address TEXT NOT NULL,
			mac_address TEXT NOT NULL,
			PRIMARY KEY (port_id, position)
		)`,
		`CREATE TABLE port_security_group_bindings (
			port_id TEXT NOT NULL REFERENCES ports(id),
			security_group_id TEXT NOT NULL REFERENCES security_groups(id),
			PRIMARY KEY (port_id, security_group_id)
		)`,
		`CREATE INDEX port_sg_bindings_group ON port_security_group_bindings(security_group_id)`,
		`CREATE TABLE rbac_policies (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			object_type TEXT NOT NULL,
			object_id TEXT NOT NULL,
			action TEXT NOT NULL,
			target_tenant TEXT NOT NULL,
			UNIQUE (object_type, object_id, action, target_tenant)
		)`,
		`CREATE INDEX rbac_policies_object ON rbac_policies(object_id)`,
	}},
	{3, "why a host agent reported a port ERROR", []string{
		`ALTER TABLE ports ADD COLUMN status_reason TEXT NOT NULL DEFAULT ''`,
	}},
}

// SchemaVersion is the version a freshly migrated database has.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current := 0
	if err := s.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > SchemaVersion() {
		return fmt.Errorf("database schema version %d is newer than this moat (%d): upgrade moat", current, SchemaVersion())
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		err := s.Write(ctx, func(tx *Tx) error {
			for _, stmt := range m.stmts {
				stmt = strings.ReplaceAll(stmt, "{{AUTOINC}}", s.d.autoIncrement())
				if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", firstLine(stmt), err)
				}
			}
			_, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, fmtTime(tx.now))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema version %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
