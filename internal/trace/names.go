package trace

import (
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Taps lists the tap devices the filter table's rules name (in physdev
// matches), sorted: the ports this ruleset filters or accepts.
func (rs *Ruleset) Taps() []string {
	if rs.taps != nil {
		return rs.taps
	}
	seen := map[string]bool{}
	t := rs.Table("filter")
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		_, local, ok := hybrid.SplitWrap(c.Name)
		if !ok || (local != hybrid.LocalForward && local != hybrid.LocalSG && local != hybrid.LocalInput) {
			continue
		}
		for _, r := range c.Rules {
			k := r.indexKey()
			if (k.kind == keyPhysIn || k.kind == keyPhysOut) && strings.HasPrefix(k.dev, hybrid.TapPrefix) {
				seen[k.dev] = true
			}
		}
	}
	taps := make([]string, 0, len(seen))
	for tap := range seen {
		taps = append(taps, tap)
	}
	sort.Strings(taps)
	rs.taps = taps
	return taps
}

// wraps lists the wrap prefixes of the filter table's port chains (one,
// normally: neutron-openvswi-).
func (rs *Ruleset) wraps() []string {
	if rs.wrapList != nil {
		return rs.wrapList
	}
	seen := map[string]bool{}
	rs.wrapList = []string{}
	if t := rs.Table("filter"); t != nil {
		for _, c := range t.Chains {
			if kind, _, _ := hybrid.PortChainOf(c.Name); kind == hybrid.ChainIn {
				w, _, _ := hybrid.SplitWrap(c.Name)
				if !seen[w] {
					seen[w] = true
					rs.wrapList = append(rs.wrapList, w)
				}
			}
		}
	}
	sort.Strings(rs.wrapList)
	return rs.wrapList
}
