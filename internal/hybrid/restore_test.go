package hybrid_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
)

// restoreRuleRules are the rules the reference scenarios compile to, and a
// few edge cases.
func restoreRuleRules(t *testing.T) []string {
	t.Helper()
	rules := []string{"", "-p", "-p tcp", "-m comment --comment \"-p tcp\" -p udp -j RETURN", "-p nosuchproto -j DROP", "! -p icmp -j DROP", "-p 4 -j RETURN"}
	for _, file := range []string{"sample.json", "edge.json"} {
		sf, err := spec.Load(nil, filepath.Join("..", "firewall", "testdata", "neutron", file))
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
		if got, want := string(hybrid.AppendRestoreRule([]byte("x"), r)), "x"+hybrid.RestoreRule(r); got != want {
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
				num, ok := hybrid.ParseIptablesProtocol(rule[start : start+end])
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
		rules = append(rules, "-p "+hybrid.IptablesProtocolName(n)+" -j RETURN")
	}
	for _, r := range rules {
		if got, want := hybrid.RestoreRule(r), reference(r); got != want {
			t.Errorf("%q: got %q, want %q", r, got, want)
		}
	}
}

func TestRestoreRuleAllocatesNothingWithoutProtocol(t *testing.T) {
	rule := "-m physdev --physdev-in tapx --physdev-is-bridged -j ACCEPT"
	if n := testing.AllocsPerRun(100, func() { _ = hybrid.RestoreRule(rule) }); n != 0 {
		t.Errorf("RestoreRule allocates %v times for a rule without -p", n)
	}
}

func TestRestoreRule(t *testing.T) {
	tests := []struct{ in, want string }{
		{"-p ipencap -j RETURN", "-p 4 -j RETURN"},
		{"-s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j RETURN", "-s 10.0.0.0/8 -p 6 -m tcp --dport 22 -j RETURN"},
		{"-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN", "-p 58 -m icmp6 --icmpv6-type 134 -j RETURN"},
		{"-p 113 -j RETURN", "-p 113 -j RETURN"},
		{"-j RETURN", "-j RETURN"},
		{"-m physdev --physdev-in tapx --physdev-is-bridged -j ACCEPT", "-m physdev --physdev-in tapx --physdev-is-bridged -j ACCEPT"},
		{`-m comment --comment "x -p tcp" -j DROP`, `-m comment --comment "x -p tcp" -j DROP`},
		{`-m comment --comment "a" -p tcp -j DROP`, `-m comment --comment "a" -p 6 -j DROP`},
	}
	for _, tt := range tests {
		if got := hybrid.RestoreRule(tt.in); got != tt.want {
			t.Errorf("RestoreRule(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
