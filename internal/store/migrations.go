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

// postgresOnly marks a statement only PostgreSQL runs (a function, which
// SQLite has no counterpart for): on SQLite its version applies without
// it.
const postgresOnly = "{{POSTGRES}}"

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
	// PostgreSQL writers commit concurrently, in any order: they append to
	// pending_changes, and one sequencer moves those rows into changes,
	// numbering them from change_sequence in the order it moves them
	// (sequencer.go, docs/database.md). SQLite keeps appending to changes
	// directly (one writer at a time); the tables exist there too so that
	// both databases have one schema.
	{4, "change log revisions in commit order: pending changes and the sequencer's counter", []string{
		`CREATE TABLE pending_changes (
			id {{AUTOINC}},
			kind TEXT NOT NULL,
			object_id TEXT NOT NULL,
			op TEXT NOT NULL,
			project_id TEXT NOT NULL,
			created_at TEXT NOT NULL
		)`,
		`CREATE TABLE change_sequence (
			id INTEGER PRIMARY KEY CHECK (id = 1),
			last_revision BIGINT NOT NULL
		)`,
		`INSERT INTO change_sequence (id, last_revision) SELECT 1, COALESCE(MAX(revision), 0) FROM changes`,
	}},
	{5, "address groups and their addresses", []string{
		`CREATE TABLE address_groups (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			name TEXT NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX address_groups_project ON address_groups(project_id)`,
		`CREATE TABLE address_associations (
			address_group_id TEXT NOT NULL REFERENCES address_groups(id) ON DELETE CASCADE,
			-- a CIDR, host bits cleared (neutron.NormalizeAddresses)
			address TEXT NOT NULL,
			PRIMARY KEY (address_group_id, address)
		)`,
		`CREATE INDEX security_group_rules_remote_address_group ON security_group_rules(remote_address_group_id)`,
	}},
	// Network logs (the logging extension).
	{6, "network logs (the logging extension)", []string{
		`CREATE TABLE logs (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL,
			name TEXT NOT NULL,
			resource_type TEXT NOT NULL,
			resource_id TEXT,
			target_id TEXT,
			event TEXT NOT NULL,
			enabled INTEGER NOT NULL,
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX logs_resource ON logs(resource_id)`,
		`CREATE INDEX logs_target ON logs(target_id)`,
	}},
	// A rule create and a change-log batch in one statement each
	// (PostgreSQL): rulecreate.go, sequencer.go.
	{7, "moat_create_rule and moat_sequence_changes: a rule create and a change-log batch in one statement each (PostgreSQL)",
		[]string{postgresOnly + createRuleFunction, postgresOnly + sequenceFunction}},
}

// SchemaVersion is the version a freshly migrated database has.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// SchemaError is a database whose schema version is not this moat's: a
// database to upgrade (moat db upgrade), or one newer than this binary,
// which moat refuses to run on.
type SchemaError struct {
	Database int // the database's version, 0 for no moat schema at all
	Binary   int // SchemaVersion()
}

func (e *SchemaError) Error() string {
	switch {
	case e.Database == 0:
		return fmt.Sprintf("the database has no moat schema yet (this moat's is version %d): run moat db upgrade to create it", e.Binary)
	case e.Database < e.Binary:
		return fmt.Sprintf("the database schema is at version %d, older than this moat's (%d): run moat db upgrade", e.Database, e.Binary)
	default:
		return fmt.Sprintf("the database schema is at version %d, newer than this moat's (%d): this moat is older than the database and does not run on a schema it does not know; use the moat that upgraded it, or a newer one", e.Database, e.Binary)
	}
}

// checkSchema is nil for a database at this moat's version.
func checkSchema(v int) error {
	if v != SchemaVersion() {
		return &SchemaError{Database: v, Binary: SchemaVersion()}
	}
	return nil
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`

// migrate upgrades the schema to SchemaVersion, one version per
// transaction, and returns the versions it applied. Each transaction is a
// write transaction, which holds the database's write lock (SQLite's
// BEGIN IMMEDIATE, PostgreSQL's advisory lock, see lockWrites) from
// before it reads the current version: servers starting at once on one
// fresh database take turns, and each version is applied exactly once.
func (s *Store) migrate(ctx context.Context) ([]int, error) {
	var applied []int
	for {
		var next *migration
		err := s.Write(ctx, func(tx *Tx) error {
			if _, err := tx.tx.ExecContext(ctx, createSchemaMigrations); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var current int
			if err := tx.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if current > SchemaVersion() {
				return &SchemaError{Database: current, Binary: SchemaVersion()}
			}
			for i := range migrations {
				if migrations[i].version > current {
					next = &migrations[i]
					break
				}
			}
			if next == nil {
				return nil
			}
			for _, stmt := range next.stmts {
				if rest, ok := strings.CutPrefix(stmt, postgresOnly); ok {
					if s.d.name() != "postgres" {
						continue
					}
					stmt = rest
				}
				stmt = strings.ReplaceAll(stmt, "{{AUTOINC}}", s.d.autoIncrement())
				if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate to schema version %d (%s): %s: %w", next.version, next.name, firstLine(stmt), err)
				}
			}
			if _, err := tx.tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				next.version, next.name, fmtTime(tx.now)); err != nil {
				return fmt.Errorf("migrate to schema version %d (%s): %w", next.version, next.name, err)
			}
			return nil
		})
		if err != nil {
			return applied, err
		}
		if next == nil {
			return applied, nil
		}
		applied = append(applied, next.version)
	}
}

// schemaVersion reads the database's schema version without changing
// anything: 0 when it has no schema_migrations table.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	ok, err := s.d.hasTable(ctx, s.reader, "schema_migrations")
	if err != nil || !ok {
		return 0, err
	}
	var v int
	if err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// AppliedMigration is one row of the database's migration history.
type AppliedMigration struct {
	Version   int
	Name      string
	AppliedAt string // as stored: UTC, RFC 3339
}

// Schema is what a database says of its schema, next to this moat's.
type Schema struct {
	Version int // the database's, 0 for none
	Binary  int // this moat's: SchemaVersion()
	// Applied is the database's migration history, by version.
	Applied []AppliedMigration
	// Pending are this moat's migrations the database lacks.
	Pending []AppliedMigration
}

// Check is nil when the database is at this moat's version, else a
// *SchemaError saying what to do.
func (s *Schema) Check() error { return checkSchema(s.Version) }

// Inspect reads the schema of the database at url, opened read-only: it
// neither creates nor migrates it, and works on any version.
func Inspect(ctx context.Context, rawURL string) (*Schema, error) {
	s, err := openConn(rawURL, ReadOnly)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := &Schema{Binary: SchemaVersion(), Applied: []AppliedMigration{}, Pending: []AppliedMigration{}}
	if out.Version, err = s.schemaVersion(ctx); err != nil {
		return nil, err
	}
	if out.Version > 0 {
		rows, err := s.reader.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("read migration history: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var m AppliedMigration
			if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
				return nil, fmt.Errorf("read migration history: %w", err)
			}
			out.Applied = append(out.Applied, m)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read migration history: %w", err)
		}
	}
	for _, m := range migrations {
		if m.version > out.Version {
			out.Pending = append(out.Pending, AppliedMigration{Version: m.version, Name: m.name})
		}
	}
	return out, nil
}

// Upgraded is what Upgrade did.
type Upgraded struct {
	// From and To are the versions before and after this call's
	// migrations, equal when it applied none.
	From, To int
	// Applied are the versions this call applied (none when another moat
	// upgraded the database first).
	Applied []int
}

// Upgrade creates the database at url if it is missing and migrates its
// schema to this moat's (moat db upgrade). A database newer than this
// moat is refused with a *SchemaError and left alone.
func Upgrade(ctx context.Context, rawURL string) (*Upgraded, error) {
	s, applied, err := openMigrated(ctx, rawURL)
	up := &Upgraded{Applied: applied}
	if len(applied) > 0 {
		up.From, up.To = applied[0]-1, applied[len(applied)-1]
	}
	if err != nil {
		return up, err
	}
	defer s.Close()
	if len(applied) == 0 {
		v, err := s.schemaVersion(ctx)
		if err != nil {
			return nil, err
		}
		up.From, up.To = v, v
	}
	return up, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
