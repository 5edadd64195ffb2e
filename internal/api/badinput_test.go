package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// checkAnswer asserts the promise for any input: no 500, a JSON body (or
// none for 204), and a NeutronError for every error status.
func checkAnswer(t testing.TB, method, path string, body []byte, status int, resp []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("%s %s %q: status %d: %s", method, path, body, status, resp)
	}
	if status == http.StatusNoContent {
		if len(resp) != 0 {
			t.Fatalf("%s %s: 204 with a body %q", method, path, resp)
		}
		return
	}
	var v any
	if err := json.Unmarshal(resp, &v); err != nil {
		t.Fatalf("%s %s %q: status %d, body is not JSON: %q", method, path, body, status, resp)
	}
	if status >= 400 && status != 401 {
		m, _ := v.(map[string]any)
		ne, _ := m["NeutronError"].(map[string]any)
		// Outside /v2.0 Neutron's own 404 body is not a NeutronError.
		if ne == nil && (path == "/v2.0" || strings.HasPrefix(path, "/v2.0/")) {
			t.Fatalf("%s %s: status %d without a NeutronError: %s", method, path, status, resp)
		}
	}
}

func do(t testing.TB, srv *httptest.Server, method, path string, body []byte, headers map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		return -1, nil
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

var member = map[string]string{"X-User-Id": "u", "X-Project-Id": "p1", "X-Roles": "member", "Content-Type": "application/json"}

// TestBadInputNeverFails500 sends hostile and malformed requests: every
// answer is a clear client error, and nothing half-applies.
func TestBadInputNeverFails500(t *testing.T) {
	srv := newTestServer(t, HeaderAuth{})
	_, b := do(t, srv, "POST", "/v2.0/security-groups", []byte(`{"security_group": {"name": "g"}}`), member)
	var created struct {
		SecurityGroup struct{ ID string } `json:"security_group"`
	}
	json.Unmarshal(b, &created)
	sg := created.SecurityGroup.ID
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v2.0/security-groups", `{"security_group": {"name": "x\u0000y"}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"name": ["a"]}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"name": {"a": 1}}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"stateful": "maybe"}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"stateful": null}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": []}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": "x"}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_groups": "x"}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_groups": []}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_groups": [1, 2]}`, 400},
		{"POST", "/v2.0/security-groups", `[1, 2]`, 400},
		{"POST", "/v2.0/security-groups", `"str"`, 400},
		{"POST", "/v2.0/security-groups", `12`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {}} trailing`, 400},
		{"POST", "/v2.0/security-groups", "\xff\xfe", 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"tenant_id": 5}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"project_id": null}}`, 400},
		{"POST", "/v2.0/security-groups", `{"security_group": {"name": "` + strings.Repeat("é", 256) + `"}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": ["tcp"]}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": true}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": 6.5}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": "tcp", "port_range_min": 1e400, "port_range_max": 3}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": "tcp", "port_range_min": true, "port_range_max": 3}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "protocol": "tcp", "port_range_min": "99999999999999999999999", "port_range_max": 3}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "remote_ip_prefix": 10}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "remote_group_id": 5}}`, 404},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "remote_group_id": {"a": 1}}}`, 404},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": 5, "direction": "ingress"}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": 1}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "ethertype": null}}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rule": {"security_group_id": "` + sg + `", "direction": "ingress", "description": 7}}`, 400},
		// A bulk whose second rule is bad creates nothing.
		{"POST", "/v2.0/security-group-rules", `{"security_group_rules": [{"security_group_id": "` + sg + `", "direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 1}, {"security_group_id": "` + sg + `", "direction": "sideways"}]}`, 400},
		{"POST", "/v2.0/security-group-rules", `{"security_group_rules": [{"security_group_id": "` + sg + `", "direction": "ingress", "protocol": "tcp", "port_range_min": 2, "port_range_max": 2}, {"security_group_id": "00000000-0000-0000-0000-000000000000", "direction": "ingress"}]}`, 400},
		{"PUT", "/v2.0/security-groups/" + sg, `{"security_group": {"stateful": []}}`, 400},
		{"PUT", "/v2.0/security-groups/" + sg, `{"security_group": {"id": "x"}}`, 400},
		{"PUT", "/v2.0/security-groups/" + sg + "/tags", `{"tags": [1]}`, 400},
		{"PUT", "/v2.0/security-groups/" + sg + "/tags", `[]`, 400},
		{"PUT", "/v2.0/security-groups/" + sg + "/tags/" + strings.Repeat("t", 300), ``, 400},
		{"GET", "/v2.0/security-groups?limit=99999999999999999999", ``, 400},
		{"GET", "/v2.0/security-groups?sort_key=name&sort_dir=asc&sort_key=id", ``, 400},
		{"GET", "/v2.0/security-groups?name=%00", ``, 400},
		{"GET", "/v2.0/security-group-rules?protocol=bogus", ``, 400},
		{"GET", "/v2.0/security-group-rules?port_range_min=x", ``, 400},
		{"GET", "/v2.0/security-group-rules?ethertype=IPv5", ``, 400},
		{"GET", "/v2.0/security-groups/%00", ``, 400},
		{"GET", "/v2.0/security-groups/" + strings.Repeat("a", 5000), ``, 404},
		{"POST", "/v2.0/address-groups", `{"address_group": {"addresses": [null]}}`, 400},
		{"POST", "/v2.0/address-groups", `{"address_group": {"addresses": [["10.0.0.0/8"]]}}`, 400},
		{"POST", "/v2.0/address-groups", `{"address_group": {"addresses": {"a": 1}}}`, 400},
		{"POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["10.0.0.0/8\u0000"]}}`, 400},
		{"POST", "/v2.0/address-groups", `{"address_groups": [{"name": "ok"}, {"addresses": ["bad"]}]}`, 400},
		{"PUT", "/v2.0/address-groups/x/add_addresses", `[1]`, 400},
		{"PUT", "/v2.0/address-groups/x/add_addresses", `{"addresses": [1, {"a": 2}]}`, 400},
		{"PUT", "/v2.0/address-groups/x/remove_addresses", `{"addresses": null}`, 400},
		{"PUT", "/v2.0/address-groups/x/remove_addresses", `{"addresses": ["1.2.3.4/99"]}`, 400},
		{"PUT", "/v2.0/address-groups/x/add_addresses", `{"addresses": []}`, 404},
		{"PUT", "/v2.0/quotas/p1", `{"quota": {"security_group": "many"}}`, 403},
		{"DELETE", "/v2.0/security-groups/" + sg, ``, 204},
	}
	for _, c := range cases {
		status, resp := do(t, srv, c.method, c.path, []byte(c.body), member)
		checkAnswer(t, c.method, c.path, []byte(c.body), status, resp)
		if status != c.status {
			t.Errorf("%s %s %s: status %d, want %d: %s", c.method, c.path, c.body, status, c.status, resp)
		}
	}
	// The failed bulk of address groups created none.
	if _, b := do(t, srv, "GET", "/v2.0/address-groups", nil, member); string(b) != `{"address_groups":[]}` {
		t.Errorf("address groups left: %s", b)
	}
	// Nothing of the failed bulks landed before the group went away: the
	// only rules left are the default group's four.
	_, b = do(t, srv, "GET", "/v2.0/security-group-rules?fields=id", nil, member)
	var rules struct {
		Rules []any `json:"security_group_rules"`
	}
	json.Unmarshal(b, &rules)
	if len(rules.Rules) != 4 {
		t.Fatalf("%d rules left, want the default group's 4: %s", len(rules.Rules), b)
	}
}
