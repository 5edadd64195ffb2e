package store

import (
	"context"
	"fmt"
	"time"
)

// Change kinds and operations recorded in the change log.
const (
	KindSecurityGroup     = "security_group"
	KindSecurityGroupRule = "security_group_rule"
	KindQuota             = "quota"

	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Change is one entry of the change log: at Revision, the object of Kind
// with ObjectID was created, updated or deleted. Revisions are 1, 2, 3...
// with no gaps, and become visible in that order: a follower that has
// applied revision N asks for the changes after N and can never miss one
// (on PostgreSQL the sequencer numbers committed changes, sequencer.go).
type Change struct {
	Revision  int64
	Kind      string
	ObjectID  string
	Op        string
	ProjectID string
	At        time.Time
}

// logChange appends to the change log in the current transaction.
func (t *Tx) logChange(ctx context.Context, kind, id, op, projectID string) error {
	if !t.write {
		return fmt.Errorf("log %s %s %s: not a write transaction", op, kind, id)
	}
	// SQLite commits one writer at a time: the autoincrement revision is
	// in commit order. PostgreSQL writers commit in any order: the change
	// waits in pending_changes for the sequencer to number it.
	table := "changes"
	if t.d.name() == "postgres" {
		table = "pending_changes"
	}
	_, err := t.exec(ctx, `INSERT INTO `+table+` (kind, object_id, op, project_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		kind, id, op, projectID, fmtTime(t.now))
	if err != nil {
		return fmt.Errorf("append to change log: %w", err)
	}
	t.logged = true
	return nil
}

// ChangesSince returns up to limit changes with a revision above after, oldest first.
func (t *Tx) ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error) {
	rows, err := t.query(ctx, `SELECT revision, kind, object_id, op, project_id, created_at FROM changes
		WHERE revision > ? ORDER BY revision LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var at string
		if err := rows.Scan(&c.Revision, &c.Kind, &c.ObjectID, &c.Op, &c.ProjectID, &at); err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		c.At = parseTime(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// PendingChanges counts the changes committed but not numbered yet by the
// sequencer (PostgreSQL; always 0 on SQLite, which numbers at commit).
// A reader whose snapshot holds some sees their effects in the rows but
// not in the change log up to LatestRevision.
func (t *Tx) PendingChanges(ctx context.Context) (int64, error) {
	if t.d.name() != "postgres" {
		return 0, nil
	}
	var n int64
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM pending_changes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending changes: %w", err)
	}
	return n, nil
}

// LatestRevision is the revision of the newest change, 0 if there is none.
func (t *Tx) LatestRevision(ctx context.Context) (int64, error) {
	var rev int64
	q := `SELECT COALESCE(MAX(revision), 0) FROM changes`
	if t.d.name() == "postgres" {
		// The sequencer's counter, updated in the same transaction as the
		// changes it numbers.
		q = `SELECT last_revision FROM change_sequence WHERE id = 1`
	}
	if err := t.queryRow(ctx, q).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read latest revision: %w", err)
	}
	return rev, nil
}
