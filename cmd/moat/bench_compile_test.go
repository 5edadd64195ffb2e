package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchCompile(t *testing.T) {
	cmd := newBenchCompileCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--ports", "50,100", "--ports", "500", "--repeat", "1"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per port count:\n%s", len(lines), out.String())
	}
	for i, want := range []int{50, 100, 500} {
		var r map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		for _, k := range []string{"ports", "rules_ipv4", "rules_ipv6", "prepare_ms", "rule_change_all_ms", "rule_change_app_ms"} {
			if _, ok := r[k].(float64); !ok {
				t.Errorf("line %d: %s missing or not a number: %s", i, k, lines[i])
			}
		}
		if int(r["ports"].(float64)) != want {
			t.Errorf("line %d: ports %v, want %d", i, r["ports"], want)
		}
		if got := int(r["ports_recompiled_app"].(float64)); got != want/10 {
			t.Errorf("%d ports: %d recompiled for an app group change, want %d", want, got, want/10)
		}
		if want == 500 {
			// numbers-to-beat.md: Neutron holds 16,560 IPv4 and 14,010 IPv6
			// rules after bench.py's two changes at 500 ports.
			if r["rules_ipv4"].(float64) != 16560 || r["rules_ipv6"].(float64) != 14010 {
				t.Errorf("500 ports: %v IPv4 and %v IPv6 rules, Neutron has 16560 and 14010", r["rules_ipv4"], r["rules_ipv6"])
			}
		}
	}
}

func TestBenchCompileFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"--ports", "0"}, {"--ports", "x"}, {"--ports", "10", "--repeat", "0"}} {
		cmd := newBenchCompileCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
