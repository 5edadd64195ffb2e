package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// renderNetwork shows a network; create answers list fields in another
// order than show, as Neutron does, and only admins see provider fields.
func renderNetwork(n *neutron.Network, admin, created bool) object {
	subnets := n.Subnets
	if subnets == nil {
		subnets = []string{}
	}
	provider := object{
		{"provider:network_type", n.NetworkType},
		{"provider:physical_network", optString(n.PhysicalNetwork)},
		{"provider:segmentation_id", optInt(n.SegmentationID)},
	}
	head := object{
		{"id", n.ID}, {"name", n.Name}, {"tenant_id", n.ProjectID}, {"admin_state_up", n.AdminStateUp},
		{"mtu", n.MTU}, {"status", n.Status}, {"subnets", subnets}, {"shared", n.Shared},
	}
	zones := object{
		{"availability_zone_hints", []string{}}, {"availability_zones", []string{}},
		{"ipv4_address_scope", nil}, {"ipv6_address_scope", nil},
	}
	var o object
	if created {
		o = append(o, head...)
		o = append(o, kv{"project_id", n.ProjectID}, kv{"port_security_enabled", n.PortSecurityEnabled}, kv{"router:external", false})
		if admin {
			o = append(o, provider...)
		}
		o = append(o, kv{"is_default", false})
		o = append(o, zones...)
		o = append(o, kv{"description", n.Description}, kv{"tags", n.Tags}, kv{"created_at", fmtTime(n.CreatedAt)},
			kv{"updated_at", fmtTime(n.UpdatedAt)}, kv{"revision_number", n.RevisionNumber})
		return o
	}
	o = append(o, head...)
	o = append(o, zones...)
	o = append(o, kv{"router:external", false}, kv{"description", n.Description},
		kv{"port_security_enabled", n.PortSecurityEnabled}, kv{"tags", n.Tags}, kv{"created_at", fmtTime(n.CreatedAt)},
		kv{"updated_at", fmtTime(n.UpdatedAt)}, kv{"revision_number", n.RevisionNumber}, kv{"project_id", n.ProjectID})
	if admin {
		o = append(o, provider...)
	}
	return o
}

func visibleNetwork(ctx *neutron.Context, n *neutron.Network, _ *neutron.Network) bool {
	return ctx.IsAdmin || n.ProjectID == ctx.ProjectID || n.Shared
}

func ownsNetwork(ctx *neutron.Context, n *neutron.Network) bool {
	return ctx.IsAdmin || n.ProjectID == ctx.ProjectID
}

// networkResource serves networks by the ML2 plugin's rules: provider
// attributes for admins, segments from the configured ranges.
func (s *Server) networkResource() *resource[neutron.Network, neutron.NetworkRequest] {
	return &resource[neutron.Network, neutron.NetworkRequest]{
		kind:     neutron.Networks,
		notFound: neutron.NetworkNotFound,
		load:     alone((*store.Tx).GetNetwork),
		visible:  byCaller(visibleNetwork),
		id:       func(n *neutron.Network) string { return n.ID },
		render:   renderNetwork,
		list:     (*store.Tx).ListNetworks,
		precheck: func(caller *neutron.Context, reqs []neutron.NetworkRequest) error {
			for _, req := range reqs {
				if err := enforce("create_network", req.Given, networkChecks(caller)); err != nil {
					return err
				}
			}
			return nil
		},
		create: s.createNetworks,
		update: s.updateNetwork,
		remove: deleteNetwork,
		tags: func(caller *neutron.Context, n *neutron.Network, _ *neutron.Network) (store.TagTarget, bool) {
			return store.TagTarget{Kind: store.KindNetwork, ID: n.ID, ProjectID: n.ProjectID, StandardAttrID: n.StandardAttrID},
				ownsNetwork(caller, n)
		},
	}
}

// networkChecks are the attribute policies of network create and update:
// sharing and provider attributes are for admins.
func networkChecks(caller *neutron.Context) []attrCheck {
	admin := func() bool { return caller.IsAdmin }
	checks := []attrCheck{{attr: "shared", allowed: admin}}
	for _, a := range neutron.ProviderAttrs {
		checks = append(checks, attrCheck{attr: a, allowed: admin})
	}
	return checks
}

func (s *Server) createNetworks(c txn, reqs []neutron.NetworkRequest, _ bool) ([]neutron.Network, error) {
	if err := checkQuotaItems(s, c, reqs, "network"); err != nil {
		return nil, err
	}
	return each(reqs, func(req *neutron.NetworkRequest) (*neutron.Network, error) { return s.createNetwork(c, req) })
}

func (s *Server) createNetwork(c txn, req *neutron.NetworkRequest) (*neutron.Network, error) {
	n := &neutron.Network{
		ID: uuid.NewString(), ProjectID: req.ProjectID, Name: req.Name.V, Description: req.Description.V,
		AdminStateUp: req.AdminStateUp.V, Status: "ACTIVE", Shared: req.Shared.V, PortSecurityEnabled: req.PortSecurityEnabled.V,
	}
	if err := s.ensureDefaultGroupTx(c.ctx, c.tx, c.caller, n.ProjectID); err != nil {
		return nil, err
	}
	seg, err := s.netcfg.ValidateSegment(req.Segment)
	if err != nil {
		return nil, err
	}
	n.NetworkType = seg.NetworkType
	if n.PhysicalNetwork, n.SegmentationID, err = c.tx.AllocateSegment(c.ctx, s.netcfg, n.ID, seg); err != nil {
		return nil, err
	}
	max := s.netcfg.MTU(n.NetworkType)
	n.MTU = max
	if req.MTU != nil {
		if err := checkMTU(*req.MTU, max); err != nil {
			return nil, err
		}
		n.MTU = *req.MTU
	}
	if err := c.tx.CreateNetwork(c.ctx, n); err != nil {
		return nil, err
	}
	return n, nil
}

func (s *Server) updateNetwork(c txn, n *neutron.Network, _ *neutron.Network, req neutron.NetworkRequest, ifMatch int64) (*neutron.Network, error) {
	if err := enforceUpdate("update_network", ownsNetwork(c.caller, n), req.Given, networkChecks(c.caller)); err != nil {
		return nil, err
	}
	if req.ProviderGiven {
		return nil, neutron.InvalidInput("Plugin does not support updating provider attributes")
	}
	if err := checkRevision(ifMatch, n.RevisionNumber); err != nil {
		return nil, err
	}
	set(&n.Name, req.Name)
	set(&n.Description, req.Description)
	set(&n.AdminStateUp, req.AdminStateUp)
	if req.Shared.Set {
		if n.Shared && !req.Shared.V {
			if err := checkUnshareNetwork(c.ctx, c.tx, n); err != nil {
				return nil, err
			}
		}
		n.Shared = req.Shared.V
	}
	set(&n.PortSecurityEnabled, req.PortSecurityEnabled)
	if req.MTU != nil {
		if err := checkMTU(*req.MTU, s.netcfg.MTU(n.NetworkType)); err != nil {
			return nil, err
		}
		n.MTU = *req.MTU
	}
	return n, c.tx.UpdateNetwork(c.ctx, n)
}

// set applies an attribute an update gives.
func set[T any](dst *T, o neutron.Opt[T]) {
	if o.Set {
		*dst = o.V
	}
}

// invalidSharedSetting is neutron-lib's InvalidSharedSetting; Neutron
// names the network by its name here.
func invalidSharedSetting(name string) *neutron.Error {
	return &neutron.Error{Status: http.StatusConflict, Type: "InvalidSharedSetting",
		Message: "Unable to reconfigure sharing settings for network " + name + ". Multiple tenants are using it."}
}

// checkUnshareNetwork refuses to make a shared network private while
// another project has a port or a subnet on it (Neutron's
// _validate_shared_update): those ports would stay on a network their
// project no longer sees. network:* ports (the DHCP port) do not count.
func checkUnshareNetwork(ctx context.Context, tx *store.Tx, n *neutron.Network) error {
	ports, err := tx.PortsOfNetwork(ctx, n.ID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.ProjectID != n.ProjectID && !strings.HasPrefix(p.DeviceOwner, "network:") {
			return invalidSharedSetting(n.Name)
		}
	}
	subs, err := tx.SubnetsOfNetwork(ctx, n.ID)
	if err != nil {
		return err
	}
	for _, sn := range subs {
		if sn.ProjectID != n.ProjectID {
			return invalidSharedSetting(n.Name)
		}
	}
	return nil
}

func deleteNetwork(c txn, n *neutron.Network, _ *neutron.Network, ifMatch int64) error {
	if !ownsNetwork(c.caller, n) {
		return policyDenied("rule:delete_network")
	}
	if err := checkRevision(ifMatch, n.RevisionNumber); err != nil {
		return err
	}
	ports, err := c.tx.PortsOfNetwork(c.ctx, n.ID)
	if err != nil {
		return err
	}
	var inUse []string
	for _, p := range ports {
		if p.DeviceOwner != neutron.DeviceOwnerDHCP {
			inUse = append(inUse, p.ID)
		}
	}
	if len(inUse) > 0 {
		return neutron.NetworkInUse(n.ID, inUse)
	}
	for i := range ports {
		if err := c.tx.DeletePort(c.ctx, &ports[i]); err != nil {
			return err
		}
	}
	subs, err := c.tx.SubnetsOfNetwork(c.ctx, n.ID)
	if err != nil {
		return err
	}
	for i := range subs {
		if err := c.tx.DeleteSubnet(c.ctx, &subs[i]); err != nil {
			return err
		}
	}
	return c.tx.DeleteNetwork(c.ctx, n)
}

// checkMTU checks a requested network MTU: at most what the segment
// carries, with Neutron's message; below IPv4's minimum of 68 no host can
// use it (Neutron accepts any positive value).
func checkMTU(mtu, max int) error {
	if mtu > max {
		return neutron.InvalidInput("Requested MTU is too big, maximum is " + itoa(max))
	}
	if mtu < 68 {
		return neutron.InvalidInput("Requested MTU is too small, minimum is 68")
	}
	return nil
}
