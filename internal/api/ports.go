package api

import (
	"context"
	"crypto/rand"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/binding"
	"github.com/moat-sg/moat/internal/ipam"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// renderPort shows a port. Create answers order fields differently from
// show, as Neutron does; binding details are for admins only.
func renderPort(p *neutron.Port, admin, created bool) object {
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
		{"binding:vif_type", p.VIFType}, {"binding:vif_details", binding.VIFDetails(p.VIFType)},
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
		return o
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
	return o
}

// portResource serves ports: their addresses from internal/ipam, their
// binding and security from internal/binding.
func (s *Server) portResource() *resource[neutron.Port, neutron.PortRequest] {
	return &resource[neutron.Port, neutron.PortRequest]{
		kind:     neutron.Ports,
		notFound: neutron.PortNotFound,
		load:     onNetwork((*store.Tx).GetPort, func(p *neutron.Port) string { return p.NetworkID }),
		visible:  byCaller(visiblePort),
		id:       func(p *neutron.Port) string { return p.ID },
		render:   renderPort,
		list:     (*store.Tx).ListPorts,
		create:   s.createPorts,
		update:   s.updatePort,
		remove: func(c txn, p *neutron.Port, _ *neutron.Network, ifMatch int64) error {
			if err := checkRevision(ifMatch, p.RevisionNumber); err != nil {
				return err
			}
			return c.tx.DeletePort(c.ctx, p)
		},
		tags: func(caller *neutron.Context, p *neutron.Port, _ *neutron.Network) (store.TagTarget, bool) {
			return store.TagTarget{Kind: store.KindPort, ID: p.ID, ProjectID: p.ProjectID, StandardAttrID: p.StandardAttrID},
				mayChangePort(caller, p)
		},
	}
}

// onNetwork loads an object that lives on a network (a port, a subnet)
// with its network (nil if gone).
func onNetwork[T any](get func(*store.Tx, context.Context, string) (*T, error), network func(*T) string) func(txn, string) (*T, *neutron.Network, error) {
	return func(c txn, id string) (*T, *neutron.Network, error) {
		v, err := get(c.tx, c.ctx, id)
		if err != nil || v == nil {
			return nil, nil, err
		}
		n, err := c.tx.GetNetwork(c.ctx, network(v))
		if err != nil {
			return nil, nil, err
		}
		return v, n, nil
	}
}

// alone loads an object whose policy asks about no network.
func alone[T any](get func(*store.Tx, context.Context, string) (*T, error)) func(txn, string) (*T, *neutron.Network, error) {
	return func(c txn, id string) (*T, *neutron.Network, error) {
		v, err := get(c.tx, c.ctx, id)
		return v, nil, err
	}
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

// portChecks are the attribute policies of port create and update
// (Neutron's defaults): addresses, port security and pairs are for the
// network's owner, bindings for admins, network:* owners for the owner.
func portChecks(caller *neutron.Context, n *neutron.Network, req *neutron.PortRequest, update bool) []attrCheck {
	netOwner := func() bool { return caller.IsAdmin || caller.IsAdvsvc || n.ProjectID == caller.ProjectID }
	admin := func() bool { return caller.IsAdmin }
	// The network's owner chooses a MAC on create; changing it later is
	// for admins (update_port:mac_address is admin_only).
	macAllowed := netOwner
	if update {
		macAllowed = func() bool { return caller.IsAdmin || caller.IsAdvsvc }
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
		for _, ip := range req.FixedIPs.V {
			if ip.IP.IsValid() {
				return false
			}
		}
		return true
	}
	deviceOwner := func() bool {
		return !neutron.IsTrustedOwner(req.DeviceOwner.V) || netOwner()
	}
	// In the order of Neutron's attribute map, which orders its message.
	return []attrCheck{
		{attr: "mac_address", allowed: macAllowed},
		{attr: "fixed_ips", allowed: fixedIPs},
		{attr: "device_owner", allowed: deviceOwner},
		{attr: "allowed_address_pairs", allowed: netOwner},
		// Anyone who may create or change the port (rule:ACTION) may
		// choose its vnic_type; the rule still shows in the expression.
		{attr: "binding:vnic_type", allowed: func() bool { return true }},
		{attr: "binding:host_id", allowed: admin, explicit: true},
		{attr: "binding:profile", allowed: admin},
		{attr: "port_security_enabled", allowed: netOwner},
	}
}

// portGroups answers internal/binding's questions about groups from the
// request's transaction.
type portGroups struct {
	tx     *store.Tx
	caller *neutron.Context
}

func (g portGroups) UsableGroup(ctx context.Context, id, project string) (*neutron.SecurityGroup, error) {
	sg, err := g.tx.GetSecurityGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	ok, err := usableGroup(ctx, g.tx, g.caller, sg, project)
	if err != nil || !ok {
		return nil, err
	}
	return sg, nil
}

func (g portGroups) DefaultSecurityGroupID(ctx context.Context, project string) (string, error) {
	return g.tx.DefaultSecurityGroupID(ctx, project)
}

func (s *Server) createPorts(c txn, reqs []neutron.PortRequest, _ bool) ([]neutron.Port, error) {
	// Creating ports does not change networks: each item's network is
	// loaded once, for the policy checks and for the create.
	nets := make([]*neutron.Network, len(reqs))
	for i := range reqs {
		n, _, err := s.networks.find(c, reqs[i].NetworkID)
		if err != nil {
			return nil, err
		}
		if err := enforce("create_port", reqs[i].Given, portChecks(c.caller, n, &reqs[i], false)); err != nil {
			return nil, err
		}
		nets[i] = n
	}
	if err := checkQuotaItems(s, c, reqs, "port"); err != nil {
		return nil, err
	}
	created := make([]neutron.Port, 0, len(reqs))
	for i := range reqs {
		p, err := s.createPort(c, nets[i], &reqs[i])
		if err != nil {
			return nil, err
		}
		created = append(created, *p)
	}
	return created, nil
}

// createPort creates the port of one request on n, the request's network.
func (s *Server) createPort(c txn, n *neutron.Network, req *neutron.PortRequest) (*neutron.Port, error) {
	p := binding.NewPort(uuid.NewString(), req, n)
	if err := s.ensureDefaultGroupTx(c.ctx, c.tx, c.caller, p.ProjectID); err != nil {
		return nil, err
	}
	var err error
	if req.MACAddress.Set {
		if err := ipam.CheckMAC(c.ctx, c.tx, n.ID, req.MACAddress.V); err != nil {
			return nil, err
		}
		p.MACAddress = req.MACAddress.V
	} else if p.MACAddress, err = ipam.NewMAC(c.ctx, c.tx, n.ID, rand.Reader); err != nil {
		return nil, err
	}
	if p.FixedIPs, err = assignFixedIPs(c, n, p, req.FixedIPs, nil); err != nil {
		return nil, err
	}
	if err := binding.SecureNew(c.ctx, portGroups{c.tx, c.caller}, p, req); err != nil {
		return nil, err
	}
	// CreatePort sets the new port's tags to [].
	if err := c.tx.CreatePort(c.ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// assignFixedIPs gives port p on network n the addresses a request asks
// for (unset: automatic ones); keep are those it holds already.
func assignFixedIPs(c txn, n *neutron.Network, p *neutron.Port, req neutron.Opt[[]neutron.IPRequest], keep []neutron.FixedIP) ([]neutron.FixedIP, error) {
	subs, err := c.tx.SubnetsOfNetwork(c.ctx, n.ID)
	if err != nil {
		return nil, err
	}
	return ipam.Assign(c.ctx, c.tx, subs, ipam.Port{NetworkID: n.ID, MAC: p.MACAddress, DeviceOwner: p.DeviceOwner, Keep: keep}, req)
}

func (s *Server) updatePort(c txn, old *neutron.Port, n *neutron.Network, req neutron.PortRequest, ifMatch int64) (*neutron.Port, error) {
	if err := enforceUpdate("update_port", mayChangePort(c.caller, old), req.Given, portChecks(c.caller, n, &req, true)); err != nil {
		return nil, err
	}
	if err := checkRevision(ifMatch, old.RevisionNumber); err != nil {
		return nil, err
	}
	np := *old
	p := &np
	binding.Update(p, &req)
	if mac := req.MACAddress; mac.Set && mac.V != p.MACAddress {
		if err := ipam.CheckMAC(c.ctx, c.tx, n.ID, mac.V); err != nil {
			return nil, err
		}
		p.MACAddress = mac.V
	}
	if req.FixedIPs.Set {
		var err error
		if p.FixedIPs, err = assignFixedIPs(c, n, p, req.FixedIPs, old.FixedIPs); err != nil {
			return nil, err
		}
	}
	if err := binding.SecureUpdate(c.ctx, portGroups{c.tx, c.caller}, p, &req); err != nil {
		return nil, err
	}
	return p, c.tx.UpdatePort(c.ctx, old, p)
}
