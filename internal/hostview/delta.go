package hostview

import (
	"reflect"

	"github.com/moat-sg/moat/internal/store"
)

// Delta turns one view into another: objects to add or replace whole, and
// ids of objects to remove. Applying it prunes what falls out of use
// (View.Prune), so a delta need not name every removal.
type Delta struct {
	Ports           []Port    `json:"ports,omitempty"`
	RemovedPorts    []string  `json:"removed_ports,omitempty"`
	Networks        []Network `json:"networks,omitempty"`
	RemovedNetworks []string  `json:"removed_networks,omitempty"`
	Groups          []Group   `json:"security_groups,omitempty"`
	RemovedGroups   []string  `json:"removed_security_groups,omitempty"`
	Members         []Members `json:"members,omitempty"`
	RemovedMembers  []string  `json:"removed_members,omitempty"`
	// AddressGroups are replaced whole, by themselves: a change of an
	// address group's addresses is this and nothing else.
	AddressGroups        []AddressGroup `json:"address_groups,omitempty"`
	RemovedAddressGroups []string       `json:"removed_address_groups,omitempty"`
	// LogsWhole: Logs are all the host's logs, replacing the view's (in
	// a revision's frames, the first says so and Logs are merged).
	LogsWhole bool  `json:"logs_whole,omitempty"`
	Logs      []Log `json:"logs,omitempty"`
}

// Empty reports whether the delta changes nothing.
func (d *Delta) Empty() bool {
	return len(d.Ports)+len(d.RemovedPorts)+len(d.Networks)+len(d.RemovedNetworks)+
		len(d.Groups)+len(d.RemovedGroups)+len(d.Members)+len(d.RemovedMembers)+
		len(d.AddressGroups)+len(d.RemovedAddressGroups)+len(d.Logs) == 0 && !d.LogsWhole
}

// Diff is the delta from old to new (old nil: everything in new), in id
// order. Objects equal in both are left out.
func Diff(old, new *View) Delta {
	if old == nil {
		old = New(new.Host)
	}
	var d Delta
	d.Ports, d.RemovedPorts = diffMap(old.Ports, new.Ports)
	d.Networks, d.RemovedNetworks = diffMap(old.Networks, new.Networks)
	d.Groups, d.RemovedGroups = diffMap(old.Groups, new.Groups)
	d.Members, d.RemovedMembers = diffMap(old.Members, new.Members)
	d.AddressGroups, d.RemovedAddressGroups = diffMap(old.AddressGroups, new.AddressGroups)
	d.diffLogs(old.Logs, new.Logs)
	return d
}

// diffLogs sends now's logs whole if they differ from old's.
func (d *Delta) diffLogs(old, now map[string]*Log) {
	if len(old) == len(now) && reflect.DeepEqual(old, now) {
		return
	}
	d.LogsWhole = true
	d.Logs = nil
	for _, id := range sortedKeys(now) {
		d.Logs = append(d.Logs, *now[id])
	}
}

func diffMap[V any](old, new map[string]*V) (upserts []V, removed []string) {
	for _, id := range sortedKeys(new) {
		if o, ok := old[id]; !ok || !reflect.DeepEqual(o, new[id]) {
			upserts = append(upserts, *new[id])
		}
	}
	for _, id := range sortedKeys(old) {
		if _, ok := new[id]; !ok {
			removed = append(removed, id)
		}
	}
	return upserts, removed
}

// Apply changes v by d, then prunes it.
func (v *View) Apply(d *Delta) {
	for _, id := range d.RemovedPorts {
		delete(v.Ports, id)
	}
	for _, id := range d.RemovedNetworks {
		delete(v.Networks, id)
	}
	for _, id := range d.RemovedGroups {
		delete(v.Groups, id)
	}
	for _, id := range d.RemovedMembers {
		delete(v.Members, id)
	}
	for _, id := range d.RemovedAddressGroups {
		delete(v.AddressGroups, id)
	}
	for i := range d.Ports {
		p := d.Ports[i]
		v.Ports[p.ID] = &p
	}
	for i := range d.Networks {
		n := d.Networks[i]
		v.Networks[n.ID] = &n
	}
	for i := range d.Groups {
		g := d.Groups[i]
		v.Groups[g.ID] = &g
	}
	for i := range d.Members {
		m := d.Members[i]
		v.Members[m.Group] = &m
	}
	for i := range d.AddressGroups {
		ag := d.AddressGroups[i]
		v.AddressGroups[ag.ID] = &ag
	}
	if d.LogsWhole {
		v.Logs = map[string]*Log{}
		for i := range d.Logs {
			l := d.Logs[i]
			v.Logs[l.ID] = &l
		}
	}
	v.Prune()
}

// Changed names the objects the change log says changed after a revision.
type Changed struct {
	Ports, Networks, Groups, Members, AddressGroups map[string]bool
	// AllGroups: a rule was deleted, and its group is unknown (the log
	// names only the rule): every group counts as changed.
	AllGroups bool
	// Logs: a log object changed (the host's logs are read again).
	Logs bool
}

// NewChanged is an empty set.
func NewChanged() Changed {
	return Changed{Ports: map[string]bool{}, Networks: map[string]bool{}, Groups: map[string]bool{}, Members: map[string]bool{},
		AddressGroups: map[string]bool{}}
}

// Empty reports whether nothing changed.
func (c Changed) Empty() bool {
	return !c.AllGroups && !c.Logs && len(c.Ports)+len(c.Networks)+len(c.Groups)+len(c.Members)+len(c.AddressGroups) == 0
}

// Resume is the delta that brings an agent from the view it had at an
// older revision to now, without knowing that view: what changed since
// (ch) and, because an object may have come into use through a changed
// port or group without changing itself, everything a changed port or
// group refers to. Changed ports that are not in now are removed;
// objects that fell out of use are pruned by Apply. For any older view
// old that differs from now only by the changes in ch,
// old.Apply(Resume(now, ch)) equals now (the tests check this).
func Resume(now *View, ch Changed) Delta {
	ports, nets, groups, members, ags := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for id := range ch.Ports {
		ports[id] = true
	}
	for id := range ch.Networks {
		nets[id] = true
	}
	for id := range ch.Groups {
		groups[id] = true
	}
	if ch.AllGroups {
		for id := range now.Groups {
			groups[id] = true
		}
	}
	for id := range ch.Members {
		members[id] = true
	}
	for id := range ch.AddressGroups {
		ags[id] = true
	}
	// A changed port brings its network and groups; a changed group (or
	// one a changed port brings) its remote groups' members and address
	// groups.
	for id := range ports {
		if p := now.Ports[id]; p != nil {
			nets[p.NetworkID] = true
			for _, g := range p.SecurityGroups {
				groups[g] = true
			}
		}
	}
	for id := range groups {
		if g := now.Groups[id]; g != nil {
			for _, r := range g.Rules {
				if r.RemoteGroupID != "" {
					members[r.RemoteGroupID] = true
				}
				if r.RemoteAddressGroupID != "" {
					ags[r.RemoteAddressGroupID] = true
				}
			}
		}
	}
	var d Delta
	d.Ports, d.RemovedPorts = pick(now.Ports, ports)
	// Networks, groups and members that are not in now are not named:
	// nothing in now refers to them, so Apply prunes them.
	d.Networks, _ = pick(now.Networks, nets)
	d.Groups, _ = pick(now.Groups, groups)
	d.Members, _ = pick(now.Members, members)
	d.AddressGroups, _ = pick(now.AddressGroups, ags)
	// The logs travel whole: which cover the host may change with any
	// change, and the old view's are unknown.
	if !ch.Empty() {
		d.diffLogs(nil, now.Logs)
		d.LogsWhole = true
	}
	return d
}

func pick[V any](now map[string]*V, ids map[string]bool) (upserts []V, removed []string) {
	for _, id := range sortedKeys(ids) {
		if x, ok := now[id]; ok {
			upserts = append(upserts, *x)
		} else {
			removed = append(removed, id)
		}
	}
	return upserts, removed
}

// Weight is a frame's size in units of about one port (~200 bytes of JSON):
// a group weighs one plus its rules, members and address groups one per 8
// addresses, a removal a quarter.
func (d *Delta) Weight() int {
	w := len(d.Ports) + len(d.Networks)
	w += (len(d.RemovedPorts) + len(d.RemovedNetworks) + len(d.RemovedGroups) + len(d.RemovedMembers) +
		len(d.RemovedAddressGroups) + 3) / 4
	for i := range d.Logs {
		w += 1 + len(d.Logs[i].Ports)/8
	}
	for i := range d.Groups {
		w += groupWeight(&d.Groups[i])
	}
	for i := range d.Members {
		w += membersWeight(&d.Members[i])
	}
	for i := range d.AddressGroups {
		w += agWeight(&d.AddressGroups[i])
	}
	return w
}

func groupWeight(g *Group) int      { return 1 + len(g.Rules) }
func membersWeight(m *Members) int  { return 1 + (len(m.IPv4)+len(m.IPv6))/8 }
func agWeight(ag *AddressGroup) int { return 1 + (len(ag.IPv4)+len(ag.IPv6))/8 }

// Split cuts d into frames of at most max weight each (an object is never
// cut: one heavier than max travels alone). The agent applies a revision
// only once its last frame has arrived, so the frames' order does not
// matter for correctness; they go removals first, then networks, groups,
// members, address groups and ports. An empty delta is one empty frame.
func Split(d Delta, max int) []Delta {
	if max < 1 {
		max = 1
	}
	var out []Delta
	cur, w := Delta{}, 0
	flush := func(next int) {
		if w > 0 && w+next > max {
			out = append(out, cur)
			cur, w = Delta{}, 0
		}
		w += next
	}
	// Removals are light: four to a unit.
	removals := []struct {
		ids []string
		dst func(*Delta) *[]string
	}{
		{d.RemovedPorts, func(x *Delta) *[]string { return &x.RemovedPorts }},
		{d.RemovedNetworks, func(x *Delta) *[]string { return &x.RemovedNetworks }},
		{d.RemovedGroups, func(x *Delta) *[]string { return &x.RemovedGroups }},
		{d.RemovedMembers, func(x *Delta) *[]string { return &x.RemovedMembers }},
		{d.RemovedAddressGroups, func(x *Delta) *[]string { return &x.RemovedAddressGroups }},
	}
	for _, r := range removals {
		for i := 0; i < len(r.ids); i += 4 {
			flush(1)
			dst := r.dst(&cur)
			*dst = append(*dst, r.ids[i:min(i+4, len(r.ids))]...)
		}
	}
	cur.LogsWhole = d.LogsWhole
	for i := range d.Logs {
		flush(1 + len(d.Logs[i].Ports)/8)
		cur.Logs = append(cur.Logs, d.Logs[i])
	}
	for _, n := range d.Networks {
		flush(1)
		cur.Networks = append(cur.Networks, n)
	}
	for i := range d.Groups {
		flush(groupWeight(&d.Groups[i]))
		cur.Groups = append(cur.Groups, d.Groups[i])
	}
	for i := range d.Members {
		flush(membersWeight(&d.Members[i]))
		cur.Members = append(cur.Members, d.Members[i])
	}
	for i := range d.AddressGroups {
		flush(agWeight(&d.AddressGroups[i]))
		cur.AddressGroups = append(cur.AddressGroups, d.AddressGroups[i])
	}
	for _, p := range d.Ports {
		flush(1)
		cur.Ports = append(cur.Ports, p)
	}
	out = append(out, cur)
	return out
}

// Merge appends frame f to d (the agent gathers a revision's frames).
func (d *Delta) Merge(f *Delta) {
	d.Ports = append(d.Ports, f.Ports...)
	d.RemovedPorts = append(d.RemovedPorts, f.RemovedPorts...)
	d.Networks = append(d.Networks, f.Networks...)
	d.RemovedNetworks = append(d.RemovedNetworks, f.RemovedNetworks...)
	d.Groups = append(d.Groups, f.Groups...)
	d.RemovedGroups = append(d.RemovedGroups, f.RemovedGroups...)
	d.Members = append(d.Members, f.Members...)
	d.RemovedMembers = append(d.RemovedMembers, f.RemovedMembers...)
	d.AddressGroups = append(d.AddressGroups, f.AddressGroups...)
	d.RemovedAddressGroups = append(d.RemovedAddressGroups, f.RemovedAddressGroups...)
	d.LogsWhole = d.LogsWhole || f.LogsWhole
	d.Logs = append(d.Logs, f.Logs...)
}

// Want is what a stream reads to bring a view up to date with the changes
// ch routed to it: the changed ports (those still bound here come back),
// networks, groups, remote groups' members and address groups the view
// holds or the changes name.
func Want(ch Changed) store.HostPart {
	return store.HostPart{Ports: sortedKeys(ch.Ports), Networks: sortedKeys(ch.Networks), Groups: sortedKeys(ch.Groups),
		Members: sortedKeys(ch.Members), AddressGroups: sortedKeys(ch.AddressGroups)}
}

// Patch is old brought up to date by part, the view of what was read for
// the changes ch (see Want): each changed port is replaced by its new
// version or removed if it is not in part; every network, group and
// members part holds replaces the old one; a changed network, group or
// members part lacks is removed; then what fell out of use is pruned. It
// returns the new view and the delta from old, computed only over what
// ch and part touch (old's other ports are shared, not compared).
func Patch(old, part *View, ch Changed) (*View, Delta) {
	now := old.Clone()
	touched := map[string]bool{}
	for id := range ch.Ports {
		touched[id] = true
		if p := part.Ports[id]; p != nil {
			now.Ports[id] = p
		} else {
			delete(now.Ports, id)
		}
	}
	for id, p := range part.Ports { // a port read though not asked for (none today): keep it
		if !touched[id] {
			touched[id] = true
			now.Ports[id] = p
		}
	}
	replace(now.Networks, part.Networks, ch.Networks)
	replace(now.Groups, part.Groups, ch.Groups)
	if ch.AllGroups {
		for id := range now.Groups {
			if part.Groups[id] == nil {
				delete(now.Groups, id)
			}
		}
	}
	replace(now.Members, part.Members, ch.Members)
	replace(now.AddressGroups, part.AddressGroups, ch.AddressGroups)
	// A part read carries the host's logs whole.
	if part.Logs != nil {
		now.Logs = part.Logs
	}
	now.Prune()
	var d Delta
	oldPorts, nowPorts := map[string]*Port{}, map[string]*Port{}
	for id := range touched {
		if p := old.Ports[id]; p != nil {
			oldPorts[id] = p
		}
		if p := now.Ports[id]; p != nil {
			nowPorts[id] = p
		}
	}
	d.Ports, d.RemovedPorts = diffMap(oldPorts, nowPorts)
	// Networks, groups and members are few next to ports: compared whole
	// (unchanged ones are the same pointers, compared at once).
	d.Networks, d.RemovedNetworks = diffMap(old.Networks, now.Networks)
	d.Groups, d.RemovedGroups = diffMap(old.Groups, now.Groups)
	d.Members, d.RemovedMembers = diffMap(old.Members, now.Members)
	d.AddressGroups, d.RemovedAddressGroups = diffMap(old.AddressGroups, now.AddressGroups)
	d.diffLogs(old.Logs, now.Logs)
	return now, d
}

func replace[V any](now, part map[string]*V, changed map[string]bool) {
	for id, x := range part {
		now[id] = x
	}
	for id := range changed {
		if part[id] == nil {
			delete(now, id)
		}
	}
}
