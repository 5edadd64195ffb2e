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
			standard_attr_id BIGINT NOT NULL UNIQUE REFERENCES standard_attrs(id)
		)`,
		`CREATE INDEX security_group_rules_group ON security_group_rules(security_group_id)`,
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
