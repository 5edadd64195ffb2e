package moatrules_test

import (
	"os"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

func TestHost(t *testing.T) {
	f, err := os.Open("../testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := spec.Parse(f, "sample")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := file.Scenario("ipip_remote_group")
	if err != nil {
		t.Fatal(err)
	}
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
	f, err := os.Open("../testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := spec.Parse(f, "sample")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := file.Scenario("ipip_remote_group")
	if err != nil {
		t.Fatal(err)
	}
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
