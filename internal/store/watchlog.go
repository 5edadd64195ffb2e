package store

import (
	"context"
	"fmt"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
)

// Reads and upkeep of the change log for the watch server
// (internal/watch): it routes each change to the hosts it concerns, and
// compacts the log to a retention.

// PortHosts maps each of ids that exists to the host it is bound to ("" if
// unbound).
func (t *Tx) PortHosts(ctx context.Context, ids []string) (map[string]string, error) {
	return t.pairs(ctx, `SELECT id, host_id FROM ports WHERE id IN `, ids)
}

// RuleGroups maps each of the rule ids that exists to its security group.
func (t *Tx) RuleGroups(ctx context.Context, ids []string) (map[string]string, error) {
	return t.pairs(ctx, `SELECT id, security_group_id FROM security_group_rules WHERE id IN `, ids)
}

func (t *Tx) pairs(ctx context.Context, q string, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for _, chunk := range chunks(anySlice(ids), 400) {
		rows, err := t.query(ctx, q+"("+placeholders(len(chunk))+")", chunk...)
		if err != nil {
			return nil, fmt.Errorf("look up %d ids: %w", len(chunk), err)
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up ids: %w", err)
			}
			out[k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look up ids: %w", err)
		}
	}
	return out, nil
}

// OldestRevision is the revision of the oldest change the log still holds,
// 0 if it is empty: a follower that has applied revision N can resume from
// the log only if N+1 >= OldestRevision.
func (t *Tx) OldestRevision(ctx context.Context) (int64, error) {
	var rev int64
	if err := t.queryRow(ctx, `SELECT COALESCE(MIN(revision), 0) FROM changes`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read oldest revision: %w", err)
	}
	return rev, nil
}

// CompactChanges deletes the changes recorded before before, except the
// newest change (so that the latest revision stays known), and returns how
// many it deleted. Followers older than what remains must start over from
// a snapshot.
func (t *Tx) CompactChanges(ctx context.Context, before time.Time) (int64, error) {
	if !t.write {
		return 0, fmt.Errorf("compact the change log: not a write transaction")
	}
	res, err := t.exec(ctx, `DELETE FROM changes WHERE created_at < ? AND revision < (SELECT MAX(revision) FROM changes)`, fmtTime(before))
	if err != nil {
		return 0, fmt.Errorf("compact the change log: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("compact the change log: %w", err)
	}
	return n, nil
}

// RecordAgentStatus records what a host agent reports about a port through
// the watch API (ACTIVE, or ERROR and why), bumping the port's revision as
// ReportPortStatus does, but without an entry in the change log: a status
// is not something any agent compiles from, so a report must wake no
// watcher, not even to find out that it concerns nobody.
func (t *Tx) RecordAgentStatus(ctx context.Context, p *neutron.Port, status, reason string) error {
	if p.Status == status && p.StatusReason == reason {
		return nil
	}
	if _, err := t.exec(ctx, `UPDATE ports SET status = ?, status_reason = ? WHERE id = ?`, status, reason, p.ID); err != nil {
		return fmt.Errorf("set status of port %s: %w", p.ID, err)
	}
	p.Status, p.StatusReason = status, reason
	return t.bumpRevision(ctx, p.StandardAttrID)
}
