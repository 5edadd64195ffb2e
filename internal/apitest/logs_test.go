package apitest

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/moat-sg/moat/internal/store"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// The logging extension: /v2.0/log/logs and /v2.0/log/loggable-resources,
// admin only, validated as Neutron's security-group log validator does.

type logBody struct {
	Log map[string]any `json:"log"`
}

func createLog(t *testing.T, e *env, attrs map[string]any) map[string]any {
	t.Helper()
	var out logBody
	noErr(t, rawRequest(t, e.admin, http.MethodPost, "log/logs", logBody{attrs}, nil, &out, 201), "create log")
	return out.Log
}

func TestLogLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	lg := createLog(t, e, map[string]any{"name": "web-log", "description": "d", "resource_type": "security_group",
		"resource_id": web.ID, "event": "DROP", "project_id": projectA.project})
	want := map[string]any{"name": "web-log", "description": "d", "resource_type": "security_group", "resource_id": web.ID,
		"target_id": nil, "event": "DROP", "enabled": true, "project_id": projectA.project, "tenant_id": projectA.project,
		"revision_number": float64(0)}
	for k, v := range want {
		if fmt.Sprint(lg[k]) != fmt.Sprint(v) {
			t.Errorf("created log %s = %v, want %v", k, lg[k], v)
		}
	}
	id := lg["id"].(string)
	if got := rawGet(t, e.admin, "log/logs/"+id)["log"].(map[string]any); got["name"] != "web-log" || got["event"] != "DROP" {
		t.Errorf("show: %v", got)
	}
	list := rawGet(t, e.admin, "log/logs?event=DROP")["logs"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Errorf("list event=DROP: %v", list)
	}
	if list := rawGet(t, e.admin, "log/logs?event=ACCEPT")["logs"].([]any); len(list) != 0 {
		t.Errorf("list event=ACCEPT: %v", list)
	}
	var upd logBody
	noErr(t, rawRequest(t, e.admin, http.MethodPut, "log/logs/"+id, logBody{map[string]any{"enabled": false, "description": "e"}}, nil, &upd, 200), "update")
	if upd.Log["enabled"] != false || upd.Log["description"] != "e" || fmt.Sprint(upd.Log["revision_number"]) != "1" {
		t.Errorf("updated: %v", upd.Log)
	}
	// event, resource and target are fixed at create.
	err := rawRequest(t, e.admin, http.MethodPut, "log/logs/"+id, logBody{map[string]any{"event": "ALL"}}, nil, nil, 200)
	wantError(t, err, 400, "HTTPBadRequest", "Cannot update read-only attribute event")

	// Members see nothing of logs and may not create them.
	wantError(t, rawRequest(t, e.a, http.MethodGet, "log/logs/"+id, nil, nil, nil, 200), 404, "HTTPNotFound", "")
	wantError(t, rawRequest(t, e.a, http.MethodDelete, "log/logs/"+id, nil, nil, nil, 204), 404, "HTTPNotFound", "")
	if list := rawGet(t, e.a, "log/logs")["logs"].([]any); len(list) != 0 {
		t.Errorf("member's list: %v", list)
	}
	err = rawRequest(t, e.a, http.MethodPost, "log/logs", logBody{map[string]any{"resource_type": "security_group"}}, nil, nil, 201)
	wantError(t, err, 403, "PolicyNotAuthorized", "rule:create_log is disallowed by policy")
	if lr := rawGet(t, e.a, "log/loggable-resources")["loggable_resources"].([]any); len(lr) != 0 {
		t.Errorf("member's loggable resources: %v", lr)
	}
	lr := rawGet(t, e.admin, "log/loggable-resources")["loggable_resources"].([]any)
	if len(lr) != 1 || lr[0].(map[string]any)["type"] != "security_group" || len(lr[0].(map[string]any)) != 1 {
		t.Errorf("loggable resources: %v", lr)
	}

	noErr(t, rawRequest(t, e.admin, http.MethodDelete, "log/logs/"+id, nil, nil, nil, 204), "delete")
	wantError(t, rawRequest(t, e.admin, http.MethodGet, "log/logs/"+id, nil, nil, nil, 200), 404, "LogResourceNotFound",
		"Log resource "+id+" could not be found.")
}

func TestLogValidation(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	other := createGroup(t, e.a, "other")
	net := createNetwork(t, e.a, networks.CreateOpts{Name: "n"})
	newSubnet(t, e.a, net.ID, "10.9.0.0/24")
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: net.ID, SecurityGroups: &[]string{web.ID}})
	missing := "00000000-0000-0000-0000-00000000beef"
	for _, c := range []struct {
		name     string
		body     map[string]any
		status   int
		typ, msg string
	}{
		{"type", map[string]any{"resource_type": "firewall_group"}, 400, "InvalidLogResourceType", "Invalid log resource_type: firewall_group."},
		{"no type", map[string]any{"name": "x"}, 400, "HTTPBadRequest", "Failed to parse request. Required attribute 'resource_type' not specified"},
		{"event", map[string]any{"resource_type": "security_group", "event": "MAYBE"}, 400, "HTTPBadRequest",
			"Invalid input for event. Reason: MAYBE is not in valid_values."},
		{"resource uuid", map[string]any{"resource_type": "security_group", "resource_id": "web"}, 400, "HTTPBadRequest",
			"Invalid input for resource_id. Reason: 'web' is not a valid UUID."},
		{"no group", map[string]any{"resource_type": "security_group", "resource_id": missing}, 404, "ResourceNotFound",
			"Resource " + missing + " could not be found."},
		{"no port", map[string]any{"resource_type": "security_group", "target_id": missing}, 404, "TargetResourceNotFound",
			"Target resource " + missing + " could not be found."},
		{"constraint", map[string]any{"resource_type": "security_group", "resource_id": other.ID, "target_id": p.ID}, 400, "InvalidResourceConstraint",
			"Invalid resource constraint between resource (security_group " + other.ID + ") and target resource (port " + p.ID + ")."},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := rawRequest(t, e.admin, http.MethodPost, "log/logs", logBody{c.body}, nil, nil, 201)
			wantError(t, err, c.status, c.typ, c.msg)
		})
	}
	// A group and a port it carries; a port alone; nothing (every port of
	// the project).
	both := createLog(t, e, map[string]any{"resource_type": "security_group", "resource_id": web.ID, "target_id": p.ID})
	port := createLog(t, e, map[string]any{"resource_type": "security_group", "target_id": p.ID})
	createLog(t, e, map[string]any{"resource_type": "security_group"})
	if both["event"] != "ALL" || both["enabled"] != true || both["name"] != "" || port["resource_id"] != nil {
		t.Errorf("defaults: %v %v", both, port)
	}

	// A group's logs go with it, a port's with the port.
	other2 := createGroup(t, e.a, "other2")
	lg := createLog(t, e, map[string]any{"resource_type": "security_group", "resource_id": other2.ID})
	noErr(t, groups.Delete(t.Context(), e.a, other2.ID).ExtractErr(), "delete group")
	wantError(t, rawRequest(t, e.admin, http.MethodGet, "log/logs/"+lg["id"].(string), nil, nil, nil, 200), 404, "LogResourceNotFound", "")
	noErr(t, ports.Delete(t.Context(), e.a, p.ID).ExtractErr(), "delete port")
	for _, l := range []map[string]any{both, port} {
		wantError(t, rawRequest(t, e.admin, http.MethodGet, "log/logs/"+l["id"].(string), nil, nil, nil, 200), 404, "LogResourceNotFound", "")
	}
	if list := rawGet(t, e.admin, "log/logs")["logs"].([]any); len(list) != 1 {
		t.Errorf("logs left: %v", list)
	}
}

// TestLogsForHost: a host's agent gets the enabled logs that cover its
// ports: by target port, by a group its ports carry, or (neither) every
// port of the log's project.
func TestLogsForHost(t *testing.T) {
	e := newEnv(t, nil)
	web := createGroup(t, e.a, "web")
	db := createGroup(t, e.a, "db")
	net := createNetwork(t, e.admin, networks.CreateOpts{Name: "n", Shared: ptr(true)})
	newSubnet(t, e.admin, net.ID, "10.9.0.0/24")
	bound := func(c *gophercloud.ServiceClient, host string, groups ...string) string {
		p := createPort(t, c, ports.CreateOpts{NetworkID: net.ID, SecurityGroups: &groups})
		noErr(t, rawRequest(t, e.admin, http.MethodPut, "ports/"+p.ID, map[string]any{"port": map[string]any{"binding:host_id": host}}, nil, nil, 200), "bind")
		return p.ID
	}
	pWeb := bound(e.a, "h1", web.ID)
	pDB := bound(e.a, "h1", db.ID)
	bGroup := createGroup(t, e.b, "b")
	pB := bound(e.b, "h1", bGroup.ID)
	pOther := bound(e.a, "h2", web.ID)
	byGroup := createLog(t, e, map[string]any{"resource_type": "security_group", "resource_id": web.ID, "event": "ACCEPT"})["id"].(string)
	byPort := createLog(t, e, map[string]any{"resource_type": "security_group", "target_id": pDB})["id"].(string)
	byProject := createLog(t, e, map[string]any{"resource_type": "security_group", "project_id": projectB.project, "event": "DROP"})["id"].(string)
	createLog(t, e, map[string]any{"resource_type": "security_group", "target_id": pWeb, "enabled": false})

	var got []store.HostLog
	noErr(t, e.srv.Store.Read(t.Context(), func(tx *store.Tx) error {
		var err error
		got, err = tx.LogsForHost(t.Context(), "h1")
		return err
	}), "LogsForHost")
	want := map[string]store.HostLog{
		byGroup:   {ID: byGroup, ProjectID: admin.project, Event: "ACCEPT", ResourceID: web.ID, Ports: []string{pWeb}},
		byPort:    {ID: byPort, ProjectID: admin.project, Event: "ALL", Ports: []string{pDB}},
		byProject: {ID: byProject, ProjectID: projectB.project, Event: "DROP", Ports: []string{pB}},
	}
	if len(got) != len(want) {
		t.Fatalf("logs of h1: %+v", got)
	}
	for _, l := range got {
		if w := want[l.ID]; !reflect.DeepEqual(l, w) {
			t.Errorf("log %s: %+v, want %+v", l.ID, l, w)
		}
	}
	_ = pOther
}

// TestLogEvents: an agent posts its logged packets for its host only; an
// admin reads the newest, by port.
func TestLogEvents(t *testing.T) {
	srv := Start(t, Config{Auth: Headers, AgentTokens: map[string]string{"h1": "h1-token-0123456789"}})
	adm := newClient(t, srv, admin)
	agent := newClient(t, srv, admin)
	agent.MoreHeaders = map[string]string{"X-Auth-Token": "h1-token-0123456789"}
	evs := map[string]any{"log_events": []map[string]any{
		{"port_id": "p1", "verdict": "DROP", "protection": "default-drop", "host": "forged"},
		{"port_id": "p2", "verdict": "ACCEPT", "security_group_rule_id": "r1"},
	}}
	noErr(t, rawRequest(t, agent, http.MethodPost, "moat/hosts/h1/log-events", evs, nil, nil, 204), "post")
	err := rawRequest(t, agent, http.MethodPost, "moat/hosts/h2/log-events", evs, nil, nil, 204)
	wantError(t, err, 403, "PolicyNotAuthorized", "")
	err = rawRequest(t, agent, http.MethodPost, "moat/hosts/h1/log-events", map[string]any{"events": 1}, nil, nil, 204)
	wantError(t, err, 400, "HTTPBadRequest", "")
	wantError(t, rawRequest(t, agent, http.MethodGet, "moat/log-events", nil, nil, nil, 200), 403, "PolicyNotAuthorized", "")
	got := rawGet(t, adm, "moat/log-events")["log_events"].([]any)
	if len(got) != 2 || got[0].(map[string]any)["host"] != "h1" || got[1].(map[string]any)["port_id"] != "p2" {
		t.Errorf("events: %v", got)
	}
	got = rawGet(t, adm, "moat/log-events?port_id=p1")["log_events"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["verdict"] != "DROP" {
		t.Errorf("events of p1: %v", got)
	}
}
