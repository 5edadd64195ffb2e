package neutron

// RuleLookup answers the questions Neutron's rule checks ask the database.
// The API implements it inside the write transaction; tests use a map.
type RuleLookup interface {
	// SecurityGroupVisible reports whether the group exists and the given
	// project may use it (admins may use any group).
	SecurityGroupVisible(id, projectID string) (bool, error)
	// AddressGroupVisible is the same for address groups.
	AddressGroupVisible(id, projectID string) (bool, error)
	// RuleWithKey returns the id of a rule of the group whose RuleKey is
	// one of keys (the oldest), or "".
	RuleWithKey(sgID string, keys []string) (string, error)
}

// CheckNewRules runs the checks of Neutron's rule creation on rules built by
// RuleFromAttrs, in Neutron's order: for a bulk request one group and one
// project for all rules; per rule, that its remote group, address group and
// group exist for the caller; then duplicates within the request and against
// the group's rules. It returns the group the rules go into.
func CheckNewRules(lookup RuleLookup, rules []*SecurityGroupRule, bulk bool) (string, error) {
	if bulk {
		groups, projects := map[string]bool{}, map[string]bool{}
		for _, r := range rules {
			groups[r.SecurityGroupID] = true
			if len(groups) > 1 {
				return "", SecurityGroupNotSingleGroupRules()
			}
			projects[r.ProjectID] = true
			if len(projects) > 1 {
				return "", SecurityGroupRulesNotSingleTenant()
			}
		}
	}
	for _, r := range rules {
		if r.RemoteGroupID != nil {
			ok, err := lookup.SecurityGroupVisible(*r.RemoteGroupID, r.ProjectID)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", SecurityGroupNotFound(*r.RemoteGroupID)
			}
		}
		if r.RemoteAddressGroupID != nil {
			ok, err := lookup.AddressGroupVisible(*r.RemoteAddressGroupID, r.ProjectID)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", AddressGroupNotFound(*r.RemoteAddressGroupID)
			}
		}
		ok, err := lookup.SecurityGroupVisible(r.SecurityGroupID, r.ProjectID)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", SecurityGroupNotFound(r.SecurityGroupID)
		}
	}
	if len(rules) == 0 {
		return "", nil
	}
	sgID := rules[0].SecurityGroupID
	seen := map[string]bool{}
	keys := make([]string, 0, len(rules))
	for _, r := range rules {
		k := RuleKey(r)
		if seen[k] {
			return "", DuplicateSecurityGroupRuleInPost()
		}
		seen[k] = true
		keys = append(keys, k)
	}
	id, err := lookup.RuleWithKey(sgID, keys)
	if err != nil {
		return "", err
	}
	if id != "" {
		return "", SecurityGroupRuleExists(id)
	}
	return sgID, nil
}
