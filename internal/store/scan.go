package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// columnProblems collects the columns of one row whose stored values do
// not read as their type, so that a caller can set that one row aside
// instead of failing a whole read. Its scanners never fail a Scan.
type columnProblems []string

func (p *columnProblems) add(col, problem string) {
	*p = append(*p, col+" "+problem)
}

func (p columnProblems) String() string { return strings.Join(p, "; ") }

// scanColumns are a row's destinations, by column name.
type scanColumns []struct {
	name string
	dst  any // *string, *int64, *sql.NullString or *sql.NullInt64
}

// pointers are the destinations for a plain rows.Scan.
func (cs scanColumns) pointers() []any {
	out := make([]any, len(cs))
	for i := range cs {
		out[i] = cs[i].dst
	}
	return out
}

// lenient are destinations that never fail: what does not read is added
// to probs and leaves the destination as it was.
func (cs scanColumns) lenient(probs *columnProblems) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		switch dst := c.dst.(type) {
		case *string:
			out[i] = probs.str(c.name, dst)
		case *int64:
			out[i] = probs.int(c.name, dst)
		case *sql.NullInt64:
			out[i] = probs.nullInt(c.name, dst)
		default: // nullable text takes anything database/sql reads
			out[i] = dst
		}
	}
	return out
}

// str scans a text column; NULL and values that are not text are problems
// (numbers are taken as their decimal text, as database/sql does).
func (p *columnProblems) str(col string, dst *string) scanFunc {
	return scanFunc(func(v any) {
		switch v := v.(type) {
		case string:
			*dst = v
		case []byte:
			*dst = string(v)
		case int64:
			*dst = strconv.FormatInt(v, 10)
		case nil:
			p.add(col, "is NULL")
		default:
			p.add(col, fmt.Sprintf("holds %T, not text", v))
		}
	})
}

// int scans an integer column (booleans are stored as 0 and 1).
func (p *columnProblems) int(col string, dst *int64) scanFunc {
	return scanFunc(func(v any) {
		switch v := v.(type) {
		case int64:
			*dst = v
		case bool:
			*dst = int64(boolInt(v))
		case string, []byte:
			s := fmt.Sprintf("%s", v)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				p.add(col, fmt.Sprintf("holds %s, not a number", strconv.Quote(shorten(s, 32))))
				return
			}
			*dst = n
		case nil:
			p.add(col, "is NULL")
		default:
			p.add(col, fmt.Sprintf("holds %T, not a number", v))
		}
	})
}

// nullInt scans a nullable integer column.
func (p *columnProblems) nullInt(col string, dst *sql.NullInt64) scanFunc {
	return scanFunc(func(v any) {
		if v == nil {
			*dst = sql.NullInt64{}
			return
		}
		var n int64
		before := len(*p)
		p.int(col, &n)(v)
		if len(*p) == before {
			*dst = sql.NullInt64{Int64: n, Valid: true}
		}
	})
}

// selectRows runs q and scans each row into a fresh R, whose columns say
// where each column goes; each turns the row and what of it did not read
// (scanRow) into an object, kept unless it says otherwise. what names the
// objects in errors ("ports").
func selectRows[R any, T any, P interface {
	*R
	columns() scanColumns
}](ctx context.Context, t *Tx, what, q string, args []any, each func(r *R, probs columnProblems) (T, bool, error)) ([]T, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	var r R
	cols := P(&r).columns()
	ptrs := cols.pointers()
	for rows.Next() {
		var zero R
		r = zero
		probs, err := scanRow(rows, ptrs, cols)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		v, keep, err := each(&r, probs)
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// scanRow scans the current row into ptrs (cols' pointers). When a value
// does not read, it scans the row again with lenient destinations and
// returns what did not read: the destinations then hold what did (they
// must be zeroed before each row). The error is for a row that cannot be
// scanned at all.
func scanRow(rows *sql.Rows, ptrs []any, cols scanColumns) (columnProblems, error) {
	if err := rows.Scan(ptrs...); err == nil {
		return nil, nil
	}
	var probs columnProblems
	if err := rows.Scan(cols.lenient(&probs)...); err != nil {
		return nil, err
	}
	return probs, nil
}

type scanFunc func(v any)

func (f scanFunc) Scan(v any) error {
	f(v)
	return nil
}

// shorten cuts s to n bytes for a message.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
