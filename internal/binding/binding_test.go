package binding

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

func opt[T any](v T) neutron.Opt[T] { return neutron.Opt[T]{V: v, Set: true} }

func TestPortSecurity(t *testing.T) {
	cases := []struct {
		requested neutron.Opt[bool]
		network   bool
		owner     string
		want      bool
	}{
		{neutron.Opt[bool]{}, true, "compute:nova", true},
		{neutron.Opt[bool]{}, false, "compute:nova", false},
		{opt(false), true, "", false},
		{opt(true), false, "", true},
		// Trusted ports have none, whatever the request says.
		{opt(true), true, neutron.DeviceOwnerDHCP, false},
		{neutron.Opt[bool]{}, true, "network:router_interface", false},
		// Only the network: prefix is trusted.
		{neutron.Opt[bool]{}, true, "networking:thing", true},
	}
	for _, c := range cases {
		if got := PortSecurity(c.requested, c.network, c.owner); got != c.want {
			t.Errorf("PortSecurity(%+v, %v, %q) = %v, want %v", c.requested, c.network, c.owner, got, c.want)
		}
	}
}

func TestNewPortBinding(t *testing.T) {
	n := &neutron.Network{ID: "net1", PortSecurityEnabled: true}
	cases := []struct {
		name    string
		req     neutron.PortRequest
		vifType string
		details map[string]any
		psec    bool
		profile map[string]any
	}{
		{"unbound", neutron.PortRequest{HostID: opt("")}, neutron.VIFTypeUnbound, map[string]any{}, true, map[string]any{}},
		{"bound to a host", neutron.PortRequest{HostID: opt("compute1"), Profile: opt(map[string]any{"k": "v"})},
			neutron.VIFTypeOVS, map[string]any{"connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": true,
				"datapath_type": "system", "bridge_name": "br-int"}, true, map[string]any{"k": "v"}},
		{"no port security", neutron.PortRequest{PortSecurityEnabled: opt(false)}, neutron.VIFTypeUnbound, map[string]any{}, false, map[string]any{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.ProjectID = "p1"
			p := NewPort("port1", &c.req, n)
			if p.ID != "port1" || p.ProjectID != "p1" || p.NetworkID != "net1" || p.Status != neutron.PortStatusDown {
				t.Fatalf("port %+v", p)
			}
			if p.VIFType != c.vifType || !reflect.DeepEqual(VIFDetails(p.VIFType), c.details) ||
				p.PortSecurityEnabled != c.psec || !reflect.DeepEqual(p.Profile, c.profile) {
				t.Fatalf("vif %s %v psec %v profile %v, want %s %v %v %v",
					p.VIFType, VIFDetails(p.VIFType), p.PortSecurityEnabled, p.Profile, c.vifType, c.details, c.psec, c.profile)
			}
		})
	}
}

func TestUpdateRebinds(t *testing.T) {
	base := neutron.Port{HostID: "h1", VIFType: neutron.VIFTypeOVS, Status: neutron.PortStatusActive, Name: "a",
		Profile: map[string]any{"x": "y"}, PortSecurityEnabled: true}
	cases := []struct {
		name                  string
		req                   neutron.PortRequest
		host, vifType, status string
		name2                 string
		psec                  bool
		profileKept           bool
	}{
		{"same host keeps the binding and status", neutron.PortRequest{HostID: opt("h1")}, "h1", neutron.VIFTypeOVS, neutron.PortStatusActive, "a", true, true},
		{"a new host rebinds, DOWN until wired", neutron.PortRequest{HostID: opt("h2")}, "h2", neutron.VIFTypeOVS, neutron.PortStatusDown, "a", true, true},
		{"no host unbinds", neutron.PortRequest{HostID: opt("")}, "", neutron.VIFTypeUnbound, neutron.PortStatusDown, "a", true, true},
		{"other attributes", neutron.PortRequest{Name: opt("b"), PortSecurityEnabled: opt(false), Profile: opt(map[string]any{})},
			"h1", neutron.VIFTypeOVS, neutron.PortStatusActive, "b", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := base
			Update(&p, &c.req)
			if p.HostID != c.host || p.VIFType != c.vifType || p.Status != c.status || p.Name != c.name2 || p.PortSecurityEnabled != c.psec {
				t.Fatalf("got %+v", p)
			}
			if _, kept := p.Profile["x"]; kept != c.profileKept {
				t.Fatalf("profile %v", p.Profile)
			}
		})
	}
}

// fakeGroups answers GroupStore from maps.
type fakeGroups struct {
	groups   map[string]*neutron.SecurityGroup // usable by the port's project
	defaults map[string]string
	err      error
}

func (f *fakeGroups) UsableGroup(_ context.Context, id, _ string) (*neutron.SecurityGroup, error) {
	return f.groups[id], f.err
}

func (f *fakeGroups) DefaultSecurityGroupID(_ context.Context, project string) (string, error) {
	return f.defaults[project], f.err
}

func errType(err error) string {
	var ne *neutron.Error
	if errors.As(err, &ne) {
		return ne.Type + ": " + ne.Message
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestSecureNew(t *testing.T) {
	st := &fakeGroups{
		groups: map[string]*neutron.SecurityGroup{
			"sg-b": {ID: "sg-b", Stateful: true}, "sg-a": {ID: "sg-a", Stateful: true}, "sg-less": {ID: "sg-less", Stateful: false},
		},
		defaults: map[string]string{"p1": "sg-default"},
	}
	pair := func(ip, mac string) neutron.AddressPair { return neutron.AddressPair{IPAddress: ip, MACAddress: mac} }
	cases := []struct {
		name   string
		psec   bool
		owner  string
		req    neutron.PortRequest
		groups []string
		pairs  []neutron.AddressPair
		err    string
	}{
		{"default group", true, "compute:nova", neutron.PortRequest{}, []string{"sg-default"}, []neutron.AddressPair{}, ""},
		{"no port security, no default group", false, "", neutron.PortRequest{}, []string{}, []neutron.AddressPair{}, ""},
		{"trusted owner, no default group", true, "network:router_interface", neutron.PortRequest{}, []string{}, []neutron.AddressPair{}, ""},
		{"requested groups, sorted", true, "", neutron.PortRequest{SecurityGroups: opt([]string{"sg-b", "sg-a"})}, []string{"sg-a", "sg-b"}, []neutron.AddressPair{}, ""},
		{"none requested", true, "", neutron.PortRequest{SecurityGroups: opt([]string{})}, []string{}, []neutron.AddressPair{}, ""},
		{"none requested without port security", false, "", neutron.PortRequest{SecurityGroups: opt([]string{})}, []string{}, []neutron.AddressPair{}, ""},
		{"groups need port security", false, "", neutron.PortRequest{SecurityGroups: opt([]string{"sg-a"})}, nil, nil,
			"PortSecurityAndIPRequiredForSecurityGroups: Port security must be enabled and port must have an IP address in order to use security groups."},
		{"unknown groups, all named", true, "", neutron.PortRequest{SecurityGroups: opt([]string{"sg-x", "sg-a", "sg-y"})}, nil, nil,
			"SecurityGroupNotFound: Security group sg-x, sg-y does not exist"},
		{"stateful and stateless", true, "", neutron.PortRequest{SecurityGroups: opt([]string{"sg-a", "sg-less"})}, nil, nil,
			"SecurityGroupConflict: Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation."},
		{"pairs get the port's MAC", true, "", neutron.PortRequest{AddressPairs: opt([]neutron.AddressPair{pair("10.0.0.9", ""), pair("10.0.0.0/24", "fa:16:3e:00:00:09")})},
			[]string{"sg-default"}, []neutron.AddressPair{pair("10.0.0.9", "fa:16:3e:00:00:01"), pair("10.0.0.0/24", "fa:16:3e:00:00:09")}, ""},
		{"pairs the same once the MAC fills in", true, "", neutron.PortRequest{AddressPairs: opt([]neutron.AddressPair{pair("10.0.0.9", ""), pair("10.0.0.9", "fa:16:3e:00:00:01")})},
			nil, nil, "DuplicateAddressPairInRequest: Request contains duplicate address pair: mac_address fa:16:3e:00:00:01 ip_address 10.0.0.9."},
		{"pairs need port security", false, "", neutron.PortRequest{AddressPairs: opt([]neutron.AddressPair{pair("10.0.0.9", "")})}, nil, nil,
			"AddressPairAndPortSecurityRequired: Port Security must be enabled in order to have allowed address pairs on a port."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &neutron.Port{ProjectID: "p1", MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: c.psec, DeviceOwner: c.owner}
			err := SecureNew(context.Background(), st, p, &c.req)
			if got := errType(err); !strings.HasPrefix(got, c.err) || (c.err == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, c.err)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(p.SecurityGroups, c.groups) || !reflect.DeepEqual(p.AllowedAddressPairs, c.pairs) {
				t.Fatalf("groups %#v pairs %#v, want %#v %#v", p.SecurityGroups, p.AllowedAddressPairs, c.groups, c.pairs)
			}
		})
	}
}

func TestSecureUpdate(t *testing.T) {
	st := &fakeGroups{groups: map[string]*neutron.SecurityGroup{"sg-a": {ID: "sg-a", Stateful: true}}}
	pairs := []neutron.AddressPair{{IPAddress: "10.0.0.9", MACAddress: "fa:16:3e:00:00:01"}}
	cases := []struct {
		name       string
		psec       bool
		groups     []string
		pairs      []neutron.AddressPair
		req        neutron.PortRequest
		wantGroups []string
		err        string
	}{
		{"groups kept", true, []string{"sg-a"}, nil, neutron.PortRequest{}, []string{"sg-a"}, ""},
		{"port security off with groups kept", false, []string{"sg-a"}, nil, neutron.PortRequest{}, nil,
			"PortSecurityPortHasSecurityGroup: Port has security group associated. Cannot disable port security or IP address until security group is removed."},
		{"port security off, groups removed", false, []string{"sg-a"}, nil, neutron.PortRequest{SecurityGroups: opt([]string{})}, []string{}, ""},
		{"groups without port security", false, nil, nil, neutron.PortRequest{SecurityGroups: opt([]string{"sg-a"})}, nil,
			"PortSecurityAndIPRequiredForSecurityGroups: "},
		{"pairs kept without port security", false, nil, pairs, neutron.PortRequest{}, nil,
			"AddressPairAndPortSecurityRequired: "},
		{"pairs removed with port security", false, nil, pairs, neutron.PortRequest{AddressPairs: opt([]neutron.AddressPair{})}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &neutron.Port{ProjectID: "p1", MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: c.psec,
				SecurityGroups: c.groups, AllowedAddressPairs: c.pairs}
			err := SecureUpdate(context.Background(), st, p, &c.req)
			if got := errType(err); !strings.HasPrefix(got, c.err) || (c.err == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, c.err)
			}
			if err == nil && !reflect.DeepEqual(p.SecurityGroups, c.wantGroups) {
				t.Fatalf("groups %#v, want %#v", p.SecurityGroups, c.wantGroups)
			}
		})
	}
}

func TestGroupStoreErrorsPass(t *testing.T) {
	st := &fakeGroups{err: errors.New("database gone")}
	p := &neutron.Port{ProjectID: "p1", PortSecurityEnabled: true}
	if err := SecureNew(context.Background(), st, p, &neutron.PortRequest{}); err == nil || err.Error() != "database gone" {
		t.Fatalf("default group: %v", err)
	}
	if err := SecureNew(context.Background(), st, p, &neutron.PortRequest{SecurityGroups: opt([]string{"sg"})}); err == nil || err.Error() != "database gone" {
		t.Fatalf("requested group: %v", err)
	}
}
