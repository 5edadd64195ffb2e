package apitest

import (
	"slices"
	"strings"
	"testing"
)

// The openstack CLI against moat's networks, subnets and ports, as an
// operator would drive them (noauth: admin of fake_project_id). One
// scenario whose steps depend on each other; every call costs about a
// second, so there are few.

// cliNetwork is a network as `network create/show -f json` prints it.
type cliNetwork struct {
	ID              string  `json:"id"`
	Name            string  `json:"name"`
	Status          string  `json:"status"`
	ProjectID       string  `json:"project_id"`
	MTU             int     `json:"mtu"`
	Shared          bool    `json:"shared"`
	NetworkType     string  `json:"provider:network_type"`
	PhysicalNetwork *string `json:"provider:physical_network"`
	SegmentationID  *int    `json:"provider:segmentation_id"`
	PortSecurity    bool    `json:"port_security_enabled"`
}

// cliSubnet is a subnet as `subnet create -f json` prints it.
type cliSubnet struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	NetworkID       string `json:"network_id"`
	CIDR            string `json:"cidr"`
	IPVersion       int    `json:"ip_version"`
	GatewayIP       string `json:"gateway_ip"`
	EnableDHCP      bool   `json:"enable_dhcp"`
	AllocationPools []struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"allocation_pools"`
}

// cliPort is a port as `port create/show -f json` prints it (the CLI
// renames security_groups and the binding:* attributes).
type cliPort struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	NetworkID  string `json:"network_id"`
	MACAddress string `json:"mac_address"`
	Status     string `json:"status"`
	FixedIPs   []struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
	SecurityGroupIDs    []string `json:"security_group_ids"`
	PortSecurityEnabled bool     `json:"port_security_enabled"`
	AllowedAddressPairs []struct {
		IPAddress  string `json:"ip_address"`
		MACAddress string `json:"mac_address"`
	} `json:"allowed_address_pairs"`
	VIFType  string `json:"binding_vif_type"`
	VNICType string `json:"binding_vnic_type"`
}

func (p cliPort) pairs() []string {
	var out []string
	for _, ap := range p.AllowedAddressPairs {
		out = append(out, ap.IPAddress+"@"+ap.MACAddress)
	}
	return out
}

func TestOpenstackCLINetworks(t *testing.T) {
	bin := LookCLI(t)
	srv := Start(t, Config{Auth: NoAuth, Networks: labNetworks()})
	cli := newCLI(t, bin, srv)
	const project = "fake_project_id"
	var vnet, vnet2 cliNetwork
	var sub cliSubnet
	var web cliGroup
	var p1 cliPort

	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	wantIn := func(t *testing.T, stderr string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr %q does not contain %q", stderr, w)
			}
		}
	}

	step("network create --provider-network-type vlan", func(t *testing.T) {
		cli.json(t, &vnet, "network", "create", "--provider-network-type", "vlan", "--provider-physical-network", "physnet1", "vnet")
		if vnet.ID == "" || vnet.Name != "vnet" || vnet.Status != "ACTIVE" || vnet.ProjectID != project || vnet.MTU != 1500 ||
			vnet.Shared || !vnet.PortSecurity || vnet.NetworkType != "vlan" || str(vnet.PhysicalNetwork) != "physnet1" || num(vnet.SegmentationID) != "100" {
			t.Errorf("created %+v (physnet %s, segment %s), want a VLAN 100 on physnet1", vnet, str(vnet.PhysicalNetwork), num(vnet.SegmentationID))
		}
		cli.json(t, &vnet2, "network", "create", "--provider-network-type", "vlan", "--provider-physical-network", "physnet1",
			"--provider-segment", "101", "vnet2")
		if vnet2.NetworkType != "vlan" || str(vnet2.PhysicalNetwork) != "physnet1" || num(vnet2.SegmentationID) != "101" {
			t.Errorf("created %+v (physnet %s, segment %s), want VLAN 101", vnet2, str(vnet2.PhysicalNetwork), num(vnet2.SegmentationID))
		}
	})

	step("subnet create", func(t *testing.T) {
		cli.json(t, &sub, "subnet", "create", "--network", "vnet", "--subnet-range", "10.0.0.0/24", "sub1")
		if sub.ID == "" || sub.Name != "sub1" || sub.NetworkID != vnet.ID || sub.CIDR != "10.0.0.0/24" || sub.IPVersion != 4 ||
			sub.GatewayIP != "10.0.0.1" || !sub.EnableDHCP || len(sub.AllocationPools) != 1 ||
			sub.AllocationPools[0].Start != "10.0.0.2" || sub.AllocationPools[0].End != "10.0.0.254" {
			t.Errorf("created %+v", sub)
		}
	})

	step("port create --security-group", func(t *testing.T) {
		cli.json(t, &web, "security", "group", "create", "web")
		cli.json(t, &p1, "port", "create", "--network", "vnet", "--security-group", "web", "p1")
		// 10.0.0.2 is the DHCP port's.
		if p1.ID == "" || p1.Name != "p1" || p1.NetworkID != vnet.ID || p1.Status != "DOWN" || !macRE.MatchString(p1.MACAddress) ||
			len(p1.FixedIPs) != 1 || p1.FixedIPs[0].SubnetID != sub.ID || p1.FixedIPs[0].IPAddress != "10.0.0.3" ||
			!slices.Equal(p1.SecurityGroupIDs, []string{web.ID}) || !p1.PortSecurityEnabled || len(p1.AllowedAddressPairs) != 0 ||
			p1.VIFType != "unbound" || p1.VNICType != "normal" {
			t.Errorf("created %+v", p1)
		}
	})

	step("port set --allowed-address", func(t *testing.T) {
		out := cli.ok(t, "port", "set", "--allowed-address", "ip-address=10.0.0.50",
			"--allowed-address", "ip-address=10.0.0.51,mac-address=fa:16:3e:00:00:99", "p1")
		if strings.TrimSpace(out) != "" {
			t.Errorf("port set printed %q", out)
		}
		var got cliPort
		cli.json(t, &got, "port", "show", "p1")
		want := []string{"10.0.0.50@" + p1.MACAddress, "10.0.0.51@fa:16:3e:00:00:99"}
		if !slices.Equal(got.pairs(), want) || !slices.Equal(got.SecurityGroupIDs, []string{web.ID}) {
			t.Errorf("pairs %v groups %v, want %v and [%s]", got.pairs(), got.SecurityGroupIDs, want, web.ID)
		}
	})

	step("port set --no-security-group --disable-port-security", func(t *testing.T) {
		// The address pairs need port security.
		errOut := cli.fails(t, "port", "set", "--no-security-group", "--disable-port-security", "p1")
		wantIn(t, errOut, "409", "Port Security must be enabled in order to have allowed address pairs on a port.")
		cli.ok(t, "port", "set", "--no-allowed-address", "--no-security-group", "--disable-port-security", "p1")
		var got cliPort
		cli.json(t, &got, "port", "show", "p1")
		if got.PortSecurityEnabled || len(got.SecurityGroupIDs) != 0 || len(got.AllowedAddressPairs) != 0 ||
			len(got.FixedIPs) != 1 || got.FixedIPs[0].IPAddress != "10.0.0.3" {
			t.Errorf("after set: %+v", got)
		}
	})

	step("port delete, network delete", func(t *testing.T) {
		cli.ok(t, "port", "delete", "p1")
		// The subnet and its DHCP port go with the network.
		cli.ok(t, "network", "delete", "vnet")
		var rows []struct{ ID, Name string }
		cli.json(t, &rows, "network", "list")
		if len(rows) != 1 || rows[0].ID != vnet2.ID {
			t.Errorf("networks left: %+v, want only vnet2", rows)
		}
	})
}
