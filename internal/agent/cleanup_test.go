package agent

import (
	"net"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
)

// flowsToForget reads what a removed rule matched from the rule as data:
// the table covers rule shapes (a prefix, a port range, per-member rules
// without ipsets, a set member), and built-in rules that go (the DHCPv6
// reply and router advertisements of an address the port lost), which
// stand for no group rule and stop no flow.
func TestFlowsToForget(t *testing.T) {
	ptr := func(n int) *int { return &n }
	const port, remote = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d", "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b"
	rules := []firewall.Rule{
		{ID: "r1", Direction: "ingress", Ethertype: "IPv4", Protocol: "tcp", PortRangeMin: ptr(22), PortRangeMax: ptr(22), RemoteIPPrefix: "10.1.2.3/16"},
		{ID: "r2", Direction: "egress", Ethertype: "IPv4", Protocol: "udp", PortRangeMin: ptr(1000), PortRangeMax: ptr(2000), RemoteIPPrefix: "192.0.2.0/24"},
		{ID: "r3", Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: remote},
	}
	state := func(ipset bool, rules []firewall.Rule, members []string, fixed ...string) *firewall.HostState {
		return &firewall.HostState{
			Options:        firewall.Options{EnableIPSet: ipset, CommentRules: true},
			Ports:          []firewall.Port{{ID: port, MAC: "fa:16:3e:00:00:01", FixedIPs: fixed, SecurityGroups: []string{"g"}}},
			SecurityGroups: []firewall.SecurityGroup{{ID: "g", Rules: rules}},
			GroupMembers:   map[string][]string{remote: members},
			Zones:          map[string]int{port: 4097},
		}
	}
	addrs := map[string][]*net.IPNet{port: {parseNet("10.0.0.5")}}
	without := func(id string) []firewall.Rule {
		return slices.DeleteFunc(slices.Clone(rules), func(r firewall.Rule) bool { return r.ID == id })
	}
	members := []string{"10.0.0.7", "10.0.0.8"}
	for _, c := range []struct {
		name     string
		old, cur *firewall.HostState
		want     []string
	}{
		{"prefix rule removed", state(true, rules, members, "10.0.0.5"), state(true, without("r1"), members, "10.0.0.5"),
			[]string{"ipv4 zone=4097 proto=6 src=10.1.0.0/16 dst=10.0.0.5/32 dport=22-22"}},
		{"port range rule removed", state(true, rules, members, "10.0.0.5"), state(true, without("r2"), members, "10.0.0.5"),
			[]string{"ipv4 zone=4097 proto=17 src=10.0.0.5/32 dst=192.0.2.0/24 dport=1000-2000"}},
		{"set member removed", state(true, rules, members, "10.0.0.5"), state(true, rules, members[:1], "10.0.0.5"),
			[]string{"ipv4 zone=4097 src=10.0.0.8/32 dst=10.0.0.5/32"}},
		{"per-member rule removed", state(false, rules, members, "10.0.0.5"), state(false, rules, members[:1], "10.0.0.5"),
			[]string{"ipv4 zone=4097 src=10.0.0.8/32 dst=10.0.0.5/32"}},
		{"remote group rule removed without ipsets", state(false, rules, members, "10.0.0.5"), state(false, without("r3"), members, "10.0.0.5"),
			[]string{"ipv4 zone=4097 src=10.0.0.7/32 dst=10.0.0.5/32", "ipv4 zone=4097 src=10.0.0.8/32 dst=10.0.0.5/32"}},
		{"built-in rules of a lost address", state(true, rules, members, "10.0.0.5", "2001:db8::5"), state(true, rules, members, "10.0.0.5"), nil},
		{"nothing changed", state(true, rules, members, "10.0.0.5"), state(true, rules, members, "10.0.0.5"), nil},
		{"rule added", state(true, without("r1"), members, "10.0.0.5"), state(true, rules, members, "10.0.0.5"), nil},
		{"rule added, another removed", state(true, without("r1"), members, "10.0.0.5"), state(true, without("r2"), members, "10.0.0.5"),
			[]string{"ipv4 zone=4097 proto=17 src=10.0.0.5/32 dst=192.0.2.0/24 dport=1000-2000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, err := firewall.Compile(c.old)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := firewall.Compile(c.cur)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			reads := 0
			for _, f := range flowsToForget(old, cur, func() map[string][]*net.IPNet { reads++; return addrs }) {
				got = append(got, f.String())
			}
			// The ports' addresses are read once, and only when
			// something was removed.
			if nothingRemoved := c.name == "nothing changed" || c.name == "rule added"; reads > 1 || nothingRemoved && reads != 0 {
				t.Errorf("port addresses read %d times", reads)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("filters %q, want %q", got, c.want)
			}
		})
	}
}

// subsequence is the diff's shortcut for chains that only gained rules:
// a reordering or a duplicate that went is not one.
func TestSubsequence(t *testing.T) {
	for _, c := range []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{nil, []string{"x"}, true},
		{[]string{"a", "c"}, []string{"a", "b", "c"}, true},
		{[]string{"a", "b"}, []string{"b", "a"}, false},
		{[]string{"a", "a"}, []string{"a", "b"}, false},
		{[]string{"a"}, nil, false},
	} {
		if got := subsequence(c.a, c.b); got != c.want {
			t.Errorf("subsequence(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
