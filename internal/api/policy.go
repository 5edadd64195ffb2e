package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// policyDenied is Neutron's PolicyNotAuthorized with the rule expression
// it evaluated.
func policyDenied(rule string) *neutron.Error {
	return &neutron.Error{Status: http.StatusForbidden, Type: "PolicyNotAuthorized",
		Message: fmt.Sprintf("%s is disallowed by policy", rule)}
}

// attrCheck is one attribute-level policy rule: it applies when the client
// sets the attribute explicitly (see enforce and enforceUpdate) and allows
// the request when allowed returns true. A list-of-objects attribute adds
// Neutron's sub-rules, "rule:ACTION:ATTR:KEY", one per declared key of
// every item (neutron.Attr.Keys).
type attrCheck struct {
	attr    string
	allowed func() bool
	// explicit: Neutron's default for the attribute is ATTR_NOT_SPECIFIED
	// where moat's attribute map has a value (binding:host_id's ""), so
	// any value a create sends is explicitly set.
	explicit bool
}

// enforce evaluates the policy of a create, "rule:ACTION and
// rule:ACTION:ATTR...", for the attributes a request sets explicitly, and
// answers with the whole expression when any of them fails, as oslo.policy
// reports it. On create an attribute set to its default counts as not set
// (Neutron's _is_attribute_explicitly_set without ATTRIBUTES_TO_UPDATE).
// The action's own rule is what every caller may do on create.
func enforce(action string, given neutron.Given, checks []attrCheck) error {
	return evaluate(action, true, true, given, checks)
}

// enforceUpdate evaluates the policy of an update: allowed is the action's
// own rule (rule:update_X, usually "admin or owner of the object"), and
// every attribute the body names is checked, whatever its value. Skipping
// defaults here would let a member send shared: false or
// binding:host_id: "" past admin-only rules.
func enforceUpdate(action string, allowed bool, given neutron.Given, checks []attrCheck) error {
	return evaluate(action, allowed, false, given, checks)
}

func evaluate(action string, allowed, skipDefaults bool, given neutron.Given, checks []attrCheck) error {
	expr := "rule:" + action
	denied := !allowed
	for _, c := range checks {
		e, present := given.Lookup(c.attr)
		if !present || (skipDefaults && !c.explicit && e.AtDefault) {
			continue // not set, or explicitly set to the default: not checked
		}
		rule := "rule:" + action + ":" + c.attr
		if len(e.Keys) > 0 {
			subs := make([]string, len(e.Keys))
			for i, k := range e.Keys {
				subs[i] = rule + ":" + k
			}
			rule = "(" + rule + " and (" + strings.Join(subs, " and ") + "))"
		}
		expr = "(" + expr + " and " + rule + ")"
		if !c.allowed() {
			denied = true
		}
	}
	if denied {
		return policyDenied(expr)
	}
	return nil
}
