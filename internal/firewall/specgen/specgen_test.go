package specgen

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		cfg := Config{Fixes: seed%2 == 0, Steps: seed%4 == 0}
		a, _ := json.Marshal(Generate(seed, "x", cfg))
		b, _ := json.Marshal(Generate(seed, "x", cfg))
		if string(a) != string(b) {
			t.Fatalf("seed %d: two different scenarios", seed)
		}
		if err := Validate(Generate(seed, "x", cfg)); err != nil {
			t.Errorf("seed %d: invalid scenario: %v", seed, err)
		}
	}
}

// TestGeneratorCoverage checks that a corpus-sized run exercises every
// kind of input the parity tests are meant to cover.
func TestGeneratorCoverage(t *testing.T) {
	seen := map[string]bool{}
	mark := func(cond bool, what string) {
		if cond {
			seen[what] = true
		}
	}
	for i := 0; i < 48; i++ {
		cfg := Config{Fixes: i%2 == 1, Steps: i%4 == 3}
		sc := Generate(uint64(1+i), "x", cfg)
		mark(sc.Options["enable_ipset"] == true, "ipset on")
		mark(sc.Options["enable_ipset"] == false, "ipset off")
		mark(sc.Options["comment_iptables_rules"] == false, "comments off")
		mark(len(sc.AddressGroups) > 0, "address groups")
		mark(len(sc.Steps) > 0, "steps")
		for _, g := range sc.SecurityGroups {
			mark(!*g.Stateful, "stateless group")
			mark(len(g.Rules) == 0, "group without rules")
			for _, r := range g.Rules {
				p := fmt.Sprint(r["protocol"])
				for _, want := range []string{"ipip", "4", "94", "ip", "0", "icmp", "icmpv6", "58", "udplite", "sctp", "136", "132", "IPIP"} {
					mark(p == want, "protocol "+want)
				}
				_, isNum := r["protocol"].(int)
				mark(isNum, "protocol as JSON number")
				mark(r["remote_group_id"] != nil, "remote group")
				mark(r["remote_address_group_id"] != nil, "remote address group")
				pfx, _ := r["remote_ip_prefix"].(string)
				mark(strings.HasSuffix(pfx, "/0"), "prefix /0")
				mark(strings.Contains(pfx, ":"), "IPv6 prefix")
				mark(pfx != "" && !strings.Contains(pfx, "/"), "bare prefix")
				mark(r["port_range_min"] == 255, "ICMP type 255")
				mark(r["port_range_min"] != nil && r["port_range_max"] != nil && r["port_range_min"] != r["port_range_max"], "port range")
			}
		}
		for _, p := range sc.Ports {
			mark(p.PortSecurityEnabled != nil && !*p.PortSecurityEnabled, "port security off")
			mark(strings.HasPrefix(p.DeviceOwner, "network:"), "trusted port")
			mark(strings.HasPrefix(p.DeviceOwner, "neutron:"), "neutron-owned port")
			mark(len(p.FixedIPs) == 0, "port without fixed IPs")
			mark(len(p.SecurityGroups) > 1, "port with several groups")
			for _, ip := range p.FixedIPs {
				mark(strings.Contains(string(ip), ":"), "IPv6 fixed IP")
			}
			for _, ap := range p.AllowedAddressPairs {
				mark(ap.MACAddress == "", "pair without MAC")
				mark(ap.MACAddress != "", "pair with MAC")
				mark(strings.HasSuffix(ap.IPAddress, "/0"), "pair /0")
			}
		}
	}
	for _, want := range []string{
		"ipset on", "ipset off", "comments off", "address groups", "steps", "stateless group",
		"group without rules", "protocol ipip", "protocol 4", "protocol 94", "protocol ip", "protocol 0",
		"protocol icmp", "protocol icmpv6", "protocol 58", "protocol udplite", "protocol sctp",
		"protocol 136", "protocol 132", "protocol IPIP", "protocol as JSON number", "remote group",
		"remote address group", "prefix /0", "IPv6 prefix", "bare prefix", "ICMP type 255", "port range",
		"port security off", "trusted port", "neutron-owned port", "port without fixed IPs",
		"port with several groups", "IPv6 fixed IP", "pair without MAC", "pair with MAC", "pair /0",
	} {
		if !seen[want] {
			t.Errorf("48 scenarios never generate: %s", want)
		}
	}
}
