package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// rawItems returns the objects a client sent, one per item of a (bulk)
// request, before defaults were filled in.
func rawItems(body any, res *neutron.Resource) []map[string]any {
	top, _ := body.(map[string]any)
	if list, ok := top[res.Plural].([]any); ok {
		out := make([]map[string]any, len(list))
		for i, it := range list {
			m, _ := it.(map[string]any)
			if inner, ok := m[res.Singular].(map[string]any); ok {
				m = inner
			}
			out[i] = m
		}
		return out
	}
	item, _ := top[res.Singular].(map[string]any)
	return []map[string]any{item}
}

func optInt64(v any) *int {
	if n, ok := v.(int64); ok {
		i := int(n)
		return &i
	}
	return nil
}

// renderNetwork shows a network; create answers list fields in another
// order than show, as Neutron does, and only admins see provider fields.
func renderNetwork(n *neutron.Network, admin, created bool, fields []string) object {
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
		return o.only(fields)
	}
	o = append(o, head...)
	o = append(o, zones...)
	o = append(o, kv{"router:external", false}, kv{"description", n.Description},
		kv{"port_security_enabled", n.PortSecurityEnabled}, kv{"tags", n.Tags}, kv{"created_at", fmtTime(n.CreatedAt)},
		kv{"updated_at", fmtTime(n.UpdatedAt)}, kv{"revision_number", n.RevisionNumber}, kv{"project_id", n.ProjectID})
	if admin {
		o = append(o, provider...)
	}
	return o.only(fields)
}

func visibleNetwork(ctx *neutron.Context, n *neutron.Network) bool {
	return ctx.IsAdmin || n.ProjectID == ctx.ProjectID || n.Shared
}

func ownsNetwork(ctx *neutron.Context, n *neutron.Network) bool {
	return ctx.IsAdmin || n.ProjectID == ctx.ProjectID
}

func getVisibleNetwork(ctx context.Context, tx *store.Tx, nctx *neutron.Context, id string) (*neutron.Network, error) {
	n, err := tx.GetNetwork(ctx, id)
	if err != nil {
		return nil, err
	}
	if n == nil || !visibleNetwork(nctx, n) {
		return nil, neutron.NetworkNotFound(id)
	}
	return n, nil
}

func (s *Server) listNetworks(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.NetworkResource)
	if err != nil {
		return err
	}
	var nets []neutron.Network
	err = s.store.Read(r.Context(), func(tx *store.Tx) error {
		nets, err = tx.ListNetworks(r.Context(), p.query)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "networks", nets,
		func(n *neutron.Network) string { return n.ID },
		func(n *neutron.Network) object { return renderNetwork(n, r.ctx.IsAdmin, false, p.fields) })
	return nil
}

func (s *Server) showNetwork(w http.ResponseWriter, r *request) error {
	var n *neutron.Network
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		n, err = getVisibleNetwork(r.Context(), tx, r.ctx, r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"network", renderNetwork(n, r.ctx.IsAdmin, false, fieldsParam(r))}})
	return nil
}

var networkPolicyAttrs = []string{"shared", "provider:network_type", "provider:physical_network", "provider:segmentation_id"}

func (s *Server) createNetworks(w http.ResponseWriter, r *request) error {
	items, bulk, err := neutron.NetworkResource.PrepareBody(r.ctx, r.body, true, true)
	if err != nil {
		return err
	}
	for _, raw := range rawItems(r.body, neutron.NetworkResource) {
		var checks []attrCheck
		for _, a := range networkPolicyAttrs {
			checks = append(checks, attrCheck{attr: a, allowed: func() bool { return r.ctx.IsAdmin }})
		}
		if err := enforce("create_network", neutron.NetworkResource, raw, checks); err != nil {
			return err
		}
	}
	var created []neutron.Network
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		if err := s.checkQuotaItems(r.Context(), tx, items, "network"); err != nil {
			return err
		}
		for _, it := range items {
			n := neutron.Network{
				ID: uuid.NewString(), ProjectID: it["project_id"].(string), Name: it["name"].(string),
				Description: it["description"].(string), AdminStateUp: it["admin_state_up"].(bool),
				Status: "ACTIVE", Shared: it["shared"].(bool), PortSecurityEnabled: it["port_security_enabled"].(bool),
			}
			if err := s.ensureDefaultGroupTx(r.Context(), tx, r.ctx, n.ProjectID); err != nil {
				return err
			}
			req := neutron.SegmentRequest{SegmentationID: optInt64(it["provider:segmentation_id"])}
			req.NetworkType, _ = it["provider:network_type"].(string)
			req.PhysicalNetwork, _ = it["provider:physical_network"].(string)
			req, err := s.netcfg.ValidateSegment(req)
			if err != nil {
				return err
			}
			n.NetworkType = req.NetworkType
			n.PhysicalNetwork, n.SegmentationID, err = tx.AllocateSegment(r.Context(), s.netcfg, n.ID, req)
			if err != nil {
				return err
			}
			max := s.netcfg.MTU(n.NetworkType)
			n.MTU = max
			if m := optInt64(it["mtu"]); m != nil {
				if err := checkMTU(*m, max); err != nil {
					return err
				}
				n.MTU = *m
			}
			if err := tx.CreateNetwork(r.Context(), &n); err != nil {
				return err
			}
			created = append(created, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bulk {
		out := make([]object, len(created))
		for i := range created {
			out[i] = renderNetwork(&created[i], r.ctx.IsAdmin, true, nil)
		}
		writeJSON(w, http.StatusCreated, object{{"networks", out}})
		return nil
	}
	writeJSON(w, http.StatusCreated, object{{"network", renderNetwork(&created[0], r.ctx.IsAdmin, true, nil)}})
	return nil
}

func (s *Server) updateNetwork(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.NetworkResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	in := items[0]
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	var n *neutron.Network
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		var err error
		if n, err = getVisibleNetwork(r.Context(), tx, r.ctx, r.segs[1]); err != nil {
			return err
		}
		var checks []attrCheck
		for _, a := range networkPolicyAttrs {
			checks = append(checks, attrCheck{attr: a, allowed: func() bool { return r.ctx.IsAdmin }})
		}
		if err := enforceUpdate("update_network", ownsNetwork(r.ctx, n), neutron.NetworkResource, in, checks); err != nil {
			return err
		}
		for _, a := range networkPolicyAttrs[1:] {
			if _, ok := in[a]; ok {
				return neutron.InvalidInput("Plugin does not support updating provider attributes")
			}
		}
		if err := checkRevision(ifMatch, n.RevisionNumber); err != nil {
			return err
		}
		if v, ok := in["name"].(string); ok {
			n.Name = v
		}
		if v, ok := in["description"].(string); ok {
			n.Description = v
		}
		if v, ok := in["admin_state_up"].(bool); ok {
			n.AdminStateUp = v
		}
		if v, ok := in["shared"].(bool); ok {
			if n.Shared && !v {
				if err := checkUnshareNetwork(r.Context(), tx, n); err != nil {
					return err
				}
			}
			n.Shared = v
		}
		if v, ok := in["port_security_enabled"].(bool); ok {
			n.PortSecurityEnabled = v
		}
		if m := optInt64(in["mtu"]); m != nil {
			if err := checkMTU(*m, s.netcfg.MTU(n.NetworkType)); err != nil {
				return err
			}
			n.MTU = *m
		}
		return tx.UpdateNetwork(r.Context(), n)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"network", renderNetwork(n, r.ctx.IsAdmin, false, nil)}})
	return nil
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

func (s *Server) deleteNetwork(w http.ResponseWriter, r *request) error {
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		n, err := getVisibleNetwork(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if !ownsNetwork(r.ctx, n) {
			return policyDenied("rule:delete_network")
		}
		if err := checkRevision(ifMatch, n.RevisionNumber); err != nil {
			return err
		}
		ports, err := tx.PortsOfNetwork(r.Context(), n.ID)
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
			if err := tx.DeletePort(r.Context(), &ports[i]); err != nil {
				return err
			}
		}
		subs, err := tx.SubnetsOfNetwork(r.Context(), n.ID)
		if err != nil {
			return err
		}
		for i := range subs {
			if err := tx.DeleteSubnet(r.Context(), &subs[i]); err != nil {
				return err
			}
		}
		return tx.DeleteNetwork(r.Context(), n)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
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

// checkQuotaItems checks a resource's quota for the items of a create,
// per owning project, before anything is created (Neutron's API does this
// first).
func (s *Server) checkQuotaItems(ctx context.Context, tx *store.Tx, items []map[string]any, resource string) error {
	perProject := map[string]int{}
	var order []string
	for _, it := range items {
		p := it["project_id"].(string)
		if perProject[p] == 0 {
			order = append(order, p)
		}
		perProject[p]++
	}
	for _, p := range order {
		if err := s.checkQuota(ctx, tx, p, resource, perProject[p]); err != nil {
			return err
		}
	}
	return nil
}
