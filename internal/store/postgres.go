package store

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

type postgresDialect struct{}

func (postgresDialect) name() string           { return "postgres" }
func (postgresDialect) rebind(q string) string { return rebindDollar(q) }
func (postgresDialect) autoIncrement() string  { return "BIGSERIAL PRIMARY KEY" }

// writeLockKey is the advisory lock every write transaction takes, so that
// change log revisions (a sequence) become visible in the order they were
// assigned: a follower reading "revision > N" can never miss a row that
// commits later with a smaller number.
const writeLockKey = 0x6d6f6174 // "moat"

func (postgresDialect) lockWrites(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", writeLockKey); err != nil {
		return fmt.Errorf("take write lock: %w", err)
	}
	return nil
}

func openPostgres(rawURL string) (*Store, error) {
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	return &Store{d: postgresDialect{}, writer: db, reader: db}, nil
}
