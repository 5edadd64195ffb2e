package api

import (
	"context"

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

func renderRule(r *neutron.SecurityGroupRule, _, _ bool) object { return ruleFields(r, false) }

// ruleResource serves security group rules: Neutron's checks in
// internal/neutron, the database's questions through ruleLookup.
func (s *Server) ruleResource() *resource[neutron.SecurityGroupRule, neutron.RuleRequest] {
	return &resource[neutron.SecurityGroupRule, neutron.RuleRequest]{
		kind:     neutron.SecurityGroupRules,
		notFound: neutron.SecurityGroupRuleNotFound,
		// Rule creates (single and bulk) run beside each other on
		// PostgreSQL: createRules reads groups, quotas (CountRules),
		// duplicates (RuleWithKey) and inserts rules, which the store
		// guards with keyed locks (internal/store/concurrent.go).
		concurrentCreate: true,
		// A rule the caller may not see is the policy engine's generic 404.
		hidden: func(string) *neutron.Error { return neutron.NotFoundGeneric() },
		load:   alone((*store.Tx).GetRule),
		visible: func(c txn, rule *neutron.SecurityGroupRule, _ *neutron.Network) (bool, error) {
			return visibleRule(c.ctx, c.tx, c.caller, rule)
		},
		id:             func(rule *neutron.SecurityGroupRule) string { return rule.ID },
		render:         renderRule,
		list:           (*store.Tx).ListRules,
		ignoredFilters: []string{"normalized_cidr"},
		defaultGroup: func(caller *neutron.Context, f neutron.Filters) string {
			if project := filterProject(f); project != "" {
				return project
			}
			return caller.ProjectID
		},
		create:       s.createRules,
		createAtOnce: s.createRuleAtOnce,
		update:       updateRule,
		remove: func(c txn, rule *neutron.SecurityGroupRule, _ *neutron.Network, ifMatch int64) error {
			if err := checkRevision(ifMatch, rule.RevisionNumber); err != nil {
				return err
			}
			return c.tx.DeleteRule(c.ctx, rule)
		},
	}
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
	// Its project is what the checks need: not its tags.
	g, err := l.tx.SecurityGroupHead(l.ctx, id)
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

// AddressGroupVisible is Neutron's check_address_group: the address group
// must exist for the rule's project, as its own or shared with it (admins
// see every one).
func (l *ruleLookup) AddressGroupVisible(id, project string) (bool, error) {
	g, err := l.tx.AddressGroupHead(l.ctx, id)
	if err != nil || g == nil {
		return false, err
	}
	if l.nctx.IsAdmin || g.ProjectID == project {
		return true, nil
	}
	return l.tx.AddressGroupSharedWith(l.ctx, id, project)
}

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

func (s *Server) createRules(c txn, reqs []neutron.RuleRequest, bulk bool) ([]neutron.SecurityGroupRule, error) {
	// The API's quota check comes before the plugin's validation.
	if err := checkQuotaItems(s, c, reqs, "security_group_rule"); err != nil {
		return nil, err
	}
	rules := make([]*neutron.SecurityGroupRule, len(reqs))
	for i := range reqs {
		rules[i] = &reqs[i].Rule
		if err := neutron.NormalizeRule(rules[i]); err != nil {
			return nil, err
		}
	}
	lookup := newRuleLookup(c.ctx, c.tx, c.caller)
	sgID, err := neutron.CheckNewRules(lookup, rules, bulk)
	if err != nil {
		return nil, err
	}
	// A project a group is shared with may use the group, not change
	// its rules (Neutron 21 lets it; see docs/compatibility.md).
	if g, err := lookup.group(sgID); err != nil {
		return nil, err
	} else if g != nil && !c.caller.IsAdmin && g.ProjectID != rules[0].ProjectID {
		return nil, policyDenied("rule:create_security_group_rule")
	}
	if err := c.tx.CreateRules(c.ctx, rules); err != nil {
		return nil, err
	}
	out := make([]neutron.SecurityGroupRule, len(rules))
	for i, rule := range rules {
		out[i] = *rule
	}
	return out, nil
}

// createRuleAtOnce creates a single rule in one statement of the store
// (PostgreSQL) when nothing stands in its way; for anything else —
// a bulk create, a remote address group, a rule that fails the checks —
// it returns false and createRules runs, answering Neutron's error in
// Neutron's order (the quota check first).
func (s *Server) createRuleAtOnce(ctx context.Context, caller *neutron.Context, reqs []neutron.RuleRequest, bulk bool) ([]neutron.SecurityGroupRule, bool, error) {
	if bulk || len(reqs) != 1 {
		return nil, false, nil
	}
	// A copy: createRules gets the request as it came. NormalizeRule
	// replaces the pointers it changes, never writes through them.
	rule := reqs[0].Rule
	if neutron.NormalizeRule(&rule) != nil {
		return nil, false, nil
	}
	const quota = "security_group_rule"
	ok, err := s.store.CreateRuleAtOnce(ctx, &rule, store.RuleCreate{Admin: caller.IsAdmin, Quota: quota, DefaultLimit: s.quotas[quota]})
	if err != nil || !ok {
		return nil, false, err
	}
	return []neutron.SecurityGroupRule{rule}, true, nil
}

// updateRule changes a rule's description, the only attribute Neutron lets
// a client update. (Neutron 21 answers this with a 500: ML2 lacks the
// method; see docs/compatibility.md.)
func updateRule(c txn, rule *neutron.SecurityGroupRule, _ *neutron.Network, req neutron.RuleRequest, ifMatch int64) (*neutron.SecurityGroupRule, error) {
	if !c.caller.IsAdmin && rule.ProjectID != c.caller.ProjectID {
		return nil, neutron.NotFoundGeneric()
	}
	if err := checkRevision(ifMatch, rule.RevisionNumber); err != nil {
		return nil, err
	}
	if req.Rule.Description != nil {
		rule.Description = req.Rule.Description
	}
	return rule, c.tx.UpdateRuleDescription(c.ctx, rule)
}
