package api

import (
	"context"
	"net/http"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func optString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func optInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// ruleFields are the fields of a rule, in Neutron's order. Embedded in a
// group, a rule also shows standard_attr_id and tags (Neutron leaks them).
func ruleFields(r *neutron.SecurityGroupRule, embedded bool) object {
	o := object{
		{"id", r.ID}, {"tenant_id", r.ProjectID}, {"security_group_id", r.SecurityGroupID},
		{"ethertype", r.Ethertype}, {"direction", r.Direction}, {"protocol", optString(r.Protocol)},
		{"port_range_min", optInt(r.PortRangeMin)}, {"port_range_max", optInt(r.PortRangeMax)},
		{"remote_ip_prefix", optString(r.RemoteIPPrefix)}, {"remote_address_group_id", optString(r.RemoteAddressGroupID)},
		{"normalized_cidr", optString(r.NormalizedCIDR())}, {"remote_group_id", optString(r.RemoteGroupID)},
	}
	if embedded {
		o = append(o, kv{"standard_attr_id", r.StandardAttrID})
	}
	o = append(o, kv{"description", optString(r.Description)})
	if embedded {
		tags := r.Tags
		if tags == nil {
			tags = []string{}
		}
		o = append(o, kv{"tags", tags})
	}
	return append(o,
		kv{"created_at", fmtTime(r.CreatedAt)}, kv{"updated_at", fmtTime(r.UpdatedAt)},
		kv{"revision_number", r.RevisionNumber}, kv{"project_id", r.ProjectID})
}

func renderEmbeddedRule(r *neutron.SecurityGroupRule) object { return ruleFields(r, true) }

func renderRule(r *neutron.SecurityGroupRule, fields []string) object {
	return ruleFields(r, false).only(fields)
}

// ruleLookup answers the rule checks from inside the write transaction of
// one request. It remembers the groups it loaded and the answers it gave:
// a bulk create asks about the same group once per rule, and nothing
// changes them before the checks are done.
type ruleLookup struct {
	ctx     context.Context
	tx      *store.Tx
	nctx    *neutron.Context
	groups  map[string]*neutron.SecurityGroup // nil: no such group
	visible map[[2]string]bool                // by group id and project
}

func newRuleLookup(ctx context.Context, tx *store.Tx, nctx *neutron.Context) *ruleLookup {
	return &ruleLookup{ctx: ctx, tx: tx, nctx: nctx,
		groups: map[string]*neutron.SecurityGroup{}, visible: map[[2]string]bool{}}
}

// group loads a group once per request; nil if there is none.
func (l *ruleLookup) group(id string) (*neutron.SecurityGroup, error) {
	if g, ok := l.groups[id]; ok {
		return g, nil
	}
	g, err := l.tx.GetSecurityGroup(l.ctx, id)
	if err != nil {
		return nil, err
	}
	l.groups[id] = g
	return g, nil
}

// SecurityGroupVisible is Neutron's _check_security_group: the group must
// exist for the rule's project, as its own or shared with it (admins see
// every group).
func (l *ruleLookup) SecurityGroupVisible(id, project string) (bool, error) {
	key := [2]string{id, project}
	if ok, seen := l.visible[key]; seen {
		return ok, nil
	}
	g, err := l.group(id)
	if err != nil {
		return false, err
	}
	ok, err := usableGroup(l.ctx, l.tx, l.nctx, g, project)
	if err != nil {
		return false, err
	}
	l.visible[key] = ok
	return ok, nil
}

// AddressGroupVisible: moat does not serve address groups yet, so no
// address group exists (Neutron answers AddressGroupNotFound the same way
// for an unknown one).
func (l *ruleLookup) AddressGroupVisible(id, project string) (bool, error) { return false, nil }

func (l *ruleLookup) RuleWithKey(sgID string, keys []string) (string, error) {
	return l.tx.RuleWithKey(l.ctx, sgID, keys)
}

// visibleRule is Neutron's policy for rules: admins, the rule's project, and
// the project owning the rule's group may see it.
func visibleRule(ctx context.Context, tx *store.Tx, nctx *neutron.Context, r *neutron.SecurityGroupRule) (bool, error) {
	if nctx.IsAdmin || r.ProjectID == nctx.ProjectID {
		return true, nil
	}
	g, err := tx.GetSecurityGroup(ctx, r.SecurityGroupID)
	if err != nil {
		return false, err
	}
	return g != nil && g.ProjectID == nctx.ProjectID, nil
}

// getVisibleRule loads a rule: a missing one is SecurityGroupRuleNotFound,
// one the caller may not see is the policy engine's generic 404.
func getVisibleRule(ctx context.Context, tx *store.Tx, nctx *neutron.Context, id string) (*neutron.SecurityGroupRule, error) {
	rule, err := tx.GetRule(ctx, id)
	if err != nil {
		return nil, err
	}
	if rule == nil {
		return nil, neutron.SecurityGroupRuleNotFound(id)
	}
	ok, err := visibleRule(ctx, tx, nctx, rule)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, neutron.NotFoundGeneric()
	}
	return rule, nil
}

func (s *Server) listRules(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.SecurityGroupRuleResource, "normalized_cidr")
	if err != nil {
		return err
	}
	project := filterProject(p.query.Filters)
	if project == "" {
		project = r.ctx.ProjectID
	}
	var rules []neutron.SecurityGroupRule
	err = s.readWithDefaultGroup(r.Context(), r.ctx, project, func(tx *store.Tx) error {
		var err error
		rules, err = tx.ListRules(r.Context(), p.query)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "security_group_rules", rules,
		func(rule *neutron.SecurityGroupRule) string { return rule.ID },
		func(rule *neutron.SecurityGroupRule) object { return renderRule(rule, p.fields) })
	return nil
}

func (s *Server) showRule(w http.ResponseWriter, r *request) error {
	var rule *neutron.SecurityGroupRule
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		rule, err = getVisibleRule(r.Context(), tx, r.ctx, r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"security_group_rule", renderRule(rule, fieldsParam(r))}})
	return nil
}

func (s *Server) createRules(w http.ResponseWriter, r *request) error {
	items, bulk, err := neutron.SecurityGroupRuleResource.PrepareBody(r.ctx, r.body, true, true)
	if err != nil {
		return err
	}
	var rules []*neutron.SecurityGroupRule
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		// The API's quota check comes before the plugin's validation.
		if err := s.checkQuotaItems(r.Context(), tx, items, "security_group_rule"); err != nil {
			return err
		}
		for _, it := range items {
			rule, err := neutron.RuleFromAttrs(it)
			if err != nil {
				return err
			}
			rules = append(rules, rule)
		}
		lookup := newRuleLookup(r.Context(), tx, r.ctx)
		sgID, err := neutron.CheckNewRules(lookup, rules, bulk)
		if err != nil {
			return err
		}
		// A project a group is shared with may use the group, not change
		// its rules (Neutron 21 lets it; see docs/compatibility.md).
		if g, err := lookup.group(sgID); err != nil {
			return err
		} else if g != nil && !r.ctx.IsAdmin && g.ProjectID != rules[0].ProjectID {
			return policyDenied("rule:create_security_group_rule")
		}
		return tx.CreateRules(r.Context(), rules)
	})
	if err != nil {
		return err
	}
	if bulk {
		out := make([]object, len(rules))
		for i, rule := range rules {
			out[i] = renderRule(rule, nil)
		}
		writeJSON(w, http.StatusCreated, object{{"security_group_rules", out}})
		return nil
	}
	writeJSON(w, http.StatusCreated, object{{"security_group_rule", renderRule(rules[0], nil)}})
	return nil
}

// updateRule changes a rule's description, the only attribute Neutron lets
// a client update. (Neutron 21 answers this with a 500: ML2 lacks the
// method; see docs/compatibility.md.)
func (s *Server) updateRule(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.SecurityGroupRuleResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	var rule *neutron.SecurityGroupRule
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		var err error
		if rule, err = getVisibleRule(r.Context(), tx, r.ctx, r.segs[1]); err != nil {
			return err
		}
		if !r.ctx.IsAdmin && rule.ProjectID != r.ctx.ProjectID {
			return neutron.NotFoundGeneric()
		}
		if err := checkRevision(ifMatch, rule.RevisionNumber); err != nil {
			return err
		}
		if d, ok := items[0]["description"].(string); ok {
			rule.Description = &d
		}
		return tx.UpdateRuleDescription(r.Context(), rule)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"security_group_rule", renderRule(rule, nil)}})
	return nil
}

func (s *Server) deleteRule(w http.ResponseWriter, r *request) error {
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		rule, err := getVisibleRule(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if err := checkRevision(ifMatch, rule.RevisionNumber); err != nil {
			return err
		}
		return tx.DeleteRule(r.Context(), rule)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}
