package api

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// renderAddressGroup shows an address group as Neutron's create, show,
// list and update do: shared and the standard attributes stay hidden.
func renderAddressGroup(g *neutron.AddressGroup, _, _ bool) object {
	return object{
		{"id", g.ID}, {"name", g.Name}, {"project_id", g.ProjectID}, {"addresses", addresses(g)},
		{"description", g.Description}, {"tenant_id", g.ProjectID},
	}
}

// renderAddressGroupAction is the answer of add_addresses and
// remove_addresses: the plugin's whole dictionary, which the API does not
// filter there.
func renderAddressGroupAction(g *neutron.AddressGroup) object {
	return object{
		{"id", g.ID}, {"name", g.Name}, {"project_id", g.ProjectID}, {"shared", g.Shared},
		{"addresses", addresses(g)}, {"revision_number", g.RevisionNumber}, {"description", g.Description},
		{"created_at", fmtTime(g.CreatedAt)}, {"updated_at", fmtTime(g.UpdatedAt)}, {"tenant_id", g.ProjectID},
	}
}

func addresses(g *neutron.AddressGroup) []string {
	if g.Addresses == nil {
		return []string{}
	}
	return g.Addresses
}

// addressGroupResource serves address groups (the address-group
// extension): a project's own, shared with others through RBAC for use by
// their rules, changed only by the owner.
func (s *Server) addressGroupResource() *resource[neutron.AddressGroup, neutron.AddressGroupRequest] {
	return &resource[neutron.AddressGroup, neutron.AddressGroupRequest]{
		kind:     neutron.AddressGroups,
		notFound: neutron.AddressGroupNotFound,
		load: func(c txn, id string) (*neutron.AddressGroup, *neutron.Network, error) {
			g, err := c.tx.GetAddressGroupFor(c.ctx, id, c.caller.ProjectID)
			return g, nil, err
		},
		visible: byCaller(visibleAddressGroup),
		id:      func(g *neutron.AddressGroup) string { return g.ID },
		render:  renderAddressGroup,
		list:    (*store.Tx).ListAddressGroups,
		create:  createAddressGroups,
		update:  updateAddressGroup,
		remove:  deleteAddressGroup,
	}
}

// visibleAddressGroup is Neutron's get_address_group: admins, the owner,
// and the projects an RBAC policy shares the group with.
func visibleAddressGroup(ctx *neutron.Context, g *neutron.AddressGroup, _ *neutron.Network) bool {
	return ctx.IsAdmin || g.ProjectID == ctx.ProjectID || g.Shared
}

// ownsAddressGroup is admin_or_owner, the rule of every change.
func ownsAddressGroup(ctx *neutron.Context, g *neutron.AddressGroup) bool {
	return ctx.IsAdmin || g.ProjectID == ctx.ProjectID
}

func createAddressGroups(c txn, reqs []neutron.AddressGroupRequest, _ bool) ([]neutron.AddressGroup, error) {
	return each(reqs, func(req *neutron.AddressGroupRequest) (*neutron.AddressGroup, error) {
		g := &neutron.AddressGroup{ID: uuid.NewString(), ProjectID: req.ProjectID, Name: req.Name.V, Description: req.Description.V}
		if req.Addresses.Set {
			list := make([]any, len(req.Addresses.V))
			for i, a := range req.Addresses.V {
				list[i] = a
			}
			addrs, err := neutron.NormalizeAddresses(list)
			if err != nil {
				return nil, err
			}
			g.Addresses = addrs
		}
		return g, c.tx.CreateAddressGroup(c.ctx, g)
	})
}

func updateAddressGroup(c txn, g *neutron.AddressGroup, _ *neutron.Network, req neutron.AddressGroupRequest, ifMatch int64) (*neutron.AddressGroup, error) {
	if !ownsAddressGroup(c.caller, g) {
		// Neutron's answer to a project the group is shared with.
		return nil, neutron.NotFoundGeneric()
	}
	if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
		return nil, err
	}
	set(&g.Name, req.Name)
	set(&g.Description, req.Description)
	return g, c.tx.UpdateAddressGroup(c.ctx, g)
}

func deleteAddressGroup(c txn, g *neutron.AddressGroup, _ *neutron.Network, ifMatch int64) error {
	if !ownsAddressGroup(c.caller, g) {
		return policyDenied("rule:delete_address_group")
	}
	inUse, err := c.tx.AddressGroupInUse(c.ctx, g.ID)
	if err != nil {
		return err
	}
	if inUse {
		return neutron.AddressGroupInUse(g.ID)
	}
	if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
		return err
	}
	return c.tx.DeleteAddressGroup(c.ctx, g)
}

// addressGroupRoutes are the address groups' collection with its actions.
func (s *Server) addressGroupRoutes() collection {
	d := s.addressGroupResource()
	c := d.routes(s)
	c.actions = s.addressGroupActions(d)
	return c
}

// addressGroupActions are PUT /v2.0/address-groups/{id}/add_addresses and
// remove_addresses.
func (s *Server) addressGroupActions(d *resource[neutron.AddressGroup, neutron.AddressGroupRequest]) map[string]handlerFunc {
	return map[string]handlerFunc{
		"add_addresses":    s.changeAddresses(d, true),
		"remove_addresses": s.changeAddresses(d, false),
	}
}

// changeAddresses is Neutron's add_addresses (add) or remove_addresses:
// the body's addresses, normalised, must all be new (AddressesAlreadyExist)
// or all be held (AddressesNotFound); nothing changes otherwise.
func (s *Server) changeAddresses(d *resource[neutron.AddressGroup, neutron.AddressGroupRequest], add bool) handlerFunc {
	rule := "rule:remove_addresses"
	if add {
		rule = "rule:add_addresses"
	}
	return func(w http.ResponseWriter, r *request) error {
		if r.body == nil {
			return neutron.BadRequest("Resource body required")
		}
		body, ok := r.body.(map[string]any)
		if !ok {
			return neutron.BadRequest("Body contains invalid data")
		}
		addrs, err := neutron.NormalizeAddresses(body["addresses"])
		if err != nil {
			return err
		}
		var g *neutron.AddressGroup
		err = s.store.Write(r.Context(), func(tx *store.Tx) error {
			c := txn{r.Context(), tx, r.ctx}
			found, _, err := d.find(c, r.segs[1])
			if err != nil {
				return err
			}
			if !ownsAddressGroup(r.ctx, found) {
				return policyDenied(rule)
			}
			held := map[string]bool{}
			for _, a := range found.Addresses {
				held[a] = true
			}
			var in, out []string
			for _, a := range addrs {
				if held[a] {
					in = append(in, a)
				} else {
					out = append(out, a)
				}
			}
			switch {
			case add && len(in) > 0:
				return neutron.AddressesAlreadyExist(in, found.ID)
			case !add && len(out) > 0:
				return neutron.AddressesNotFound(out, found.ID)
			case add:
				err = tx.ChangeAddresses(r.Context(), found, out, nil)
			default:
				err = tx.ChangeAddresses(r.Context(), found, nil, in)
			}
			g = found
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, object{{"address_group", renderAddressGroupAction(g)}})
		return nil
	}
}
