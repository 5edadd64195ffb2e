package moatrules_test

import (
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// ipipScenario is the reference scenario ipip_remote_group.
func ipipScenario(t *testing.T) *spec.Scenario {
	t.Helper()
	file, err := spec.Load(nil, "../testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := file.Scenario("ipip_remote_group")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestHost(t *testing.T) {
	sc := ipipScenario(t)
	st, err := sc.HostState(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := moatrules.Host(st)
	if err != nil {
		t.Fatal(err)
	}
	if h.IPv4 == nil || h.IPv6 == nil || len(h.Sets) != 2 {
		t.Fatalf("host: v4 %v v6 %v sets %d", h.IPv4 != nil, h.IPv6 != nil, len(h.Sets))
	}
	const portB = "e5f6a7b8-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
	if g := h.Provenance.Groups[portB]; len(g) != 1 || g[0] != "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b" {
		t.Errorf("groups of port B: %v", g)
	}
	// Both ports carry the group: each port's chain maps to the rule.
	for _, chain := range []string{"neutron-openvswi-ic0a350e0-4", "neutron-openvswi-ie5f6a7b8-9"} {
		rs := h.Provenance.Rules[trace.RuleKey{Chain: chain, Rule: "-p ipencap -j RETURN"}]
		if len(rs) != 1 || rs[0].RuleID != "bbbbbbbb-0000-4000-8000-000000000003" {
			t.Errorf("%s: %v", chain, rs)
		}
	}
	// The trace names the port by its full id and the rule by its id.
	res, err := h.Trace(trace.Query{Port: "e5f6", Direction: trace.Ingress, Protocol: "4", Src: "203.0.113.1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.PortID != portB || res.Verdict != "ACCEPT" || len(res.DecidedBy.Rules) != 1 {
		t.Errorf("trace: port %s verdict %s by %+v", res.PortID, res.Verdict, res.DecidedBy)
	}
}

// PortProvenance is Provenance cut to the ports asked about.
func TestPortProvenance(t *testing.T) {
	sc := ipipScenario(t)
	for _, ipset := range []bool{true, false} {
		st, err := sc.HostState(map[string]any{"enable_ipset": ipset})
		if err != nil {
			t.Fatal(err)
		}
		all, err := moatrules.Provenance(st)
		if err != nil {
			t.Fatal(err)
		}
		const portB = "e5f6a7b8-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
		one, err := moatrules.PortProvenance(st, portB, "not-a-port")
		if err != nil {
			t.Fatal(err)
		}
		if len(one.Groups) != 1 || !slices.Equal(one.Groups[portB], all.Groups[portB]) {
			t.Errorf("ipset=%v: groups %v, want port B's of %v", ipset, one.Groups, all.Groups)
		}
		chains := hybrid.PortChainsUnder(hybrid.Wrap, portB)
		want := 0
		for k, rs := range all.Rules {
			if k.Chain != chains.In && k.Chain != chains.Out {
				continue
			}
			want++
			if !slices.Equal(one.Rules[k], rs) {
				t.Errorf("ipset=%v: %+v -> %v, want %v", ipset, k, one.Rules[k], rs)
			}
		}
		if want == 0 || len(one.Rules) != want {
			t.Errorf("ipset=%v: %d rules mapped, want %d", ipset, len(one.Rules), want)
		}
	}
}

// An agent run with --no-ipset --no-comments writes a rule per remote
// group member and no comments. Trace reads its kernel's rules and the
// host state from the store (with the agent's defaults as options): the
// provenance must follow the rules' own rendering, or the group rules of
// the dump map to nothing (as PortProvenance of the defaults shows).
func TestDumpProvenanceFollowsTheDump(t *testing.T) {
	sc := ipipScenario(t)
	const portA = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	const sshRule = "bbbbbbbb-0000-4000-8000-000000000004" // tcp/22 from the web group
	agentState, err := sc.HostState(map[string]any{"enable_ipset": false, "comment_iptables_rules": false})
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := moatrules.Host(agentState) // what the agent installed
	if err != nil {
		t.Fatal(err)
	}
	kernel.Provenance = nil // a dump says nothing of where its rules come from
	stored, err := sc.HostState(map[string]any{"enable_ipset": true, "comment_iptables_rules": true})
	if err != nil {
		t.Fatal(err)
	}
	member := trace.RuleKey{Chain: hybrid.PortChain(hybrid.ChainIn, portA), Rule: "-s 192.168.1.30/32 -p tcp -m tcp --dport 22 -j RETURN"}
	if defaults, err := moatrules.PortProvenance(stored, portA); err != nil || len(defaults.Rules[member]) != 0 {
		t.Fatalf("with the defaults' options the member rule maps to %v (%v): the test shows nothing", defaults.Rules[member], err)
	}
	prov, err := moatrules.DumpProvenance(kernel, stored, portA)
	if err != nil {
		t.Fatal(err)
	}
	if rs := prov.Rules[member]; len(rs) != 1 || rs[0].RuleID != sshRule {
		t.Errorf("member rule %s maps to %v, want %s", member.Rule, rs, sshRule)
	}
	if stored.Options.EnableIPSet != true || stored.Options.CommentRules != true {
		t.Error("DumpProvenance changed the state it was given")
	}
	// The trace names the rule.
	kernel.Provenance = prov
	res, err := kernel.Trace(trace.Query{Port: portA, Direction: trace.Ingress, Protocol: "tcp", Src: "192.168.1.30", DstPort: "22"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != trace.VerdictAccept || len(res.DecidedBy.Rules) != 1 || res.DecidedBy.Rules[0].RuleID != sshRule {
		t.Errorf("trace: %s by %+v", res.Verdict, res.DecidedBy)
	}
	// Every group rule of the dump's port chains maps, with or without
	// ipsets and comments.
	for _, set := range []map[string]any{{"enable_ipset": false, "comment_iptables_rules": false}, {"enable_ipset": true, "comment_iptables_rules": false}, {"enable_ipset": false, "comment_iptables_rules": true}} {
		st, err := sc.HostState(set)
		if err != nil {
			t.Fatal(err)
		}
		h, err := moatrules.Host(st)
		if err != nil {
			t.Fatal(err)
		}
		prov, err := moatrules.DumpProvenance(h, stored)
		if err != nil {
			t.Fatal(err)
		}
		if len(prov.Rules) != len(h.Provenance.Rules) {
			t.Errorf("%v: %d rules mapped, the compile maps %d", set, len(prov.Rules), len(h.Provenance.Rules))
		}
		for k, rs := range h.Provenance.Rules {
			if !slices.Equal(prov.Rules[k], rs) {
				t.Errorf("%v: %+v -> %v, want %v", set, k, prov.Rules[k], rs)
			}
		}
	}
}
