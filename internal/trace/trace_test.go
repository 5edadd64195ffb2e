package trace_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// Ports of the reference scenarios.
const (
	portBasic     = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d" // basic, ipip_remote_group A, ipip_named
	portStateless = "8a9b0c1d-2e3f-4a4b-9c5d-6e7f8a9b0c1d"
	portNoSec     = "0c1d2e3f-4a5b-4c6d-9e7f-8a9b0c1d2e3f" // port_security_disabled
	portEmptySG   = "1d2e3f4a-5b6c-4d7e-8f8a-9b0c1d2e3f4a"
	portEdge      = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f"
)

// neutronHost loads what Neutron 21 left on a host for a scenario.
func neutronHost(t testing.TB, scenario string) *trace.Host {
	t.Helper()
	dir := filepath.Join("testdata", "neutron", scenario)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v4, err := trace.ParseSave(bytes.NewReader(read("iptables-save.txt")), false)
	if err != nil {
		t.Fatalf("%s iptables-save: %v", scenario, err)
	}
	v6, err := trace.ParseSave(bytes.NewReader(read("ip6tables-save.txt")), true)
	if err != nil {
		t.Fatalf("%s ip6tables-save: %v", scenario, err)
	}
	sets, err := trace.ParseIPSets(bytes.NewReader(read("ipset.txt")))
	if err != nil {
		t.Fatalf("%s ipset: %v", scenario, err)
	}
	return &trace.Host{IPv4: v4, IPv6: v6, Sets: sets}
}

// moatHost compiles a scenario of a spec file with moat's compiler, as
// moat trace --input does, with the rule provenance.
func moatHost(t testing.TB, file, scenario string, compat bool) *trace.Host {
	t.Helper()
	sf, err := spec.Load(nil, filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sf.Scenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sc.HostState(nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Options.NeutronCompat = compat
	h, err := moatrules.Host(st)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type traceCase struct {
	name     string
	host     string // scenario of testdata/neutron, or "moat:<file>:<scenario>" (moat's rendering)
	q        trace.Query
	verdict  string
	kind     string // decided_by.origin_kind
	chain    string // decided_by.chain (suffix)
	rule     string // decided_by.rule contains
	ruleIDs  []string
	suggest  []string // the suggestion contains each
	noSugg   bool
	notes    []string // some note contains each
	state    string
	zone     int
	unknowns []string
}

func TestTrace(t *testing.T) {
	ipip := func(port, src string) trace.Query {
		return trace.Query{Port: port, Direction: trace.Ingress, Protocol: "ipip", Src: src}
	}
	cases := []traceCase{
		{
			name: "ipip to basic is dropped by default", host: "basic",
			q:       ipip(portBasic, "192.168.1.13"),
			verdict: "DROP", kind: trace.OriginDefaultDrop, chain: "sg-fallback", rule: "-j DROP",
			suggest: []string{"openstack security group rule create <group> --ingress --ethertype IPv4 --protocol 4 --remote-ip 192.168.1.13/32"},
			notes:   []string{"--protocol 4, not ipip", "<group>: one of the port's security groups"},
			state:   "NEW", zone: 4097,
		},
		{
			name: "ipip to basic without comments", host: "basic_nocomments",
			q:       ipip("c0a350e0", "192.168.1.13"),
			verdict: "DROP", kind: trace.OriginDefaultDrop, chain: "sg-fallback",
			suggest: []string{"--protocol 4"},
		},
		{
			name: "ipip to ipip_remote_group is allowed by the protocol 4 rule", host: "ipip_remote_group",
			q:       ipip(portBasic, "198.51.100.7"),
			verdict: "ACCEPT", kind: trace.OriginSGRule, chain: "ic0a350e0-4", rule: "-p ipencap -j RETURN", noSugg: true,
		},
		{
			name: "ipip named rule: Neutron renders -p ipip (94), the packet is dropped", host: "ipip_named",
			q:       ipip(portBasic, "198.51.100.7"),
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"--protocol 4 "},
			notes:   []string{"(-p ipip) is protocol 94"},
		},
		{
			name: "ipip named rule: moat renders protocol 4, the packet passes", host: "moat:ipip_named.json:ipip_named",
			q:       ipip(portBasic, "198.51.100.7"),
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-p ipencap -j RETURN",
			ruleIDs: []string{"dddddddd-0000-4000-8000-000000000003"}, noSugg: true,
		},
		{
			name: "ipip named rule: moat --neutron-compat reproduces the drop", host: "moat-compat:ipip_named.json:ipip_named",
			q:       ipip(portBasic, "198.51.100.7"),
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"openstack security group rule create 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d --ingress --ethertype IPv4 --protocol 4 --remote-ip 198.51.100.7/32"},
		},
		{
			name: "ipip to moat's basic names the port's group", host: "moat:sample.json:basic",
			q:       ipip(portBasic, "192.168.1.13"),
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"openstack security group rule create 14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b --ingress --ethertype IPv4 --protocol 4 --remote-ip 192.168.1.13/32"},
		},
		{
			name: "icmp to moat's basic names the rule id", host: "moat:sample.json:basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "icmp", Src: "10.0.0.1", ICMPType: "8", ICMPCode: "0"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-p icmp -j RETURN",
			ruleIDs: []string{"aaaaaaaa-0000-4000-8000-000000000002"},
		},
		{
			name: "tcp 22 to basic: default drop with the port in the suggestion", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "203.0.113.9", SrcPort: "40000", DstPort: "22"},
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"--ingress --ethertype IPv4 --protocol tcp --dst-port 22 --remote-ip 203.0.113.9/32"},
		},
		{
			name: "icmp echo to basic is allowed", host: "basic",
			q:       trace.Query{Tap: "tapc0a350e0-43", Direction: trace.Ingress, Protocol: "icmp", Src: "10.0.0.1", ICMPType: "8"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-p icmp -j RETURN",
		},
		{
			name: "egress from basic is allowed by egress any", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "tcp", Dst: "1.1.1.1", SrcPort: "40000", DstPort: "443"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, chain: "oc0a350e0-4", rule: "-j RETURN",
		},
		{
			name: "spoofed source IP is dropped by anti-spoofing", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "udp", Src: "192.168.1.99", Dst: "8.8.8.8", DstPort: "53"},
			verdict: "DROP", kind: trace.OriginAntiSpoofing, chain: "sc0a350e0-4", rule: "-j DROP",
		},
		{
			name: "spoofed source MAC is dropped by anti-spoofing", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "udp", Dst: "8.8.8.8", DstPort: "53", SrcMAC: "fa:16:3e:00:00:99"},
			verdict: "DROP", kind: trace.OriginAntiSpoofing, chain: "sc0a350e0-4",
		},
		{
			name: "DHCP server reply from the VM is dropped", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "udp", Dst: "192.168.1.50", SrcPort: "67", DstPort: "68"},
			verdict: "DROP", kind: trace.OriginDHCPProtection, chain: "oc0a350e0-4",
		},
		{
			name: "DHCP request from the VM is allowed", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "udp", Src: "0.0.0.0", Dst: "255.255.255.255", SrcPort: "68", DstPort: "67"},
			verdict: "ACCEPT", kind: trace.OriginDHCPClient,
		},
		{
			name: "DHCP reply to the VM is allowed", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "udp", Src: "192.168.1.2", SrcPort: "67", DstPort: "68"},
			verdict: "ACCEPT", kind: trace.OriginDHCPReply,
		},
		{
			name: "established reply is returned", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "1.1.1.1", SrcPort: "443", DstPort: "40000", State: "established"},
			verdict: "ACCEPT", kind: trace.OriginEstablished, rule: "RELATED,ESTABLISHED", state: "ESTABLISHED",
		},
		{
			name: "invalid packet is dropped", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "1.1.1.1", SrcPort: "443", DstPort: "40000", State: "invalid"},
			verdict: "DROP", kind: trace.OriginInvalid, rule: "INVALID",
		},
		{
			name: "ICMPv6 neighbour solicitation to the VM is allowed", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "ipv6-icmp", Src: "fe80::1", Dst: "ff02::1:ffc3:ead5", ICMPType: "135"},
			verdict: "ACCEPT", kind: trace.OriginICMPv6ND, rule: "--icmpv6-type 135",
		},
		{
			name: "ICMPv6 router advertisement from the VM is dropped", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Egress, Protocol: "icmp", Dst: "ff02::1", ICMPType: "134"},
			verdict: "DROP", kind: trace.OriginRAProtection,
		},
		{
			name: "router advertisement to a dual-stack VM is allowed", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Ingress, Protocol: "ipv6-icmp", Src: "fe80::1", ICMPType: "134"},
			verdict: "ACCEPT", kind: trace.OriginICMPv6RA,
		},
		{
			name: "IPv6 ssh from the allowed prefix", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Ingress, Protocol: "tcp", Src: "2001:db8:1::5", DstPort: "22"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-s 2001:db8:1::/48",
		},
		{
			name: "IPv6 ssh from elsewhere", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Ingress, Protocol: "tcp", Src: "2001:db8:2::5", DstPort: "22"},
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"--ethertype IPv6 --protocol tcp --dst-port 22 --remote-ip 2001:db8:2::5/128"},
		},
		{
			name: "port range with multiport", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Ingress, Protocol: "udplite", Src: "10.9.9.9", DstPort: "5000"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-p udplite -m multiport --dports 5000",
		},
		{
			name: "allowed address pair with its own MAC", host: "edge_rules",
			q:       trace.Query{Port: portEdge, Direction: trace.Egress, Protocol: "tcp", Src: "10.20.1.1", Dst: "203.0.113.5", DstPort: "443", SrcMAC: "fa:16:3e:de:ad:01"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "-d 203.0.113.0/24",
		},
		{
			name: "stateless group: allowed by the rule, untracked", host: "stateless",
			q:       trace.Query{Port: portStateless, Direction: trace.Ingress, Protocol: "tcp", Src: "10.0.0.1", DstPort: "22"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, state: "UNTRACKED",
		},
		{
			name: "stateless group: a reply is untracked and falls to the default drop", host: "stateless",
			q:       trace.Query{Port: portStateless, Direction: trace.Ingress, Protocol: "tcp", Src: "10.0.0.1", SrcPort: "80", DstPort: "40000", State: "established"},
			verdict: "DROP", kind: trace.OriginDefaultDrop, state: "UNTRACKED",
			notes: []string{"CT --notrack makes the packet untracked", "stateless"},
		},
		{
			name: "remote group member is allowed", host: "ipip_remote_group",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "192.168.1.30", DstPort: "22"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "--match-set NIPv414c032e9-bc0a-4a7e-9f5b- src",
		},
		{
			name: "remote group member by allowed address pair prefix", host: "ipip_remote_group",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "10.10.0.77", DstPort: "22"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "--match-set NIPv414c032e9",
		},
		{
			name: "remote group non-member is dropped", host: "ipip_remote_group",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "192.168.1.99", DstPort: "22"},
			verdict: "DROP", kind: trace.OriginDefaultDrop,
			suggest: []string{"--protocol tcp --dst-port 22 --remote-ip 192.168.1.99/32"},
		},
		{
			name: "member of the other remote group: any protocol", host: "ipip_remote_group",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "udp", Src: "192.168.1.20", DstPort: "53"},
			verdict: "ACCEPT", kind: trace.OriginSGRule, rule: "NIPv47f3e2d1c",
		},
		{
			name: "port security disabled accepts everything", host: "port_security_disabled",
			q:       trace.Query{Port: portNoSec, Direction: trace.Ingress, Protocol: "tcp", Src: "10.0.0.1", Dst: "192.168.1.17", DstPort: "25"},
			verdict: "ACCEPT", kind: trace.OriginPortSecurityDisabled, chain: "FORWARD",
		},
		{
			name: "group without rules drops", host: "port_security_disabled",
			q:       trace.Query{Port: portEmptySG, Direction: trace.Ingress, Protocol: "tcp", Src: "10.0.0.1", DstPort: "25"},
			verdict: "DROP", kind: trace.OriginDefaultDrop,
		},
		{
			name: "to the host itself: Neutron's INPUT rule never matches (physdev-is-bridged)", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Hook: trace.HookInput, Protocol: "tcp", Dst: "192.168.1.1", DstPort: "22"},
			verdict: "ACCEPT", kind: trace.OriginPolicy, chain: "INPUT",
			notes: []string{"do not filter this traffic to the host itself"},
		},
		{
			name: "no ipset data: a set match is unknown, never a miss", host: "ipip_remote_group/nosets",
			q:       trace.Query{Port: portBasic, Direction: trace.Ingress, Protocol: "tcp", Src: "192.168.1.30", DstPort: "22"},
			verdict: "unknown", kind: trace.OriginSGRule, rule: "--match-set",
			unknowns: []string{"no ipset data"},
		},
		{
			name: "a port the rule needs and the packet lacks is unknown", host: "basic",
			q:       trace.Query{Port: portBasic, Direction: trace.Egress, Protocol: "udp", Dst: "8.8.8.8"},
			verdict: "unknown", kind: trace.OriginDHCPClient,
			unknowns: []string{"--sport"},
		},
	}
	hosts := map[string]*trace.Host{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := hosts[c.host]
			if h == nil {
				switch {
				case strings.HasPrefix(c.host, "moat:"), strings.HasPrefix(c.host, "moat-compat:"):
					f := strings.Split(c.host, ":")
					h = moatHost(t, f[1], f[2], f[0] == "moat-compat")
				case strings.HasSuffix(c.host, "/nosets"):
					h = neutronHost(t, strings.TrimSuffix(c.host, "/nosets"))
					h.Sets = nil
				default:
					h = neutronHost(t, c.host)
				}
				hosts[c.host] = h
			}
			res, err := h.Trace(c.q)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, c, res)
		})
	}
}

func checkResult(t *testing.T, c traceCase, res *trace.Result) {
	t.Helper()
	dump := func() string {
		var b strings.Builder
		if err := trace.WriteText(&b, res); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if res.Verdict != c.verdict {
		t.Fatalf("verdict %s, want %s\n%s", res.Verdict, c.verdict, dump())
	}
	d := res.DecidedBy
	if d == nil {
		t.Fatalf("no decided_by\n%s", dump())
	}
	if d.OriginKind != c.kind {
		t.Errorf("decided by %s (%s #%d %s), want %s\n%s", d.OriginKind, d.Chain, d.RuleNumber, d.Rule, c.kind, dump())
	}
	if c.chain != "" && !strings.HasSuffix(d.Chain, c.chain) {
		t.Errorf("decided in chain %s, want ...%s", d.Chain, c.chain)
	}
	if !strings.Contains(d.Rule, c.rule) {
		t.Errorf("decided by rule %q, want it to contain %q", d.Rule, c.rule)
	}
	if c.ruleIDs != nil {
		var ids []string
		for _, r := range d.Rules {
			ids = append(ids, r.RuleID)
		}
		if strings.Join(ids, ",") != strings.Join(c.ruleIDs, ",") {
			t.Errorf("rule ids %v, want %v", ids, c.ruleIDs)
		}
		for _, id := range c.ruleIDs {
			if !strings.Contains(d.Origin, id) {
				t.Errorf("origin %q does not name rule %s", d.Origin, id)
			}
		}
	}
	for _, s := range c.suggest {
		if !strings.Contains(res.Suggestion, s) {
			t.Errorf("suggestion %q lacks %q", res.Suggestion, s)
		}
	}
	if c.noSugg && res.Suggestion != "" {
		t.Errorf("unexpected suggestion %q", res.Suggestion)
	}
	if c.verdict == "DROP" && c.kind == trace.OriginDefaultDrop && res.Suggestion == "" {
		t.Errorf("default drop without a suggestion")
	}
	if c.kind != trace.OriginDefaultDrop && res.Suggestion != "" {
		t.Errorf("suggestion for a %s verdict: %q", c.kind, res.Suggestion)
	}
	if (res.Rule != nil) != (res.Suggestion != "") {
		t.Errorf("suggested rule %+v with command %q", res.Rule, res.Suggestion)
	}
	if r := res.Rule; r != nil {
		// The rule says what the command says.
		want := []string{"--" + string(r.Direction), "--ethertype " + r.EtherType, "--remote-ip " + r.RemoteIPPrefix}
		if r.Protocol != "" {
			want = append(want, "--protocol "+r.Protocol+" ")
		}
		if r.PortMin >= 0 {
			want = append(want, fmt.Sprintf("--dst-port %d", r.PortMin))
		}
		if r.ICMPType >= 0 {
			want = append(want, fmt.Sprintf("--icmp-type %d", r.ICMPType))
		}
		if r.GroupID != "" {
			want = append(want, "create "+r.GroupID+" ")
		}
		for _, w := range want {
			if !strings.Contains(res.Suggestion+" ", w) {
				t.Errorf("suggestion %q lacks %q of the rule %+v", res.Suggestion, w, r)
			}
		}
	}
	for _, n := range c.notes {
		found := false
		for _, rn := range res.Notes {
			found = found || strings.Contains(rn, n)
		}
		if !found {
			t.Errorf("no note contains %q; notes: %q", n, res.Notes)
		}
	}
	if c.state != "" && res.State != c.state {
		t.Errorf("state %s, want %s", res.State, c.state)
	}
	if c.zone != 0 && res.Zone != c.zone {
		t.Errorf("zone %d, want %d", res.Zone, c.zone)
	}
	for _, u := range c.unknowns {
		if !strings.Contains(strings.Join(res.Unknown, "\n"), u) {
			t.Errorf("unknown %q lacks %q", res.Unknown, u)
		}
	}
	if c.verdict != "unknown" && len(res.Unknown) > 0 {
		t.Errorf("unexpected unknowns %q", res.Unknown)
	}
}
