package firewall_test

import (
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
)

// RuleSources must name, for every line of a port's chains that comes from
// a security group rule, the rules behind it, and nothing for the lines
// the compiler adds by itself.
func TestRuleSources(t *testing.T) {
	file, err := spec.Load(nil, "testdata/neutron/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	const portA = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	cases := []struct {
		scenario string
		ipset    bool
		want     map[firewall.LineKey][]string // line -> rule ids
	}{
		{"basic", true, map[firewall.LineKey][]string{
			{Chain: "neutron-openvswi-oc0a350e0-4", Rule: "-j RETURN"}:         {"aaaaaaaa-0000-4000-8000-000000000001"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-p icmp -j RETURN"}: {"aaaaaaaa-0000-4000-8000-000000000002"},
		}},
		{"ipip_remote_group", true, map[firewall.LineKey][]string{
			{Chain: "neutron-openvswi-oc0a350e0-4", Rule: "-j RETURN"}:                                                                               {"bbbbbbbb-0000-4000-8000-000000000001"},
			{IPv6: true, Chain: "neutron-openvswi-oc0a350e0-4", Rule: "-j RETURN"}:                                                                   {"bbbbbbbb-0000-4000-8000-000000000002"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-p ipencap -j RETURN"}:                                                                    {"bbbbbbbb-0000-4000-8000-000000000003"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-p tcp -m tcp --dport 22 -m set --match-set NIPv414c032e9-bc0a-4a7e-9f5b- src -j RETURN"}: {"bbbbbbbb-0000-4000-8000-000000000004"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-m set --match-set NIPv47f3e2d1c-5b4a-4c3d-8e2f- src -j RETURN"}:                          {"bbbbbbbb-0000-4000-8000-000000000005"},
		}},
		{"ipip_remote_group", false, map[firewall.LineKey][]string{
			{Chain: "neutron-openvswi-oc0a350e0-4", Rule: "-j RETURN"}:                                             {"bbbbbbbb-0000-4000-8000-000000000001"},
			{IPv6: true, Chain: "neutron-openvswi-oc0a350e0-4", Rule: "-j RETURN"}:                                 {"bbbbbbbb-0000-4000-8000-000000000002"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-p ipencap -j RETURN"}:                                  {"bbbbbbbb-0000-4000-8000-000000000003"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-s 10.10.0.0/24 -p tcp -m tcp --dport 22 -j RETURN"}:    {"bbbbbbbb-0000-4000-8000-000000000004"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-s 192.168.1.13/32 -p tcp -m tcp --dport 22 -j RETURN"}: {"bbbbbbbb-0000-4000-8000-000000000004"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-s 192.168.1.30/32 -p tcp -m tcp --dport 22 -j RETURN"}: {"bbbbbbbb-0000-4000-8000-000000000004"},
			{Chain: "neutron-openvswi-ic0a350e0-4", Rule: "-s 192.168.1.20/32 -j RETURN"}:                          {"bbbbbbbb-0000-4000-8000-000000000005"},
		}},
	}
	for _, c := range cases {
		sc, err := file.Scenario(c.scenario)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sc.HostState(map[string]any{"enable_ipset": c.ipset})
		if err != nil {
			t.Fatal(err)
		}
		src, err := firewall.RuleSources(st, portA)
		if err != nil {
			t.Fatal(err)
		}
		got := map[firewall.LineKey][]string{}
		for k, rs := range src {
			for _, r := range rs {
				got[k] = append(got[k], r.RuleID)
			}
		}
		for k, ids := range c.want {
			if !slices.Equal(got[k], ids) {
				t.Errorf("%s ipset=%v: %+v -> %v, want %v", c.scenario, c.ipset, k, got[k], ids)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s ipset=%v: %d lines mapped, want %d: %v", c.scenario, c.ipset, len(got), len(c.want), got)
		}
		// Every mapped line is a line of the compiled chain.
		rs, err := firewall.Compile(st)
		if err != nil {
			t.Fatal(err)
		}
		for k := range src {
			tables := rs.IPv4
			if k.IPv6 {
				tables = rs.IPv6
			}
			ch, ok := tables.Filter.Chain(k.Chain)
			if !ok || !slices.Contains(ch.Rules, k.Rule) {
				t.Errorf("%s ipset=%v: mapped line %+v is not in the compiled chain", c.scenario, c.ipset, k)
			}
		}
	}
	if _, err := firewall.RuleSources(&firewall.HostState{}, "nope"); err == nil {
		t.Error("unknown port: no error")
	}
}
