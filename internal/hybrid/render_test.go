package hybrid

import (
	"net"
	"net/netip"
	"testing"
)

// Every shape of rule the layout has, as iptables-save prints it (the
// texts are lines of the Neutron goldens in internal/firewall/testdata).
func TestIptables(t *testing.T) {
	pfx := netip.MustParsePrefix
	mac, _ := net.ParseMAC("fa:16:3e:c3:ea:d5")
	cases := []struct {
		r    Rule
		want string
	}{
		{Rule{Action: Action{Kind: Jump, Chain: ChainLocal}}, "-j neutron-openvswi-local"},
		{Rule{Action: Action{Kind: Accept}}, "-j ACCEPT"},
		{Rule{Comment: CommentUnmatchDrop, Action: Action{Kind: Drop}}, `-m comment --comment "Default drop rule for unmatched traffic." -j DROP`},
		{Rule{Match: Match{PhysOut: "tapc0a350e0-43", PhysBridged: true}, Comment: CommentVMIntSG, Action: Action{Kind: Jump, Chain: ChainSG}},
			`-m physdev --physdev-out tapc0a350e0-43 --physdev-is-bridged -m comment --comment "Direct traffic from the VM interface to the security group chain." -j neutron-openvswi-sg-chain`},
		{Rule{Match: Match{PhysIn: "tapc0a350e0-43", PhysBridged: true}, Action: Action{Kind: Jump, Chain: "neutron-openvswi-oc0a350e0-4"}},
			"-m physdev --physdev-in tapc0a350e0-43 --physdev-is-bridged -j neutron-openvswi-oc0a350e0-4"},
		{Rule{Match: Match{PhysIn: "qvbc0a350e0-43"}, Comment: ZoneComment("c0a350e0-43d4"), Action: Action{Kind: CTZone, Zone: 4097}},
			`-m physdev --physdev-in qvbc0a350e0-43 -m comment --comment "Set zone for c0a350e0-43d4" -j CT --zone 4097`},
		{Rule{Match: Match{InIface: "qvbc0a350e0-43"}, Comment: StatelessComment("c0a350e0-43d4"), Action: Action{Kind: CTNoTrack}},
			`-i qvbc0a350e0-43 -m comment --comment "Make c0a350e0-43d4 stateless" -j CT --notrack`},
		{Rule{Match: Match{States: StateRelated | StateEstablished}, Comment: CommentAllowAssoc, Action: Action{Kind: Return}},
			`-m state --state RELATED,ESTABLISHED -m comment --comment "Direct packets associated with a known session to the RETURN chain." -j RETURN`},
		{Rule{Match: Match{States: StateInvalid}, Action: Action{Kind: Drop}}, "-m state --state INVALID -j DROP"},
		{Rule{Match: Match{Src: pfx("0.0.0.0/32"), Dst: pfx("255.255.255.255/32"), Proto: 17, SrcPort: Port(68), DstPort: Port(67)}, Action: Action{Kind: Return}},
			"-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN"},
		{Rule{Match: Match{Src: pfx("::/128"), Dst: pfx("ff02::/16"), Proto: 58, ICMP: ICMPType(131)}, Action: Action{Kind: Return}},
			"-s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type 131 -j RETURN"},
		{Rule{Match: Match{Proto: 58}, Action: Action{Kind: Return}}, "-p ipv6-icmp -j RETURN"},
		{Rule{Match: Match{Src: pfx("10.0.0.5/32"), MACSource: mac}, Comment: CommentPairAllow, Action: Action{Kind: Return}},
			`-s 10.0.0.5/32 -m mac --mac-source fa:16:3e:c3:ea:d5 -m comment --comment "Allow traffic from defined IP/MAC pairs." -j RETURN`},
		{Rule{Match: Match{MACSource: mac}, Action: Action{Kind: Return}}, "-m mac --mac-source fa:16:3e:c3:ea:d5 -j RETURN"},
		{Rule{Match: Match{Src: pfx("0.0.0.0/0"), Proto: 6, DstPort: Port(22)}, Action: Action{Kind: Return}}, "-p tcp -m tcp --dport 22 -j RETURN"},
		{Rule{Match: Match{Src: pfx("10.1.2.3/8"), Proto: 6, DstPort: PortRange{1000, 2000}}, Action: Action{Kind: Return}}, "-s 10.0.0.0/8 -p tcp -m tcp -m multiport --dports 1000:2000 -j RETURN"},
		{Rule{Match: Match{Proto: 136, DstPort: Port(53)}, Action: Action{Kind: Return}}, "-p udplite -m multiport --dports 53 -j RETURN"},
		{Rule{Match: Match{Proto: 136, DstPort: PortRange{53, 54}}, Action: Action{Kind: Return}}, "-p udplite -m multiport --dports 53:54 -j RETURN"},
		{Rule{Match: Match{Proto: 6, DstPort: Port(22), IPSet: "NIPv414c032e9-bc0a-4a7e-9f5b-"}, Action: Action{Kind: Return}},
			"-p tcp -m tcp --dport 22 -m set --match-set NIPv414c032e9-bc0a-4a7e-9f5b- src -j RETURN"},
		{Rule{Match: Match{IPSet: "NIPv6x", IPSetDst: true}, Action: Action{Kind: Return}}, "-m set --match-set NIPv6x dst -j RETURN"},
		{Rule{Match: Match{Proto: 1, ICMP: ICMPMatch{Set: true, Type: 8, Code: 0}}, Action: Action{Kind: Return}}, "-p icmp -m icmp --icmp-type 8/0 -j RETURN"},
		{Rule{Match: Match{Proto: 1, ICMP: ICMPMatch{Set: true, Type: 255, Code: 3}}, Action: Action{Kind: Return}}, "-p icmp -m icmp --icmp-type any -j RETURN"},
		{Rule{Match: Match{Proto: 1}, Action: Action{Kind: Return}}, "-p icmp -j RETURN"},
		{Rule{Match: Match{Proto: 4}, Action: Action{Kind: Return}}, "-p ipencap -j RETURN"},
		{Rule{Match: Match{Proto: 113}, Action: Action{Kind: Return}}, "-p 113 -j RETURN"},
		{Rule{Match: Match{Dst: pfx("2001:db8::5/128"), Proto: 17, SrcPort: Port(547), DstPort: Port(546)}, Action: Action{Kind: Return}},
			"-d 2001:db8::5/128 -p udp -m udp --sport 547 --dport 546 -j RETURN"},
		{Rule{Comment: `a "quoted" \ comment`, Action: Action{Kind: Drop}}, `-m comment --comment "a \"quoted\" \\ comment" -j DROP`},
	}
	for _, c := range cases {
		if got := c.r.Iptables(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		// What it renders, SplitArgs reads as words.
		if _, err := SplitArgs(c.r.Iptables()); err != nil {
			t.Errorf("%s: %v", c.want, err)
		}
	}
	if got := string((&Rule{Action: Action{Kind: Accept}}).AppendIptables([]byte("x "))); got != "x -j ACCEPT" {
		t.Errorf("AppendIptables: %q", got)
	}
}

func TestOriginWithRules(t *testing.T) {
	a, b := SGRuleRef{GroupID: "g", RuleID: "a"}, SGRuleRef{GroupID: "g", Index: 2}
	o := &Origin{Kind: OriginDHCPReply, Rules: []SGRuleRef{a}}
	c := o.WithRules([]SGRuleRef{a, b})
	if len(o.Rules) != 1 || len(c.Rules) != 2 || c.Rules[1] != b || c.Kind != OriginDHCPReply {
		t.Errorf("WithRules: %+v from %+v", c, o)
	}
	if a.String() != "a" || b.String() != "#2 of group g" {
		t.Errorf("String: %s %s", a, b)
	}
}
