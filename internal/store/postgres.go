package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

type postgresDialect struct{}

func (postgresDialect) name() string           { return "postgres" }
func (postgresDialect) rebind(q string) string { return rebindDollar(q) }
func (postgresDialect) autoIncrement() string  { return "BIGSERIAL PRIMARY KEY" }

// writeLockKey is the advisory lock every write transaction takes:
// exclusive for Store.Write, which therefore runs alone and may check and
// write as if nobody else were writing (duplicates, quotas, If-Match
// revisions, IP and MAC allocation), and shared for Store.WriteConcurrent
// (concurrent.go). Change log revisions do not depend on it: the
// sequencer numbers them (sequencer.go).
const writeLockKey = 0x6d6f6174 // "moat"

func (postgresDialect) lockWrites(ctx context.Context, tx *sql.Tx, concurrent bool) error {
	fn := "pg_advisory_xact_lock"
	if concurrent {
		fn = "pg_advisory_xact_lock_shared"
	}
	if _, err := tx.ExecContext(ctx, "SELECT "+fn+"($1)", writeLockKey); err != nil {
		return fmt.Errorf("take write lock: %w", err)
	}
	return nil
}

func (postgresDialect) hasTable(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var ok bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return ok, nil
}

// maxPGConns is the size of a store's PostgreSQL pool.
const maxPGConns = 16

func openPostgres(rawURL string, mode Mode) (*Store, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if mode == ReadOnly {
		// Every transaction of every connection is read-only unless it
		// says otherwise, which moat's never do.
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	// Keep every connection the pool opens: database/sql keeps only 2
	// idle by default and closes the rest, so concurrent writers made
	// PostgreSQL fork a backend (and moat re-prepare its statements) for
	// most transactions.
	db.SetMaxOpenConns(maxPGConns)
	db.SetMaxIdleConns(maxPGConns)
	s := &Store{d: postgresDialect{}, writer: db, reader: db, pg: newPGBackground(cfg)}
	if mode == ReadOnly {
		s.writer = nil
	}
	return s, nil
}
