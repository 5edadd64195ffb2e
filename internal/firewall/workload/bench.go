// Package workload builds the host states the firewall compiler is
// measured on: the workload of the Neutron reference benchmark
// (shared/reference/neutron/bench.py, build_spec), so that moat's numbers
// compare with Neutron's.
package workload

import (
	"crypto/sha1"
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
)

// Bench is the benchmark topology for n ports: 11 security groups of 10
// rules ("common" on every port, port i also in app[i%10]); per group 5
// member ports on other hosts; one IPv4 address per port; ipsets and
// comments on, as Neutron's defaults.
type Bench struct {
	State  *firewall.HostState
	Common string // id of the group every port carries
	Apps   []string
}

// NewBench builds the topology.
func NewBench(n int) *Bench {
	b := &Bench{State: &firewall.HostState{
		Options:      firewall.Options{EnableIPSet: true, CommentRules: true},
		GroupMembers: map[string][]string{},
	}}
	names := []string{"common"}
	for i := 0; i < 10; i++ {
		names = append(names, fmt.Sprintf("app%d", i))
	}
	for _, name := range names {
		id := uuid5("sg", name)
		port := func(p int) (*int, *int) { return &p, &p }
		r := func(dir, eth, proto string) firewall.Rule {
			return firewall.Rule{Direction: dir, Ethertype: eth, Protocol: proto}
		}
		rules := []firewall.Rule{
			r(firewall.Egress, firewall.IPv4, ""),
			r(firewall.Egress, firewall.IPv6, ""),
			r(firewall.Ingress, firewall.IPv4, "tcp"),
			r(firewall.Ingress, firewall.IPv4, "tcp"),
			r(firewall.Ingress, firewall.IPv4, "tcp"),
			r(firewall.Ingress, firewall.IPv4, "icmp"),
			r(firewall.Ingress, firewall.IPv4, "udp"),
			r(firewall.Ingress, firewall.IPv4, "tcp"),
			r(firewall.Ingress, firewall.IPv4, ""),
			r(firewall.Ingress, firewall.IPv6, "tcp"),
		}
		rules[2].PortRangeMin, rules[2].PortRangeMax = port(22)
		rules[2].RemoteIPPrefix, rules[2].NormalizedCIDR = "0.0.0.0/0", "0.0.0.0/0"
		rules[3].PortRangeMin, rules[3].PortRangeMax = port(80)
		if name != "common" {
			// bench.py makes the apps' rules differ from common's so that
			// de-duplication does not hide them.
			var k int
			fmt.Sscanf(name, "app%d", &k)
			rules[3].PortRangeMin, rules[3].PortRangeMax = port(9000 + k)
		}
		rules[4].PortRangeMin, rules[4].PortRangeMax = port(443)
		rules[6].PortRangeMin, rules[6].PortRangeMax = port(53)
		rules[6].RemoteIPPrefix, rules[6].NormalizedCIDR = "10.0.0.0/8", "10.0.0.0/8"
		lo, hi := 8000, 8080
		rules[7].PortRangeMin, rules[7].PortRangeMax = &lo, &hi
		rules[8].RemoteGroupID = id
		rules[9].PortRangeMin, rules[9].PortRangeMax = port(22)
		rules[9].RemoteGroupID = id
		b.State.SecurityGroups = append(b.State.SecurityGroups, firewall.SecurityGroup{ID: id, Rules: rules})
		if name == "common" {
			b.Common = id
		} else {
			b.Apps = append(b.Apps, id)
		}
	}
	for i := 0; i < n; i++ {
		last := i & 0xff
		if last == 0 {
			last = 254
		}
		p := firewall.Port{
			ID:             uuid5("port", fmt.Sprint(i)),
			MAC:            fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff),
			FixedIPs:       []string{fmt.Sprintf("10.%d.%d.%d", 1+(i>>16), (i>>8)&0xff, last)},
			SecurityGroups: []string{b.Common, b.Apps[i%10]},
			DeviceOwner:    "compute:nova",
		}
		b.State.Ports = append(b.State.Ports, p)
		for _, g := range p.SecurityGroups {
			b.State.GroupMembers[g] = append(b.State.GroupMembers[g], p.FixedIPs...)
		}
	}
	for j, g := range b.State.SecurityGroups {
		for k := 0; k < 5; k++ {
			b.State.GroupMembers[g.ID] = append(b.State.GroupMembers[g.ID], fmt.Sprintf("172.16.%d.%d", j, k+1))
		}
	}
	return b
}

// AddRule adds bench.py's change rule (ingress IPv4 tcp to port) to a
// group, in place.
func (b *Bench) AddRule(groupID string, port int) {
	for i := range b.State.SecurityGroups {
		g := &b.State.SecurityGroups[i]
		if g.ID != groupID {
			continue
		}
		// Copy, so that states handed out earlier keep their rules.
		g.Rules = append(g.Rules[:len(g.Rules):len(g.Rules)], firewall.Rule{
			Direction: firewall.Ingress, Ethertype: firewall.IPv4, Protocol: "tcp",
			PortRangeMin: &port, PortRangeMax: &port,
		})
		return
	}
	panic("workload: no group " + groupID)
}

// uuid5 is Python's uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)), the
// ids bench.py uses.
func uuid5(parts ...string) string {
	ns := []byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns)
	h.Write([]byte(strings.Join(parts, "/")))
	s := h.Sum(nil)[:16]
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
