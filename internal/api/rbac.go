package api

import (
	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func renderRBAC(p *neutron.RBACPolicy, _, _ bool) object {
	return object{
		{"id", p.ID}, {"project_id", p.ProjectID}, {"action", p.Action}, {"object_id", p.ObjectID},
		{"target_tenant", p.TargetTenant}, {"object_type", p.ObjectType}, {"tenant_id", p.ProjectID},
	}
}

// rbacResource serves RBAC policies, which share security groups and
// address groups.
func (s *Server) rbacResource() *resource[neutron.RBACPolicy, neutron.RBACRequest] {
	return &resource[neutron.RBACPolicy, neutron.RBACRequest]{
		kind:     neutron.RBACPolicies,
		notFound: neutron.RBACPolicyNotFound,
		load:     alone((*store.Tx).GetRBACPolicy),
		visible: byCaller(func(caller *neutron.Context, p *neutron.RBACPolicy, _ *neutron.Network) bool {
			return caller.IsAdmin || p.ProjectID == caller.ProjectID
		}),
		id:     func(p *neutron.RBACPolicy) string { return p.ID },
		render: renderRBAC,
		list:   (*store.Tx).ListRBACPolicies,
		precheck: func(caller *neutron.Context, reqs []neutron.RBACRequest) error {
			if err := neutron.CheckRBACAction(reqs[0].ObjectType, reqs[0].Action); err != nil {
				return err
			}
			// Neutron's restrict_wildcard: only admins share with every project.
			if reqs[0].TargetTenant.V == neutron.RBACTargetAllProjects && !caller.IsAdmin {
				return policyDenied(rbacCreateRule)
			}
			return nil
		},
		create:     s.createRBAC,
		update:     updateRBAC,
		noRevision: true,
		remove: func(c txn, p *neutron.RBACPolicy, _ *neutron.Network, _ int64) error {
			if err := checkUnshare(c, p); err != nil {
				return err
			}
			return c.tx.DeleteRBACPolicy(c.ctx, p)
		},
	}
}

// rbacCreateRule is the policy expression Neutron evaluates for an RBAC
// create, which it prints whole when the caller does not own the object.
const rbacCreateRule = "((((rule:create_rbac_policy and rule:create_rbac_policy:object_type) and rule:create_rbac_policy:object_id) and rule:create_rbac_policy:target_tenant) and rule:create_rbac_policy:action)"

func (s *Server) createRBAC(c txn, reqs []neutron.RBACRequest, _ bool) ([]neutron.RBACPolicy, error) {
	req := reqs[0]
	p := &neutron.RBACPolicy{
		ID: uuid.NewString(), ProjectID: req.ProjectID, ObjectType: req.ObjectType,
		ObjectID: req.ObjectID, Action: req.Action, TargetTenant: req.TargetTenant.V,
	}
	if err := checkShareObject(c, p.ObjectType, p.ObjectID); err != nil {
		return nil, err
	}
	if err := checkDuplicate(c, p); err != nil {
		return nil, err
	}
	if err := s.checkQuota(c.ctx, c.tx, p.ProjectID, "rbac_policy", 1); err != nil {
		return nil, err
	}
	if err := c.tx.CreateRBACPolicy(c.ctx, p); err != nil {
		return nil, err
	}
	return []neutron.RBACPolicy{*p}, nil
}

// checkDuplicate refuses a second policy with the same values.
func checkDuplicate(c txn, p *neutron.RBACPolicy) error {
	exists, err := c.tx.RBACPolicyExists(c.ctx, p)
	if err == nil && exists {
		err = neutron.DuplicateRBACPolicy()
	}
	return err
}

// checkShareObject is Neutron's validate_rbac_policy_change: "Only admins
// can manipulate policies on objects they do not own". It holds for create
// and for retargeting: a project that holds a policy on a group it does not
// own (an admin made it) must not hand the group to a third project. A
// member gets the same 400 whether the group is foreign, shared with it or
// missing, so the answer tells nothing about other projects' groups; an
// admin naming a missing group gets 404.
func checkShareObject(c txn, objectType, objectID string) error {
	owner, exists, err := sharedObjectOwner(c, objectType, objectID)
	switch {
	case err != nil:
		return err
	case !c.caller.IsAdmin && (!exists || owner != c.caller.ProjectID):
		return neutron.RBACNotOwner()
	case !exists && objectType == neutron.RBACObjectAddressGrp:
		return neutron.AddressGroupNotFound(objectID)
	case !exists:
		return neutron.SecurityGroupNotFound(objectID)
	}
	return nil
}

// sharedObjectOwner is the project owning the object of an RBAC policy,
// and whether there is such an object.
func sharedObjectOwner(c txn, objectType, objectID string) (string, bool, error) {
	if objectType == neutron.RBACObjectAddressGrp {
		g, err := c.tx.AddressGroupHead(c.ctx, objectID)
		if err != nil || g == nil {
			return "", false, err
		}
		return g.ProjectID, true, nil
	}
	g, err := c.tx.SecurityGroupHead(c.ctx, objectID)
	if err != nil || g == nil {
		return "", false, err
	}
	return g.ProjectID, true, nil
}

// rbacUpdateRule is the policy expression of a retarget.
const rbacUpdateRule = "(rule:update_rbac_policy and rule:update_rbac_policy:target_tenant)"

// checkUnshare refuses to take a group away from projects whose ports use
// it, or an address group from projects whose rules name it (Neutron's
// RbacPolicyInUse), unless another policy still shares it.
func checkUnshare(c txn, p *neutron.RBACPolicy) error {
	owner, exists, err := sharedObjectOwner(c, p.ObjectType, p.ObjectID)
	if err != nil || !exists {
		return err
	}
	users, err := c.tx.ProjectsUsingGroup(c.ctx, p.ObjectID)
	if p.ObjectType == neutron.RBACObjectAddressGrp {
		users, err = c.tx.ProjectsUsingAddressGroup(c.ctx, p.ObjectID)
	}
	if err != nil {
		return err
	}
	others, err := c.tx.OtherSharingTargets(c.ctx, p)
	if err != nil {
		return err
	}
	still := map[string]bool{owner: true}
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

func updateRBAC(c txn, p *neutron.RBACPolicy, _ *neutron.Network, req neutron.RBACRequest, _ int64) (*neutron.RBACPolicy, error) {
	target := req.TargetTenant
	if !target.Set || target.V == p.TargetTenant {
		return p, nil
	}
	if target.V == neutron.RBACTargetAllProjects && !c.caller.IsAdmin {
		return nil, policyDenied(rbacUpdateRule)
	}
	if err := checkShareObject(c, p.ObjectType, p.ObjectID); err != nil {
		return nil, err
	}
	if target.V != neutron.RBACTargetAllProjects {
		if err := checkUnshare(c, p); err != nil {
			return nil, err
		}
	}
	p.TargetTenant = target.V
	if err := checkDuplicate(c, p); err != nil {
		return nil, err
	}
	return p, c.tx.UpdateRBACTarget(c.ctx, p)
}
