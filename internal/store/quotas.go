package store

import (
	"context"
	"fmt"
)

// QuotaOverrides returns the limits set for a project, by resource.
func (t *Tx) QuotaOverrides(ctx context.Context, projectID string) (map[string]int64, error) {
	rows, err := t.query(ctx, `SELECT resource, hard_limit FROM quotas WHERE project_id = ?`, projectID)
	if err != nil {
		return nil, fmt.Errorf("read quotas of %s: %w", projectID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var res string
		var limit int64
		if err := rows.Scan(&res, &limit); err != nil {
			return nil, fmt.Errorf("read quotas of %s: %w", projectID, err)
		}
		out[res] = limit
	}
	return out, rows.Err()
}

// QuotaProjects lists the projects that have limits set, sorted.
func (t *Tx) QuotaProjects(ctx context.Context) ([]string, error) {
	out, err := t.stringColumn(ctx, `SELECT DISTINCT project_id FROM quotas ORDER BY project_id`)
	if err != nil {
		return nil, fmt.Errorf("list quota projects: %w", err)
	}
	return out, nil
}

// SetQuota sets a project's limit for one resource.
func (t *Tx) SetQuota(ctx context.Context, projectID, resource string, limit int64) error {
	if _, err := t.exec(ctx, `DELETE FROM quotas WHERE project_id = ? AND resource = ?`, projectID, resource); err != nil {
		return fmt.Errorf("set quota: %w", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)`, projectID, resource, limit); err != nil {
		return fmt.Errorf("set quota: %w", err)
	}
	return t.logChange(ctx, KindQuota, projectID, OpUpdate, projectID)
}

// DeleteQuotas resets a project to the default limits. It reports whether
// the project had any limits set.
func (t *Tx) DeleteQuotas(ctx context.Context, projectID string) (bool, error) {
	res, err := t.exec(ctx, `DELETE FROM quotas WHERE project_id = ?`, projectID)
	if err != nil {
		return false, fmt.Errorf("delete quotas of %s: %w", projectID, err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return false, nil
	}
	return true, t.logChange(ctx, KindQuota, projectID, OpDelete, projectID)
}
