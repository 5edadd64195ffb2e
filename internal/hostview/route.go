package hostview

import "github.com/moat-sg/moat/internal/store"

// Lookup is what routing needs to know now about objects the change log
// names only by id: the host each changed port is bound to (absent: the
// port is gone) and the group of each created or updated rule.
type Lookup struct {
	PortHost  map[string]string
	RuleGroup map[string]string
}

// Needs lists the ids Route needs looked up for changes: ports created or
// updated and rules created or updated. Deleted objects need no look-up.
func Needs(changes []store.Change) (ports, rules []string) {
	seenP, seenR := map[string]bool{}, map[string]bool{}
	for _, c := range changes {
		if c.Op == store.OpDelete {
			continue
		}
		switch c.Kind {
		case store.KindPort:
			if !seenP[c.ObjectID] {
				seenP[c.ObjectID] = true
				ports = append(ports, c.ObjectID)
			}
		case store.KindSecurityGroupRule:
			if !seenR[c.ObjectID] {
				seenR[c.ObjectID] = true
				rules = append(rules, c.ObjectID)
			}
		}
	}
	return ports, rules
}

// Route picks out of changes what concerns host, whose agent holds v (the
// view last sent on this stream), and says whether any does. A port
// concerns the host if it is in v or bound to the host now; a network,
// group, remote group's members or address group if v holds them; a rule if v holds it
// or its group. Everything else (subnets, RBAC, quotas, other hosts'
// ports, groups no port here carries) is left out: other hosts' changes
// wake no one here.
//
// With v nil (an agent resuming from an older revision on a new stream:
// the server does not know its view), everything that may have concerned
// the host is kept — every changed port, network, group and remote group,
// and a deleted rule marks every group changed — for Resume to pick from.
func Route(v *View, host string, changes []store.Change, l Lookup) (Changed, bool) {
	ch := NewChanged()
	var ruleGroup map[string]string // v's rules, built on the first deleted rule
	for _, c := range changes {
		id := c.ObjectID
		switch c.Kind {
		case store.KindPort:
			if v == nil || v.Ports[id] != nil || (c.Op != store.OpDelete && l.PortHost[id] == host) {
				ch.Ports[id] = true
			}
		case store.KindNetwork:
			if v == nil || v.Networks[id] != nil {
				ch.Networks[id] = true
			}
		case store.KindSecurityGroup:
			if v == nil || v.Groups[id] != nil {
				ch.Groups[id] = true
			}
		case store.KindSecurityGroupMember:
			if v == nil || v.Members[id] != nil {
				ch.Members[id] = true
			}
		case store.KindAddressGroup:
			// Only hosts whose rules name the address group: its
			// addresses come alone, the rules that name it stay.
			if v == nil || v.AddressGroups[id] != nil {
				ch.AddressGroups[id] = true
			}
		case store.KindLog:
			// Logs are rare admin objects: every host reads its own again.
			ch.Logs = true
		case store.KindSecurityGroupRule:
			if c.Op != store.OpDelete {
				if g, ok := l.RuleGroup[id]; ok && (v == nil || v.Groups[g] != nil) {
					ch.Groups[g] = true
				}
			}
			// A rule updated or deleted may have been in a group v holds;
			// the log does not say which.
			if v == nil {
				if c.Op == store.OpDelete {
					ch.AllGroups = true
				}
				continue
			}
			if ruleGroup == nil {
				ruleGroup = v.ruleGroups()
			}
			if g, ok := ruleGroup[id]; ok {
				ch.Groups[g] = true
			}
		}
	}
	return ch, !ch.Empty()
}

func (v *View) ruleGroups() map[string]string {
	out := map[string]string{}
	for id, g := range v.Groups {
		for _, r := range g.Rules {
			out[r.ID] = id
		}
	}
	return out
}
