package agent

import (
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// flowsToForget compares the ruleset in force with the one replacing it
// and returns the conntrack entries that may have been admitted by
// something that is gone: a RETURN rule removed from a port's ingress or
// egress chain, or an address removed from a remote group's ipset. The
// filters are narrow (the port's zone and addresses, the rule's protocol,
// ports and remote), so flows other rules still allow are left alone;
// when a filter is wider than the rule (an ICMP type, an ipset rule),
// deleting a still-allowed entry costs only that the next packet is
// evaluated as new again.
func flowsToForget(old, cur *firewall.Ruleset, addrs map[string][]*net.IPNet) []conntrack.Filter {
	if old == nil || cur == nil {
		return nil
	}
	zones := map[string]int{}
	byChainID := map[string]string{}
	for _, pz := range cur.PortZones {
		zones[pz.PortID] = pz.Zone
		byChainID[hybrid.ChainID(pz.PortID)] = pz.PortID
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
		// next (the compiler hands them out again): skip those cheaply.
		for _, oc := range oldT.Chains {
			dir, port := portChain(oc.Name, byChainID)
			if port == "" {
				continue
			}
			nc, _ := curT.Chain(oc.Name)
			if slices.Equal(oc.Rules, nc.Rules) {
				continue
			}
			for _, line := range removedLines(oc.Rules, nc.Rules) {
				for _, f := range ruleFilters(line, fam, dir, uint16(zones[port]), addrs[port]) {
					add(f)
				}
			}
		}
		// Rules that match a set a member left.
		if len(removed) == 0 {
			continue
		}
		for _, c := range curT.Chains {
			dir, port := portChain(c.Name, byChainID)
			if port == "" {
				continue
			}
			for _, line := range c.Rules {
				if !strings.Contains(line, "--match-set") {
					continue // spares matchSet's split of every rule
				}
				set, side := matchSet(line)
				for _, member := range removed[set] {
					n := parseNet(member)
					if n == nil {
						continue
					}
					for _, f := range ruleFilters(line, fam, dir, uint16(zones[port]), addrs[port]) {
						if side == "src" {
							f.Src = n
						} else {
							f.Dst = n
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

// portChain says whether a chain is a port's ingress ("i") or egress ("o")
// chain and whose.
func portChain(name string, byChainID map[string]string) (string, string) {
	kind, id, ok := hybrid.PortChainOf(name)
	if !ok || !strings.HasPrefix(name, hybrid.Wrap) || (kind != hybrid.ChainIn && kind != hybrid.ChainOut) {
		return "", ""
	}
	return string(kind), byChainID[id]
}

// removedLines is the multiset difference old - cur of RETURN rules.
func removedLines(old, cur []string) []string {
	count := map[string]int{}
	for _, l := range cur {
		count[l]++
	}
	var out []string
	for _, l := range old {
		if count[l] > 0 {
			count[l]--
			continue
		}
		if strings.HasSuffix(l, "-j RETURN") {
			out = append(out, l)
		}
	}
	return out
}

func removedMembers(old, cur []firewall.IPSet) map[string][]string {
	now := map[string]map[string]bool{}
	for _, s := range cur {
		m := map[string]bool{}
		for _, x := range s.Members {
			m[x] = true
		}
		now[s.Name] = m
	}
	out := map[string][]string{}
	for _, s := range old {
		for _, x := range s.Members {
			if !now[s.Name][x] {
				out[s.Name] = append(out[s.Name], x)
			}
		}
	}
	return out
}

// matchSet returns the set and side of a "-m set --match-set NAME src" rule.
func matchSet(line string) (string, string) {
	f := strings.Fields(line)
	for i := 0; i+2 < len(f); i++ {
		if f[i] == "--match-set" {
			return f[i+1], f[i+2]
		}
	}
	return "", ""
}

// ruleFilters turns one rule of a port's chain (as iptables-save prints
// it) into filters for the flows it admits. Rules that are not
// security-group rules (state, DHCP, anti-spoofing) yield none.
func ruleFilters(line string, fam int, dir string, zone uint16, portNets []*net.IPNet) []conntrack.Filter {
	f := strings.Fields(line)
	base := conntrack.Filter{Family: fam, Zone: zone}
	for i := 0; i < len(f); i++ {
		arg := ""
		if i+1 < len(f) {
			arg = f[i+1]
		}
		switch f[i] {
		case "--state", "--ctstate", "--mac-source", "--sport":
			// State, anti-spoofing and DHCP rules: not group rules.
			return nil
		case "-s":
			if dir == "i" {
				base.Src = parseNet(arg)
			}
		case "-d":
			if dir == "o" {
				base.Dst = parseNet(arg)
			}
		case "-p":
			if n, ok := hybrid.ParseIptablesProtocol(arg); ok {
				base.Proto = uint8(n)
			}
		case "--dport", "--dports":
			lo, hi, _ := strings.Cut(arg, ":")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if hi != "" {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 == nil && err2 == nil {
				base.DstPortMin, base.DstPortMax = uint16(a), uint16(b)
			}
		}
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
		if dir == "i" {
			x.Dst = n
		} else {
			x.Src = n
		}
		out = append(out, x)
	}
	return out
}
