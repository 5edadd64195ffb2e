package spec

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/moat-sg/moat/internal/firewall"
)

// model is the Neutron-side state of a scenario as its steps change it.
type model struct {
	opt     firewall.Options
	lookup  *lookup
	groups  []*group // spec order
	byID    map[string]*group
	ags     []firewall.AddressGroup
	local   []Port // ports on this host (spec order), plugged or not
	remote  []Port // ports on other hosts
	plugged map[string]bool
}

type group struct {
	fw  firewall.SecurityGroup
	ids []string // rule ids as the spec gave them ("" if none)
}

func newModel(s *Scenario, overrides map[string]any) (*model, error) {
	opt, err := s.options(overrides)
	if err != nil {
		return nil, err
	}
	m := &model{
		opt:     opt,
		lookup:  &lookup{groups: map[string]bool{}, ags: map[string]bool{}, rules: map[string][]neutronRule{}},
		byID:    map[string]*group{},
		local:   append([]Port(nil), s.Ports...),
		remote:  append([]Port(nil), s.RemotePorts...),
		plugged: map[string]bool{},
	}
	for _, g := range s.SecurityGroups {
		if g.ID == "" {
			return nil, errors.New("security group without id")
		}
		if m.byID[g.ID] != nil {
			return nil, fmt.Errorf("security group %s listed twice", g.ID)
		}
		mg := &group{fw: firewall.SecurityGroup{ID: g.ID, Stateless: g.Stateful != nil && !*g.Stateful}}
		m.groups = append(m.groups, mg)
		m.byID[g.ID] = mg
		m.lookup.groups[g.ID] = true
	}
	for _, ag := range s.AddressGroups {
		m.lookup.ags[ag.ID] = true
		m.ags = append(m.ags, firewall.AddressGroup{ID: ag.ID, Name: ag.Name, Addresses: ag.Addresses})
	}
	for _, g := range s.SecurityGroups {
		for i, body := range g.Rules {
			if err := m.addRule(g.ID, body); err != nil {
				return nil, fmt.Errorf("security group %s rule %d: %w", g.ID, i, err)
			}
		}
	}
	return m, nil
}

func (m *model) addRule(sgID string, body map[string]any) error {
	g := m.byID[sgID]
	if g == nil {
		return fmt.Errorf("no security group %s", sgID)
	}
	r, err := storeRule(m.lookup, sgID, body)
	if err != nil {
		return err
	}
	id, _ := body["id"].(string)
	r.ID = id
	g.fw.Rules = append(g.fw.Rules, r)
	g.ids = append(g.ids, id)
	return nil
}

func (m *model) deleteRule(sgID, ruleID string) error {
	g := m.byID[sgID]
	if g == nil {
		return fmt.Errorf("no security group %s", sgID)
	}
	for i, id := range g.ids {
		if id != "" && id == ruleID {
			g.fw.Rules = append(g.fw.Rules[:i:i], g.fw.Rules[i+1:]...)
			g.ids = append(g.ids[:i:i], g.ids[i+1:]...)
			nr := m.lookup.rules[sgID]
			m.lookup.rules[sgID] = append(nr[:i:i], nr[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("security group %s has no rule %s", sgID, ruleID)
}

// hostState is the compiler input for the plugged ports.
func (m *model) hostState() (*firewall.HostState, error) {
	hs := &firewall.HostState{Options: m.opt, AddressGroups: m.ags, GroupMembers: map[string][]string{}}
	for _, g := range m.groups {
		g := g.fw
		g.Rules = append([]firewall.Rule(nil), g.Rules...)
		hs.SecurityGroups = append(hs.SecurityGroups, g)
	}
	for _, p := range m.local {
		if !m.plugged[p.ID] {
			continue
		}
		fp, err := hostPort(p)
		if err != nil {
			return nil, err
		}
		hs.Ports = append(hs.Ports, fp)
	}
	// Remote-group members: every port in the group that exists, on this
	// host (plugged or not) or another.
	seen := map[string]map[string]bool{}
	for _, ps := range [][]Port{m.local, m.remote} {
		for _, p := range ps {
			fp, err := hostPort(p)
			if err != nil {
				return nil, err
			}
			addrs := append([]string{}, fp.FixedIPs...)
			for _, ap := range fp.AllowedAddressPairs {
				addrs = append(addrs, ap.IP)
			}
			for _, g := range p.SecurityGroups {
				if seen[g] == nil {
					seen[g] = map[string]bool{}
				}
				for _, a := range addrs {
					if !seen[g][a] {
						seen[g][a] = true
						hs.GroupMembers[g] = append(hs.GroupMembers[g], a)
					}
				}
			}
		}
	}
	return hs, nil
}

// Dump is the state at one "dump" step.
type Dump struct {
	Label string
	State *firewall.HostState
}

// step is one entry of a scenario's steps.
type step struct {
	Op            string          `json:"op"`
	Label         string          `json:"label"`
	Ports         []string        `json:"ports"`
	SecurityGroup string          `json:"security_group"`
	Rule          map[string]any  `json:"rule"`
	RuleID        string          `json:"rule_id"`
	Port          json.RawMessage `json:"port"`
	PortID        string          `json:"port_id"`
}

// Dumps runs the scenario's steps (by default: prepare every port, dump
// "prepared") and returns the state at each dump. Conntrack zones are not
// part of the model: the caller carries them from one compile to the next.
func (s *Scenario) Dumps(overrides map[string]any) ([]Dump, error) {
	m, err := newModel(s, overrides)
	if err != nil {
		return nil, err
	}
	raw := s.Steps
	if len(raw) == 0 {
		raw = []json.RawMessage{[]byte(`{"op":"prepare"}`), []byte(`{"op":"dump","label":"prepared"}`)}
	}
	var dumps []Dump
	for i, r := range raw {
		var st step
		if err := decode(r, &st); err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		if err := m.apply(&st, &dumps); err != nil {
			return nil, fmt.Errorf("step %d (%s): %w", i, st.Op, err)
		}
	}
	return dumps, nil
}

func (m *model) apply(st *step, dumps *[]Dump) error {
	all := func() []string {
		ids := make([]string, len(m.local))
		for i, p := range m.local {
			ids[i] = p.ID
		}
		return ids
	}
	switch st.Op {
	case "prepare":
		ids := st.Ports
		if len(ids) == 0 {
			ids = all()
		}
		for _, id := range ids {
			if m.localIndex(id) < 0 {
				return fmt.Errorf("no port %s", id)
			}
			m.plugged[id] = true
		}
	case "remove":
		ids := st.Ports
		if len(ids) == 0 {
			ids = all()
		}
		for _, id := range ids {
			delete(m.plugged, id) // unplugged, still a member of its groups
		}
	case "delete_port":
		for _, id := range st.Ports {
			i := m.localIndex(id)
			if i < 0 {
				return fmt.Errorf("no port %s", id)
			}
			delete(m.plugged, id)
			m.local = append(m.local[:i:i], m.local[i+1:]...)
		}
	case "add_rule":
		return m.addRule(st.SecurityGroup, st.Rule)
	case "delete_rule":
		return m.deleteRule(st.SecurityGroup, st.RuleID)
	case "update_port":
		var upd map[string]json.RawMessage
		if err := json.Unmarshal(st.Port, &upd); err != nil {
			return err
		}
		var id string
		if err := json.Unmarshal(upd["id"], &id); err != nil {
			return errors.New("update_port needs the port id")
		}
		i := m.localIndex(id)
		if i < 0 {
			return fmt.Errorf("no port %s", id)
		}
		cur, err := json.Marshal(m.local[i])
		if err != nil {
			return err
		}
		var merged map[string]json.RawMessage
		if err := json.Unmarshal(cur, &merged); err != nil {
			return err
		}
		for k, v := range upd {
			merged[k] = v
		}
		b, err := json.Marshal(merged)
		if err != nil {
			return err
		}
		var p Port
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		m.local[i] = p
	case "add_remote_port":
		var p Port
		if err := json.Unmarshal(st.Port, &p); err != nil {
			return err
		}
		m.remote = append(m.remote, p)
	case "remove_remote_port":
		for i, p := range m.remote {
			if p.ID == st.PortID {
				m.remote = append(m.remote[:i:i], m.remote[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("no remote port %s", st.PortID)
	case "dump":
		hs, err := m.hostState()
		if err != nil {
			return err
		}
		label := st.Label
		if label == "" {
			label = "dump"
		}
		*dumps = append(*dumps, Dump{Label: label, State: hs})
	default:
		return fmt.Errorf("unknown op %q", st.Op)
	}
	return nil
}

func (m *model) localIndex(id string) int {
	for i, p := range m.local {
		if p.ID == id {
			return i
		}
	}
	return -1
}
