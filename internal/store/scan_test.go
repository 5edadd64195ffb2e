package store

import (
	"database/sql"
	"testing"
)

// TestLenientScanners: what each column scanner takes, and what it
// records instead of failing.
func TestLenientScanners(t *testing.T) {
	tests := []struct {
		name    string
		kind    string // str, int or nullInt
		value   any
		want    any
		problem string
	}{
		{"text", "str", "abc", "abc", ""},
		{"bytes as text", "str", []byte("abc"), "abc", ""},
		{"number as text", "str", int64(42), "42", ""},
		{"NULL text", "str", nil, "", "c is NULL"},
		{"float as text", "str", 1.5, "", "c holds float64, not text"},
		{"number", "int", int64(7), int64(7), ""},
		{"bool as number", "int", true, int64(1), ""},
		{"numeric text", "int", "12", int64(12), ""},
		{"text as number", "int", "yes", int64(0), `c holds "yes", not a number`},
		{"long text as number", "int", "0123456789012345678901234567890123456789x", int64(0), `c holds "01234567890123456789012345678901...", not a number`},
		{"NULL number", "int", nil, int64(0), "c is NULL"},
		{"nullable NULL", "nullInt", nil, sql.NullInt64{}, ""},
		{"nullable number", "nullInt", int64(3), sql.NullInt64{Int64: 3, Valid: true}, ""},
		{"nullable text", "nullInt", []byte("x"), sql.NullInt64{}, `c holds "x", not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var probs columnProblems
			var got any
			switch tt.kind {
			case "str":
				var s string
				probs.str("c", &s)(tt.value)
				got = s
			case "int":
				var n int64
				probs.int("c", &n)(tt.value)
				got = n
			case "nullInt":
				var n sql.NullInt64
				probs.nullInt("c", &n)(tt.value)
				got = n
			}
			if got != tt.want || probs.String() != tt.problem {
				t.Errorf("got %#v, problems %q; want %#v, %q", got, probs.String(), tt.want, tt.problem)
			}
		})
	}
}
