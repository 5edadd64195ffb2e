package api

import (
	"encoding/json"
	"testing"
)

// TestAppendJSONMatchesEncodingJSON: the one-pass encoder must produce
// exactly what encoding/json would for the same values.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, 42, int64(-7), "plain", "quote\" back\\slash", "<tag>&amp;", "tab\tnew\nline\x01",
		"é ünïcode ☃", "bad utf8 \xff\xfe", []string{"a", "b"}, []string{},
		object{{"k", "v"}, {"n", nil}, {"list", []object{{{"x", 1}}, {}}}, {"m", map[string]any{"z": 1, "a": []any{1, "x"}}}},
		[]object{}, object{},
	}
	for _, v := range values {
		got, err := appendJSON(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("appendJSON(%#v) = %s, want %s", v, got, want)
		}
	}
}
