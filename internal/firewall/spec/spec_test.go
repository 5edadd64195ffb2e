package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const refDir = "../testdata/neutron"

func load(t *testing.T, file, scenario string) *Scenario {
	t.Helper()
	f, err := os.Open(filepath.Join(refDir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sf, err := Parse(f, "x")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sf.Scenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestStoredRulesMatchNeutron compares the rules the loader stores with the
// rules Neutron's API stored for the same scenarios (the harness's
// summary.json): protocol spelling, port ranges, prefixes and
// normalized_cidr.
func TestStoredRulesMatchNeutron(t *testing.T) {
	for _, c := range []struct{ file, scenario string }{
		{"sample.json", "basic"}, {"sample.json", "ipip_remote_group"},
		{"edge.json", "edge_rules"}, {"edge.json", "proto_names"}, {"edge.json", "stateless"},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			// summary.json holds the rules after all steps.
			dumps, err := load(t, c.file, c.scenario).Dumps(nil)
			if err != nil {
				t.Fatal(err)
			}
			st := dumps[len(dumps)-1].State
			b, err := os.ReadFile(filepath.Join(refDir, "golden", c.scenario, "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			var summary struct {
				StoredRules map[string][]struct {
					Direction, Ethertype                     string
					Protocol, RemoteIPPrefix, NormalizedCIDR *string
					RemoteGroupID, RemoteAddressGroupID      *string
					PortRangeMin, PortRangeMax               *int
				} `json:"stored_rules"`
			}
			if err := json.Unmarshal([]byte(strings.NewReplacer(
				`"remote_ip_prefix"`, `"RemoteIPPrefix"`, `"normalized_cidr"`, `"NormalizedCIDR"`,
				`"remote_group_id"`, `"RemoteGroupID"`, `"remote_address_group_id"`, `"RemoteAddressGroupID"`,
				`"port_range_min"`, `"PortRangeMin"`, `"port_range_max"`, `"PortRangeMax"`,
			).Replace(string(b))), &summary); err != nil {
				t.Fatal(err)
			}
			for _, g := range st.SecurityGroups {
				want := summary.StoredRules[g.ID]
				if len(want) != len(g.Rules) {
					t.Fatalf("group %s: %d rules, Neutron stored %d", g.ID, len(g.Rules), len(want))
				}
				for i, r := range g.Rules {
					w := want[i]
					got := []string{r.Direction, r.Ethertype, r.Protocol, r.RemoteIPPrefix, r.NormalizedCIDR, r.RemoteGroupID, r.RemoteAddressGroupID, intp(r.PortRangeMin), intp(r.PortRangeMax)}
					exp := []string{w.Direction, w.Ethertype, str(w.Protocol), str(w.RemoteIPPrefix), str(w.NormalizedCIDR), str(w.RemoteGroupID), str(w.RemoteAddressGroupID), intp(w.PortRangeMin), intp(w.PortRangeMax)}
					if strings.Join(got, "|") != strings.Join(exp, "|") {
						t.Errorf("group %s rule %d: stored %q, Neutron stored %q", g.ID, i, got, exp)
					}
				}
			}
		})
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func intp(p *int) string {
	if p == nil {
		return "-"
	}
	b, _ := json.Marshal(*p)
	return string(b)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, defaultName string
		names                 []string
		wantErr               string
	}{
		{name: "single scenario takes the file name", in: `{"security_groups":[],"ports":[]}`, defaultName: "edge", names: []string{"edge"}},
		{name: "single named", in: `{"name":"a","security_groups":[],"ports":[]}`, names: []string{"a"}},
		{name: "several", in: `{"scenarios":[{"name":"a"},{"name":"b"}]}`, names: []string{"a", "b"}},
		{name: "nameless in a list", in: `{"scenarios":[{}]}`, wantErr: "scenario 0 has no name"},
		{name: "null scenario", in: `{"scenarios":[null]}`, wantErr: "scenario 0 is null"},
		{name: "not JSON", in: `{`, wantErr: "not a JSON object"},
		{name: "fixed IP object", in: `{"name":"a","ports":[{"id":"p","fixed_ips":[{"ip_address":"10.0.0.1"}]}]}`, names: []string{"a"}},
		{name: "bad fixed IP", in: `{"name":"a","ports":[{"id":"p","fixed_ips":[3]}]}`, wantErr: "fixed IP must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tt.in), tt.defaultName)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(f.Names(), ","); got != strings.Join(tt.names, ",") {
				t.Errorf("names %s, want %v", got, tt.names)
			}
		})
	}
}

// TestDumpsFollowSteps: the ipip_remote_group scenario adds a rule, then
// unplugs port B, which stays a member of its group.
func TestDumpsFollowSteps(t *testing.T) {
	dumps, err := load(t, "sample.json", "ipip_remote_group").Dumps(nil)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, d := range dumps {
		labels = append(labels, d.Label)
	}
	if got := strings.Join(labels, ","); got != "prepared,rule_added,port_b_removed" {
		t.Fatalf("dumps %s", got)
	}
	web := "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b"
	rules := func(d Dump) int {
		for _, g := range d.State.SecurityGroups {
			if g.ID == web {
				return len(g.Rules)
			}
		}
		return -1
	}
	if rules(dumps[0]) != 5 || rules(dumps[1]) != 6 {
		t.Errorf("web has %d then %d rules, want 5 then 6", rules(dumps[0]), rules(dumps[1]))
	}
	if len(dumps[2].State.Ports) != 1 {
		t.Errorf("%d ports plugged after the removal, want 1", len(dumps[2].State.Ports))
	}
	if !contains(dumps[2].State.GroupMembers[web], "192.168.1.13") {
		t.Errorf("the unplugged port left its group: %v", dumps[2].State.GroupMembers[web])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
