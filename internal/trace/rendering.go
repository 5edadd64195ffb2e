package trace

import (
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Rendering is what a dump tells of the options its rules were compiled
// with: Neutron's enable_ipset and comment_iptables_rules (moat agent's
// --no-ipset and --no-comments). Whoever maps a dump's rules to the rules
// that produced them must compile with the same options, or the texts
// differ (a remote-group rule is one rule matching a set, or a rule per
// member; comments are part of the text).
type Rendering struct {
	// IPSets: some rule of a port chain matches an ipset. Port chains
	// that match none come from a host without ipsets, or from one whose
	// rules need none, which compiled without ipsets read the same.
	IPSets bool
	// Comments: sg-fallback's DROP carries Neutron's comment (true, the
	// default of both agents, when the dump has no sg-fallback chain).
	Comments bool
}

// Rendering reads the options the host's rules were compiled with.
func (h *Host) Rendering() Rendering {
	r := Rendering{Comments: true}
	sawFallback := false
	for _, rs := range []*Ruleset{h.IPv4, h.IPv6} {
		t := rs.filter()
		if t == nil {
			continue
		}
		for _, c := range t.Chains {
			_, local, wrapped := hybrid.SplitWrap(c.Name)
			if wrapped && local == hybrid.LocalFallback && !sawFallback {
				sawFallback = true
				r.Comments = false
				for _, x := range c.Rules {
					r.Comments = r.Comments || x.compile().comment != ""
				}
			}
			if kind, _, ok := hybrid.PortChainOf(c.Name); r.IPSets || !ok || kind == hybrid.ChainSpoof {
				continue
			}
			for _, x := range c.Rules {
				// A cheap look at the text first: most rules match no set.
				if strings.Contains(x.Text, "--match-set") && hasSetMatch(x.compile()) {
					r.IPSets = true
					break
				}
			}
		}
	}
	return r
}

func hasSetMatch(cr *compiledRule) bool {
	for _, it := range cr.items {
		if it.kind == itemSet {
			return true
		}
	}
	return false
}

// filter is the ruleset's filter table, nil for none (or no ruleset).
func (rs *Ruleset) filter() *Table {
	if rs == nil {
		return nil
	}
	return rs.Table("filter")
}
