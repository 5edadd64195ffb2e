package firewall

import (
	"fmt"
	"strings"
)

// Provenance: which security group rule produced which line of a port's
// chains. The compiler's hot path knows nothing of it; RuleSources renders
// the port's group rules again, one rule at a time, with the same functions
// the compiler uses, so that it costs nothing unless somebody asks (moat
// trace and moat explain do, for one port).

// RuleSource is one security group rule behind a line.
type RuleSource struct {
	GroupID string
	// RuleID is Rule.ID: "" when whoever built the HostState did not set
	// it.
	RuleID string
	// Index is the rule's position in its group's Rules.
	Index int
	Rule  Rule
}

// LineKey names one rule of a port chain: the family's table, the chain and
// the rule text exactly as iptables-save prints it after "-A <chain> ".
type LineKey struct {
	IPv6  bool
	Chain string
	Rule  string
}

// RuleSources maps every line the port's i and o chains hold for security
// group rules to the rules that produce it, in the order the port carries
// its groups and the groups hold their rules. Several rules can produce the
// same line (the chain holds it once); the first is the one the compiler
// kept. Lines the compiler adds by itself (DHCP, RA, anti-spoofing,
// conntrack state, fallback) are not in the map; a group rule whose text
// equals one of them is (the chain holds that line once).
//
// Without ipsets, a remote-group or address-group rule produces one line
// per address, each mapped to the rule. The result is empty for a port
// whose chains the compiler does not build (port security disabled,
// network:* owners); an unknown port is an error.
func RuleSources(s *HostState, portID string) (map[LineKey][]RuleSource, error) {
	var port *Port
	for i := range s.Ports {
		if s.Ports[i].ID == portID {
			port = &s.Ports[i]
			break
		}
	}
	if port == nil {
		return nil, fmt.Errorf("no port %s in the host state", portID)
	}
	res := map[LineKey][]RuleSource{}
	if kindOf(port) != filtered {
		return res, nil
	}
	groups := make(map[string]*SecurityGroup, len(s.SecurityGroups))
	for i := range s.SecurityGroups {
		groups[s.SecurityGroups[i].ID] = &s.SecurityGroups[i]
	}
	own := map[string]bool{}
	for _, f := range port.FixedIPs {
		own[f] = true
	}
	chain := [2]string{portChainName('i', port.ID), portChainName('o', port.ID)}
	addrs := map[addrKey]*addressList{}
	lookup := func(key addrKey) (*addressList, error) {
		if l := addrs[key]; l != nil {
			return l, nil
		}
		var raw []string
		if key.addressGroup {
			for _, ag := range s.AddressGroups {
				if ag.ID == key.id {
					raw = ag.Addresses
				}
			}
		} else {
			raw = s.GroupMembers[key.id]
		}
		l, err := parseAddresses(raw)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", key.id, err)
		}
		addrs[key] = l
		return l, nil
	}
	seen := map[string]bool{}
	for _, gid := range port.SecurityGroups {
		g := groups[gid]
		if g == nil || seen[gid] {
			continue
		}
		seen[gid] = true
		for i := range g.Rules {
			r := &g.Rules[i]
			gl, err := renderRule(r, s.Options)
			if err != nil {
				return nil, fmt.Errorf("security group %s rule %d: %w", g.ID, i, err)
			}
			fam, dir := v4, in
			if r.Ethertype == IPv6 {
				fam = v6
			}
			if r.Direction == Egress {
				dir = out
			}
			src := RuleSource{GroupID: g.ID, RuleID: r.ID, Index: i, Rule: *r}
			add := func(text string) {
				k := LineKey{IPv6: fam == v6, Chain: chain[dir], Rule: text}
				res[k] = append(res[k], src)
			}
			if gl.exp == nil {
				add(gl.text)
				continue
			}
			x := gl.exp
			l, err := lookup(addrKey{addressGroup: !x.remoteGroup, id: x.id})
			if err != nil {
				return nil, err
			}
			for _, a := range l.byFamily[fam] {
				if x.remoteGroup && own[a.raw] {
					continue
				}
				add(join(prefixArg(x.flag, a.prefix), x.rest).text)
			}
		}
	}
	return res, nil
}

// String describes the source for people: "group G rule R" (or the index
// when the rule has no id).
func (s RuleSource) String() string {
	var b strings.Builder
	b.WriteString("security group " + s.GroupID + " rule ")
	if s.RuleID != "" {
		b.WriteString(s.RuleID)
	} else {
		fmt.Fprintf(&b, "#%d", s.Index)
	}
	return b.String()
}
