package api

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func renderRBAC(p *neutron.RBACPolicy, fields []string) object {
	return object{
		{"id", p.ID}, {"project_id", p.ProjectID}, {"action", p.Action}, {"object_id", p.ObjectID},
		{"target_tenant", p.TargetTenant}, {"object_type", p.ObjectType}, {"tenant_id", p.ProjectID},
	}.only(fields)
}

func (s *Server) listRBAC(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.RBACPolicyResource)
	if err != nil {
		return err
	}
	var ps []neutron.RBACPolicy
	err = s.store.Read(r.Context(), func(tx *store.Tx) error {
		ps, err = tx.ListRBACPolicies(r.Context(), p.query)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "rbac_policies", ps,
		func(rp *neutron.RBACPolicy) string { return rp.ID },
		func(rp *neutron.RBACPolicy) object { return renderRBAC(rp, p.fields) })
	return nil
}

func getVisibleRBAC(r *request, tx *store.Tx) (*neutron.RBACPolicy, error) {
	p, err := tx.GetRBACPolicy(r.Context(), r.segs[1])
	if err != nil {
		return nil, err
	}
	if p == nil || (!r.ctx.IsAdmin && p.ProjectID != r.ctx.ProjectID) {
		return nil, neutron.RBACPolicyNotFound(r.segs[1])
	}
	return p, nil
}

func (s *Server) showRBAC(w http.ResponseWriter, r *request) error {
	var p *neutron.RBACPolicy
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		p, err = getVisibleRBAC(r, tx)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"rbac_policy", renderRBAC(p, fieldsParam(r))}})
	return nil
}

// rbacCreateRule is the policy expression Neutron evaluates for an RBAC
// create, which it prints whole when the caller does not own the object.
const rbacCreateRule = "((((rule:create_rbac_policy and rule:create_rbac_policy:object_type) and rule:create_rbac_policy:object_id) and rule:create_rbac_policy:target_tenant) and rule:create_rbac_policy:action)"

func (s *Server) createRBAC(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.RBACPolicyResource.PrepareBody(r.ctx, r.body, true, false)
	if err != nil {
		return err
	}
	it := items[0]
	p := &neutron.RBACPolicy{
		ID: uuid.NewString(), ProjectID: it["project_id"].(string), ObjectType: it["object_type"].(string),
		ObjectID: it["object_id"].(string), Action: it["action"].(string), TargetTenant: it["target_tenant"].(string),
	}
	// Neutron's restrict_wildcard: only admins share with every project.
	if p.TargetTenant == neutron.RBACTargetAllProjects && !r.ctx.IsAdmin {
		return policyDenied(rbacCreateRule)
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		if err := checkShareObject(r, tx, p.ObjectID); err != nil {
			return err
		}
		if exists, err := tx.RBACPolicyExists(r.Context(), p); err != nil || exists {
			if err == nil {
				err = neutron.DuplicateRBACPolicy()
			}
			return err
		}
		if err := s.checkQuota(r.Context(), tx, p.ProjectID, "rbac_policy", 1); err != nil {
			return err
		}
		return tx.CreateRBACPolicy(r.Context(), p)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, object{{"rbac_policy", renderRBAC(p, nil)}})
	return nil
}

// checkShareObject is Neutron's validate_rbac_policy_change: "Only admins
// can manipulate policies on objects they do not own". It holds for create
// and for retargeting: a project that holds a policy on a group it does not
// own (an admin made it) must not hand the group to a third project. A
// member gets the same 400 whether the group is foreign, shared with it or
// missing, so the answer tells nothing about other projects' groups; an
// admin naming a missing group gets 404.
func checkShareObject(r *request, tx *store.Tx, objectID string) error {
	g, err := tx.GetSecurityGroup(r.Context(), objectID)
	switch {
	case err != nil:
		return err
	case !r.ctx.IsAdmin && (g == nil || g.ProjectID != r.ctx.ProjectID):
		return neutron.RBACNotOwner()
	case g == nil:
		return neutron.SecurityGroupNotFound(objectID)
	}
	return nil
}

// rbacUpdateRule is the policy expression of a retarget.
const rbacUpdateRule = "(rule:update_rbac_policy and rule:update_rbac_policy:target_tenant)"

// checkUnshare refuses to take a group away from projects whose ports use
// it (Neutron's RbacPolicyInUse), unless another policy still shares it.
func checkUnshare(r *request, tx *store.Tx, p *neutron.RBACPolicy) error {
	g, err := tx.GetSecurityGroup(r.Context(), p.ObjectID)
	if err != nil || g == nil {
		return err
	}
	users, err := tx.ProjectsUsingGroup(r.Context(), p.ObjectID)
	if err != nil {
		return err
	}
	others, err := tx.OtherSharingTargets(r.Context(), p)
	if err != nil {
		return err
	}
	still := map[string]bool{g.ProjectID: true}
	for _, t := range others {
		if t == neutron.RBACTargetAllProjects {
			return nil
		}
		still[t] = true
	}
	for _, u := range users {
		if !still[u] && (p.TargetTenant == neutron.RBACTargetAllProjects || p.TargetTenant == u) {
			return neutron.RBACPolicyInUse(p.ObjectID, p.TargetTenant)
		}
	}
	return nil
}

func (s *Server) updateRBAC(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.RBACPolicyResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	var p *neutron.RBACPolicy
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		if p, err = getVisibleRBAC(r, tx); err != nil {
			return err
		}
		target, ok := items[0]["target_tenant"].(string)
		if !ok || target == p.TargetTenant {
			return nil
		}
		if target == neutron.RBACTargetAllProjects && !r.ctx.IsAdmin {
			return policyDenied(rbacUpdateRule)
		}
		if err := checkShareObject(r, tx, p.ObjectID); err != nil {
			return err
		}
		if target != neutron.RBACTargetAllProjects {
			if err := checkUnshare(r, tx, p); err != nil {
				return err
			}
		}
		p.TargetTenant = target
		if exists, err := tx.RBACPolicyExists(r.Context(), p); err != nil || exists {
			if err == nil {
				err = neutron.DuplicateRBACPolicy()
			}
			return err
		}
		return tx.UpdateRBACTarget(r.Context(), p)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"rbac_policy", renderRBAC(p, nil)}})
	return nil
}

func (s *Server) deleteRBAC(w http.ResponseWriter, r *request) error {
	err := s.store.Write(r.Context(), func(tx *store.Tx) error {
		p, err := getVisibleRBAC(r, tx)
		if err != nil {
			return err
		}
		if err := checkUnshare(r, tx, p); err != nil {
			return err
		}
		return tx.DeleteRBACPolicy(r.Context(), p)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}
