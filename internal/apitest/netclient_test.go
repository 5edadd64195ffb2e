package apitest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/mtu"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// Helpers for networks, subnets and ports through gophercloud, with the
// extensions moat serves decoded alongside the core attributes.

// projectC is a third project, for sharing with "everyone".
var projectC = identity{"user-c", "cccccccc000000000000000000000004", "member,reader"}

// labNetworks is the ML2 configuration of the network tests: few tenant
// ids so that allocation order and exhaustion are visible.
func labNetworks() *neutron.NetworkConfig {
	return &neutron.NetworkConfig{
		TenantNetworkType: neutron.NetTypeVXLAN,
		VNIRanges:         []neutron.Range{{Min: 10, Max: 12}},
		VLANRanges:        map[string][]neutron.Range{"physnet1": {{Min: 100, Max: 102}}, "physnet2": nil},
		FlatNetworks:      []string{"public"},
		PhysnetMTU:        1500,
	}
}

// network is a network with the provider and port-security extensions.
type network struct {
	networks.Network
	provider.NetworkProviderExt
	portsecurity.PortSecurityExt
	mtu.NetworkMTUExt
}

// port is a port with the port-security and binding extensions.
type port struct {
	ports.Port
	portsecurity.PortSecurityExt
	portsbinding.PortsBindingExt
}

// providerOpts adds the provider attributes to a network create, as the
// openstack CLI sends them (gophercloud only knows the multi-segment form).
type providerOpts struct {
	networks.CreateOptsBuilder
	NetworkType     string
	PhysicalNetwork string
	SegmentationID  *int
}

func (o providerOpts) ToNetworkCreateMap() (map[string]any, error) {
	base, err := o.CreateOptsBuilder.ToNetworkCreateMap()
	if err != nil {
		return nil, err
	}
	n := base["network"].(map[string]any)
	if o.NetworkType != "" {
		n["provider:network_type"] = o.NetworkType
	}
	if o.PhysicalNetwork != "" {
		n["provider:physical_network"] = o.PhysicalNetwork
	}
	if o.SegmentationID != nil {
		n["provider:segmentation_id"] = *o.SegmentationID
	}
	return base, nil
}

func createNetwork(t *testing.T, c *gophercloud.ServiceClient, opts networks.CreateOptsBuilder) *network {
	t.Helper()
	var n network
	noErr(t, networks.Create(t.Context(), c, opts).ExtractInto(&n), "create network")
	return &n
}

// newNetwork creates a network named name with the tenant defaults.
func newNetwork(t *testing.T, c *gophercloud.ServiceClient, name string) *network {
	t.Helper()
	return createNetwork(t, c, networks.CreateOpts{Name: name})
}

func getNetwork(t *testing.T, c *gophercloud.ServiceClient, id string) *network {
	t.Helper()
	var n network
	noErr(t, networks.Get(t.Context(), c, id).ExtractInto(&n), "get network "+id)
	return &n
}

func createSubnet(t *testing.T, c *gophercloud.ServiceClient, opts subnets.CreateOpts) *subnets.Subnet {
	t.Helper()
	sn, err := subnets.Create(t.Context(), c, opts).Extract()
	noErr(t, err, "create subnet "+opts.CIDR)
	return sn
}

// newSubnet creates an IPv4 subnet with Neutron's defaults (DHCP on).
func newSubnet(t *testing.T, c *gophercloud.ServiceClient, networkID, cidr string) *subnets.Subnet {
	t.Helper()
	return createSubnet(t, c, subnets.CreateOpts{NetworkID: networkID, CIDR: cidr, IPVersion: gophercloud.IPv4})
}

// newSubnetNoDHCP creates an IPv4 subnet without DHCP (no network:dhcp
// port takes its first address).
func newSubnetNoDHCP(t *testing.T, c *gophercloud.ServiceClient, networkID, cidr string) *subnets.Subnet {
	t.Helper()
	return createSubnet(t, c, subnets.CreateOpts{NetworkID: networkID, CIDR: cidr, IPVersion: gophercloud.IPv4, EnableDHCP: gophercloud.Disabled})
}

func createPort(t *testing.T, c *gophercloud.ServiceClient, opts ports.CreateOptsBuilder) *port {
	t.Helper()
	var p port
	noErr(t, ports.Create(t.Context(), c, opts).ExtractInto(&p), "create port")
	return &p
}

func getPort(t *testing.T, c *gophercloud.ServiceClient, id string) *port {
	t.Helper()
	var p port
	noErr(t, ports.Get(t.Context(), c, id).ExtractInto(&p), "get port "+id)
	return &p
}

func updatePort(t *testing.T, c *gophercloud.ServiceClient, id string, opts ports.UpdateOptsBuilder) *port {
	t.Helper()
	var p port
	noErr(t, ports.Update(t.Context(), c, id, opts).ExtractInto(&p), "update port "+id)
	return &p
}

func listPorts(t *testing.T, c *gophercloud.ServiceClient, opts ports.ListOpts) []port {
	t.Helper()
	pages, err := ports.List(c, opts).AllPages(t.Context())
	noErr(t, err, "list ports")
	var out []port
	noErr(t, ports.ExtractPortsInto(pages, &out), "extract ports")
	return out
}

// portIDs are the sorted ids of ps.
func portIDs(ps []port) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	slices.Sort(out)
	return out
}

// dhcpPort is the network:dhcp port of a network as c sees it, nil if
// there is none.
func dhcpPort(t *testing.T, c *gophercloud.ServiceClient, networkID string) *port {
	t.Helper()
	ps := listPorts(t, c, ports.ListOpts{NetworkID: networkID, DeviceOwner: "network:dhcp"})
	switch len(ps) {
	case 0:
		return nil
	case 1:
		return &ps[0]
	}
	t.Fatalf("network %s has %d network:dhcp ports", networkID, len(ps))
	return nil
}

// ips renders fixed IPs as "subnet=address" in their order.
func ips(fs []ports.IP) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.SubnetID + "=" + f.IPAddress
	}
	return out
}

// ip is the "subnet=address" of one fixed IP.
func ip(subnetID, address string) string { return subnetID + "=" + address }

// pairs renders allowed address pairs as "ip/mac".
func pairs(aps []ports.AddressPair) []string {
	out := make([]string, len(aps))
	for i, ap := range aps {
		out[i] = ap.IPAddress + "@" + ap.MACAddress
	}
	return out
}

// pools renders allocation pools as "start-end".
func poolsOf(ps []subnets.AllocationPool) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Start+"-"+p.End)
	}
	return strings.Join(out, " ")
}

// sgIDs is a *[]string for gophercloud's security_groups options.
func sgIDs(ids ...string) *[]string {
	if ids == nil {
		ids = []string{}
	}
	return &ids
}

func ptr[T any](v T) *T { return &v }

// change is a change-log entry without its revision and time.
type change struct{ Kind, Op, ID string }

func (c change) String() string { return fmt.Sprintf("%s %s %s", c.Kind, c.Op, c.ID) }

// changesAfter reads the change log after revision rev.
func changesAfter(t *testing.T, st *store.Store, rev int64) []store.Change {
	t.Helper()
	var out []store.Change
	err := st.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.ChangesSince(context.Background(), rev, 10000)
		return err
	})
	noErr(t, err, "read the change log")
	return out
}

// latestRevision is the newest change-log revision.
func latestRevision(t *testing.T, st *store.Store) int64 {
	t.Helper()
	var rev int64
	err := st.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		rev, err = tx.LatestRevision(context.Background())
		return err
	})
	noErr(t, err, "read the latest revision")
	return rev
}

// setPortStatus does what a host agent does when it has wired a port (or
// unwired it): it records the status in the store.
func setPortStatus(t *testing.T, st *store.Store, id, status string) {
	t.Helper()
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		p, err := tx.GetPort(context.Background(), id)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("port %s not found", id)
		}
		return tx.SetPortStatus(context.Background(), p, status)
	})
	noErr(t, err, "set the status of port "+id)
}

// rawKeys GETs path and returns the sorted keys of the object under key.
func rawKeys(t *testing.T, c *gophercloud.ServiceClient, path, key string) []string {
	t.Helper()
	obj, ok := rawGet(t, c, path)[key].(map[string]any)
	if !ok {
		t.Fatalf("GET %s: no %q object", path, key)
	}
	out := make([]string, 0, len(obj))
	for k := range obj {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
