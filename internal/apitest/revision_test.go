package apitest

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

// If-Match: revision_number=N (the revision-if-match extension) makes a
// write conditional on the resource's current revision.
func TestRevisionIfMatch(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	g := createGroup(t, e.a, "web")
	r := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	g = getGroup(t, e.a, g.ID) // revision 2 after the rule
	if g.RevisionNumber != 2 {
		t.Fatalf("revision after one rule = %d, want 2", g.RevisionNumber)
	}
	ifMatch := func(n int) map[string]string {
		return map[string]string{"If-Match": fmt.Sprintf("revision_number=%d", n)}
	}
	failed := func(want, current int) string {
		return fmt.Sprintf("Constrained to %d, but current revision is %d", want, current)
	}

	// gophercloud's UpdateOpts.RevisionNumber sends the header.
	stale := 1
	descr := "stale write"
	_, err := groups.Update(ctx, e.a, g.ID, groups.UpdateOpts{Description: &descr, RevisionNumber: &stale}).Extract()
	wantError(t, err, http.StatusPreconditionFailed, "RevisionNumberConstraintFailed", failed(1, 2))
	if got := getGroup(t, e.a, g.ID); got.Description != "web servers" || got.RevisionNumber != 2 {
		t.Errorf("a refused conditional update changed the group: %q revision %d", got.Description, got.RevisionNumber)
	}
	current := 2
	descr = "fresh write"
	updated := updateGroup(t, e.a, g.ID, groups.UpdateOpts{Description: &descr, RevisionNumber: &current})
	if updated.Description != "fresh write" || updated.RevisionNumber != 3 {
		t.Errorf("conditional update: %q revision %d, want fresh write, 3", updated.Description, updated.RevisionNumber)
	}

	tests := []struct {
		name    string
		method  string
		path    string
		body    any
		headers map[string]string
		ok      int
		status  int
		typ     string
		message string
	}{
		{"group update, old revision", http.MethodPut, "security-groups/" + g.ID, map[string]any{"security_group": map[string]any{"name": "x"}},
			ifMatch(2), 200, 412, "RevisionNumberConstraintFailed", failed(2, 3)},
		{"group delete, old revision", http.MethodDelete, "security-groups/" + g.ID, nil,
			ifMatch(1), 204, 412, "RevisionNumberConstraintFailed", failed(1, 3)},
		{"rule delete, wrong revision", http.MethodDelete, "security-group-rules/" + r.ID, nil,
			ifMatch(5), 204, 412, "RevisionNumberConstraintFailed", failed(5, 0)},
		{"rule update, wrong revision", http.MethodPut, "security-group-rules/" + r.ID, map[string]any{"security_group_rule": map[string]any{"description": "x"}},
			ifMatch(1), 200, 412, "RevisionNumberConstraintFailed", failed(1, 0)},
		{"not a number", http.MethodPut, "security-groups/" + g.ID, map[string]any{"security_group": map[string]any{"name": "x"}},
			map[string]string{"If-Match": "revision_number=abc"}, 200, 400, "BadRequest",
			"Bad if-match request: Revision number etag must be in the format of revision_number=<int>."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := rawRequest(t, e.a, tc.method, tc.path, tc.body, tc.headers, nil, tc.ok)
			wantError(t, err, tc.status, tc.typ, tc.message)
		})
	}

	// Matching revisions succeed.
	noErr(t, rawRequest(t, e.a, http.MethodPut, "security-group-rules/"+r.ID,
		map[string]any{"security_group_rule": map[string]any{"description": "ssh"}}, ifMatch(0), nil, 200), "rule update at revision 0")
	noErr(t, rawRequest(t, e.a, http.MethodDelete, "security-group-rules/"+r.ID, nil, ifMatch(1), nil, 204), "rule delete at revision 1")
	// A rule's changes revise its group (Neutron's revises_on_change):
	// 3, then 4 for the description, 5 for the delete.
	g = getGroup(t, e.a, g.ID)
	if g.RevisionNumber != 5 || len(g.Rules) != 2 {
		t.Errorf("group after the rule's update and delete: revision %d with %d rules, want 5 and 2", g.RevisionNumber, len(g.Rules))
	}
	// An If-Match that is not a revision is ignored.
	noErr(t, rawRequest(t, e.a, http.MethodPut, "security-groups/"+g.ID,
		map[string]any{"security_group": map[string]any{"description": "etag"}}, map[string]string{"If-Match": `"abc"`}, nil, 200), "update with a foreign etag")
	noErr(t, rawRequest(t, e.a, http.MethodDelete, "security-groups/"+g.ID, nil, ifMatch(6), nil, 204), "group delete at revision 6")
	_, err = groups.Get(ctx, e.a, g.ID).Extract()
	wantError(t, err, http.StatusNotFound, "SecurityGroupNotFound", "Security group "+g.ID+" does not exist")
}
