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
// the request when allowed returns true.
type attrCheck struct {
	attr    string
	allowed func() bool
	// sub are the keys of a list-of-dicts attribute (fixed_ips,
	// allowed_address_pairs) that Neutron adds as sub-rules,
	// "rule:ACTION:ATTR:KEY", one per key of every item. Neutron uses
	// each item's key order; JSON objects reach moat unordered, so the
	// keys follow this order (the one gophercloud and the CLI send).
	sub []string
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
func enforce(action string, res *neutron.Resource, raw map[string]any, checks []attrCheck) error {
	return evaluate(action, true, true, res, raw, checks)
}

// enforceUpdate evaluates the policy of an update: allowed is the action's
// own rule (rule:update_X, usually "admin or owner of the object"), and
// every attribute the body names is checked, whatever its value. Skipping
// defaults here would let a member send shared: false or
// binding:host_id: "" past admin-only rules.
func enforceUpdate(action string, allowed bool, res *neutron.Resource, raw map[string]any, checks []attrCheck) error {
	return evaluate(action, allowed, false, res, raw, checks)
}

func evaluate(action string, allowed, skipDefaults bool, res *neutron.Resource, raw map[string]any, checks []attrCheck) error {
	expr := "rule:" + action
	denied := !allowed
	for _, c := range checks {
		v, present := raw[c.attr]
		if !present {
			continue
		}
		if skipDefaults && !c.explicit {
			if a, ok := res.Attr(c.attr); ok && a.HasDefault && !neutron.IsNotSpecified(a.Default) && fmt.Sprint(a.Default) == fmt.Sprint(v) {
				continue // explicitly set to the default: not checked
			}
		}
		rule := "rule:" + action + ":" + c.attr
		if subs := subRules(action, c, v); len(subs) > 0 {
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

// subRules lists the sub-attribute rules of a list-of-dicts value.
func subRules(action string, c attrCheck, v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, it := range list {
		m, _ := it.(map[string]any)
		for _, k := range c.sub {
			if _, ok := m[k]; ok {
				out = append(out, "rule:"+action+":"+c.attr+":"+k)
			}
		}
	}
	return out
}

// rawItem returns the object a client sent for a single-item request body,
// before defaults were filled in.
func rawItem(body any, singular string) map[string]any {
	top, _ := body.(map[string]any)
	item, _ := top[singular].(map[string]any)
	return item
}
