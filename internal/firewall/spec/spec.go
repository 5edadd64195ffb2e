// Package spec reads the scenario files of the Neutron reference harness
// (shared/reference/neutron/render.py: sample.json, edge.json) and turns a
// scenario into the firewall compiler's HostState, sending each rule
// through moat's implementation of Neutron's API processing first, as the
// harness sends it through Neutron's.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/neutron"
)

// File is a spec file: one scenario, or {"scenarios": [...]}.
type File struct {
	Scenarios []*Scenario
}

// Scenario is one scenario of a spec file. Steps are kept as they are;
// moat render compiles the state after every port is prepared.
type Scenario struct {
	Name           string            `json:"name"`
	Notes          string            `json:"notes,omitempty"`
	Options        map[string]any    `json:"options,omitempty"`
	SecurityGroups []SecurityGroup   `json:"security_groups"`
	AddressGroups  []AddressGroup    `json:"address_groups,omitempty"`
	Ports          []Port            `json:"ports"`
	RemotePorts    []Port            `json:"remote_ports,omitempty"`
	Steps          []json.RawMessage `json:"steps,omitempty"`
}

// SecurityGroup is a group as the spec gives it. Rules are POST bodies.
type SecurityGroup struct {
	ID       string           `json:"id"`
	Name     string           `json:"name,omitempty"`
	Stateful *bool            `json:"stateful,omitempty"`
	Rules    []map[string]any `json:"rules"`
}

// AddressGroup is an address group.
type AddressGroup struct {
	ID        string   `json:"id"`
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses"`
}

// Port is a port; fixed_ips may be strings or {"ip_address": ...} objects.
type Port struct {
	ID                  string        `json:"id"`
	MACAddress          string        `json:"mac_address"`
	FixedIPs            []FixedIP     `json:"fixed_ips"`
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs,omitempty"`
	SecurityGroups      []string      `json:"security_groups"`
	PortSecurityEnabled *bool         `json:"port_security_enabled,omitempty"`
	DeviceOwner         string        `json:"device_owner,omitempty"`
	NetworkID           string        `json:"network_id,omitempty"`
}

// FixedIP is a fixed address.
type FixedIP string

// UnmarshalJSON accepts "10.0.0.1" and {"ip_address": "10.0.0.1"}.
func (f *FixedIP) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = FixedIP(s)
		return nil
	}
	var o struct {
		IPAddress string `json:"ip_address"`
	}
	if err := json.Unmarshal(b, &o); err != nil || o.IPAddress == "" {
		return fmt.Errorf("fixed IP must be a string or {\"ip_address\": ...}, not %s", b)
	}
	*f = FixedIP(o.IPAddress)
	return nil
}

// AddressPair is an allowed address pair.
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address,omitempty"`
}

// Parse reads a spec file. A single scenario without a name is called
// defaultName (render.py names it after the file).
func Parse(r io.Reader, defaultName string) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("spec is not a JSON object: %w", err)
	}
	f := &File{}
	if raw, ok := probe["scenarios"]; ok {
		if err := decode(raw, &f.Scenarios); err != nil {
			return nil, fmt.Errorf("scenarios: %w", err)
		}
	} else {
		var sc Scenario
		if err := decode(data, &sc); err != nil {
			return nil, err
		}
		if sc.Name == "" {
			sc.Name = defaultName
		}
		f.Scenarios = []*Scenario{&sc}
	}
	for i, sc := range f.Scenarios {
		if sc == nil {
			return nil, fmt.Errorf("scenario %d is null", i)
		}
		if sc.Name == "" {
			return nil, fmt.Errorf("scenario %d has no name", i)
		}
	}
	return f, nil
}

func decode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber() // keep numbers as the API would receive them
	return d.Decode(v)
}

// Names lists the scenario names in file order.
func (f *File) Names() []string {
	names := make([]string, len(f.Scenarios))
	for i, s := range f.Scenarios {
		names[i] = s.Name
	}
	return names
}

// Scenario picks a scenario by name; with name "" the file must hold
// exactly one.
func (f *File) Scenario(name string) (*Scenario, error) {
	if name == "" {
		if len(f.Scenarios) == 1 {
			return f.Scenarios[0], nil
		}
		return nil, fmt.Errorf("the file holds %d scenarios, choose one: %s", len(f.Scenarios), strings.Join(f.Names(), ", "))
	}
	for _, s := range f.Scenarios {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no scenario %q; the file holds: %s", name, strings.Join(f.Names(), ", "))
}

// Options are the scenario's options over the harness defaults (ipset and
// comments on); overrides win, like render.py --set.
func (s *Scenario) options(overrides map[string]any) (firewall.Options, error) {
	opt := firewall.Options{EnableIPSet: true, CommentRules: true}
	for _, m := range []map[string]any{s.Options, overrides} {
		for k, v := range m {
			b, ok := v.(bool)
			if !ok {
				return opt, fmt.Errorf("option %s must be true or false, not %v", k, v)
			}
			switch k {
			case "enable_ipset":
				opt.EnableIPSet = b
			case "comment_iptables_rules":
				opt.CommentRules = b
			default:
				return opt, fmt.Errorf("unknown option %q (known: enable_ipset, comment_iptables_rules)", k)
			}
		}
	}
	return opt, nil
}

// projectID is the project the harness creates everything in.
const projectID = "a1b2c3d4e5f64a7b8c9d0e1f2a3b4c5d"

// HostState builds the compiler input for a fresh host after every port in
// the scenario's ports list was prepared; steps are not run. overrides
// replace options (nil for none).
func (s *Scenario) HostState(overrides map[string]any) (*firewall.HostState, error) {
	m, err := newModel(s, overrides)
	if err != nil {
		return nil, err
	}
	for _, p := range m.local {
		m.plugged[p.ID] = true
	}
	return m.hostState()
}

// HostStates is HostState(nil) of every scenario, in file order.
func (f *File) HostStates() ([]*firewall.HostState, error) {
	out := make([]*firewall.HostState, 0, len(f.Scenarios))
	for _, s := range f.Scenarios {
		st, err := s.HostState(nil)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// hostPort converts a port, with the harness's defaults.
func hostPort(p Port) (firewall.Port, error) {
	if p.ID == "" {
		return firewall.Port{}, errors.New("port without id")
	}
	fp := firewall.Port{
		ID:                   p.ID,
		MAC:                  p.MACAddress,
		SecurityGroups:       p.SecurityGroups,
		PortSecurityDisabled: p.PortSecurityEnabled != nil && !*p.PortSecurityEnabled,
		DeviceOwner:          p.DeviceOwner,
	}
	if fp.DeviceOwner == "" {
		fp.DeviceOwner = "compute:nova"
	}
	for _, ip := range p.FixedIPs {
		a, err := netip.ParseAddr(string(ip))
		if err != nil {
			return firewall.Port{}, fmt.Errorf("port %s: bad fixed IP %q", p.ID, ip)
		}
		fp.FixedIPs = append(fp.FixedIPs, a.String()) // as str(netaddr.IPAddress)
	}
	for _, ap := range p.AllowedAddressPairs {
		fp.AllowedAddressPairs = append(fp.AllowedAddressPairs, firewall.AddressPair{IP: ap.IPAddress, MAC: ap.MACAddress})
	}
	return fp, nil
}

// storeRule sends a rule body through the API's processing (attribute map,
// converters, Neutron's checks, duplicates) and returns the stored rule.
func storeRule(l *lookup, sgID string, body map[string]any) (firewall.Rule, error) {
	b := make(map[string]any, len(body)+1)
	for k, v := range body {
		if k != "id" { // the harness passes ids through for stable names
			b[k] = v
		}
	}
	b["security_group_id"] = sgID
	ctx := &neutron.Context{ProjectID: projectID, IsAdmin: true}
	reqs, _, err := neutron.SecurityGroupRules.Create(ctx, map[string]any{"security_group_rule": b})
	if err != nil {
		return firewall.Rule{}, err
	}
	r := &reqs[0].Rule
	if err := neutron.NormalizeRule(r); err != nil {
		return firewall.Rule{}, err
	}
	if _, err := neutron.CheckNewRules(l, []*neutron.SecurityGroupRule{r}, false); err != nil {
		return firewall.Rule{}, err
	}
	l.rules[sgID] = append(l.rules[sgID], *r)
	return firewall.RuleFromNeutron(r), nil
}

// lookup answers the API's database questions from the scenario.
type lookup struct {
	groups, ags map[string]bool
	rules       map[string][]neutronRule
}

func (l *lookup) SecurityGroupVisible(id, _ string) (bool, error) { return l.groups[id], nil }
func (l *lookup) AddressGroupVisible(id, _ string) (bool, error)  { return l.ags[id], nil }
func (l *lookup) RuleWithKey(sg string, keys []string) (string, error) {
	for i := range l.rules[sg] {
		for _, k := range keys {
			if neutron.RuleKey(&l.rules[sg][i]) == k {
				return l.rules[sg][i].ID, nil
			}
		}
	}
	return "", nil
}

type neutronRule = neutron.SecurityGroupRule
