package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// A WriteConcurrent transaction (PostgreSQL) holds the write lock shared:
// it runs beside other concurrent ones and never beside a Write, which
// holds it exclusive. What keeps Neutron's checks true without the one
// writer:
//
//   - it may change only what concurrentWrites lists: insert rules, their
//     standard attributes and pending changes, and bump revision numbers.
//     Everything else it reads (groups, their projects, RBAC policies,
//     quota limits) only a Write changes, so it cannot change under it;
//   - what concurrent transactions do change, and a decision reads, is
//     guarded by a keyed lock taken before the read and held to commit:
//     a group's rules for the duplicate check (RuleWithKey, and CreateRules
//     for the group it inserts into), a project's rule count for the quota
//     (CountRules exclusive; CreateRules shared, so inserters never wait for
//     each other but a count waits for them and they for it);
//   - a revision bump is one UPDATE ... SET revision_number =
//     revision_number + 1 under the row's lock;
//   - change log revisions come from the sequencer (sequencer.go).
var concurrentWrites = []string{
	"INSERT INTO standard_attrs ",
	"INSERT INTO security_group_rules ",
	"INSERT INTO pending_changes ",
	"WITH sa AS (INSERT INTO standard_attrs ", // insertRulePG: a rule, its attributes, its pending change
	"UPDATE standard_attrs SET revision_number = revision_number + 1,",
}

// allowed records (and returns) an error for a statement a concurrent
// transaction may not run; reads are always allowed.
func (t *Tx) allowed(q string) error {
	if !t.concurrent {
		return nil
	}
	s := strings.TrimSpace(q)
	verb, _, _ := strings.Cut(s, " ")
	switch strings.ToUpper(verb) {
	case "SELECT":
		return nil
	case "WITH": // a read unless a CTE modifies data
		u := strings.ToUpper(s)
		if !strings.Contains(u, "INSERT") && !strings.Contains(u, "UPDATE") && !strings.Contains(u, "DELETE") {
			return nil
		}
	}
	for _, p := range concurrentWrites {
		if strings.HasPrefix(s, p) {
			return nil
		}
	}
	err := fmt.Errorf("store: %q is not allowed in a concurrent write transaction (use Store.Write)", firstLine(s))
	if t.forbidden == nil {
		t.forbidden = err
	}
	return err
}

// Lock keys of concurrent transactions.
func groupRulesKey(sgID string) string      { return "group-rules:" + sgID }
func projectRulesKey(project string) string { return "project-rules:" + project }

// lockKey takes a keyed advisory lock to the end of a concurrent
// transaction (exclusive, or shared), once; in any other transaction it
// does nothing (a Write holds the whole database). Keys hash to 32 bits
// under moat's class id: a collision only makes two transactions wait for
// each other.
func (t *Tx) lockKey(ctx context.Context, key string, shared bool) error {
	if !t.concurrent {
		return nil
	}
	mode := "x:"
	if shared {
		mode = "s:"
	}
	if t.locked[mode+key] || (shared && t.locked["x:"+key]) {
		return nil
	}
	fn := "pg_advisory_xact_lock"
	if shared {
		fn = "pg_advisory_xact_lock_shared"
	}
	if _, err := t.tx.ExecContext(ctx, `SELECT `+fn+`($1, hashtext($2))`, int32(writeLockKey), key); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.locked[mode+key] = true
	return nil
}

// isDeadlock: PostgreSQL aborted the transaction to break a deadlock.
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}
