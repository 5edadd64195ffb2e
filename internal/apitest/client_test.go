package apitest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

// identity is who a gophercloud client acts as (the headers a Keystone
// auth proxy would set).
type identity struct {
	user, project, roles string
}

var (
	projectA = identity{"user-a", "aaaaaaaa000000000000000000000001", "member,reader"}
	projectB = identity{"user-b", "bbbbbbbb000000000000000000000002", "member,reader"}
	admin    = identity{"admin-user", "adadadad000000000000000000000003", "admin,member,reader"}
)

// env is a moat server in headers mode with a client per identity.
type env struct {
	srv         *Server
	a, b, admin *gophercloud.ServiceClient
}

func newEnv(t *testing.T, quotas map[string]int64) *env {
	t.Helper()
	return newEnvConfig(t, Config{Quotas: quotas})
}

// newEnvConfig is newEnv with a full server configuration (its Auth is
// always Headers).
func newEnvConfig(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg.Auth = Headers
	srv := Start(t, cfg)
	return &env{srv: srv, a: newClient(t, srv, projectA), b: newClient(t, srv, projectB), admin: newClient(t, srv, admin)}
}

// newClient is a gophercloud network client for the server's /v2.0/
// endpoint that authenticates as id through the X-* headers.
func newClient(t *testing.T, srv *Server, id identity) *gophercloud.ServiceClient {
	t.Helper()
	pc, err := openstack.NewClient(srv.URL)
	if err != nil {
		t.Fatalf("gophercloud provider client: %v", err)
	}
	return &gophercloud.ServiceClient{
		ProviderClient: pc,
		Endpoint:       srv.Endpoint(),
		Type:           "network",
		MoreHeaders: map[string]string{
			"X-User-Id":    id.user,
			"X-Project-Id": id.project,
			"X-Roles":      id.roles,
		},
	}
}

// neutronError is a decoded error answer.
type neutronError struct {
	Status  int
	Type    string
	Message string
}

// asNeutronError decodes the NeutronError body of a failed gophercloud
// call; the test fails if err is not an HTTP error with such a body.
func asNeutronError(t *testing.T, err error) neutronError {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want an error")
	}
	var uerr gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &uerr) {
		t.Fatalf("error %v (%T) is not gophercloud.ErrUnexpectedResponseCode", err, err)
	}
	var body struct {
		NeutronError *struct {
			Type    string  `json:"type"`
			Message string  `json:"message"`
			Detail  *string `json:"detail"`
		} `json:"NeutronError"`
	}
	if err := json.Unmarshal(uerr.Body, &body); err != nil || body.NeutronError == nil {
		t.Fatalf("HTTP %d body is not a NeutronError: %s", uerr.Actual, uerr.Body)
	}
	if body.NeutronError.Detail == nil || *body.NeutronError.Detail != "" {
		t.Errorf("NeutronError detail = %v, want \"\"", body.NeutronError.Detail)
	}
	if ct := uerr.ResponseHeader.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return neutronError{Status: uerr.Actual, Type: body.NeutronError.Type, Message: body.NeutronError.Message}
}

// wantError checks that err is the Neutron error (status, type) and, when
// message is not empty, has exactly that message.
func wantError(t *testing.T, err error, status int, typ, message string) {
	t.Helper()
	ne := asNeutronError(t, err)
	if !gophercloud.ResponseCodeIs(err, status) {
		t.Errorf("status = %d, want %d (%s: %s)", ne.Status, status, ne.Type, ne.Message)
	}
	if ne.Type != typ {
		t.Errorf("error type = %q, want %q (message %q)", ne.Type, typ, ne.Message)
	}
	if message != "" && ne.Message != message {
		t.Errorf("error message = %q\n                  want %q", ne.Message, message)
	}
}

// noErr fails the test on an error of a call that has to succeed.
func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// rawGet GETs url (relative to the endpoint) and decodes the JSON answer.
func rawGet(t *testing.T, c *gophercloud.ServiceClient, path string) map[string]any {
	t.Helper()
	var out map[string]any
	if _, err := c.Get(t.Context(), c.ServiceURL(path), &out, nil); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return out
}

// rawRequest sends a request with a JSON body and extra headers, expecting
// one of ok, and decodes the answer into out (if not nil).
func rawRequest(t *testing.T, c *gophercloud.ServiceClient, method, path string, body any, headers map[string]string, out any, ok ...int) error {
	t.Helper()
	opts := &gophercloud.RequestOpts{JSONBody: body, MoreHeaders: headers, OkCodes: ok}
	if out != nil {
		opts.JSONResponse = out
	}
	_, err := c.Request(t.Context(), method, c.ServiceURL(path), opts)
	return err
}

// createGroup creates a security group that must succeed.
func createGroup(t *testing.T, c *gophercloud.ServiceClient, name string) *groups.SecGroup {
	t.Helper()
	return createGroupOpts(t, c, groups.CreateOpts{Name: name, Description: name + " servers"})
}

func createGroupOpts(t *testing.T, c *gophercloud.ServiceClient, opts groups.CreateOpts) *groups.SecGroup {
	t.Helper()
	g, err := groups.Create(t.Context(), c, opts).Extract()
	noErr(t, err, "create security group "+opts.Name)
	return g
}

func getGroup(t *testing.T, c *gophercloud.ServiceClient, id string) *groups.SecGroup {
	t.Helper()
	g, err := groups.Get(t.Context(), c, id).Extract()
	noErr(t, err, "get security group "+id)
	return g
}

func updateGroup(t *testing.T, c *gophercloud.ServiceClient, id string, opts groups.UpdateOpts) *groups.SecGroup {
	t.Helper()
	g, err := groups.Update(t.Context(), c, id, opts).Extract()
	noErr(t, err, "update security group "+id)
	return g
}

func createRule(t *testing.T, c *gophercloud.ServiceClient, opts rules.CreateOpts) *rules.SecGroupRule {
	t.Helper()
	r, err := rules.Create(t.Context(), c, opts).Extract()
	noErr(t, err, "create rule")
	return r
}

func getRule(t *testing.T, c *gophercloud.ServiceClient, id string) *rules.SecGroupRule {
	t.Helper()
	r, err := rules.Get(t.Context(), c, id).Extract()
	noErr(t, err, "get rule "+id)
	return r
}

// listGroups lists every security group visible to c with opts.
func listGroups(t *testing.T, c *gophercloud.ServiceClient, opts groups.ListOpts) []groups.SecGroup {
	t.Helper()
	pages, err := groups.List(c, opts).AllPages(t.Context())
	noErr(t, err, "list security groups")
	gs, err := groups.ExtractGroups(pages)
	noErr(t, err, "extract security groups")
	return gs
}

// listRules lists every rule visible to c with opts.
func listRules(t *testing.T, c *gophercloud.ServiceClient, opts rules.ListOpts) []rules.SecGroupRule {
	t.Helper()
	pages, err := rules.List(c, opts).AllPages(t.Context())
	noErr(t, err, "list rules")
	rs, err := rules.ExtractRules(pages)
	noErr(t, err, "extract rules")
	return rs
}

// groupNames are the sorted names of gs.
func groupNames(gs []groups.SecGroup) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Name
	}
	slices.Sort(out)
	return out
}

// defaultGroup is project's default group as c sees it (a list by the
// project itself creates it).
func defaultGroup(t *testing.T, c *gophercloud.ServiceClient, project string) groups.SecGroup {
	t.Helper()
	gs := listGroups(t, c, groups.ListOpts{Name: "default", ProjectID: project})
	if len(gs) != 1 {
		t.Fatalf("list name=default: %d groups, want 1", len(gs))
	}
	return gs[0]
}
