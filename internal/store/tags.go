package store

import (
	"context"
	"fmt"
	"sort"

	"github.com/moat-sg/moat/internal/neutron"
)

// tagsOf returns the sorted tags of each standard attributes id.
func (t *Tx) tagsOf(ctx context.Context, ids []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	for _, chunk := range chunks(args, 500) {
		rows, err := t.query(ctx, `SELECT standard_attr_id, tag FROM tags WHERE standard_attr_id IN (`+placeholders(len(chunk))+`) ORDER BY standard_attr_id, tag`, chunk...)
		if err != nil {
			return nil, fmt.Errorf("read tags: %w", err)
		}
		for rows.Next() {
			var id int64
			var tag string
			if err := rows.Scan(&id, &tag); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read tags: %w", err)
			}
			out[id] = append(out[id], tag)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read tags: %w", err)
		}
	}
	return out, nil
}

// TagTarget identifies a taggable object for the change log.
type TagTarget struct {
	Kind           string
	ID             string
	ProjectID      string
	StandardAttrID int64
}

// SetTags replaces an object's tags; the object gets a new revision when
// they change.
func (t *Tx) SetTags(ctx context.Context, obj TagTarget, tags []string) error {
	cur, err := t.tagsOf(ctx, []int64{obj.StandardAttrID})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, tag := range tags {
		want[tag] = true
	}
	have := map[string]bool{}
	changed := false
	for _, tag := range cur[obj.StandardAttrID] {
		have[tag] = true
		if !want[tag] {
			changed = true
			if _, err := t.exec(ctx, `DELETE FROM tags WHERE standard_attr_id = ? AND tag = ?`, obj.StandardAttrID, tag); err != nil {
				return fmt.Errorf("delete tag: %w", err)
			}
		}
	}
	add := make([]string, 0, len(want))
	for tag := range want {
		if !have[tag] {
			add = append(add, tag)
		}
	}
	sort.Strings(add)
	for _, tag := range add {
		changed = true
		if _, err := t.exec(ctx, `INSERT INTO tags (standard_attr_id, tag) VALUES (?, ?)`, obj.StandardAttrID, tag); err != nil {
			return fmt.Errorf("add tag: %w", err)
		}
	}
	if !changed {
		return nil
	}
	if err := t.bumpRevision(ctx, obj.StandardAttrID); err != nil {
		return err
	}
	return t.logChange(ctx, obj.Kind, obj.ID, OpUpdate, obj.ProjectID)
}

// Tags returns an object's tags, sorted.
func (t *Tx) Tags(ctx context.Context, standardAttrID int64) ([]string, error) {
	m, err := t.tagsOf(ctx, []int64{standardAttrID})
	if err != nil {
		return nil, err
	}
	if m[standardAttrID] == nil {
		return []string{}, nil
	}
	return m[standardAttrID], nil
}

// fillTags sets the tags of each item, whose standard attributes attrs
// returns: sorted, and [] rather than nil when there are none.
func fillTags[T any](ctx context.Context, t *Tx, items []T, attrs func(*T) *neutron.StandardAttrs) error {
	ids := make([]int64, len(items))
	for i := range items {
		ids[i] = attrs(&items[i]).StandardAttrID
	}
	tags, err := t.tagsOf(ctx, ids)
	if err != nil {
		return err
	}
	for i := range items {
		sa := attrs(&items[i])
		sa.Tags = tags[sa.StandardAttrID]
		if sa.Tags == nil {
			sa.Tags = []string{}
		}
	}
	return nil
}
