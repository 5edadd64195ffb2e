package firewall_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/neutron"
)

// restoreRuleRules are the rules the reference scenarios compile to, and a
// few edge cases.
func restoreRuleRules(t *testing.T) []string {
	t.Helper()
	rules := []string{"", "-p", "-p tcp", "-m comment --comment \"-p tcp\" -p udp -j RETURN", "-p nosuchproto -j DROP", "! -p icmp -j DROP", "-p 4 -j RETURN"}
	for _, file := range []string{"sample.json", "edge.json"} {
		fh, err := os.Open(filepath.Join("testdata", "neutron", file))
		if err != nil {
			t.Fatal(err)
		}
		sf, err := spec.Parse(fh, strings.TrimSuffix(file, ".json"))
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		states, err := sf.HostStates()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			rs, err := firewall.Compile(st)
			if err != nil {
				t.Fatal(err)
			}
			for _, ts := range []firewall.Tables{rs.IPv4, rs.IPv6} {
				for _, tb := range []firewall.Table{ts.Filter, ts.Raw} {
					for _, cs := range [][]firewall.Chain{tb.Builtins, tb.Chains} {
						for _, c := range cs {
							rules = append(rules, c.Rules...)
						}
					}
				}
			}
		}
	}
	return rules
}

// TestAppendRestoreRule checks AppendRestoreRule against RestoreRule on
// every rule the reference scenarios compile to, and a few edge cases.
func TestAppendRestoreRule(t *testing.T) {
	for _, r := range restoreRuleRules(t) {
		if got, want := string(firewall.AppendRestoreRule([]byte("x"), r)), "x"+firewall.RestoreRule(r); got != want {
			t.Errorf("%q: got %q, want %q", r, got, want)
		}
	}
}

// TestRestoreRuleMatchesTheParser checks RestoreRule's table of the names
// iptables-save prints against a rewrite that uses only the general
// protocol parser (RestoreRule as it was before the table).
func TestRestoreRuleMatchesTheParser(t *testing.T) {
	reference := func(rule string) string {
		inQuote := false
		for i := 0; i < len(rule); i++ {
			switch {
			case rule[i] == '"':
				inQuote = !inQuote
			case inQuote:
			case strings.HasPrefix(rule[i:], "-p ") && (i == 0 || rule[i-1] == ' '):
				start := i + len("-p ")
				end := strings.IndexByte(rule[start:], ' ')
				if end < 0 {
					end = len(rule) - start
				}
				num, ok := neutron.ParseIptablesProtocol(rule[start : start+end])
				if !ok {
					return rule
				}
				return rule[:start] + strconv.Itoa(num) + rule[start+end:]
			}
		}
		return rule
	}
	rules := restoreRuleRules(t)
	for n := 1; n < 256; n++ {
		rules = append(rules, "-p "+neutron.IptablesProtocolName(n)+" -j RETURN")
	}
	for _, r := range rules {
		if got, want := firewall.RestoreRule(r), reference(r); got != want {
			t.Errorf("%q: got %q, want %q", r, got, want)
		}
	}
}

func TestRestoreRuleAllocatesNothingWithoutProtocol(t *testing.T) {
	rule := "-m physdev --physdev-in tapx --physdev-is-bridged -j ACCEPT"
	if n := testing.AllocsPerRun(100, func() { _ = firewall.RestoreRule(rule) }); n != 0 {
		t.Errorf("RestoreRule allocates %v times for a rule without -p", n)
	}
}
