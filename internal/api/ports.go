package api

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// renderPort shows a port. Create answers order fields differently from
// show, as Neutron does; binding details are for admins only.
func renderPort(p *neutron.Port, admin, created bool, fields []string) object {
	fips := make([]object, len(p.FixedIPs))
	for i, ip := range p.FixedIPs {
		fips[i] = object{{"subnet_id", ip.SubnetID}, {"ip_address", ip.IPAddress.String()}}
	}
	pairs := make([]object, len(p.AllowedAddressPairs))
	for i, ap := range p.AllowedAddressPairs {
		pairs[i] = object{{"mac_address", ap.MACAddress}, {"ip_address", ap.IPAddress}}
	}
	profile := p.Profile
	if profile == nil {
		profile = map[string]any{}
	}
	binding := object{
		{"binding:profile", profile}, {"binding:host_id", p.HostID},
		{"binding:vif_type", p.VIFType}, {"binding:vif_details", p.VIFDetails()},
	}
	o := object{
		{"id", p.ID}, {"name", p.Name}, {"network_id", p.NetworkID}, {"tenant_id", p.ProjectID},
		{"mac_address", p.MACAddress}, {"admin_state_up", p.AdminStateUp}, {"status", p.Status},
		{"device_id", p.DeviceID}, {"device_owner", p.DeviceOwner}, {"fixed_ips", fips},
	}
	tail := object{{"tags", p.Tags}, {"created_at", fmtTime(p.CreatedAt)}, {"updated_at", fmtTime(p.UpdatedAt)},
		{"revision_number", p.RevisionNumber}}
	if created {
		o = append(o, kv{"project_id", p.ProjectID}, kv{"port_security_enabled", p.PortSecurityEnabled},
			kv{"security_groups", p.SecurityGroups}, kv{"binding:vnic_type", p.VNICType})
		if admin {
			o = append(o, binding...)
		}
		o = append(o, kv{"allowed_address_pairs", pairs}, kv{"extra_dhcp_opts", []any{}}, kv{"description", p.Description})
		o = append(o, tail...)
		return o.only(fields)
	}
	o = append(o, kv{"allowed_address_pairs", pairs}, kv{"extra_dhcp_opts", []any{}},
		kv{"security_groups", p.SecurityGroups}, kv{"description", p.Description}, kv{"binding:vnic_type", p.VNICType})
	if admin {
		o = append(o, binding...)
	}
	o = append(o, kv{"port_security_enabled", p.PortSecurityEnabled})
	o = append(o, tail...)
	o = append(o, kv{"project_id", p.ProjectID})
	if admin && p.Status == neutron.PortStatusError && p.StatusReason != "" {
		// moat's own, for admins (docs/compatibility.md): why the host's
		// agent cannot enforce the port. It may name other projects' ports.
		o = append(o, kv{"moat:status_reason", p.StatusReason})
	}
	return o.only(fields)
}

// getVisiblePort loads a port its owner, its network's owner or an admin
// may see.
func getVisiblePort(ctx context.Context, tx *store.Tx, nctx *neutron.Context, id string) (*neutron.Port, *neutron.Network, error) {
	p, err := tx.GetPort(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if p == nil {
		return nil, nil, neutron.PortNotFound(id)
	}
	n, err := tx.GetNetwork(ctx, p.NetworkID)
	if err != nil {
		return nil, nil, err
	}
	if !visiblePort(nctx, p, n) {
		return nil, nil, neutron.PortNotFound(id)
	}
	return p, n, nil
}

// visiblePort is Neutron's get_port (admin_owner_or_network_owner): the
// port's project, the owner of its network n (nil if gone) and admins.
func visiblePort(nctx *neutron.Context, p *neutron.Port, n *neutron.Network) bool {
	return nctx.IsAdmin || p.ProjectID == nctx.ProjectID || (n != nil && n.ProjectID == nctx.ProjectID)
}

// mayChangePort is Neutron's update_port rule (admin_or_owner or advsvc):
// the owner of a port's network may see the port and delete it, but not
// change it (its groups, port security or device owner would be theirs to
// open).
func mayChangePort(nctx *neutron.Context, p *neutron.Port) bool {
	return nctx.IsAdmin || nctx.IsAdvsvc || p.ProjectID == nctx.ProjectID
}

func (s *Server) listPorts(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.PortResource)
	if err != nil {
		return err
	}
	var ports []neutron.Port
	err = s.store.Read(r.Context(), func(tx *store.Tx) error {
		ports, err = tx.ListPorts(r.Context(), p.query)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "ports", ports,
		func(pt *neutron.Port) string { return pt.ID },
		func(pt *neutron.Port) object { return renderPort(pt, r.ctx.IsAdmin, false, p.fields) })
	return nil
}

func (s *Server) showPort(w http.ResponseWriter, r *request) error {
	var p *neutron.Port
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		p, _, err = getVisiblePort(r.Context(), tx, r.ctx, r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"port", renderPort(p, r.ctx.IsAdmin, false, fieldsParam(r))}})
	return nil
}

// portChecks are the attribute policies of port create and update
// (Neutron's defaults): addresses, port security and pairs are for the
// network's owner, bindings for admins, network:* owners for the owner.
func portChecks(nctx *neutron.Context, n *neutron.Network, raw map[string]any, update bool) []attrCheck {
	netOwner := func() bool { return nctx.IsAdmin || nctx.IsAdvsvc || n.ProjectID == nctx.ProjectID }
	admin := func() bool { return nctx.IsAdmin }
	// The network's owner chooses a MAC on create; changing it later is
	// for admins (update_port:mac_address is admin_only).
	macAllowed := netOwner
	if update {
		macAllowed = func() bool { return nctx.IsAdmin || nctx.IsAdvsvc }
	}
	fixedIPs := func() bool {
		if netOwner() {
			return true
		}
		// On create, rule:shared lets any project pick a subnet of a
		// shared network; update_port:fixed_ips has no rule:shared.
		if update {
			return false
		}
		list, _ := raw["fixed_ips"].([]any)
		for _, it := range list {
			if m, ok := it.(map[string]any); ok {
				if _, hasIP := m["ip_address"]; hasIP {
					return false
				}
			}
		}
		return true
	}
	deviceOwner := func() bool {
		owner, _ := raw["device_owner"].(string)
		return !strings.HasPrefix(owner, "network:") || netOwner()
	}
	// In the order of Neutron's attribute map, which orders its message.
	return []attrCheck{
		{attr: "mac_address", allowed: macAllowed},
		{attr: "fixed_ips", allowed: fixedIPs, sub: []string{"subnet_id", "ip_address"}},
		{attr: "device_owner", allowed: deviceOwner},
		{attr: "allowed_address_pairs", allowed: netOwner, sub: []string{"ip_address", "mac_address"}},
		// Anyone who may create or change the port (rule:ACTION) may
		// choose its vnic_type; the rule still shows in the expression.
		{attr: "binding:vnic_type", allowed: func() bool { return true }},
		{attr: "binding:host_id", allowed: admin, explicit: true},
		{attr: "binding:profile", allowed: admin},
		{attr: "port_security_enabled", allowed: netOwner},
	}
}

// freeMAC picks an unused fa:16:3e:xx:xx:xx address on a network.
func (s *Server) freeMAC(ctx context.Context, tx *store.Tx, networkID string) (string, error) {
	for i := 0; i < 32; i++ {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate MAC: %w", err)
		}
		mac := fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
		used, err := tx.MACInUse(ctx, networkID, mac)
		if err != nil {
			return "", err
		}
		if !used {
			return mac, nil
		}
	}
	return "", &neutron.Error{Status: http.StatusServiceUnavailable, Type: "MacAddressGenerationFailure",
		Message: "Unable to generate unique mac on network " + networkID + "."}
}

// allocateIP takes the lowest free address of a subnet's pools, skipping
// addresses already allocated and those taken earlier in the request.
// (Neutron picks at random among free addresses; lowest-first makes
// allocation reproducible.)
func (s *Server) allocateIP(ctx context.Context, tx *store.Tx, sn *neutron.Subnet, taken []neutron.FixedIP) (netip.Addr, error) {
	used, err := tx.UsedAddresses(ctx, sn.ID)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, f := range taken {
		used[f.IPAddress] = true
	}
	for _, pool := range sn.AllocationPools {
		for a := pool.Start; a.IsValid() && a.Compare(pool.End) <= 0; a = a.Next() {
			if !used[a] {
				return a, nil
			}
		}
	}
	return netip.Addr{}, neutron.IPAddressGenerationFailure(sn.NetworkID)
}

// assignFixedIPs turns a port's requested fixed_ips (or their absence) into
// addresses, as Neutron's IPAM does: explicit addresses must be free and on
// the network; a subnet alone gets a free address; nothing requested gets
// one address from the first IPv4 subnet with room and one from the first
// stateful IPv6 subnet; SLAAC subnets always give the EUI-64 address.
func (s *Server) assignFixedIPs(ctx context.Context, tx *store.Tx, n *neutron.Network, mac, owner string, req any, keep []neutron.FixedIP) ([]neutron.FixedIP, error) {
	subs, err := tx.SubnetsOfNetwork(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*neutron.Subnet{}
	for i := range subs {
		byID[subs[i].ID] = &subs[i]
	}
	kept := map[netip.Addr]bool{}
	for _, f := range keep {
		kept[f.IPAddress] = true
	}
	var out []neutron.FixedIP
	covered := map[string]bool{}
	if list, ok := req.([]any); ok {
		for _, it := range list {
			m := it.(map[string]any)
			sid, hasSubnet := m["subnet_id"].(string)
			ipStr, hasIP := m["ip_address"].(string)
			var sn *neutron.Subnet
			if len(subs) == 0 {
				return nil, neutron.InvalidInput("IP allocation requires subnets for network")
			}
			if hasSubnet {
				if sn = byID[sid]; sn == nil {
					// A subnet that does not exist at all is 404, as Neutron.
					other, err := tx.GetSubnet(ctx, sid)
					if err != nil {
						return nil, err
					}
					if other == nil {
						return nil, neutron.SubnetNotFound(sid)
					}
					return nil, neutron.InvalidInput(fmt.Sprintf("Failed to create port on network %s, because fixed_ips included invalid subnet %s", n.ID, sid))
				}
			}
			if !hasIP {
				if sn == nil {
					return nil, neutron.InvalidInput("IP allocation requires subnet_id or ip_address")
				}
				if sn.IsSLAAC() {
					ip, err := neutron.EUI64(sn.CIDR, mac)
					if err != nil {
						return nil, err
					}
					out = append(out, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
				} else {
					ip, err := s.allocateIP(ctx, tx, sn, append(append([]neutron.FixedIP{}, out...), keep...))
					if err != nil {
						return nil, err
					}
					out = append(out, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
				}
				covered[sn.ID] = true
				continue
			}
			ip, _ := netip.ParseAddr(ipStr)
			if sn == nil {
				for i := range subs {
					if neutron.ValidIPForSubnet(subs[i].CIDR, ip, owner) {
						sn = &subs[i]
						break
					}
				}
				if sn == nil {
					return nil, neutron.InvalidIPForNetwork(ipStr)
				}
			} else if !neutron.ValidIPForSubnet(sn.CIDR, ip, owner) {
				return nil, neutron.InvalidIPForSubnet(ipStr)
			}
			if !kept[ip] {
				used, err := tx.UsedAddresses(ctx, sn.ID)
				if err != nil {
					return nil, err
				}
				if used[ip] {
					return nil, neutron.IPAddressAlreadyAllocated(ip.String(), sn.ID)
				}
			}
			out = append(out, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
			covered[sn.ID] = true
		}
	} else {
		var v4, v6 bool
		var lastErr error
		for i := range subs {
			sn := &subs[i]
			if sn.IsSLAAC() || (sn.IPVersion == 4 && v4) || (sn.IPVersion == 6 && v6) {
				continue
			}
			ip, err := s.allocateIP(ctx, tx, sn, out)
			if err != nil {
				lastErr = err
				continue
			}
			out = append(out, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
			covered[sn.ID] = true
			v4, v6 = v4 || sn.IPVersion == 4, v6 || sn.IPVersion == 6
		}
		hasV4Subnet := false
		for i := range subs {
			hasV4Subnet = hasV4Subnet || subs[i].IPVersion == 4
		}
		if hasV4Subnet && !v4 && lastErr != nil {
			return nil, lastErr
		}
	}
	for i := range subs {
		if subs[i].IsSLAAC() && !covered[subs[i].ID] {
			ip, err := neutron.EUI64(subs[i].CIDR, mac)
			if err != nil {
				return nil, err
			}
			out = append(out, neutron.FixedIP{SubnetID: subs[i].ID, IPAddress: ip})
		}
	}
	return out, nil
}

// portGroups resolves requested security groups: each must be visible to
// the port's project (own or shared with it), and a port cannot mix
// stateful and stateless groups.
func portGroups(ctx context.Context, tx *store.Tx, nctx *neutron.Context, project string, ids []string) ([]string, error) {
	var missing []string
	var groups []*neutron.SecurityGroup
	for _, id := range ids {
		g, err := tx.GetSecurityGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		ok, err := usableGroup(ctx, tx, nctx, g, project)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		groups = append(groups, g)
	}
	if len(missing) > 0 {
		return nil, neutron.SecurityGroupNotFound(strings.Join(missing, ", "))
	}
	if err := neutron.CheckStatefulMix(groups); err != nil {
		return nil, err
	}
	return neutron.SortedIDs(ids), nil
}

func idList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

func (s *Server) createPorts(w http.ResponseWriter, r *request) error {
	items, bulk, err := neutron.PortResource.PrepareBody(r.ctx, r.body, true, true)
	if err != nil {
		return err
	}
	raws := rawItems(r.body, neutron.PortResource)
	var created []neutron.Port
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		// Creating ports does not change networks: each item's network is
		// loaded once, for the policy checks and for the create.
		nets := make([]*neutron.Network, len(items))
		for i, it := range items {
			n, err := getVisibleNetwork(r.Context(), tx, r.ctx, it["network_id"].(string))
			if err != nil {
				return err
			}
			if err := enforce("create_port", neutron.PortResource, raws[i], portChecks(r.ctx, n, raws[i], false)); err != nil {
				return err
			}
			nets[i] = n
		}
		if err := s.checkQuotaItems(r.Context(), tx, items, "port"); err != nil {
			return err
		}
		for i, it := range items {
			p, err := s.createPort(r.Context(), tx, r.ctx, nets[i], it)
			if err != nil {
				return err
			}
			created = append(created, *p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bulk {
		out := make([]object, len(created))
		for i := range created {
			out[i] = renderPort(&created[i], r.ctx.IsAdmin, true, nil)
		}
		writeJSON(w, http.StatusCreated, object{{"ports", out}})
		return nil
	}
	writeJSON(w, http.StatusCreated, object{{"port", renderPort(&created[0], r.ctx.IsAdmin, true, nil)}})
	return nil
}

// createPort creates the port of one item on n, the item's network (loaded
// with getVisibleNetwork).
func (s *Server) createPort(ctx context.Context, tx *store.Tx, nctx *neutron.Context, n *neutron.Network, it map[string]any) (*neutron.Port, error) {
	var err error
	p := &neutron.Port{
		ID: uuid.NewString(), ProjectID: it["project_id"].(string), NetworkID: n.ID, Name: it["name"].(string),
		Description: it["description"].(string), AdminStateUp: it["admin_state_up"].(bool), Status: neutron.PortStatusDown,
		DeviceID: it["device_id"].(string), DeviceOwner: it["device_owner"].(string), PortSecurityEnabled: n.PortSecurityEnabled,
		HostID: it["binding:host_id"].(string), VNICType: it["binding:vnic_type"].(string), Profile: map[string]any{},
		VIFType: neutron.VIFTypeUnbound,
	}
	if v, ok := it["port_security_enabled"].(bool); ok {
		p.PortSecurityEnabled = v
	}
	// Neutron's _determine_port_security: trusted ports (DHCP, routers)
	// have no port security, whatever the request says.
	if neutron.IsTrustedOwner(p.DeviceOwner) {
		p.PortSecurityEnabled = false
	}
	if v, ok := it["binding:profile"].(map[string]any); ok {
		p.Profile = v
	}
	if p.HostID != "" {
		p.VIFType = neutron.VIFTypeOVS
	}
	if err := s.ensureDefaultGroupTx(ctx, tx, nctx, p.ProjectID); err != nil {
		return nil, err
	}
	if mac, ok := it["mac_address"].(string); ok {
		used, err := tx.MACInUse(ctx, n.ID, mac)
		if err != nil {
			return nil, err
		}
		if used {
			return nil, neutron.MacAddressInUse(n.ID, mac)
		}
		p.MACAddress = mac
	} else if p.MACAddress, err = s.freeMAC(ctx, tx, n.ID); err != nil {
		return nil, err
	}
	if p.FixedIPs, err = s.assignFixedIPs(ctx, tx, n, p.MACAddress, p.DeviceOwner, it["fixed_ips"], nil); err != nil {
		return nil, err
	}
	sgs, requested := it["security_groups"].([]any)
	switch {
	// ML2 refuses groups only on a port without port security; a port
	// without an address may have groups (its message speaks of
	// addresses for plugins that require them).
	case requested && len(sgs) > 0 && !p.PortSecurityEnabled:
		return nil, neutron.PortSecurityAndIPRequiredForSecurityGroups()
	case requested:
		if p.SecurityGroups, err = portGroups(ctx, tx, nctx, p.ProjectID, idList(sgs)); err != nil {
			return nil, err
		}
	case p.PortSecurityEnabled && !neutron.IsTrustedOwner(p.DeviceOwner):
		def, err := tx.DefaultSecurityGroupID(ctx, p.ProjectID)
		if err != nil {
			return nil, err
		}
		if def != "" {
			p.SecurityGroups = []string{def}
		}
	}
	if p.SecurityGroups == nil {
		p.SecurityGroups = []string{}
	}
	p.AllowedAddressPairs = neutron.AddressPairsFrom(it["allowed_address_pairs"], p.MACAddress)
	if err := neutron.CheckAddressPairs(p.AllowedAddressPairs); err != nil {
		return nil, err
	}
	if len(p.AllowedAddressPairs) > 0 && !p.PortSecurityEnabled {
		return nil, neutron.AddressPairAndPortSecurityRequired()
	}
	// CreatePort sets the new port's tags to [].
	if err := tx.CreatePort(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Server) updatePort(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.PortResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	in := items[0]
	raw := rawItem(r.body, "port")
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	var p *neutron.Port
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		old, n, err := getVisiblePort(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if err := enforceUpdate("update_port", mayChangePort(r.ctx, old), neutron.PortResource, raw, portChecks(r.ctx, n, raw, true)); err != nil {
			return err
		}
		if err := checkRevision(ifMatch, old.RevisionNumber); err != nil {
			return err
		}
		np := *old
		p = &np
		if v, ok := in["name"].(string); ok {
			p.Name = v
		}
		if v, ok := in["description"].(string); ok {
			p.Description = v
		}
		if v, ok := in["admin_state_up"].(bool); ok {
			p.AdminStateUp = v
		}
		if v, ok := in["device_id"].(string); ok {
			p.DeviceID = v
		}
		if v, ok := in["device_owner"].(string); ok {
			p.DeviceOwner = v
		}
		if v, ok := in["binding:vnic_type"].(string); ok {
			p.VNICType = v
		}
		if v, ok := in["binding:profile"].(map[string]any); ok {
			p.Profile = v
		}
		if v, ok := in["binding:host_id"].(string); ok && v != p.HostID {
			p.HostID = v
			p.VIFType = neutron.VIFTypeUnbound
			p.Status = neutron.PortStatusDown
			if v != "" {
				p.VIFType = neutron.VIFTypeOVS
			}
		}
		if mac, ok := in["mac_address"].(string); ok && mac != p.MACAddress {
			used, err := tx.MACInUse(r.Context(), n.ID, mac)
			if err != nil {
				return err
			}
			if used {
				return neutron.MacAddressInUse(n.ID, mac)
			}
			p.MACAddress = mac
		}
		if v, ok := in["fixed_ips"]; ok {
			if p.FixedIPs, err = s.assignFixedIPs(r.Context(), tx, n, p.MACAddress, p.DeviceOwner, v, old.FixedIPs); err != nil {
				return err
			}
		}
		if v, ok := in["port_security_enabled"].(bool); ok {
			p.PortSecurityEnabled = v
		}
		if sgs, ok := in["security_groups"].([]any); ok {
			if len(sgs) > 0 && !p.PortSecurityEnabled {
				return neutron.PortSecurityAndIPRequiredForSecurityGroups()
			}
			if p.SecurityGroups, err = portGroups(r.Context(), tx, r.ctx, p.ProjectID, idList(sgs)); err != nil {
				return err
			}
		} else if len(p.SecurityGroups) > 0 && !p.PortSecurityEnabled {
			// Neutron checks this only when port security is off (a port
			// may lose its addresses and keep its groups).
			return neutron.PortSecurityPortHasSecurityGroup()
		}
		if v, ok := in["allowed_address_pairs"]; ok {
			p.AllowedAddressPairs = neutron.AddressPairsFrom(v, p.MACAddress)
			if err := neutron.CheckAddressPairs(p.AllowedAddressPairs); err != nil {
				return err
			}
		}
		if len(p.AllowedAddressPairs) > 0 && !p.PortSecurityEnabled {
			return neutron.AddressPairAndPortSecurityRequired()
		}
		return tx.UpdatePort(r.Context(), old, p)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"port", renderPort(p, r.ctx.IsAdmin, false, nil)}})
	return nil
}

func (s *Server) deletePort(w http.ResponseWriter, r *request) error {
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		p, _, err := getVisiblePort(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if err := checkRevision(ifMatch, p.RevisionNumber); err != nil {
			return err
		}
		return tx.DeletePort(r.Context(), p)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}
