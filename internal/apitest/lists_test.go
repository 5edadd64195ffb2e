package apitest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

func TestListFilters(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	db := createGroupOpts(t, e.a, groups.CreateOpts{Name: "db", Description: "databases"})
	createGroup(t, e.b, "web") // another project's group of the same name
	ssh := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})
	https := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv6", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 443, PortRangeMax: 443, RemoteIPPrefix: "2001:db8::/32"})
	ipip := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "4", RemoteIPPrefix: "192.0.2.7"})
	fromDB := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "udp", RemoteGroupID: db.ID})

	groupTests := []struct {
		name   string
		client *gophercloud.ServiceClient
		opts   groups.ListOpts
		want   []string
	}{
		{"by name", e.a, groups.ListOpts{Name: "web"}, []string{web.ID}},
		{"by description", e.a, groups.ListOpts{Description: "databases"}, []string{db.ID}},
		{"by id", e.a, groups.ListOpts{ID: db.ID}, []string{db.ID}},
		{"by name and description, no match", e.a, groups.ListOpts{Name: "web", Description: "databases"}, nil},
		{"admin by name and project", e.admin, groups.ListOpts{Name: "web", ProjectID: projectA.project}, []string{web.ID}},
	}
	for _, tc := range groupTests {
		t.Run("groups "+tc.name, func(t *testing.T) {
			var got []string
			for _, g := range listGroups(t, tc.client, tc.opts) {
				got = append(got, g.ID)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	ruleTests := []struct {
		name string
		opts rules.ListOpts
		want []string
	}{
		{"protocol tcp", rules.ListOpts{SecGroupID: web.ID, Protocol: "tcp"}, []string{ssh.ID, https.ID}},
		{"protocol 4", rules.ListOpts{SecGroupID: web.ID, Protocol: "4"}, []string{ipip.ID}},
		{"ethertype IPv6 ingress", rules.ListOpts{SecGroupID: web.ID, EtherType: "IPv6", Direction: "ingress"}, []string{https.ID}},
		{"port_range_min 22", rules.ListOpts{SecGroupID: web.ID, PortRangeMin: 22}, []string{ssh.ID}},
		{"remote_ip_prefix as stored", rules.ListOpts{RemoteIPPrefix: "192.0.2.7/32"}, []string{ipip.ID}},
		{"remote_group_id", rules.ListOpts{RemoteGroupID: db.ID}, []string{fromDB.ID}},
		{"egress of web: the 2 default rules", rules.ListOpts{SecGroupID: web.ID, Direction: "egress"}, idsOf(getGroup(t, e.a, web.ID).Rules, "egress")},
	}
	for _, tc := range ruleTests {
		t.Run("rules "+tc.name, func(t *testing.T) {
			var got []string
			for _, r := range listRules(t, e.a, tc.opts) {
				got = append(got, r.ID)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	badTests := []struct {
		name, path, typ, message string
	}{
		{"unknown filter", "security-groups?bogus=1", "HTTPBadRequest", "['bogus'] is invalid attribute for filtering"},
		{"unknown sort key", "security-groups?sort_key=bogus&sort_dir=asc", "HTTPBadRequest", "['bogus'] is invalid attribute for sort_keys"},
		{"sort keys without dirs", "security-groups?sort_key=name&sort_key=id&sort_dir=asc", "HTTPBadRequest", "The number of sort_keys and sort_dirs must be same"},
		{"negative limit", "security-groups?limit=-1", "BadRequest", "Bad limit request: Limit must be an integer 0 or greater and not '-1'."},
		{"unknown rule filter", "security-group-rules?bogus=1", "HTTPBadRequest", "['bogus'] is invalid attribute for filtering"},
	}
	for _, tc := range badTests {
		t.Run(tc.name, func(t *testing.T) {
			err := rawRequest(t, e.a, http.MethodGet, tc.path, nil, nil, nil, 200)
			wantError(t, err, http.StatusBadRequest, tc.typ, tc.message)
		})
	}
}

func idsOf(rs []rules.SecGroupRule, direction string) []string {
	var out []string
	for _, r := range rs {
		if r.Direction == direction {
			out = append(out, r.ID)
		}
	}
	return out
}

func TestListFields(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	r := createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: web.ID, Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22})

	tests := []struct {
		name, path, key string
		want            []string // the keys of every object
	}{
		{"groups id name", "security-groups?fields=id&fields=name", "security_groups", []string{"id", "name"}},
		{"groups: only the fields asked, even without id", "security-groups?fields=name&fields=tags", "security_groups", []string{"name", "tags"}},
		{"what the openstack CLI asks", "security-groups?fields=id&fields=name&fields=description&fields=project_id&fields=tags", "security_groups",
			[]string{"description", "id", "name", "project_id", "tags"}},
		{"rules", "security-group-rules?fields=id&fields=protocol&fields=port_range_min&security_group_id=" + web.ID, "security_group_rules",
			[]string{"id", "port_range_min", "protocol"}},
		{"show group", "security-groups/" + web.ID + "?fields=name&fields=revision_number", "security_group", []string{"name", "revision_number"}},
		{"show rule", "security-group-rules/" + r.ID + "?fields=id&fields=protocol", "security_group_rule", []string{"id", "protocol"}},
		{"all fields", "security-groups/" + web.ID, "security_group", []string{"created_at", "description", "id", "name", "project_id",
			"revision_number", "security_group_rules", "shared", "stateful", "tags", "tenant_id", "updated_at"}},
		{"all rule fields", "security-group-rules/" + r.ID, "security_group_rule", []string{"created_at", "description", "direction", "ethertype",
			"id", "normalized_cidr", "port_range_max", "port_range_min", "project_id", "protocol", "remote_address_group_id",
			"remote_group_id", "remote_ip_prefix", "revision_number", "security_group_id", "tenant_id", "updated_at"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := rawGet(t, e.a, tc.path)
			var objs []map[string]any
			switch v := body[tc.key].(type) {
			case []any:
				for _, o := range v {
					objs = append(objs, o.(map[string]any))
				}
			case map[string]any:
				objs = append(objs, v)
			default:
				t.Fatalf("no %q in %v", tc.key, body)
			}
			if len(objs) == 0 {
				t.Fatalf("empty %s", tc.key)
			}
			for _, o := range objs {
				var keys []string
				for k := range o {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if !slices.Equal(keys, tc.want) {
					t.Errorf("keys %v, want %v", keys, tc.want)
				}
			}
		})
	}
}

func TestListSorting(t *testing.T) {
	e := newEnv(t, nil)
	for _, n := range []string{"charlie", "alpha", "echo", "bravo", "delta"} {
		createGroup(t, e.a, n)
	}
	g := createGroup(t, e.a, "ports")
	for _, p := range []int{8080, 22, 443, 80} {
		createRule(t, e.a, rules.CreateOpts{Direction: "ingress", EtherType: "IPv4", SecGroupID: g.ID, Protocol: "tcp", PortRangeMin: p, PortRangeMax: p})
	}
	tests := []struct {
		dir  string
		want []string
	}{
		{"asc", []string{"alpha", "bravo", "charlie", "default", "delta", "echo", "ports"}},
		{"desc", []string{"ports", "echo", "delta", "default", "charlie", "bravo", "alpha"}},
	}
	for _, tc := range tests {
		t.Run("groups by name "+tc.dir, func(t *testing.T) {
			var got []string
			for _, g := range listGroups(t, e.a, groups.ListOpts{SortKey: "name", SortDir: tc.dir}) {
				got = append(got, g.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	var ports []int
	for _, r := range listRules(t, e.a, rules.ListOpts{SecGroupID: g.ID, Protocol: "tcp", SortKey: "port_range_min", SortDir: "desc"}) {
		ports = append(ports, r.PortRangeMin)
	}
	if want := []int{8080, 443, 80, 22}; !slices.Equal(ports, want) {
		t.Errorf("rules by port_range_min desc: %v, want %v", ports, want)
	}
}

// walkGroups lists with opts page by page through gophercloud's pager,
// returning each page's group names.
func walkGroups(t *testing.T, c *gophercloud.ServiceClient, opts groups.ListOpts) [][]string {
	t.Helper()
	var pages [][]string
	err := groups.List(c, opts).EachPage(t.Context(), func(_ context.Context, p pagination.Page) (bool, error) {
		gs, err := groups.ExtractGroups(p)
		if err != nil {
			return false, err
		}
		var names []string
		for _, g := range gs {
			names = append(names, g.Name)
		}
		pages = append(pages, names)
		if len(pages) > 50 {
			return false, fmt.Errorf("more than 50 pages: the pager does not stop")
		}
		return true, nil
	})
	noErr(t, err, "walk pages")
	return pages
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, map[string]int64{"security_group": 50, "security_group_rule": 500})
	var all []string
	for i := range 11 {
		all = append(all, createGroup(t, e.a, fmt.Sprintf("g%02d", i)).Name)
	}
	all = append(all, "default")
	sort.Strings(all) // 12 groups: default, g00..g10

	tests := []struct {
		limit   int
		sortKey string
		sortDir string
		pages   int
	}{
		{1, "name", "asc", 12},
		{3, "name", "asc", 4},
		{5, "name", "asc", 3},
		{5, "name", "desc", 3},
		{12, "name", "asc", 1},
		{100, "name", "asc", 1},
		{4, "", "", 3},
		{7, "", "", 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d sort %s %s", tc.limit, tc.sortKey, tc.sortDir), func(t *testing.T) {
			opts := groups.ListOpts{Limit: tc.limit, SortKey: tc.sortKey, SortDir: tc.sortDir}
			pages := walkGroups(t, e.a, opts)
			var got []string
			for i, p := range pages {
				if len(p) > tc.limit {
					t.Errorf("page %d has %d groups, limit %d", i, len(p), tc.limit)
				}
				got = append(got, p...)
			}
			if len(pages) != tc.pages {
				t.Errorf("%d pages %v, want %d", len(pages), pages, tc.pages)
			}
			want := slices.Clone(all)
			if tc.sortDir == "desc" {
				slices.Reverse(want)
			}
			if tc.sortKey == "" {
				got = slices.Sorted(slices.Values(got))
			}
			if !slices.Equal(got, want) {
				t.Errorf("walked %v\n       want %v (each group exactly once)", got, want)
			}
			// AllPages agrees with the walk.
			if n := len(listGroups(t, e.a, opts)); n != len(all) {
				t.Errorf("AllPages: %d groups, want %d", n, len(all))
			}
		})
	}

	// Rules page the same way: 2 egress rules of each of the 12 groups and
	// 2 ingress of default.
	var rs []rules.SecGroupRule
	pages := 0
	err := rules.List(e.a, rules.ListOpts{Limit: 5}).EachPage(t.Context(), func(_ context.Context, p pagination.Page) (bool, error) {
		got, err := rules.ExtractRules(p)
		pages++
		rs = append(rs, got...)
		return pages < 50, err
	})
	noErr(t, err, "walk rule pages")
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.ID] {
			t.Errorf("rule %s seen twice", r.ID)
		}
		seen[r.ID] = true
	}
	if len(rs) != 26 || pages != 6 {
		t.Errorf("rules walked: %d in %d pages, want 26 in 6", len(rs), pages)
	}
}

func TestListPagingLinks(t *testing.T) {
	e := newEnv(t, nil)
	for _, n := range []string{"a", "b", "c", "d"} {
		createGroup(t, e.a, n)
	}
	// 5 groups: a b c d default. Page 2 of 2 by name: c d.
	type link struct{ Rel, Href string }
	var page struct {
		Groups []struct{ ID, Name string } `json:"security_groups"`
		Links  []link                      `json:"security_groups_links"`
	}
	get := func(url string) {
		t.Helper()
		page.Groups, page.Links = nil, nil
		if _, err := e.a.Get(t.Context(), url, &page, nil); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	names := func() []string {
		var out []string
		for _, g := range page.Groups {
			out = append(out, g.Name)
		}
		return out
	}
	href := func(rel string) string {
		for _, l := range page.Links {
			if l.Rel == rel {
				return l.Href
			}
		}
		return ""
	}
	get(e.a.ServiceURL("security-groups?limit=2&sort_key=name&sort_dir=asc"))
	if !slices.Equal(names(), []string{"a", "b"}) || href("next") == "" || href("previous") == "" {
		t.Fatalf("page 1: %v links %v", names(), page.Links)
	}
	want := e.srv.Endpoint() + "security-groups?limit=2&sort_key=name&sort_dir=asc&marker=" + page.Groups[1].ID
	if href("next") != want {
		t.Errorf("next link %s, want %s", href("next"), want)
	}
	get(href("next"))
	if !slices.Equal(names(), []string{"c", "d"}) {
		t.Errorf("page 2: %v", names())
	}
	get(href("previous"))
	if !slices.Equal(names(), []string{"a", "b"}) {
		t.Errorf("previous of page 2: %v", names())
	}
	get(e.a.ServiceURL("security-groups?limit=2&sort_key=name&sort_dir=asc&marker=" + page.Groups[1].ID))
	get(href("next"))
	if !slices.Equal(names(), []string{"default"}) || href("next") != "" || href("previous") == "" {
		t.Errorf("last page: %v links %v, want [default] with only a previous link", names(), page.Links)
	}
}
