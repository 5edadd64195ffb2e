package firewall_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Ids of the rejection tests.
const (
	rjWeb   = "5e000000-0000-4000-8000-000000000001" // carried by portA, portB
	rjOther = "5e000000-0000-4000-8000-000000000002" // carried by portC
	rjDB    = "d0000000-0000-4000-8000-000000000001" // a remote group
	rjDB2   = "d0000000-0000-4000-8000-000000000002" // shares rjDB's 24-character set name
	rjPortA = "aaaa0000-0000-4000-8000-000000000001"
	rjPortB = "bbbb0000-0000-4000-8000-000000000002"
	rjPortC = "cccc0000-0000-4000-8000-000000000003"
)

func rjPort(id, mac, ip string, groups ...string) firewall.Port {
	return firewall.Port{ID: id, MAC: mac, FixedIPs: []string{ip}, SecurityGroups: groups, DeviceOwner: "compute:nova"}
}

func intp(v int) *int { return &v }

// rjState is a host of three good ports: A and B in group web, C in group
// other; web allows tcp/22 and everything from the remote group db.
func rjState() *firewall.HostState {
	return &firewall.HostState{
		Options: firewall.Options{EnableIPSet: true, CommentRules: true},
		Ports: []firewall.Port{
			rjPort(rjPortA, "fa:16:3e:00:00:0a", "10.0.0.10", rjWeb),
			rjPort(rjPortB, "fa:16:3e:00:00:0b", "10.0.0.11", rjWeb),
			rjPort(rjPortC, "fa:16:3e:00:00:0c", "10.0.0.12", rjOther),
		},
		SecurityGroups: []firewall.SecurityGroup{
			{ID: rjWeb, Rules: []firewall.Rule{
				{Direction: firewall.Ingress, Ethertype: firewall.IPv4, Protocol: "tcp", PortRangeMin: intp(22), PortRangeMax: intp(22)},
				{Direction: firewall.Ingress, Ethertype: firewall.IPv4, RemoteGroupID: rjDB},
			}},
			{ID: rjOther, Rules: []firewall.Rule{
				{Direction: firewall.Egress, Ethertype: firewall.IPv4},
			}},
		},
		GroupMembers: map[string][]string{rjDB: {"10.9.0.1", "10.9.0.2"}},
	}
}

func webRules(s *firewall.HostState) *[]firewall.Rule { return &s.SecurityGroups[0].Rules }

// TestBadObjectsAreRejectedAlone: a bad port, a group the compiler cannot
// render, ports or groups whose names would clash, each reject exactly
// the ports they concern (issue 9, findings 3 and 8). Compile does not
// fail; everything else is what a compile without the rejected ports
// gives; a rejected port has no rule but, when its tap name is its own,
// the two that drop its traffic.
func TestBadObjectsAreRejectedAlone(t *testing.T) {
	injection := "p\" -j ACCEPT\n-A FORWARD -j ACCEPT"
	tests := []struct {
		name   string
		change func(s *firewall.HostState)
		// rejected port id -> part of the reason
		rejected map[string]string
		// ports whose taps get DROP rules
		drops []string
		// warning expected (part of it)
		warning string
	}{
		{name: "injected port id", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort(injection, "fa:16:3e:00:00:01", "10.0.0.1", rjWeb))
		}, rejected: map[string]string{injection: `character '"' is not allowed`}},
		{name: "port id too long", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort(rjPortA+"x", "fa:16:3e:00:00:01", "10.0.0.1", rjWeb))
		}, rejected: map[string]string{rjPortA + "x": "longer than 36"}},
		{name: "port id naming a fixed chain", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort("g-chain", "fa:16:3e:00:00:01", "10.0.0.1", rjWeb))
		}, rejected: map[string]string{"g-chain": "neutron-openvswi-sg-chain, a chain every host has"}, drops: []string{"g-chain"}},
		{name: "bad MAC", change: func(s *firewall.HostState) { s.Ports[1].MAC = "fa:16:3e:zz:00:0b" },
			rejected: map[string]string{rjPortB: `bad MAC "fa:16:3e:zz:00:0b"`}, drops: []string{rjPortB}},
		{name: "MAC of a port without filtering", change: func(s *firewall.HostState) {
			s.Ports[1].MAC, s.Ports[1].PortSecurityDisabled = "nope", true
		}, rejected: map[string]string{rjPortB: `bad MAC "nope"`}, drops: []string{rjPortB}},
		{name: "bad fixed IP", change: func(s *firewall.HostState) { s.Ports[1].FixedIPs = []string{"10.0.0.300"} },
			rejected: map[string]string{rjPortB: `bad fixed IP "10.0.0.300"`}, drops: []string{rjPortB}},
		{name: "bad allowed address pair", change: func(s *firewall.HostState) {
			s.Ports[1].AllowedAddressPairs = []firewall.AddressPair{{IP: "10.0.0.0/33"}}
		}, rejected: map[string]string{rjPortB: `bad allowed address pair "10.0.0.0/33"`}, drops: []string{rjPortB}},
		{name: "bad allowed address pair MAC", change: func(s *firewall.HostState) {
			s.Ports[1].AllowedAddressPairs = []firewall.AddressPair{{IP: "10.0.0.99", MAC: "x -j ACCEPT"}}
		}, rejected: map[string]string{rjPortB: `bad allowed address pair MAC "x -j ACCEPT"`}, drops: []string{rjPortB}},
		{name: "bad group id on a port", change: func(s *firewall.HostState) {
			s.Ports[1].SecurityGroups = []string{"web src -j ACCEPT"}
		}, rejected: map[string]string{rjPortB: "bad security group id"}, drops: []string{rjPortB}},
		{name: "port listed twice", change: func(s *firewall.HostState) { s.Ports = append(s.Ports, s.Ports[1]) },
			rejected: map[string]string{rjPortB: "listed twice"}, drops: []string{rjPortB}},
		{name: "unknown protocol", change: func(s *firewall.HostState) { (*webRules(s))[0].Protocol = "tcp -j ACCEPT" },
			rejected: map[string]string{rjPortA: "rule 0: unknown protocol", rjPortB: "rule 0: unknown protocol"}, drops: []string{rjPortA, rjPortB}},
		{name: "port out of range", change: func(s *firewall.HostState) { (*webRules(s))[0].PortRangeMax = intp(70000) },
			rejected: map[string]string{rjPortA: "port_range_max 70000 is not in 1..65535", rjPortB: "70000"}, drops: []string{rjPortA, rjPortB}},
		{name: "range upside down", change: func(s *firewall.HostState) { (*webRules(s))[0].PortRangeMin = intp(80) },
			rejected: map[string]string{rjPortA: "port_range_min 80 is above port_range_max 22", rjPortB: "above"}, drops: []string{rjPortA, rjPortB}},
		{name: "max without min", change: func(s *firewall.HostState) {
			(*webRules(s))[0].PortRangeMin = nil
			(*webRules(s))[0].ID = "r-22"
		}, rejected: map[string]string{rjPortA: `rule "r-22": port_range_max 22 without port_range_min`, rjPortB: "without"}, drops: []string{rjPortA, rjPortB}},
		{name: "ICMP type out of range", change: func(s *firewall.HostState) {
			(*webRules(s))[0].Protocol, (*webRules(s))[0].PortRangeMin = "icmp", intp(300)
		}, rejected: map[string]string{rjPortA: "ICMP type 300 is not in 0..255", rjPortB: "300"}, drops: []string{rjPortA, rjPortB}},
		{name: "ports on a protocol without ports", change: func(s *firewall.HostState) { (*webRules(s))[0].Protocol = "gre" },
			rejected: map[string]string{rjPortA: `protocol "gre" takes no port range`, rjPortB: "gre"}, drops: []string{rjPortA, rjPortB}},
		{name: "injected remote group id", change: func(s *firewall.HostState) {
			(*webRules(s))[1].RemoteGroupID = "x src -j ACCEPT\n-A FORWARD"
		}, rejected: map[string]string{rjPortA: "bad remote_group_id", rjPortB: "bad remote_group_id"}, drops: []string{rjPortA, rjPortB}},
		{name: "injected remote address group id", change: func(s *firewall.HostState) {
			(*webRules(s))[1].RemoteGroupID, (*webRules(s))[1].RemoteAddressGroupID = "", "ag src -j ACCEPT"
		}, rejected: map[string]string{rjPortA: "bad remote_address_group_id", rjPortB: "bad remote_address_group_id"}, drops: []string{rjPortA, rjPortB}},
		{name: "bad remote prefix", change: func(s *firewall.HostState) {
			(*webRules(s))[0].RemoteIPPrefix, (*webRules(s))[0].NormalizedCIDR = "10.0.0.0/8 -j ACCEPT", ""
		}, rejected: map[string]string{rjPortA: "bad remote_ip_prefix", rjPortB: "bad remote_ip_prefix"}, drops: []string{rjPortA, rjPortB}},
		{name: "bad direction", change: func(s *firewall.HostState) { (*webRules(s))[0].Direction = "in" },
			rejected: map[string]string{rjPortA: `bad direction "in"`, rjPortB: "bad direction"}, drops: []string{rjPortA, rjPortB}},
		{name: "group listed twice", change: func(s *firewall.HostState) {
			s.SecurityGroups = append(s.SecurityGroups, firewall.SecurityGroup{ID: rjOther})
		}, rejected: map[string]string{rjPortC: "listed twice"}, drops: []string{rjPortC}},
		{name: "chain clash: lower id keeps the chains", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort(rjPortA[:10]+"ff-4000-8000-000000000009", "fa:16:3e:00:00:09", "10.0.0.9", rjOther))
		}, rejected: map[string]string{rjPortA[:10] + "ff-4000-8000-000000000009": "chains neutron-openvswi-iaaaa0000-0 would also be those of port " + rjPortA},
			drops: []string{rjPortA[:10] + "ff-4000-8000-000000000009"}},
		{name: "chain clash: the installed port keeps the chains", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort(rjPortA[:10]+"ff-4000-8000-000000000009", "fa:16:3e:00:00:09", "10.0.0.9", rjOther))
			s.Installed = map[string]bool{rjPortA[:10] + "ff-4000-8000-000000000009": true}
		}, rejected: map[string]string{rjPortA: "would also be those of port " + rjPortA[:10] + "ff-4000-8000-000000000009"}, drops: []string{rjPortA}},
		{name: "chain clash: the older port keeps the chains", change: func(s *firewall.HostState) {
			s.Ports = append(s.Ports, rjPort(rjPortA[:10]+"ff-4000-8000-000000000009", "fa:16:3e:00:00:09", "10.0.0.9", rjOther))
			s.Ports[0].CreatedAt = time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
			s.Ports[3].CreatedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		}, rejected: map[string]string{rjPortA: "would also be those of port " + rjPortA[:10] + "ff-4000-8000-000000000009"}, drops: []string{rjPortA}},
		{name: "device clash with a trusted port", change: func(s *firewall.HostState) {
			p := rjPort(rjPortA[:11]+"f-4000-8000-000000000009", "fa:16:3e:00:00:09", "10.0.0.9")
			p.DeviceOwner = "network:dhcp"
			s.Ports = append(s.Ports, p)
		}, rejected: map[string]string{rjPortA[:11] + "f-4000-8000-000000000009": "device names tapaaaa0000-00 would also be those of port " + rjPortA}},
		{name: "ipset clash", change: func(s *firewall.HostState) {
			s.SecurityGroups[1].Rules = append(s.SecurityGroups[1].Rules,
				firewall.Rule{Direction: firewall.Ingress, Ethertype: firewall.IPv4, RemoteGroupID: rjDB2})
			s.GroupMembers[rjDB2] = []string{"10.8.0.1"}
		}, rejected: map[string]string{
			rjPortA: "its rules name remote group " + rjDB + ", whose ipset NIPv4d0000000-0000-4000-8000- would also hold the addresses of remote group " + rjDB2,
			rjPortB: "remote group " + rjDB2,
			rjPortC: "its rules name remote group " + rjDB2 + ", whose ipset NIPv4d0000000-0000-4000-8000- would also hold the addresses of remote group " + rjDB,
		}, drops: []string{rjPortA, rjPortB, rjPortC}},
		{name: "port whose stored row does not read", change: func(s *firewall.HostState) {
			s.Ports[1].Unreadable = "stored port does not read: binding:profile is not a JSON object"
		}, rejected: map[string]string{rjPortB: "stored port does not read: binding:profile is not a JSON object"}, drops: []string{rjPortB}},
		{name: "member address that does not parse", change: func(s *firewall.HostState) {
			s.GroupMembers[rjDB] = append(s.GroupMembers[rjDB], "10.9.0.300", "10.9.0.3 -j ACCEPT")
		}, warning: `security group ` + rjDB + `: left out addresses that do not parse: "10.9.0.3 -j ACCEPT", "10.9.0.300"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ipset := range []bool{true, false} {
				st := rjState()
				st.Options.EnableIPSet = ipset
				tt.change(st)
				if !ipset && strings.HasPrefix(tt.name, "ipset clash") {
					tt.rejected, tt.drops = nil, nil // without sets, nothing is shared
				}
				rs, err := firewall.Compile(st)
				if err != nil {
					t.Fatalf("ipset %v: Compile failed for the whole host: %v", ipset, err)
				}
				var got []string
				for _, r := range rs.Rejected {
					got = append(got, r.PortID)
					if want, ok := tt.rejected[r.PortID]; !ok || !strings.Contains(r.Reason, want) {
						t.Errorf("ipset %v: port %q rejected for %q, want a reason containing %q", ipset, r.PortID, r.Reason, want)
					}
				}
				if len(got) != len(tt.rejected) {
					t.Errorf("ipset %v: rejected %q, want %d ports", ipset, got, len(tt.rejected))
				}
				if tt.warning != "" && !slices.ContainsFunc(rs.Warnings, func(w string) bool { return strings.Contains(w, tt.warning) }) {
					t.Errorf("ipset %v: warnings %q, want one containing %q", ipset, rs.Warnings, tt.warning)
				}
				// The rest of the host is what it is without the rejected
				// ports, plus the DROP rules.
				without := rjState()
				without.Options.EnableIPSet = ipset
				tt.change(without)
				without.Ports = slices.DeleteFunc(without.Ports, func(p firewall.Port) bool {
					_, bad := tt.rejected[p.ID]
					return bad
				})
				if strings.HasPrefix(tt.name, "group listed twice") {
					without.SecurityGroups = without.SecurityGroups[:2]
				}
				want, err := firewall.Compile(without)
				if err != nil || len(want.Rejected) > 0 {
					t.Fatalf("compile without the bad ports: %v %v", err, want.Rejected)
				}
				gotSave, wantSave := saveOf(t, rs), saveOf(t, want)
				var drops []string
				for _, id := range tt.drops {
					tap := hybrid.TapName(id)
					for _, dir := range []string{"out", "in"} {
						drops = append(drops, "-A neutron-openvswi-FORWARD -m physdev --physdev-"+dir+" "+tap+
							` --physdev-is-bridged -m comment --comment "Drop all packets of a port whose rules cannot be built." -j DROP`)
					}
				}
				var extra []string
				for _, l := range strings.Split(gotSave, "\n") {
					if strings.Contains(l, "-j DROP") && strings.Contains(l, "cannot be built") {
						extra = append(extra, l)
					}
				}
				// Both families drop.
				wantDrops := append(slices.Clone(drops), drops...)
				slices.Sort(wantDrops)
				slices.Sort(extra)
				if !slices.Equal(extra, wantDrops) {
					t.Errorf("ipset %v: DROP rules\n%s\nwant\n%s", ipset, strings.Join(extra, "\n"), strings.Join(wantDrops, "\n"))
				}
				stripped := strings.Join(slices.DeleteFunc(strings.Split(gotSave, "\n"), func(l string) bool {
					return slices.Contains(drops, l)
				}), "\n")
				if stripped != wantSave {
					t.Errorf("ipset %v: ruleset differs from the one without the rejected ports:\n%s", ipset, lineDiff(wantSave, stripped))
				}
				for _, l := range strings.Split(gotSave, "\n") {
					if strings.HasPrefix(l, "-A FORWARD") && !strings.HasPrefix(l, "-A FORWARD -j neutron-") {
						t.Errorf("ipset %v: line %q in FORWARD", ipset, l)
					}
				}
			}
		})
	}
}

// saveOf is the ruleset as iptables-save and ipset save print it.
func saveOf(t *testing.T, rs *firewall.Ruleset) string {
	t.Helper()
	var b bytes.Buffer
	for _, tables := range []*firewall.Tables{&rs.IPv4, &rs.IPv6} {
		if err := firewall.WriteSave(&b, &tables.Filter, &tables.Raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := firewall.WriteIPSetSave(&b, rs.IPSets); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestRejectedPortRecovers: with one Compiler, as an agent uses it, a port
// whose data turns bad is rejected, and gets its rules back (the same as a
// fresh compile's) once the data is fixed; the other ports' chains are
// not recompiled meanwhile.
func TestRejectedPortRecovers(t *testing.T) {
	c := firewall.NewCompiler()
	st := rjState()
	compile := func(wantRejected ...string) *firewall.Ruleset {
		t.Helper()
		rs, err := c.Compile(st)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs.Rejected {
			got = append(got, r.PortID)
		}
		if !slices.Equal(got, wantRejected) {
			t.Fatalf("rejected %v, want %v", got, wantRejected)
		}
		fresh, _ := firewall.Compile(st)
		assertSameRuleset(t, rs, fresh)
		st.Zones = rs.ZoneAssignments
		return rs
	}
	first := compile()
	st.Ports[1].MAC = "bad"
	compile(rjPortB)
	if got := c.Stats(); got.PortsRecompiled != 0 || got.PortsRebuilt != 1 {
		t.Errorf("bad MAC: stats %+v, want one port rebuilt and none recompiled", got)
	}
	compile(rjPortB) // the error is kept, not recomputed
	if got := c.Stats(); got.PortsRebuilt != 0 {
		t.Errorf("unchanged bad port rebuilt again: %+v", got)
	}
	st.Ports[1].MAC = "fa:16:3e:00:00:0b"
	back := compile()
	if saveOf(t, back) != saveOf(t, first) {
		t.Errorf("after the fix the host differs from before:\n%s", lineDiff(saveOf(t, first), saveOf(t, back)))
	}
	// A group's bad rule, then fixed.
	(*webRules(st))[0].Protocol = "bogus"
	compile(rjPortA, rjPortB)
	(*webRules(st))[0].Protocol = "tcp"
	if back := compile(); saveOf(t, back) != saveOf(t, first) {
		t.Errorf("after the group's fix the host differs from before:\n%s", lineDiff(saveOf(t, first), saveOf(t, back)))
	}
}
