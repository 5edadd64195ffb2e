package store

import (
	"maps"
	"slices"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// ListQuery selects, orders and pages a collection, as Neutron's list
// calls do. Filters are already validated and converted by the API.
type ListQuery struct {
	Filters neutron.Filters
	Sorts   []neutron.Sort
	// Limit 0 means no paging; Marker is the id of the last item the client
	// saw (an unknown marker is ignored, as Neutron ignores it).
	Limit       int
	Marker      string
	PageReverse bool
	// Scope restricts rows to those a project may see; nil sees all.
	Scope *Scope
	// Caller is the project asking, for attributes that depend on it
	// (a security group's shared).
	Caller string
}

// Scope is the visibility of a non-admin caller.
type Scope struct {
	ProjectID string
}

// listSpec describes how a collection maps to SQL.
type listSpec struct {
	// base is "SELECT cols FROM table alias JOIN ..." without WHERE.
	base string
	// cols maps filterable and sortable attributes to SQL expressions.
	// Filters on attributes not listed are accepted and ignored (Neutron
	// ignores normalized_cidr filters the same way).
	cols map[string]string
	// tagAttr is the standard attribute id column for tag filters.
	tagAttr string
}

// where builds the WHERE and ORDER BY clauses for q. scope is a predicate
// (with its args) restricting visibility, or "".
func (s listSpec) build(q ListQuery, scope string, scopeArgs []any) (string, []any) {
	var conds []string
	var args []any
	if scope != "" {
		conds = append(conds, scope)
		args = append(args, scopeArgs...)
	}
	for _, k := range slices.Sorted(maps.Keys(q.Filters)) {
		vals := q.Filters[k]
		switch k {
		case "tags", "tags-any", "not-tags", "not-tags-any":
			if s.tagAttr == "" {
				continue
			}
			tags := splitTags(vals)
			if len(tags) == 0 {
				continue
			}
			c, a := tagCondition(k, s.tagAttr, tags)
			conds = append(conds, c)
			args = append(args, a...)
			continue
		}
		col, ok := s.cols[k]
		if !ok {
			continue
		}
		var in []any
		for _, v := range vals {
			switch x := v.(type) {
			case nil:
				// Neutron's "IN (NULL)" matches nothing.
			case bool:
				in = append(in, boolInt(x))
			default:
				in = append(in, x)
			}
		}
		if len(in) == 0 {
			conds = append(conds, "1 = 0")
			continue
		}
		conds = append(conds, col+" IN ("+placeholders(len(in))+")")
		args = append(args, in...)
	}
	sqlText := s.base
	if len(conds) > 0 {
		sqlText += " WHERE " + strings.Join(conds, " AND ")
	}
	sqlText += " ORDER BY " + s.orderBy(q.Sorts)
	return sqlText, args
}

// orderBy sorts like Neutron on MySQL, NULLs first when ascending, with the
// id as the final tie-breaker so that paging is stable.
func (s listSpec) orderBy(sorts []neutron.Sort) string {
	var parts []string
	hasID := false
	for _, so := range sorts {
		col, ok := s.cols[so.Key]
		if !ok {
			continue
		}
		hasID = hasID || so.Key == "id"
		if so.Asc {
			parts = append(parts, "("+col+" IS NULL) DESC", col+" ASC")
		} else {
			parts = append(parts, "("+col+" IS NULL) ASC", col+" DESC")
		}
	}
	if !hasID {
		dir := "ASC"
		if len(sorts) > 0 && !sorts[len(sorts)-1].Asc {
			dir = "DESC"
		}
		parts = append(parts, s.cols["id"]+" "+dir)
	}
	return strings.Join(parts, ", ")
}

// splitTags flattens tag filter values: "a,b" and repeated parameters.
func splitTags(vals []any) []string {
	var out []string
	for _, v := range vals {
		s, _ := v.(string)
		for _, t := range strings.Split(s, ",") {
			if t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func tagCondition(kind, attrCol string, tags []string) (string, []any) {
	args := make([]any, len(tags))
	for i, t := range tags {
		args[i] = t
	}
	in := "SELECT standard_attr_id FROM tags WHERE tag IN (" + placeholders(len(tags)) + ")"
	switch kind {
	case "tags": // all of them
		sub := "(SELECT COUNT(DISTINCT tag) FROM tags WHERE tags.standard_attr_id = " + attrCol +
			" AND tag IN (" + placeholders(len(tags)) + "))"
		return sub + " = ?", append(args, countDistinct(tags))
	case "tags-any":
		return attrCol + " IN (" + in + ")", args
	case "not-tags": // not all of them
		sub := "(SELECT COUNT(DISTINCT tag) FROM tags WHERE tags.standard_attr_id = " + attrCol +
			" AND tag IN (" + placeholders(len(tags)) + "))"
		return sub + " <> ?", append(args, countDistinct(tags))
	default: // not-tags-any
		return attrCol + " NOT IN (" + in + ")", args
	}
}

func countDistinct(tags []string) int {
	seen := map[string]bool{}
	for _, t := range tags {
		seen[t] = true
	}
	return len(seen)
}

// Page applies marker, limit and page_reverse to ids in list order and
// returns the positions of the page's items.
func Page(ids []string, q ListQuery) []int {
	start, end := 0, len(ids)
	if q.Marker != "" {
		for i, id := range ids {
			if id == q.Marker {
				if q.PageReverse {
					end = i
				} else {
					start = i + 1
				}
				break
			}
		}
	}
	if q.Limit > 0 && end-start > q.Limit {
		if q.PageReverse {
			start = end - q.Limit
		} else {
			end = start + q.Limit
		}
	}
	out := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, i)
	}
	return out
}

// pageOf returns the items of all (in list order) on the page q selects.
func pageOf[T any](all []T, id func(*T) string, q ListQuery) []T {
	ids := make([]string, len(all))
	for i := range all {
		ids[i] = id(&all[i])
	}
	page := Page(ids, q)
	out := make([]T, len(page))
	for i, p := range page {
		out[i] = all[p]
	}
	return out
}
