package apitest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

// ruleShape is what identifies a rule apart from its ids.
type ruleShape struct {
	Direction, EtherType, Protocol string
	PortMin, PortMax               int
	RemoteIPPrefix, RemoteGroupID  string
}

func shapeOf(r rules.SecGroupRule) ruleShape {
	return ruleShape{r.Direction, r.EtherType, r.Protocol, r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix, r.RemoteGroupID}
}

func shapes(rs []rules.SecGroupRule) []ruleShape {
	out := make([]ruleShape, len(rs))
	for i, r := range rs {
		out[i] = shapeOf(r)
	}
	slices.SortFunc(out, func(a, b ruleShape) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

func TestDefaultGroupCreatedOnFirstList(t *testing.T) {
	e := newEnv(t, nil)

	gs := listGroups(t, e.a, groups.ListOpts{})
	if len(gs) != 1 {
		t.Fatalf("first list as project A: %d groups %v, want only the default group", len(gs), groupNames(gs))
	}
	def := gs[0]
	if def.Name != "default" || def.Description != "Default security group" {
		t.Errorf("default group name/description = %q/%q", def.Name, def.Description)
	}
	if def.ProjectID != projectA.project || def.TenantID != projectA.project {
		t.Errorf("default group project_id/tenant_id = %q/%q, want %q", def.ProjectID, def.TenantID, projectA.project)
	}
	if !def.Stateful || def.RevisionNumber != 1 || def.Tags == nil || len(def.Tags) != 0 {
		t.Errorf("default group stateful=%v revision=%d tags=%#v, want true, 1, []", def.Stateful, def.RevisionNumber, def.Tags)
	}
	if def.CreatedAt.IsZero() || def.UpdatedAt.IsZero() {
		t.Errorf("default group timestamps not parsed by gophercloud: created %v updated %v", def.CreatedAt, def.UpdatedAt)
	}
	want := shapes([]rules.SecGroupRule{
		{Direction: "ingress", EtherType: "IPv4", RemoteGroupID: def.ID},
		{Direction: "ingress", EtherType: "IPv6", RemoteGroupID: def.ID},
		{Direction: "egress", EtherType: "IPv4"},
		{Direction: "egress", EtherType: "IPv6"},
	})
	if got := shapes(def.Rules); !slices.Equal(got, want) {
		t.Errorf("default group rules:\n got %+v\nwant %+v", got, want)
	}
	for _, r := range def.Rules {
		if r.SecGroupID != def.ID || r.ProjectID != projectA.project || r.Description != "" || r.RevisionNumber != 0 {
			t.Errorf("default rule %s: security_group_id=%s project=%s description=%q revision=%d",
				r.ID, r.SecGroupID, r.ProjectID, r.Description, r.RevisionNumber)
		}
	}

	// The rules are rules like any other: listed and shown by id.
	listed := listRules(t, e.a, rules.ListOpts{SecGroupID: def.ID})
	if got := shapes(listed); !slices.Equal(got, want) {
		t.Errorf("rules listed by security_group_id:\n got %+v\nwant %+v", got, want)
	}
	for _, r := range def.Rules {
		got := getRule(t, e.a, r.ID)
		if shapeOf(*got) != shapeOf(r) {
			t.Errorf("GET rule %s = %+v, embedded %+v", r.ID, shapeOf(*got), shapeOf(r))
		}
	}

	// Listing again does not create a second one; show answers the same.
	if again := listGroups(t, e.a, groups.ListOpts{}); len(again) != 1 || again[0].ID != def.ID {
		t.Errorf("second list: %d groups (first id %v), want the same default group %s", len(again), groupNames(again), def.ID)
	}
	shown := getGroup(t, e.a, def.ID)
	if shown.ID != def.ID || shown.Name != "default" || len(shown.Rules) != 4 {
		t.Errorf("GET default = %s %q with %d rules", shown.ID, shown.Name, len(shown.Rules))
	}

	// Project B gets its own.
	defB := defaultGroup(t, e.b, projectB.project)
	if defB.ID == def.ID || defB.ProjectID != projectB.project {
		t.Errorf("project B default group %s of %s; project A's is %s", defB.ID, defB.ProjectID, def.ID)
	}
}

func TestGroupLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()

	created := createGroupOpts(t, e.a, groups.CreateOpts{Name: "web", Description: "web servers"})
	if created.Name != "web" || created.Description != "web servers" || created.ProjectID != projectA.project ||
		created.TenantID != projectA.project || !created.Stateful || created.RevisionNumber != 1 {
		t.Errorf("created group = %+v", created)
	}
	wantRules := shapes([]rules.SecGroupRule{{Direction: "egress", EtherType: "IPv4"}, {Direction: "egress", EtherType: "IPv6"}})
	if got := shapes(created.Rules); !slices.Equal(got, wantRules) {
		t.Errorf("a new group's rules:\n got %+v\nwant %+v", got, wantRules)
	}
	// Creating a group also created the project's default group.
	if names := groupNames(listGroups(t, e.a, groups.ListOpts{})); !slices.Equal(names, []string{"default", "web"}) {
		t.Errorf("groups after create: %v, want [default web]", names)
	}

	got := getGroup(t, e.a, created.ID)
	if got.ID != created.ID || got.Name != "web" || got.Description != "web servers" || len(got.Rules) != 2 {
		t.Errorf("GET = %+v", got)
	}

	descr := "front end"
	updated := updateGroup(t, e.a, created.ID, groups.UpdateOpts{Name: "www", Description: &descr})
	if updated.Name != "www" || updated.Description != "front end" || updated.RevisionNumber != 2 || len(updated.Rules) != 2 {
		t.Errorf("updated = name %q description %q revision %d rules %d, want www, front end, 2, 2",
			updated.Name, updated.Description, updated.RevisionNumber, len(updated.Rules))
	}
	stateless := false
	updated = updateGroup(t, e.a, created.ID, groups.UpdateOpts{Stateful: &stateless})
	if updated.Stateful || updated.Name != "www" || updated.RevisionNumber != 3 {
		t.Errorf("after stateful=false: stateful %v name %q revision %d", updated.Stateful, updated.Name, updated.RevisionNumber)
	}

	sl := createGroupOpts(t, e.a, groups.CreateOpts{Name: "stateless", Stateful: &stateless})
	if sl.Stateful {
		t.Errorf("created with stateful=false: stateful = true")
	}

	if err := groups.Delete(ctx, e.a, created.ID).ExtractErr(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := groups.Get(ctx, e.a, created.ID).Extract()
	wantError(t, err, http.StatusNotFound, "SecurityGroupNotFound", fmt.Sprintf("Security group %s does not exist", created.ID))
	// Its rules went with it.
	if rs := listRules(t, e.a, rules.ListOpts{SecGroupID: created.ID}); len(rs) != 0 {
		t.Errorf("rules of the deleted group still listed: %d", len(rs))
	}
	err = groups.Delete(ctx, e.a, created.ID).ExtractErr()
	wantError(t, err, http.StatusNotFound, "SecurityGroupNotFound", fmt.Sprintf("Security group %s does not exist", created.ID))
}

func TestGroupErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	web := createGroup(t, e.a, "web")
	defA := defaultGroup(t, e.a, projectA.project)
	descr := "changed"

	notFound := fmt.Sprintf("Security group %s does not exist", web.ID)
	tests := []struct {
		name    string
		call    func() error
		status  int
		typ     string
		message string
	}{
		{"name too long", func() error {
			_, err := groups.Create(ctx, e.a, groups.CreateOpts{Name: strings.Repeat("x", 256)}).Extract()
			return err
		}, 400, "HTTPBadRequest", fmt.Sprintf("Invalid input for name. Reason: '%s' exceeds maximum length of 255.", strings.Repeat("x", 256))},
		{"create named default", func() error {
			_, err := groups.Create(ctx, e.a, groups.CreateOpts{Name: "default"}).Extract()
			return err
		}, 409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."},
		{"member creates for another project", func() error {
			_, err := groups.Create(ctx, e.a, groups.CreateOpts{Name: "x", ProjectID: projectB.project}).Extract()
			return err
		}, 400, "HTTPBadRequest", "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges"},
		{"get another project's group", func() error {
			_, err := groups.Get(ctx, e.b, web.ID).Extract()
			return err
		}, 404, "SecurityGroupNotFound", notFound},
		{"update another project's group", func() error {
			_, err := groups.Update(ctx, e.b, web.ID, groups.UpdateOpts{Name: "hijack"}).Extract()
			return err
		}, 404, "SecurityGroupNotFound", notFound},
		{"delete another project's group", func() error {
			return groups.Delete(ctx, e.b, web.ID).ExtractErr()
		}, 404, "SecurityGroupNotFound", notFound},
		{"get a missing group", func() error {
			_, err := groups.Get(ctx, e.a, "00000000-0000-0000-0000-000000000000").Extract()
			return err
		}, 404, "SecurityGroupNotFound", "Security group 00000000-0000-0000-0000-000000000000 does not exist"},
		{"rename the default group", func() error {
			_, err := groups.Update(ctx, e.a, defA.ID, groups.UpdateOpts{Name: "notdefault"}).Extract()
			return err
		}, 409, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed."},
		{"owner deletes the default group", func() error {
			return groups.Delete(ctx, e.a, defA.ID).ExtractErr()
		}, 409, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group."},
		{"update with a read-only attribute", func() error {
			return rawRequest(t, e.a, http.MethodPut, "security-groups/"+web.ID,
				map[string]any{"security_group": map[string]any{"id": "x"}}, nil, nil, 200)
		}, 400, "HTTPBadRequest", "Cannot update read-only attribute id"},
		{"unknown attribute", func() error {
			return rawRequest(t, e.a, http.MethodPost, "security-groups",
				map[string]any{"security_group": map[string]any{"name": "x", "foo": 1}}, nil, nil, 201)
		}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'foo'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, tc.call(), tc.status, tc.typ, tc.message)
		})
	}

	// What the refused calls did not do.
	if g := getGroup(t, e.a, web.ID); g.Name != "web" {
		t.Errorf("web renamed to %q by a refused update", g.Name)
	}
	// The default group's description may change; an admin may delete it.
	d := updateGroup(t, e.a, defA.ID, groups.UpdateOpts{Description: &descr})
	if d.Description != "changed" || d.Name != "default" {
		t.Errorf("default after description update: %q %q", d.Name, d.Description)
	}
	if err := groups.Delete(ctx, e.admin, defA.ID).ExtractErr(); err != nil {
		t.Errorf("admin deletes project A's default group: %v", err)
	}
	_, err := groups.Get(ctx, e.a, defA.ID).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("default group after admin delete: %v, want 404", err)
	}
}

func TestGroupQuota(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	// The default quota is 10 groups, and the default group counts.
	for i := 1; i <= 9; i++ {
		createGroup(t, e.a, fmt.Sprintf("g%d", i))
	}
	_, err := groups.Create(ctx, e.a, groups.CreateOpts{Name: "g10"}).Extract()
	wantError(t, err, http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['security_group'].")
	if n := len(listGroups(t, e.a, groups.ListOpts{})); n != 10 {
		t.Errorf("project A has %d groups after the refused create, want 10", n)
	}
	// Another project is not affected.
	createGroup(t, e.b, "b1")
}

func TestGroupVisibility(t *testing.T) {
	e := newEnv(t, nil)
	createGroup(t, e.a, "a1")
	createGroup(t, e.a, "a2")
	createGroup(t, e.b, "b1")
	byAdmin := createGroupOpts(t, e.admin, groups.CreateOpts{Name: "made-by-admin", ProjectID: projectB.project})
	if byAdmin.ProjectID != projectB.project {
		t.Errorf("admin-created group for B belongs to %q", byAdmin.ProjectID)
	}

	tests := []struct {
		name   string
		client *gophercloud.ServiceClient
		opts   groups.ListOpts
		want   map[string][]string // project -> sorted names
	}{
		{"member A sees A", e.a, groups.ListOpts{}, map[string][]string{projectA.project: {"a1", "a2", "default"}}},
		{"member B sees B", e.b, groups.ListOpts{}, map[string][]string{projectB.project: {"b1", "default", "made-by-admin"}}},
		{"member A filtering on B sees nothing", e.a, groups.ListOpts{ProjectID: projectB.project}, map[string][]string{}},
		{"admin sees all", e.admin, groups.ListOpts{}, map[string][]string{
			projectA.project: {"a1", "a2", "default"},
			projectB.project: {"b1", "default", "made-by-admin"},
			admin.project:    {"default"},
		}},
		{"admin filters by project", e.admin, groups.ListOpts{TenantID: projectA.project}, map[string][]string{projectA.project: {"a1", "a2", "default"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string][]string{}
			for _, g := range listGroups(t, tc.client, tc.opts) {
				got[g.ProjectID] = append(got[g.ProjectID], g.Name)
			}
			for p := range got {
				slices.Sort(got[p])
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("visible groups by project:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}
