package api

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/binding"
	"github.com/moat-sg/moat/internal/ipam"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func itoa(i int) string { return strconv.Itoa(i) }

func renderSubnet(sn *neutron.Subnet, _, _ bool) object {
	var gw any
	if sn.GatewayIP != nil {
		gw = sn.GatewayIP.String()
	}
	pools := []object{}
	for _, p := range sn.AllocationPools {
		pools = append(pools, object{{"start", p.Start.String()}, {"end", p.End.String()}})
	}
	routes := []object{}
	for _, hr := range sn.HostRoutes {
		routes = append(routes, object{{"destination", hr.Destination}, {"nexthop", hr.Nexthop}})
	}
	dns := sn.DNSNameservers
	if dns == nil {
		dns = []string{}
	}
	return object{
		{"id", sn.ID}, {"name", sn.Name}, {"tenant_id", sn.ProjectID}, {"network_id", sn.NetworkID},
		{"ip_version", sn.IPVersion}, {"subnetpool_id", nil}, {"enable_dhcp", sn.EnableDHCP},
		{"ipv6_ra_mode", optString(sn.IPv6RAMode)}, {"ipv6_address_mode", optString(sn.IPv6AddressMode)},
		{"gateway_ip", gw}, {"cidr", neutron.FormatCIDR(sn.CIDR)}, {"allocation_pools", pools},
		{"host_routes", routes}, {"dns_nameservers", dns}, {"description", sn.Description},
		{"service_types", []string{}}, {"tags", sn.Tags}, {"created_at", fmtTime(sn.CreatedAt)},
		{"updated_at", fmtTime(sn.UpdatedAt)}, {"revision_number", sn.RevisionNumber}, {"project_id", sn.ProjectID},
	}
}

// subnetResource serves subnets: their gateway, pools and the addresses
// they hand out come from internal/ipam.
func (s *Server) subnetResource() *resource[neutron.Subnet, neutron.SubnetRequest] {
	return &resource[neutron.Subnet, neutron.SubnetRequest]{
		kind:     neutron.Subnets,
		notFound: neutron.SubnetNotFound,
		load:     onNetwork((*store.Tx).GetSubnet, func(sn *neutron.Subnet) string { return sn.NetworkID }),
		visible:  byCaller(visibleSubnet),
		id:       func(sn *neutron.Subnet) string { return sn.ID },
		render:   renderSubnet,
		list:     (*store.Tx).ListSubnets,
		create:   s.createSubnets,
		update:   s.updateSubnet,
		remove:   s.deleteSubnet,
		tags: func(caller *neutron.Context, sn *neutron.Subnet, n *neutron.Network) (store.TagTarget, bool) {
			return store.TagTarget{Kind: store.KindSubnet, ID: sn.ID, ProjectID: sn.ProjectID, StandardAttrID: sn.StandardAttrID},
				mayChangeSubnet(caller, sn, n)
		},
	}
}

// visibleSubnet is Neutron's get_subnet (admin_or_owner or shared): the
// subnet's project, and whoever sees its network n (nil if gone).
func visibleSubnet(nctx *neutron.Context, sn *neutron.Subnet, n *neutron.Network) bool {
	return nctx.IsAdmin || sn.ProjectID == nctx.ProjectID || (n != nil && visibleNetwork(nctx, n, nil))
}

// mayChangeSubnet is Neutron's update_subnet and delete_subnet
// (admin_or_network_owner, or the subnet's project).
func mayChangeSubnet(nctx *neutron.Context, sn *neutron.Subnet, n *neutron.Network) bool {
	return nctx.IsAdmin || sn.ProjectID == nctx.ProjectID || (n != nil && ownsNetwork(nctx, n))
}

func (s *Server) createSubnets(c txn, reqs []neutron.SubnetRequest, _ bool) ([]neutron.Subnet, error) {
	if err := checkQuotaItems(s, c, reqs, "subnet"); err != nil {
		return nil, err
	}
	return each(reqs, func(req *neutron.SubnetRequest) (*neutron.Subnet, error) { return s.createSubnet(c, req) })
}

func (s *Server) createSubnet(c txn, req *neutron.SubnetRequest) (*neutron.Subnet, error) {
	n, _, err := s.networks.find(c, req.NetworkID)
	if err != nil {
		return nil, err
	}
	if !ownsNetwork(c.caller, n) {
		return nil, policyDenied("rule:create_subnet")
	}
	if !req.CIDR.Set {
		return nil, &neutron.Error{Status: http.StatusBadRequest, Type: "BadRequest",
			Message: "Bad subnets request: a subnetpool must be specified in the absence of a cidr."}
	}
	cidr := req.CIDR.V
	sn := &neutron.Subnet{
		ID: uuid.NewString(), ProjectID: req.ProjectID, NetworkID: n.ID, Name: req.Name.V,
		Description: req.Description.V, IPVersion: req.IPVersion, CIDR: cidr,
		EnableDHCP: req.EnableDHCP.V, IPv6RAMode: req.IPv6RAMode, IPv6AddressMode: req.IPv6AddressMode,
		DNSNameservers: nameservers(req.DNSNameservers.V), HostRoutes: hostRoutes(req.HostRoutes.V),
	}
	// Neutron names a subnet being created "new subnet".
	if err := checkSubnetLimits(sn, "new subnet"); err != nil {
		return nil, err
	}
	if err := neutron.CheckSubnetFamilies(sn.IPVersion, req.DNSNameservers.V, req.HostRoutes.V); err != nil {
		return nil, err
	}
	sn.GatewayIP, sn.AllocationPools, err = ipam.BuildSubnet(ipam.SubnetSpec{
		IPVersion: sn.IPVersion, CIDR: cidr, GatewayIP: req.GatewayIP, Pools: req.AllocationPools,
		EnableDHCP: sn.EnableDHCP, IPv6RAMode: sn.IPv6RAMode, IPv6AddressMode: sn.IPv6AddressMode,
	})
	if err != nil {
		return nil, err
	}
	// Neutron refuses /0 (dnsmasq cannot serve it) before the overlap check.
	if cidr.Bits() == 0 {
		return nil, neutron.InvalidInput("0 is not allowed as CIDR prefix length")
	}
	existing, err := c.tx.SubnetsOfNetwork(c.ctx, n.ID)
	if err != nil {
		return nil, err
	}
	for _, other := range existing {
		if other.CIDR.Overlaps(cidr) {
			return nil, neutron.InvalidInput("Requested subnet with cidr: " + neutron.FormatCIDR(cidr) + " for network: " + n.ID + " overlaps with another subnet")
		}
	}
	if err := c.tx.CreateSubnet(c.ctx, sn); err != nil {
		return nil, err
	}
	if sn.IsSLAAC() {
		if err := addAutoAddresses(c.ctx, c.tx, sn); err != nil {
			return nil, err
		}
	}
	if err := s.syncDHCPPort(c.ctx, c.tx, n, ""); err != nil {
		return nil, err
	}
	return sn, nil
}

// nameservers are a subnet's DNS servers as stored.
func nameservers(req []neutron.Nameserver) []string {
	out := make([]string, 0, len(req))
	for _, ns := range req {
		out = append(out, ns.Addr.String())
	}
	return out
}

// hostRoutes are a subnet's host routes as stored.
func hostRoutes(req []neutron.RouteRequest) []neutron.HostRoute {
	out := make([]neutron.HostRoute, 0, len(req))
	for _, r := range req {
		out = append(out, r.Route())
	}
	return out
}

// addAutoAddresses gives the ports already on the network their EUI-64
// address on a new SLAAC subnet, as Neutron's
// _add_auto_addrs_on_network_ports does (see ipam.GetsAutoAddress).
func addAutoAddresses(ctx context.Context, tx *store.Tx, sn *neutron.Subnet) error {
	return readdressPorts(ctx, tx, sn.NetworkID, func(p *neutron.Port) ([]neutron.FixedIP, bool, error) {
		if !ipam.GetsAutoAddress(p.DeviceOwner) {
			return nil, false, nil
		}
		addr, err := ipam.EUI64(sn.CIDR, p.MACAddress)
		if err != nil {
			return nil, false, err
		}
		return append(append([]neutron.FixedIP{}, p.FixedIPs...), neutron.FixedIP{SubnetID: sn.ID, IPAddress: addr}), true, nil
	})
}

// removeAutoAddresses takes a SLAAC subnet's addresses off the ports that
// have one before the subnet goes (see ipam.WithoutSubnet).
func removeAutoAddresses(ctx context.Context, tx *store.Tx, sn *neutron.Subnet) error {
	return readdressPorts(ctx, tx, sn.NetworkID, func(p *neutron.Port) ([]neutron.FixedIP, bool, error) {
		ips, ok := ipam.WithoutSubnet(p, sn.ID)
		return ips, ok, nil
	})
}

// readdressPorts updates the ports of a network whose addresses change.
func readdressPorts(ctx context.Context, tx *store.Tx, networkID string, change func(*neutron.Port) ([]neutron.FixedIP, bool, error)) error {
	ports, err := tx.PortsOfNetwork(ctx, networkID)
	if err != nil {
		return err
	}
	for i := range ports {
		old := &ports[i]
		ips, ok, err := change(old)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		p := *old
		p.FixedIPs = ips
		if err := tx.UpdatePort(ctx, old, &p); err != nil {
			return err
		}
	}
	return nil
}

// checkSubnetLimits enforces the number of DNS servers and host routes.
func checkSubnetLimits(sn *neutron.Subnet, name string) error {
	if len(sn.DNSNameservers) > neutron.MaxDNSNameservers {
		return neutron.DNSNameServersExhausted(name)
	}
	if len(sn.HostRoutes) > neutron.MaxHostRoutes {
		return neutron.HostRoutesExhausted(name)
	}
	return nil
}

// syncDHCPPort keeps a network's network:dhcp port in line with its
// subnets: one address on each DHCP-enabled subnet, no port when there is
// none. Neutron's DHCP agent creates this port; moat's server does, since
// the DHCP server's address is what the host rules protect.
// gone is a subnet about to be deleted, whose address the port gives up.
func (s *Server) syncDHCPPort(ctx context.Context, tx *store.Tx, n *neutron.Network, gone string) error {
	subs, err := tx.SubnetsOfNetwork(ctx, n.ID)
	if err != nil {
		return err
	}
	ports, err := tx.PortsOfNetwork(ctx, n.ID)
	if err != nil {
		return err
	}
	var dhcp *neutron.Port
	for i := range ports {
		if ports[i].DeviceOwner == neutron.DeviceOwnerDHCP {
			dhcp = &ports[i]
			break
		}
	}
	want := ipam.DHCPSubnets(subs, gone)
	if len(want) == 0 {
		if dhcp != nil {
			return tx.DeletePort(ctx, dhcp)
		}
		return nil
	}
	if dhcp == nil {
		mac, err := ipam.NewMAC(ctx, tx, n.ID, rand.Reader)
		if err != nil {
			return err
		}
		p := binding.NewDHCPPort(uuid.NewString(), n, mac)
		if p.FixedIPs, _, err = ipam.Readdress(ctx, tx, nil, want); err != nil {
			return err
		}
		return tx.CreatePort(ctx, p)
	}
	updated := *dhcp
	var changed bool
	if updated.FixedIPs, changed, err = ipam.Readdress(ctx, tx, dhcp.FixedIPs, want); err != nil || !changed {
		return err
	}
	return tx.UpdatePort(ctx, dhcp, &updated)
}

func (s *Server) updateSubnet(c txn, sn *neutron.Subnet, n *neutron.Network, req neutron.SubnetRequest, ifMatch int64) (*neutron.Subnet, error) {
	if !mayChangeSubnet(c.caller, sn, n) {
		return nil, policyDenied("rule:update_subnet")
	}
	if err := checkRevision(ifMatch, sn.RevisionNumber); err != nil {
		return nil, err
	}
	set(&sn.Name, req.Name)
	set(&sn.Description, req.Description)
	if v := req.EnableDHCP; v.Set {
		if v.V && !sn.EnableDHCP {
			if err := ipam.CheckDHCPCIDR(sn.IPVersion, sn.CIDR); err != nil {
				return nil, err
			}
		}
		sn.EnableDHCP = v.V
	}
	if req.DNSNameservers.Set {
		sn.DNSNameservers = nameservers(req.DNSNameservers.V)
	}
	if req.HostRoutes.Set {
		sn.HostRoutes = hostRoutes(req.HostRoutes.V)
	}
	if err := checkSubnetLimits(sn, sn.ID); err != nil {
		return nil, err
	}
	if err := neutron.CheckSubnetFamilies(sn.IPVersion, req.DNSNameservers.V, req.HostRoutes.V); err != nil {
		return nil, err
	}
	if req.GatewayIP.Set || req.AllocationPools.Set {
		spec := ipam.SubnetSpec{IPVersion: sn.IPVersion, CIDR: sn.CIDR, EnableDHCP: sn.EnableDHCP,
			IPv6RAMode: sn.IPv6RAMode, IPv6AddressMode: sn.IPv6AddressMode, GatewayIP: req.GatewayIP, Pools: req.AllocationPools}
		// What the update leaves out stays as it is.
		if !spec.GatewayIP.Set {
			spec.GatewayIP = neutron.Opt[*netip.Addr]{V: sn.GatewayIP, Set: true}
		}
		if !spec.Pools.Set {
			pools := make([]neutron.PoolRequest, 0, len(sn.AllocationPools))
			for _, p := range sn.AllocationPools {
				pools = append(pools, neutron.PoolRequestOf(p))
			}
			spec.Pools = neutron.Opt[[]neutron.PoolRequest]{V: pools, Set: true}
		}
		var err error
		if sn.GatewayIP, sn.AllocationPools, err = ipam.BuildSubnet(spec); err != nil {
			return nil, err
		}
	}
	if err := c.tx.UpdateSubnet(c.ctx, sn); err != nil {
		return nil, err
	}
	return sn, s.syncDHCPPort(c.ctx, c.tx, n, "")
}

func (s *Server) deleteSubnet(c txn, sn *neutron.Subnet, n *neutron.Network, ifMatch int64) error {
	if !mayChangeSubnet(c.caller, sn, n) {
		return policyDenied("rule:delete_subnet")
	}
	if err := checkRevision(ifMatch, sn.RevisionNumber); err != nil {
		return err
	}
	if sn.IsSLAAC() {
		if err := removeAutoAddresses(c.ctx, c.tx, sn); err != nil {
			return err
		}
	}
	used, err := c.tx.PortsUsingSubnet(c.ctx, sn.ID)
	if err != nil {
		return err
	}
	if used > 0 {
		return neutron.SubnetInUse(sn.ID)
	}
	// The DHCP port lets go of its address on this subnet first.
	if err := s.syncDHCPPort(c.ctx, c.tx, n, sn.ID); err != nil {
		return err
	}
	return c.tx.DeleteSubnet(c.ctx, sn)
}
