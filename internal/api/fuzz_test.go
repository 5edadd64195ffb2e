package api

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FuzzAPI throws arbitrary requests at the server, as a member of project
// p1 or as an admin. Seeds are the recorded Neutron requests and
// testdata/fuzz/FuzzAPI. Whatever comes in:
//   - the answer is never a 500 and never a panic, its body is JSON (none
//     for a 204) and every error under /v2.0 is a NeutronError;
//   - another project's private objects (a group with a rule, a network, a
//     subnet, a port) stay as they are after any member request, and no
//     member answer names them.
func FuzzAPI(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden-api/*.json")
	sort.Strings(files)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var g goldenExchange
		if json.Unmarshal(raw, &g) != nil {
			continue
		}
		f.Add(g.Request.Method, g.Request.Path, []byte(g.Request.Body), g.Request.Headers["X-Roles"] == "admin,member,reader")
	}
	st := newTestServer(f, HeaderAuth{})
	p2 := map[string]string{"X-User-Id": "u2", "X-Project-Id": "p2", "X-Roles": "member", "Content-Type": "application/json"}
	create := func(path, body, key string) string {
		status, b := do(f, st, "POST", path, []byte(body), p2)
		var v map[string]map[string]any
		if status != 201 || json.Unmarshal(b, &v) != nil {
			f.Fatalf("POST %s as p2: %d %s", path, status, b)
		}
		id, _ := v[key]["id"].(string)
		return id
	}
	sg := create("/v2.0/security-groups", `{"security_group":{"name":"p2-private"}}`, "security_group")
	create("/v2.0/security-group-rules", `{"security_group_rule":{"security_group_id":"`+sg+`","direction":"ingress","protocol":"tcp","port_range_min":22,"port_range_max":22}}`, "security_group_rule")
	net := create("/v2.0/networks", `{"network":{"name":"p2-net"}}`, "network")
	sub := create("/v2.0/subnets", `{"subnet":{"network_id":"`+net+`","cidr":"10.99.0.0/24","ip_version":4}}`, "subnet")
	port := create("/v2.0/ports", `{"port":{"network_id":"`+net+`","security_groups":["`+sg+`"]}}`, "port")
	private := []string{"/v2.0/security-groups/" + sg, "/v2.0/networks/" + net, "/v2.0/subnets/" + sub, "/v2.0/ports/" + port}
	snapshot := func(t testing.TB) [][]byte {
		var out [][]byte
		for _, path := range private {
			status, b := do(t, st, "GET", path, nil, p2)
			if status != 200 {
				t.Fatalf("GET %s as p2: %d %s", path, status, b)
			}
			out = append(out, b)
		}
		return out
	}
	before := snapshot(f)
	ids := []string{sg, net, sub, port}

	f.Fuzz(func(t *testing.T, method, path string, body []byte, admin bool) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		default:
			return
		}
		h := map[string]string{"X-User-Id": "u", "X-Project-Id": "p1", "X-Roles": "member", "Content-Type": "application/json"}
		if admin {
			h["X-Roles"] = "admin"
		}
		status, resp := do(t, st, method, path, body, h)
		if status == -1 {
			return // not a valid URL
		}
		checkAnswer(t, method, path, body, status, resp)
		if admin {
			// An admin may change anything (though it cannot know the
			// ids): start again from what is there now.
			before = snapshot(t)
			return
		}
		for _, id := range ids {
			if bytes.Contains(resp, []byte(id)) && !strings.Contains(path, id) && !bytes.Contains(body, []byte(id)) {
				t.Fatalf("%s %s %q as p1's member: the answer names p2's private %s: %s", method, path, body, id, resp)
			}
		}
		for i, b := range snapshot(t) {
			if !bytes.Equal(b, before[i]) {
				t.Fatalf("%s %s %q as p1's member changed p2's %s:\nbefore %s\nafter  %s", method, path, body, private[i], before[i], b)
			}
		}
	})
}
