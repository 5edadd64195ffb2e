package firewall

import (
	"fmt"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Provenance: which security group rule produced which line of a port's
// chains. Every rule the compiler emits carries its origin
// (Chain.Specs()[i].Origin); these read it back by line.

// RuleSource is one security group rule behind a line.
type RuleSource = hybrid.SGRuleRef

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
// per address, each mapped to the rule. A port listed twice counts once.
// Ports whose chains the compiler does not build (port security disabled,
// network:* owners) add nothing; an unknown port is an error, and so is a
// port Compile rejects (a bad id, a group listed twice or with a bad rule,
// a name it would share).
func RuleSources(s *HostState, portIDs ...string) (map[LineKey][]RuleSource, error) {
	known := make(map[string]bool, len(s.Ports))
	for i := range s.Ports {
		known[s.Ports[i].ID] = true
	}
	for _, id := range portIDs {
		if !known[id] {
			return nil, fmt.Errorf("no port %s in the host state", id)
		}
	}
	rs, err := Compile(s)
	if err != nil {
		return nil, err
	}
	for _, r := range rs.Rejected {
		for _, id := range portIDs {
			if r.PortID == id {
				return nil, fmt.Errorf("port %s: %s", quoteShort(id), r.Reason)
			}
		}
	}
	return rs.RuleSources(portIDs...), nil
}

// RuleSources is the package's RuleSources on a compiled ruleset: the
// lines of the i and o chains of the ports with these ids (or id
// prefixes of 10 characters) that come from security group rules.
func (rs *Ruleset) RuleSources(portIDs ...string) map[LineKey][]RuleSource {
	res := map[LineKey][]RuleSource{}
	done := map[string]bool{}
	for _, id := range portIDs {
		for _, kind := range []hybrid.ChainKind{hybrid.ChainIn, hybrid.ChainOut} {
			name := hybrid.PortChain(kind, id)
			if done[name] {
				continue
			}
			done[name] = true
			for fam, t := range []*Tables{&rs.IPv4, &rs.IPv6} {
				c, ok := t.Filter.Chain(name)
				if !ok {
					continue
				}
				for i, spec := range c.Specs() {
					if spec != nil && len(spec.Origin.Rules) > 0 {
						key := LineKey{IPv6: fam == v6, Chain: name, Rule: c.Rules[i]}
						res[key] = append(res[key], spec.Origin.Rules...)
					}
				}
			}
		}
	}
	return res
}
