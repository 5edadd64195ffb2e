package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchAPITiny runs `moat bench api` against its in-process server with
// tiny numbers: one JSON line per case, the documented fields, no errors.
func TestBenchAPITiny(t *testing.T) {
	f := benchAPIFlags{rules: 50, listRules: 60, bulkBatch: 500, conc: 2, groups: 3, listRepeat: 2, progress: 1000}
	var out, errw bytes.Buffer
	if err := runBenchAPI(context.Background(), &f, &out, &errw); err != nil {
		t.Fatalf("bench api: %v\nstderr:\n%s", err, errw.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantCases := []string{"rule_create", "rule_bulk_fill", "list_rules", "list_groups"}
	if len(lines) != len(wantCases) {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(wantCases), out.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		for _, k := range []string{"bench", "target", "case", "requests", "concurrency", "rules", "groups",
			"wall_s", "p50_ms", "p99_ms", "max_ms", "errors", "cpu_s"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d has no %q: %s", i, k, line)
			}
		}
		if m["case"] != wantCases[i] || m["target"] != "moat-sqlite" || m["bench"] != "api" {
			t.Errorf("line %d: %s", i, line)
		}
		if m["errors"] != 0.0 {
			t.Errorf("line %d has errors: %s", i, line)
		}
	}
	var create map[string]any
	json.Unmarshal([]byte(lines[0]), &create)
	if create["rules"] != 50.0 || create["rules_per_s"] == nil {
		t.Errorf("create line: %s", lines[0])
	}
	for _, l := range lines[2:] {
		if !strings.Contains(l, `"bytes":`) {
			t.Errorf("list line without bytes: %s", l)
		}
	}
	if !strings.Contains(errw.String(), "list_groups") {
		t.Errorf("no summary on stderr:\n%s", errw.String())
	}
}

func TestBenchAPIFlagErrors(t *testing.T) {
	for _, f := range []benchAPIFlags{
		{url: "http://127.0.0.1:1", db: "sqlite:///x.db", rules: 1, conc: 1, groups: 1, bulkBatch: 1, progress: 1},
		{rules: 1, conc: 0, groups: 1, bulkBatch: 1, progress: 1},
		{rules: -1, conc: 1, groups: 1, bulkBatch: 1, progress: 1},
	} {
		if err := runBenchAPI(context.Background(), &f, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
	f := benchAPIFlags{url: "http://127.0.0.1:1", rules: 1, conc: 1, groups: 1, bulkBatch: 1, progress: 1}
	err := runBenchAPI(context.Background(), &f, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("unreachable endpoint: %v", err)
	}
}
