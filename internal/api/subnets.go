package api

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func itoa(i int) string { return strconv.Itoa(i) }

func renderSubnet(sn *neutron.Subnet, fields []string) object {
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
	}.only(fields)
}

func getVisibleSubnet(ctx context.Context, tx *store.Tx, nctx *neutron.Context, id string) (*neutron.Subnet, *neutron.Network, error) {
	sn, err := tx.GetSubnet(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if sn == nil {
		return nil, nil, neutron.SubnetNotFound(id)
	}
	n, err := tx.GetNetwork(ctx, sn.NetworkID)
	if err != nil {
		return nil, nil, err
	}
	if !visibleSubnet(nctx, sn, n) {
		return nil, nil, neutron.SubnetNotFound(id)
	}
	return sn, n, nil
}

// visibleSubnet is Neutron's get_subnet (admin_or_owner or shared): the
// subnet's project, and whoever sees its network n (nil if gone).
func visibleSubnet(nctx *neutron.Context, sn *neutron.Subnet, n *neutron.Network) bool {
	return nctx.IsAdmin || sn.ProjectID == nctx.ProjectID || (n != nil && visibleNetwork(nctx, n))
}

// mayChangeSubnet is Neutron's update_subnet and delete_subnet
// (admin_or_network_owner, or the subnet's project).
func mayChangeSubnet(nctx *neutron.Context, sn *neutron.Subnet, n *neutron.Network) bool {
	return nctx.IsAdmin || sn.ProjectID == nctx.ProjectID || (n != nil && ownsNetwork(nctx, n))
}

func (s *Server) listSubnets(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.SubnetResource)
	if err != nil {
		return err
	}
	var subs []neutron.Subnet
	err = s.store.Read(r.Context(), func(tx *store.Tx) error {
		subs, err = tx.ListSubnets(r.Context(), p.query)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "subnets", subs,
		func(sn *neutron.Subnet) string { return sn.ID },
		func(sn *neutron.Subnet) object { return renderSubnet(sn, p.fields) })
	return nil
}

func (s *Server) showSubnet(w http.ResponseWriter, r *request) error {
	var sn *neutron.Subnet
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		sn, _, err = getVisibleSubnet(r.Context(), tx, r.ctx, r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"subnet", renderSubnet(sn, fieldsParam(r))}})
	return nil
}

func stringsOf(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.String()
		}
		out = append(out, s)
	}
	return out
}

func routesOf(v any) []neutron.HostRoute {
	list, _ := v.([]any)
	out := make([]neutron.HostRoute, 0, len(list))
	for _, x := range list {
		m := x.(map[string]any)
		d, _ := neutron.ParseCIDR(m["destination"].(string))
		nh, _ := netip.ParseAddr(m["nexthop"].(string))
		out = append(out, neutron.HostRoute{Destination: neutron.FormatCIDR(d.Masked()), Nexthop: nh.String()})
	}
	return out
}

func optStr(v any) *string {
	if s, ok := v.(string); ok {
		return &s
	}
	return nil
}

func (s *Server) createSubnets(w http.ResponseWriter, r *request) error {
	items, bulk, err := neutron.SubnetResource.PrepareBody(r.ctx, r.body, true, true)
	if err != nil {
		return err
	}
	var created []neutron.Subnet
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		if err := s.checkQuotaItems(r.Context(), tx, items, "subnet"); err != nil {
			return err
		}
		for _, it := range items {
			sn, err := s.createSubnet(r.Context(), tx, r.ctx, it)
			if err != nil {
				return err
			}
			created = append(created, *sn)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bulk {
		out := make([]object, len(created))
		for i := range created {
			out[i] = renderSubnet(&created[i], nil)
		}
		writeJSON(w, http.StatusCreated, object{{"subnets", out}})
		return nil
	}
	writeJSON(w, http.StatusCreated, object{{"subnet", renderSubnet(&created[0], nil)}})
	return nil
}

func (s *Server) createSubnet(ctx context.Context, tx *store.Tx, nctx *neutron.Context, it map[string]any) (*neutron.Subnet, error) {
	netID := it["network_id"].(string)
	n, err := getVisibleNetwork(ctx, tx, nctx, netID)
	if err != nil {
		return nil, err
	}
	if !ownsNetwork(nctx, n) {
		return nil, policyDenied("rule:create_subnet")
	}
	cidrStr, ok := it["cidr"].(string)
	if !ok {
		return nil, &neutron.Error{Status: http.StatusBadRequest, Type: "BadRequest",
			Message: "Bad subnets request: a subnetpool must be specified in the absence of a cidr."}
	}
	cidr, _ := neutron.ParseCIDR(cidrStr)
	sn := &neutron.Subnet{
		ID: uuid.NewString(), ProjectID: it["project_id"].(string), NetworkID: n.ID, Name: it["name"].(string),
		Description: it["description"].(string), IPVersion: it["ip_version"].(int), CIDR: cidr,
		EnableDHCP: it["enable_dhcp"].(bool), IPv6RAMode: optStr(it["ipv6_ra_mode"]), IPv6AddressMode: optStr(it["ipv6_address_mode"]),
		DNSNameservers: stringsOf(it["dns_nameservers"]), HostRoutes: routesOf(it["host_routes"]),
	}
	// Neutron names a subnet being created "new subnet".
	if err := checkSubnetLimits(sn, "new subnet"); err != nil {
		return nil, err
	}
	if err := neutron.CheckSubnetFamilies(sn.IPVersion, it["dns_nameservers"], it["host_routes"]); err != nil {
		return nil, err
	}
	sn.GatewayIP, sn.AllocationPools, err = neutron.BuildSubnet(neutron.SubnetRequest{
		IPVersion: sn.IPVersion, CIDR: cidr, GatewayIP: it["gateway_ip"], Pools: it["allocation_pools"],
		EnableDHCP: sn.EnableDHCP, IPv6RAMode: sn.IPv6RAMode, IPv6AddressMode: sn.IPv6AddressMode,
	})
	if err != nil {
		return nil, err
	}
	// Neutron refuses /0 (dnsmasq cannot serve it) before the overlap check.
	if cidr.Bits() == 0 {
		return nil, neutron.InvalidInput("0 is not allowed as CIDR prefix length")
	}
	existing, err := tx.SubnetsOfNetwork(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	for _, other := range existing {
		if other.CIDR.Overlaps(cidr) {
			return nil, neutron.InvalidInput("Requested subnet with cidr: " + neutron.FormatCIDR(cidr) + " for network: " + n.ID + " overlaps with another subnet")
		}
	}
	if err := tx.CreateSubnet(ctx, sn); err != nil {
		return nil, err
	}
	if sn.IsSLAAC() {
		if err := addAutoAddresses(ctx, tx, sn); err != nil {
			return nil, err
		}
	}
	if err := s.syncDHCPPort(ctx, tx, n, ""); err != nil {
		return nil, err
	}
	return sn, nil
}

// isRouterInterface reports whether a port is a router's interface
// (neutron_lib's ROUTER_INTERFACE_OWNERS_SNAT): such ports do not get
// SLAAC addresses by themselves.
func isRouterInterface(owner string) bool {
	switch owner {
	case "network:router_interface", "network:ha_router_replicated_interface",
		"network:router_interface_distributed", "network:router_centralized_snat":
		return true
	}
	return false
}

// addAutoAddresses gives the ports already on the network their EUI-64
// address on a new SLAAC subnet, as Neutron's
// _add_auto_addrs_on_network_ports does (router interfaces excepted; the
// DHCP port has none: see syncDHCPPort).
func addAutoAddresses(ctx context.Context, tx *store.Tx, sn *neutron.Subnet) error {
	ports, err := tx.PortsOfNetwork(ctx, sn.NetworkID)
	if err != nil {
		return err
	}
	for i := range ports {
		old := &ports[i]
		if isRouterInterface(old.DeviceOwner) || old.DeviceOwner == neutron.DeviceOwnerDHCP {
			continue
		}
		addr, err := neutron.EUI64(sn.CIDR, old.MACAddress)
		if err != nil {
			return err
		}
		p := *old
		p.FixedIPs = append(append([]neutron.FixedIP{}, old.FixedIPs...), neutron.FixedIP{SubnetID: sn.ID, IPAddress: addr})
		if err := tx.UpdatePort(ctx, old, &p); err != nil {
			return err
		}
	}
	return nil
}

// removeAutoAddresses takes a SLAAC subnet's addresses off the ports that
// have one before the subnet goes (Neutron deletes automatic allocations
// with their subnet; a router interface on it keeps the subnet in use).
func removeAutoAddresses(ctx context.Context, tx *store.Tx, sn *neutron.Subnet) error {
	ports, err := tx.PortsOfNetwork(ctx, sn.NetworkID)
	if err != nil {
		return err
	}
	for i := range ports {
		old := &ports[i]
		p := *old
		p.FixedIPs = nil
		for _, f := range old.FixedIPs {
			if f.SubnetID != sn.ID {
				p.FixedIPs = append(p.FixedIPs, f)
			}
		}
		if len(p.FixedIPs) == len(old.FixedIPs) || isRouterInterface(old.DeviceOwner) {
			continue
		}
		if p.FixedIPs == nil {
			p.FixedIPs = []neutron.FixedIP{}
		}
		if err := tx.UpdatePort(ctx, old, &p); err != nil {
			return err
		}
	}
	return nil
}

// checkSubnetLimits enforces the number of DNS servers and host routes.
func checkSubnetLimits(sn *neutron.Subnet, name string) error {
	if len(sn.DNSNameservers) > neutron.MaxDNSNameservers {
		return &neutron.Error{Status: http.StatusBadRequest, Type: "DNSNameServersExhausted",
			Message: "Unable to complete operation for " + name + ". The number of DNS nameservers exceeds the limit " + itoa(neutron.MaxDNSNameservers) + "."}
	}
	if len(sn.HostRoutes) > neutron.MaxHostRoutes {
		return &neutron.Error{Status: http.StatusBadRequest, Type: "HostRoutesExhausted",
			Message: "Unable to complete operation for " + name + ". The number of host routes exceeds the limit " + itoa(neutron.MaxHostRoutes) + "."}
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
	var want []*neutron.Subnet
	for i := range subs {
		if subs[i].EnableDHCP && !subs[i].IsSLAAC() && subs[i].ID != gone {
			want = append(want, &subs[i])
		}
	}
	if len(want) == 0 {
		if dhcp != nil {
			return tx.DeletePort(ctx, dhcp)
		}
		return nil
	}
	if dhcp == nil {
		mac, err := s.freeMAC(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		p := &neutron.Port{
			ID: uuid.NewString(), ProjectID: n.ProjectID, NetworkID: n.ID, MACAddress: mac, AdminStateUp: true,
			Status: neutron.PortStatusActive, DeviceID: "dhcp-" + n.ID, DeviceOwner: neutron.DeviceOwnerDHCP,
			PortSecurityEnabled: false, VNICType: neutron.VNICNormal, VIFType: neutron.VIFTypeUnbound,
			Profile: map[string]any{}, SecurityGroups: []string{}, AllowedAddressPairs: []neutron.AddressPair{},
		}
		for _, sn := range want {
			ip, err := s.allocateIP(ctx, tx, sn, p.FixedIPs)
			if err != nil {
				return err
			}
			p.FixedIPs = append(p.FixedIPs, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
		}
		return tx.CreatePort(ctx, p)
	}
	old := *dhcp
	updated := *dhcp
	updated.FixedIPs = nil
	have := map[string]neutron.FixedIP{}
	for _, ip := range dhcp.FixedIPs {
		have[ip.SubnetID] = ip
	}
	changed := false
	for _, sn := range want {
		if ip, ok := have[sn.ID]; ok {
			updated.FixedIPs = append(updated.FixedIPs, ip)
			delete(have, sn.ID)
			continue
		}
		ip, err := s.allocateIP(ctx, tx, sn, updated.FixedIPs)
		if err != nil {
			return err
		}
		updated.FixedIPs = append(updated.FixedIPs, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
		changed = true
	}
	if len(have) > 0 {
		changed = true
	}
	if !changed {
		return nil
	}
	return tx.UpdatePort(ctx, &old, &updated)
}

func (s *Server) updateSubnet(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.SubnetResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	in := items[0]
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	var sn *neutron.Subnet
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		var n *neutron.Network
		var err error
		if sn, n, err = getVisibleSubnet(r.Context(), tx, r.ctx, r.segs[1]); err != nil {
			return err
		}
		if !mayChangeSubnet(r.ctx, sn, n) {
			return policyDenied("rule:update_subnet")
		}
		if err := checkRevision(ifMatch, sn.RevisionNumber); err != nil {
			return err
		}
		if v, ok := in["name"].(string); ok {
			sn.Name = v
		}
		if v, ok := in["description"].(string); ok {
			sn.Description = v
		}
		if v, ok := in["enable_dhcp"].(bool); ok {
			if v && !sn.EnableDHCP {
				if err := neutron.CheckDHCPCIDR(sn.IPVersion, sn.CIDR); err != nil {
					return err
				}
			}
			sn.EnableDHCP = v
		}
		if v, ok := in["dns_nameservers"]; ok {
			sn.DNSNameservers = stringsOf(v)
		}
		if v, ok := in["host_routes"]; ok {
			sn.HostRoutes = routesOf(v)
		}
		if err := checkSubnetLimits(sn, sn.ID); err != nil {
			return err
		}
		if err := neutron.CheckSubnetFamilies(sn.IPVersion, in["dns_nameservers"], in["host_routes"]); err != nil {
			return err
		}
		gw, hasGW := in["gateway_ip"]
		pools, hasPools := in["allocation_pools"]
		if hasGW || hasPools {
			req := neutron.SubnetRequest{IPVersion: sn.IPVersion, CIDR: sn.CIDR, EnableDHCP: sn.EnableDHCP,
				IPv6RAMode: sn.IPv6RAMode, IPv6AddressMode: sn.IPv6AddressMode, GatewayIP: gw, Pools: pools}
			if !hasGW {
				req.GatewayIP = nil
				if sn.GatewayIP != nil {
					req.GatewayIP = sn.GatewayIP.String()
				}
			}
			if !hasPools {
				var cur []any
				for _, p := range sn.AllocationPools {
					cur = append(cur, map[string]any{"start": p.Start.String(), "end": p.End.String()})
				}
				req.Pools = cur
			}
			if sn.GatewayIP, sn.AllocationPools, err = neutron.BuildSubnet(req); err != nil {
				return err
			}
		}
		if err := tx.UpdateSubnet(r.Context(), sn); err != nil {
			return err
		}
		return s.syncDHCPPort(r.Context(), tx, n, "")
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"subnet", renderSubnet(sn, nil)}})
	return nil
}

func (s *Server) deleteSubnet(w http.ResponseWriter, r *request) error {
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		sn, n, err := getVisibleSubnet(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if !mayChangeSubnet(r.ctx, sn, n) {
			return policyDenied("rule:delete_subnet")
		}
		if err := checkRevision(ifMatch, sn.RevisionNumber); err != nil {
			return err
		}
		if sn.IsSLAAC() {
			if err := removeAutoAddresses(r.Context(), tx, sn); err != nil {
				return err
			}
		}
		used, err := tx.PortsUsingSubnet(r.Context(), sn.ID)
		if err != nil {
			return err
		}
		if used > 0 {
			return neutron.SubnetInUse(sn.ID)
		}
		// The DHCP port lets go of its address on this subnet first.
		if err := s.syncDHCPPort(r.Context(), tx, n, sn.ID); err != nil {
			return err
		}
		return tx.DeleteSubnet(r.Context(), sn)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}
