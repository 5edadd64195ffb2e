package agent

import (
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// flowsToForget compares the ruleset in force with the one replacing it
// and returns the conntrack entries that may have been admitted by
// something that is gone: a security group rule's RETURN removed from a
// port's ingress or egress chain, or an address removed from a remote
// group's ipset. It reads the rules as data (Chain.Specs()): what each
// matches and which group rules it stands for. The filters are narrow (the
// port's zone and addresses, the rule's protocol, ports and remote), so
// flows other rules still allow are left alone; when a filter is wider
// than the rule (an ICMP type, an ipset rule), deleting a still-allowed
// entry costs only that the next packet is evaluated as new again.
// ownAddrs gives the ports' own addresses; it is called only when
// something was removed (a sync that adds rules needs none).
func flowsToForget(old, cur *firewall.Ruleset, ownAddrs func() map[string][]*net.IPNet) []conntrack.Filter {
	if old == nil || cur == nil {
		return nil
	}
	var addrs map[string][]*net.IPNet
	addrsOf := func(port string) []*net.IPNet {
		if addrs == nil {
			addrs = ownAddrs()
		}
		return addrs[port]
	}
	// The ports by chain id, built only once a port chain changed: most
	// syncs change a few hundred chains of tens of thousands, or none.
	var zones map[string]int
	var byChainID map[string]string
	port := func(name string) (hybrid.ChainKind, string) {
		if byChainID == nil {
			zones, byChainID = make(map[string]int, len(cur.PortZones)), make(map[string]string, len(cur.PortZones))
			for _, pz := range cur.PortZones {
				zones[pz.PortID] = pz.Zone
				byChainID[hybrid.ChainID(pz.PortID)] = pz.PortID
			}
		}
		return portChain(name, byChainID)
	}
	var out []conntrack.Filter
	seen := map[string]bool{}
	add := func(f conntrack.Filter) {
		if k := f.String(); !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	// Removed members of remote-group sets (both families' sets).
	removed := removedMembers(old.IPSets, cur.IPSets)
	for _, fam := range []int{4, 6} {
		oldT, curT := &old.IPv4.Filter, &cur.IPv4.Filter
		if fam == 6 {
			oldT, curT = &old.IPv6.Filter, &cur.IPv6.Filter
		}
		// Removed rules. Most chains are unchanged from one sync to the
		// next (the compiler hands them out again, same array): skip
		// those cheaply, walking both name-sorted lists side by side.
		changedChains(oldT.Chains, curT.Chains, func(oc, nc firewall.Chain) {
			removed := removedRules(oc, nc)
			if len(removed) == 0 {
				return
			}
			dir, p := port(oc.Name)
			if p == "" {
				return
			}
			for _, r := range removed {
				for _, f := range ruleFilters(r, fam, dir, uint16(zones[p]), addrsOf(p)) {
					add(f)
				}
			}
		})
		// Rules that match a set a member left.
		if len(removed) == 0 {
			continue
		}
		for _, c := range curT.Chains {
			dir, p := port(c.Name)
			if p == "" {
				continue
			}
			for _, r := range c.Specs() {
				m := &r.Match
				if m.IPSet == "" {
					continue
				}
				for _, member := range removed[m.IPSet] {
					n := parseNet(member)
					if n == nil {
						continue
					}
					for _, f := range ruleFilters(r, fam, dir, uint16(zones[p]), addrsOf(p)) {
						if m.IPSetDst {
							f.Dst = n
						} else {
							f.Src = n
						}
						add(f)
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// changedChains calls fn for every chain of old whose rules differ in
// cur (a chain cur lacks compares with an empty one). Both are sorted by
// name, as a Table's chains are.
func changedChains(old, cur []firewall.Chain, fn func(oc, nc firewall.Chain)) {
	j := 0
	for _, oc := range old {
		for j < len(cur) && cur[j].Name < oc.Name {
			j++
		}
		var nc firewall.Chain
		if j < len(cur) && cur[j].Name == oc.Name {
			nc = cur[j]
		}
		if !oc.Equal(nc) {
			fn(oc, nc)
		}
	}
}

// portChain says whether a chain is a port's ingress or egress chain and
// whose.
func portChain(name string, byChainID map[string]string) (hybrid.ChainKind, string) {
	kind, id, ok := hybrid.PortChainOf(name)
	if !ok || !strings.HasPrefix(name, hybrid.Wrap) || (kind != hybrid.ChainIn && kind != hybrid.ChainOut) {
		return 0, ""
	}
	return kind, byChainID[id]
}

// removedRules is the multiset difference old - cur of a chain's RETURN
// rules (by text, which is what the kernel holds).
func removedRules(old, cur firewall.Chain) []*hybrid.Rule {
	if subsequence(old.Rules, cur.Rules) {
		return nil // only additions (a rule added to a group): no map, no specs
	}
	count := map[string]int{}
	for _, l := range cur.Rules {
		count[l]++
	}
	var out []*hybrid.Rule
	var specs []*hybrid.Rule // read only when a rule is gone: a chain's specs are built on first use, and a rule added removes none
	for i, l := range old.Rules {
		if count[l] > 0 {
			count[l]--
			continue
		}
		if specs == nil {
			specs = old.Specs()
		}
		if i < len(specs) && specs[i] != nil && specs[i].Action.Kind == hybrid.Return {
			out = append(out, specs[i])
		}
	}
	return out
}

// subsequence reports whether a's lines all appear in b, in order.
func subsequence(a, b []string) bool {
	j := 0
	for _, l := range a {
		for j < len(b) && b[j] != l {
			j++
		}
		if j == len(b) {
			return false
		}
		j++
	}
	return true
}

func removedMembers(old, cur []firewall.IPSet) map[string][]string {
	now := make(map[string][]string, len(cur))
	for _, s := range cur {
		now[s.Name] = s.Members
	}
	out := map[string][]string{}
	for _, s := range old {
		members := now[s.Name]
		if slices.Equal(s.Members, members) {
			continue // most sets did not change: no map for them
		}
		in := make(map[string]bool, len(members))
		for _, x := range members {
			in[x] = true
		}
		for _, x := range s.Members {
			if !in[x] {
				out[s.Name] = append(out[s.Name], x)
			}
		}
	}
	return out
}

// ruleFilters turns one rule of a port's chain into filters for the flows
// it admits. Rules that stand for no security group rule (state, DHCP,
// anti-spoofing, neighbour discovery) yield none.
func ruleFilters(r *hybrid.Rule, fam int, dir hybrid.ChainKind, zone uint16, portNets []*net.IPNet) []conntrack.Filter {
	if r.Origin == nil || len(r.Origin.Rules) == 0 {
		return nil
	}
	m := &r.Match
	base := conntrack.Filter{Family: fam, Zone: zone, Proto: m.Proto}
	// The remote side: the source of what comes in, the destination of
	// what goes out.
	if dir == hybrid.ChainIn {
		base.Src = prefixNet(m.Src)
	} else {
		base.Dst = prefixNet(m.Dst)
	}
	if !m.DstPort.Any() {
		base.DstPortMin, base.DstPortMax = m.DstPort.Min, m.DstPort.Max
	}
	// Pin the port's own side: ingress flows go to it, egress flows come
	// from it. A port without addresses (anti-spoofing off) is left open.
	if len(portNets) == 0 {
		return []conntrack.Filter{base}
	}
	var out []conntrack.Filter
	for _, n := range portNets {
		if (n.IP.To4() != nil) != (fam == 4) {
			continue
		}
		x := base
		if dir == hybrid.ChainIn {
			x.Dst = n
		} else {
			x.Src = n
		}
		out = append(out, x)
	}
	return out
}

// prefixNet is a rule's prefix as a conntrack filter's, nil for any.
func prefixNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() || p.Bits() == 0 {
		return nil
	}
	return parseNet(p.Masked().String())
}
