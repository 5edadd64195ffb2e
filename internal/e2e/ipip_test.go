package e2e

import (
	"regexp"
	"testing"

	"github.com/moat-sg/moat/internal/apitest"
)

// TestIPIP is the mission's story with real packets: an IPIP tunnel (IP
// protocol 4) to a VM is dropped by the whitelist until a rule allows it.
// The rule is created with the openstack CLI as `--protocol ipip`, which
// Neutron renders as `-p ipip` (/etc/protocols: 94) and so never matches
// IPIP; moat renders protocol 4. `--protocol 4` works the same.
func TestIPIP(t *testing.T) {
	needRoot(t)
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			apitest.LookCLI(t)
			e := newEnv(t, backend, 2)
			e.ipip(t)
		})
	}
}

// iptables-save prints protocol 4 as "ipencap" when /etc/protocols names
// it, as "4" otherwise; 94 as "ipip" or "94".
var (
	proto4RE  = regexp.MustCompile(`^-p (4|ipencap) -j RETURN$`)
	proto94RE = regexp.MustCompile(`^-p (94|ipip) -j RETURN$`)
)

// protoRules returns vm's ingress rules whose spec matches re.
func protoRules(s *saved, chain string, re *regexp.Regexp) []savedRule {
	var out []savedRule
	for _, r := range s.chain("filter", chain) {
		if re.MatchString(r.Spec) {
			out = append(out, r)
		}
	}
	return out
}

func (e *env) ipip(t *testing.T) {
	vm1, vm2 := e.vm[0], e.vm[1]
	in := iChain(vm2)
	tag := newTag()
	got := listenIP(t, vm2.Netns, 4, carrying(tag))
	send := func() {
		sendIP(t, vm1.Netns, 4, vm2.IP, probes, func(i int) []byte { return ipipInner(tag, uint16(i)) })
	}
	waitProto4 := func(n int) *saved {
		t.Helper()
		return e.waitRules(t, v4, "protocol 4 allowed in vm2's chain", func(s *saved) bool {
			return len(protoRules(s, in, proto4RE)) == n
		})
	}
	deliveredByRule := func(step string) {
		t.Helper()
		s := e.save(t, v4)
		rules := protoRules(s, in, proto4RE)
		if len(rules) != 1 {
			t.Fatalf("%s: %d protocol-4 rules in %s", step, len(rules), in)
		}
		if n := len(protoRules(s, in, proto94RE)); n != 0 {
			t.Errorf("%s: %d rules for protocol 94 in %s, want none", step, n, in)
		}
		r0 := rules[0].Pkts
		delivered(t, probes, got, step, send)
		if d := e.counter(t, v4, "filter", in, rules[0].Spec) - r0; d != probes {
			t.Errorf("%s: the rule counted %d packets, want %d", step, d, probes)
		}
	}

	// 1. Default: dropped in vm2's ingress chain, by sg-fallback.
	drop0 := e.fallbackDrops(t, v4)
	e.dropped(t, v4, in, probes, got, send)
	if d := e.fallbackDrops(t, v4) - drop0; d < probes {
		t.Errorf("sg-fallback DROP counted %d packets, want at least %d", d, probes)
	}
	t.Logf("IPIP vm1 -> vm2 without a rule: %d packets dropped at %s -> %s DROP, none delivered", probes, in, fallback)

	// 2. `openstack security group rule create lab --ingress --protocol ipip`.
	var r cliRule
	e.cli(t, &r, "security", "group", "rule", "create", "lab", "--ingress", "--protocol", "ipip")
	e.cleanupRule(t, r.ID)
	if r.Protocol == nil || *r.Protocol != "ipip" || r.Direction != "ingress" || r.EtherType != "IPv4" {
		t.Fatalf("the CLI created %+v, want an ingress IPv4 rule for protocol ipip", r)
	}
	s := waitProto4(1)
	t.Logf("moat installed for `--protocol ipip`: -A %s %s", in, protoRules(s, in, proto4RE)[0].Spec)
	deliveredByRule("IPIP with the --protocol ipip rule")

	// 3. Deleted: dropped again.
	e.deleteRule(t, r.ID)
	waitProto4(0)
	e.dropped(t, v4, in, probes, got, send)

	// 4. Protocol 94 (what Neutron's `-p ipip` means) does not pass IPIP.
	id94 := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "94"))
	s = e.waitRules(t, v4, "protocol 94 in vm2's chain", func(s *saved) bool { return len(protoRules(s, in, proto94RE)) == 1 })
	t.Logf("for protocol 94: -A %s %s", in, protoRules(s, in, proto94RE)[0].Spec)
	e.dropped(t, v4, in, probes, got, send)
	e.deleteRule(t, id94)
	e.waitRules(t, v4, "protocol 94 gone", func(s *saved) bool { return len(protoRules(s, in, proto94RE)) == 0 })

	// 5. `--protocol 4`.
	var r4 cliRule
	e.cli(t, &r4, "security", "group", "rule", "create", "lab", "--ingress", "--protocol", "4")
	e.cleanupRule(t, r4.ID)
	if r4.Protocol == nil || *r4.Protocol != "4" {
		t.Fatalf("the CLI created %+v, want protocol 4", r4)
	}
	s = waitProto4(1)
	t.Logf("moat installed for `--protocol 4`: -A %s %s", in, protoRules(s, in, proto4RE)[0].Spec)
	deliveredByRule("IPIP with the --protocol 4 rule")
}
