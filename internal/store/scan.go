package store

import (
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
	dst  any // *string, *int64 or *sql.NullString
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
		default: // nullable columns take anything database/sql reads
			out[i] = dst
		}
	}
	return out
}

// str scans a text column; NULL and values that are not text are problems
// (numbers are taken as their decimal text, as database/sql does).
func (p *columnProblems) str(col string, dst *string) any {
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
func (p *columnProblems) int(col string, dst *int64) any {
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
