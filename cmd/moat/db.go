package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/store"
)

// `moat db`: the database's schema, as neutron-db-manage manages Neutron's.

func init() {
	rootCmd.AddCommand(newDBCmd())
}

func newDBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Create and upgrade moat's database schema, or show its version (as neutron-db-manage)",
		Long: `moat db upgrade creates the database if it is missing and upgrades its schema to this
moat's version; moat db version shows the database's version next to this moat's.

moat server and moat allinone upgrade a SQLite database themselves at start; on PostgreSQL,
where several servers share one database, they leave it to moat db upgrade, run once per
upgrade before the servers start (see --migrate). Migrations take the database's write lock,
so two upgrades at once are safe: each version is applied exactly once.`,
	}
	cmd.AddCommand(newDBUpgradeCmd(), newDBVersionCmd())
	return cmd
}

func newDBUpgradeCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Create the database if needed and upgrade its schema to this moat's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			up, err := store.Upgrade(cmd.Context(), db)
			if err != nil {
				return fmt.Errorf("upgrade database %s: %w", store.Redact(db), err)
			}
			out := cmd.OutOrStdout()
			if len(up.Applied) == 0 {
				fmt.Fprintf(out, "%s: schema version %d, already this moat's\n", store.Redact(db), up.To)
				return nil
			}
			fmt.Fprintf(out, "%s: schema upgraded from version %d to %d (applied %s)\n",
				store.Redact(db), up.From, up.To, joinInts(up.Applied))
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", store.DefaultURL, "database: sqlite:///path/file.db or postgres://user:pass@host/db")
	return cmd
}

func newDBVersionCmd() *cobra.Command {
	var db string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the database's schema version and this moat's (read-only)",
		Long: `version opens the database read-only (it never creates or changes it) and prints its
schema version, this moat's, what to do when they differ, and the migration history.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sch, err := store.Inspect(cmd.Context(), db)
			if err != nil {
				return fmt.Errorf("database %s: %w", store.Redact(db), err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(schemaJSON(sch))
			}
			writeSchema(cmd.OutOrStdout(), sch)
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", store.DefaultURL, "database: sqlite:///path/file.db or postgres://user:pass@host/db")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the versions and the history as JSON")
	return cmd
}

// schemaStatus says in a word how the database's version relates to this
// moat's.
func schemaStatus(sch *store.Schema) string {
	switch {
	case sch.Version == sch.Binary:
		return "current"
	case sch.Version > sch.Binary:
		return "newer"
	case sch.Version == 0:
		return "empty"
	}
	return "older"
}

func writeSchema(w io.Writer, sch *store.Schema) {
	fmt.Fprintf(w, "database schema version: %d\n", sch.Version)
	fmt.Fprintf(w, "this moat's version:     %d\n", sch.Binary)
	if err := sch.Check(); err != nil {
		fmt.Fprintf(w, "status:                  %s: %v\n", schemaStatus(sch), err)
	} else {
		fmt.Fprintf(w, "status:                  current\n")
	}
	for _, m := range sch.Applied {
		fmt.Fprintf(w, "applied  %3d  %s  %s\n", m.Version, m.AppliedAt, m.Name)
	}
	for _, m := range sch.Pending {
		fmt.Fprintf(w, "pending  %3d  %-20s  %s\n", m.Version, "", m.Name)
	}
}

type schemaMigrationJSON struct {
	Version   int    `json:"version"`
	Name      string `json:"name"`
	AppliedAt string `json:"applied_at,omitempty"`
}

func schemaJSON(sch *store.Schema) any {
	conv := func(ms []store.AppliedMigration) []schemaMigrationJSON {
		out := []schemaMigrationJSON{}
		for _, m := range ms {
			out = append(out, schemaMigrationJSON{m.Version, m.Name, m.AppliedAt})
		}
		return out
	}
	return struct {
		Database int                   `json:"database_version"`
		Binary   int                   `json:"moat_version"`
		Status   string                `json:"status"`
		Applied  []schemaMigrationJSON `json:"applied"`
		Pending  []schemaMigrationJSON `json:"pending"`
	}{sch.Version, sch.Binary, schemaStatus(sch), conv(sch.Applied), conv(sch.Pending)}
}

func joinInts(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}

// Values of the servers' --migrate flag.
const (
	migrateAuto   = "auto"
	migrateAlways = "always"
	migrateNever  = "never"
)

const migrateUsage = "upgrade the database schema at start: auto (SQLite yes, PostgreSQL no: run moat db upgrade once per upgrade, as neutron-db-manage), always, or never"

// openModeFor is how a server opens its database under --migrate.
func openModeFor(migrate, dbURL string) (store.Mode, error) {
	switch migrate {
	case migrateAlways:
		return store.Migrate, nil
	case migrateNever:
		return store.Existing, nil
	case migrateAuto:
		driver, err := store.Driver(dbURL)
		if err != nil {
			return 0, err
		}
		if driver == "sqlite" {
			return store.Migrate, nil
		}
		return store.Existing, nil
	}
	return 0, fmt.Errorf("--migrate %q: want auto, always or never", migrate)
}

// openServerStore opens a server's database as --migrate says, with a
// hint when the schema is behind.
func openServerStore(ctx context.Context, migrate, dbURL string) (*store.Store, error) {
	mode, err := openModeFor(migrate, dbURL)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenMode(ctx, dbURL, mode)
	if err != nil {
		var se *store.SchemaError
		if errors.As(err, &se) && se.Database < se.Binary {
			err = fmt.Errorf("%w; or start with --migrate=always", err)
		}
		return nil, fmt.Errorf("open database %s: %w", store.Redact(dbURL), err)
	}
	return st, nil
}
