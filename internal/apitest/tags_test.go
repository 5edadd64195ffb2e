package apitest

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
)

const sgTags = "security-groups" // attributestags' resource type for security groups

func TestTags(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	g := createGroup(t, e.a, "web")

	// PUT /tags replaces them all and answers them in the request's order;
	// reads answer them sorted.
	got, err := attributestags.ReplaceAll(ctx, e.a, sgTags, g.ID, attributestags.ReplaceAllOpts{Tags: []string{"zeta", "alpha", "mid"}}).Extract()
	noErr(t, err, "replace tags")
	if !slices.Equal(got, []string{"zeta", "alpha", "mid"}) {
		t.Errorf("PUT tags answered %v", got)
	}
	got, err = attributestags.List(ctx, e.a, sgTags, g.ID).Extract()
	noErr(t, err, "list tags")
	if !slices.Equal(got, []string{"alpha", "mid", "zeta"}) {
		t.Errorf("GET tags = %v, want [alpha mid zeta]", got)
	}
	sg := getGroup(t, e.a, g.ID)
	if !slices.Equal(sg.Tags, []string{"alpha", "mid", "zeta"}) || sg.RevisionNumber != g.RevisionNumber+1 {
		t.Errorf("group after PUT tags: tags %v revision %d (was %d)", sg.Tags, sg.RevisionNumber, g.RevisionNumber)
	}

	// One tag at a time.
	noErr(t, attributestags.Add(ctx, e.a, sgTags, g.ID, "extra").ExtractErr(), "add tag")
	noErr(t, attributestags.Add(ctx, e.a, sgTags, g.ID, "extra").ExtractErr(), "add the same tag again")
	ok, err := attributestags.Confirm(ctx, e.a, sgTags, g.ID, "extra").Extract()
	if err != nil || !ok {
		t.Errorf("confirm extra: %v %v", ok, err)
	}
	if ok, err := attributestags.Confirm(ctx, e.a, sgTags, g.ID, "nope").Extract(); ok || err != nil {
		t.Errorf("confirm a missing tag: %v %v, want false <nil>", ok, err)
	}
	// The 404 behind that false is Neutron's TagNotFound.
	wantError(t, rawRequest(t, e.a, http.MethodGet, sgTags+"/"+g.ID+"/tags/nope", nil, nil, nil, 204),
		http.StatusNotFound, "TagNotFound", "Tag nope could not be found.")
	noErr(t, attributestags.Delete(ctx, e.a, sgTags, g.ID, "mid").ExtractErr(), "delete tag")
	wantError(t, attributestags.Delete(ctx, e.a, sgTags, g.ID, "mid").ExtractErr(), http.StatusNotFound, "TagNotFound", "Tag mid could not be found.")
	got, _ = attributestags.List(ctx, e.a, sgTags, g.ID).Extract()
	if !slices.Equal(got, []string{"alpha", "extra", "zeta"}) {
		t.Errorf("tags after add/delete = %v", got)
	}

	long := strings.Repeat("x", 256)
	refusedTests := []struct {
		name    string
		call    func() error
		status  int
		typ     string
		message string
	}{
		{"duplicate tags", func() error {
			_, err := attributestags.ReplaceAll(ctx, e.a, sgTags, g.ID, attributestags.ReplaceAllOpts{Tags: []string{"a", "a"}}).Extract()
			return err
		}, 400, "InvalidInput", "Invalid input for operation: Duplicate items in the list: 'a'."},
		{"tag too long in PUT /tags", func() error {
			_, err := attributestags.ReplaceAll(ctx, e.a, sgTags, g.ID, attributestags.ReplaceAllOpts{Tags: []string{long}}).Extract()
			return err
		}, 400, "InvalidInput", "Invalid input for operation: '" + long + "' exceeds maximum length of 255."},
		{"tag too long in PUT /tags/{tag}", func() error {
			return attributestags.Add(ctx, e.a, sgTags, g.ID, long).ExtractErr()
		}, 400, "InvalidInput", "Invalid input for operation: '" + long + "' exceeds maximum length of 255."},
		{"another project's group", func() error {
			_, err := attributestags.ReplaceAll(ctx, e.b, sgTags, g.ID, attributestags.ReplaceAllOpts{Tags: []string{"mine"}}).Extract()
			return err
		}, 404, "TagResourceNotFound", "Resource security_groups " + g.ID + " could not be found."},
		{"another project reads them", func() error {
			_, err := attributestags.List(ctx, e.b, sgTags, g.ID).Extract()
			return err
		}, 404, "TagResourceNotFound", "Resource security_groups " + g.ID + " could not be found."},
	}
	for _, tc := range refusedTests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, tc.call(), tc.status, tc.typ, tc.message)
		})
	}

	noErr(t, attributestags.DeleteAll(ctx, e.a, sgTags, g.ID).ExtractErr(), "delete all tags")
	got, err = attributestags.List(ctx, e.a, sgTags, g.ID).Extract()
	if err != nil || len(got) != 0 {
		t.Errorf("tags after DELETE /tags: %v %v", got, err)
	}
}

func TestTagFilters(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	for name, tags := range map[string][]string{"g1": {"red", "blue"}, "g2": {"red"}, "g3": {"green"}} {
		g := createGroup(t, e.a, name)
		_, err := attributestags.ReplaceAll(ctx, e.a, sgTags, g.ID, attributestags.ReplaceAllOpts{Tags: tags}).Extract()
		noErr(t, err, "tag "+name)
	}
	// Project B's groups carry the same tags and must never show up.
	gB := createGroup(t, e.b, "b-red")
	_, err := attributestags.ReplaceAll(ctx, e.b, sgTags, gB.ID, attributestags.ReplaceAllOpts{Tags: []string{"red", "blue", "green"}}).Extract()
	noErr(t, err, "tag b-red")

	tests := []struct {
		name string
		opts groups.ListOpts
		want []string
	}{
		{"tags=red", groups.ListOpts{Tags: "red"}, []string{"g1", "g2"}},
		{"tags=red,blue (all of)", groups.ListOpts{Tags: "red,blue"}, []string{"g1"}},
		{"tags-any=blue,green", groups.ListOpts{TagsAny: "blue,green"}, []string{"g1", "g3"}},
		{"not-tags=red", groups.ListOpts{NotTags: "red"}, []string{"default", "g3"}},
		{"not-tags=red,blue (not all of)", groups.ListOpts{NotTags: "red,blue"}, []string{"default", "g2", "g3"}},
		{"not-tags-any=red,green", groups.ListOpts{NotTagsAny: "red,green"}, []string{"default"}},
		{"tags=red and not-tags-any=blue", groups.ListOpts{Tags: "red", NotTagsAny: "blue"}, []string{"g2"}},
		{"tags=nothing", groups.ListOpts{Tags: "purple"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupNames(listGroups(t, e.a, tc.opts)); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
