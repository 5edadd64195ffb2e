package neutron

import (
	"fmt"
	"net/http"
)

// RBAC actions and object types moat serves.
const (
	RBACAccessAsShared     = "access_as_shared"
	RBACObjectSecurityGrp  = "security_group"
	RBACObjectAddressGrp   = "address_group"
	RBACTargetAllProjects  = "*"
	RBACMaxTargetTenantLen = 255
)

// RBACPolicy shares an object with another project (or all: "*").
type RBACPolicy struct {
	ID           string
	ProjectID    string
	ObjectType   string
	ObjectID     string
	Action       string
	TargetTenant string
}

func validateRBACObjectType(v any) error {
	if s, ok := v.(string); ok && (s == RBACObjectSecurityGrp || s == RBACObjectAddressGrp) {
		return nil
	}
	return InvalidInput(fmt.Sprintf("'%s' is not a valid RBAC object type", PyStr(v)))
}

// CheckRBACAction refuses an action the object type does not have (both
// types moat shares have access_as_shared only). The attribute map cannot
// say it: the message names the object type.
func CheckRBACAction(objectType, action string) error {
	if action == RBACAccessAsShared {
		return nil
	}
	return newErr(http.StatusBadRequest, "InvalidActionForType",
		"Invalid action '%s' for object type '%s'. Valid actions: ('access_as_shared',)", action, objectType)
}

func validateRBACAction(v any) error {
	if _, ok := v.(string); ok {
		return nil // CheckRBACAction, once the object type is known
	}
	return newErr(http.StatusBadRequest, "InvalidActionForType",
		"Invalid action '%s' for object type 'security_group'. Valid actions: ('access_as_shared',)", PyStr(v))
}

// RBACPolicyResource is the rbac-policies attribute map (security groups
// and address groups).
var RBACPolicyResource = &Resource{
	Singular: "rbac_policy",
	Plural:   "rbac_policies",
	Attrs: []Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		{Name: "object_type", AllowPost: true, Validate: validateRBACObjectType, Visible: true, Filter: true, SortKey: true},
		{Name: "object_id", AllowPost: true, Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "target_tenant", AllowPost: true, AllowPut: true, Validate: ValidateString(RBACMaxTargetTenantLen), Visible: true, Filter: true, SortKey: true},
		{Name: "action", AllowPost: true, Validate: validateRBACAction, Visible: true, Filter: true, SortKey: true},
		projectAttr("project_id"),
	},
}

// RBACPolicyNotFound is what Neutron answers for a policy looked up by id
// (its type is then "unknown").
func RBACPolicyNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "RbacPolicyNotFound", "RBAC policy of type unknown with ID %s not found", id)
}

func DuplicateRBACPolicy() *Error {
	return newErr(http.StatusConflict, "DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
}

// RBACNotOwner is Neutron's answer to a member creating a policy on an
// object it does not own; Neutron wraps the message in its callback's name
// and a per-process id.
func RBACNotOwner() *Error {
	return InvalidInput("Only admins can manipulate policies on objects they do not own")
}

func RBACPolicyInUse(objectID, target string) *Error {
	return newErr(http.StatusConflict, "RbacPolicyInUse",
		"RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: project_id=%s", objectID, target)
}

// RBACRequest is a validated RBAC policy create or update (which may
// retarget the policy only).
type RBACRequest struct {
	Request
	ObjectType, ObjectID, Action string
	TargetTenant                 Opt[string]
}

func decodeRBAC(v values, head Request) RBACRequest {
	return RBACRequest{Request: head, ObjectType: v.str("object_type").V, ObjectID: v.str("object_id").V,
		Action: v.str("action").V, TargetTenant: v.str("target_tenant")}
}

// RBACPolicies validates RBAC policy bodies; Neutron takes one policy per
// POST.
var RBACPolicies = &Kind[RBACRequest]{Resource: RBACPolicyResource, decode: decodeRBAC}
