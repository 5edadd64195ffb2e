package firewall

import (
	"fmt"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Provenance: which security group rule produced which line of a port's
// chains. The compiler's hot path knows nothing of it beyond the position
// of each rendered line's rule; RuleSources renders the ports' groups
// again with the compiler's own pieces, so that it costs nothing unless
// somebody asks (moat trace and moat explain do).

// RuleSource is one security group rule behind a line.
type RuleSource struct {
	GroupID string
	// RuleID is Rule.ID: "" when whoever built the HostState did not set
	// it.
	RuleID string
	// Index is the rule's position in its group's Rules.
	Index int
}

// LineKey names one rule of a port chain: the family's table, the chain and
// the rule text exactly as iptables-save prints it after "-A <chain> ".
type LineKey struct {
	IPv6  bool
	Chain string
	Rule  string
}

// RuleSources maps every line the ports' i and o chains hold for security
// group rules to the rules that produce it, in the order the port carries
// its groups and the groups hold their rules. Several rules can produce the
// same line (the chain holds it once); the first is the one the compiler
// kept. Lines the compiler adds by itself (DHCP, RA, anti-spoofing,
// conntrack state, fallback) are not in the map; a group rule whose text
// equals one of them is (the chain holds that line once).
//
// Without ipsets, a remote-group or address-group rule produces one line
// per address, each mapped to the rule. The groups are rendered and the
// address lists read once for all the ports asked about; a port listed
// twice counts once. Ports whose chains the compiler does not build (port
// security disabled, network:* owners) add nothing; an unknown port is an
// error, and so is a port Compile would reject for itself or for a group
// it carries (a bad id, a group listed twice or with a bad rule).
func RuleSources(s *HostState, portIDs ...string) (map[LineKey][]RuleSource, error) {
	ports := make(map[string]*Port, len(s.Ports))
	for i := range s.Ports {
		if p := &s.Ports[i]; ports[p.ID] == nil {
			ports[p.ID] = p
		}
	}
	for _, id := range portIDs {
		if ports[id] == nil {
			return nil, fmt.Errorf("no port %s in the host state", id)
		}
	}
	c := NewCompiler()
	c.gen++
	k := c.newCompilation(s)
	res := map[LineKey][]RuleSource{}
	done := make(map[string]bool, len(portIDs))
	for _, id := range portIDs {
		if done[id] {
			continue
		}
		done[id] = true
		if err := k.ruleSources(ports[id], res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ruleSources adds one port's lines to res.
func (k *compilation) ruleSources(port *Port, res map[LineKey][]RuleSource) error {
	if kindOf(port) != filtered {
		return nil
	}
	if err := checkPort(port); err != nil {
		return fmt.Errorf("port %s: %w", quoteShort(port.ID), err)
	}
	chain := [2]string{hybrid.PortChain(hybrid.ChainIn, port.ID), hybrid.PortChain(hybrid.ChainOut, port.ID)}
	seen := map[string]bool{}
	for _, gid := range port.SecurityGroups {
		if seen[gid] {
			continue
		}
		seen[gid] = true
		ge, err := k.group(gid)
		if err != nil {
			return err
		}
		if ge == nil {
			continue
		}
		// Rendered groups keep no rule ids: take them from the state.
		g := k.groups[gid]
		for fam := range ge.r.lines {
			for dir := range ge.r.lines[fam] {
				for j, gl := range ge.r.lines[fam][dir] {
					i := ge.r.index[fam][dir][j]
					src := RuleSource{GroupID: g.ID, RuleID: g.Rules[i].ID, Index: i}
					add := func(l line) {
						key := LineKey{IPv6: fam == v6, Chain: chain[dir], Rule: l.text}
						res[key] = append(res[key], src)
					}
					if gl.exp == nil {
						add(gl.line)
					} else {
						k.expand(gl.exp, fam, port.FixedIPs, add)
					}
				}
			}
		}
	}
	return nil
}
