package api

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/store/pgtest"
)

// TestRuleCreateAnswers runs one script of rule creates on SQLite and on
// PostgreSQL, where a single rule is created in one statement when it can
// be (store.CreateRuleAtOnce) and through the general path otherwise: each
// answer is checked, and PostgreSQL's must be SQLite's (the general path
// on both), ids and timestamps aside.
func TestRuleCreateAnswers(t *testing.T) {
	sqlite := ruleCreateScript(t, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	pg := ruleCreateScript(t, pgtest.Start(t).NewDatabase(t))
	if len(sqlite) != len(pg) {
		t.Fatalf("%d answers on SQLite, %d on PostgreSQL", len(sqlite), len(pg))
	}
	for i := range sqlite {
		if sqlite[i] != pg[i] {
			t.Errorf("answer %d differs:\n  sqlite   %s\n  postgres %s", i, sqlite[i], pg[i])
		}
	}
}

var (
	attrIDRe = regexp.MustCompile(`"standard_attr_id":\d+`)
	stampRe  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)
)

// ruleCreateScript runs the script on a server over url and returns its
// answers normalised: ids numbered in order of appearance, timestamps
// and standard attribute ids blanked.
func ruleCreateScript(t *testing.T, url string) []string {
	srv := newTestServerOn(t, HeaderAuth{}, url)
	projA := map[string]string{"X-User-Id": "a", "X-Project-Id": "pa", "X-Roles": "member", "Content-Type": "application/json"}
	projB := map[string]string{"X-User-Id": "b", "X-Project-Id": "pb", "X-Roles": "member", "Content-Type": "application/json"}
	admin := map[string]string{"X-User-Id": "adm", "X-Project-Id": "padm", "X-Roles": "admin,member", "Content-Type": "application/json"}
	ids := map[string]string{}
	expand := func(s string) string {
		for k, v := range ids {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	var answers []string
	seen := map[string]string{}
	normalise := func(b []byte) string {
		s := uuidRe.ReplaceAllStringFunc(string(b), func(u string) string {
			if n, ok := seen[u]; ok {
				return n
			}
			seen[u] = "<id" + strconv.Itoa(len(seen)) + ">"
			return seen[u]
		})
		s = attrIDRe.ReplaceAllString(s, `"standard_attr_id":<n>`)
		return stampRe.ReplaceAllString(s, "<time>")
	}
	// step sends one request, checks its status and that the answer holds
	// each of want, keeps the id of the object created as save, and
	// returns the answer's top-level object.
	step := func(name string, who map[string]string, method, path, body string, status int, want []string, save string) map[string]any {
		t.Helper()
		path, body = expand(path), expand(body)
		got, resp := do(t, srv, method, path, []byte(body), who)
		if got != status {
			t.Fatalf("%s: %s %s: status %d, want %d: %s", name, method, path, got, status, resp)
		}
		for _, w := range want {
			if w = expand(w); !strings.Contains(string(resp), w) {
				t.Errorf("%s: answer %s lacks %s", name, resp, w)
			}
		}
		answers = append(answers, fmt.Sprintf("%s: %d %s", name, got, normalise(resp)))
		var m map[string]map[string]any
		if len(resp) > 0 {
			if err := json.Unmarshal(resp, &m); err != nil {
				t.Fatalf("%s: %v: %s", name, err, resp)
			}
		}
		for _, obj := range m {
			if save != "" {
				ids[save] = obj["id"].(string)
			}
			return obj
		}
		return nil
	}
	revision := func(group string) float64 {
		t.Helper()
		return step("revision of "+group, admin, "GET", "/v2.0/security-groups/{"+group+"}", "", 200, nil, "")["revision_number"].(float64)
	}
	rule := func(group, extra string) string {
		return `{"security_group_rule": {"security_group_id": "{` + group + `}", "direction": "ingress"` + extra + `}}`
	}

	step("A's group", projA, "POST", "/v2.0/security-groups", `{"security_group": {"name": "a"}}`, 201, nil, "sga")
	step("B's group", projB, "POST", "/v2.0/security-groups", `{"security_group": {"name": "b"}}`, 201, nil, "sgb")

	before := revision("sga")
	created := step("a rule", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "description": "ssh"`),
		201, []string{`"security_group_id":"{sga}"`, `"tenant_id":"pa"`, `"port_range_min":22`, `"description":"ssh"`, `"revision_number":0`, `"remote_group_id":null`}, "r1")
	if after := revision("sga"); after != before+1 {
		t.Errorf("the group's revision went from %v to %v, want one more", before, after)
	}
	shown := step("the rule shown", projA, "GET", "/v2.0/security-group-rules/{r1}", "", 200, nil, "")
	for _, k := range []string{"id", "security_group_id", "protocol", "port_range_min", "description", "created_at", "updated_at", "revision_number", "project_id"} {
		if fmt.Sprint(shown[k]) != fmt.Sprint(created[k]) {
			t.Errorf("shown %s = %v, created %v", k, shown[k], created[k])
		}
	}
	step("the same rule again", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "6", "port_range_min": 22, "port_range_max": 22`),
		409, []string{`{"NeutronError":{"type":"SecurityGroupRuleExists","message":"Security group rule already exists. Rule id is {r1}.","detail":""}}`}, "")
	step("the full port range is no range", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "udp", "port_range_min": 1, "port_range_max": 65535`),
		201, []string{`"port_range_min":null`, `"port_range_max":null`}, "r2")
	step("so a rule without ports is its duplicate", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "udp"`),
		409, []string{`Rule id is {r2}.`}, "")
	step("no such group", projA, "POST", "/v2.0/security-group-rules",
		`{"security_group_rule": {"security_group_id": "00000000-0000-0000-0000-000000000000", "direction": "ingress"}}`,
		404, []string{`{"NeutronError":{"type":"SecurityGroupNotFound","message":"Security group 00000000-0000-0000-0000-000000000000 does not exist","detail":""}}`}, "")
	step("another project's group", projA, "POST", "/v2.0/security-group-rules", rule("sgb", ""),
		404, []string{`Security group {sgb} does not exist`}, "")
	step("another project's group as remote", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "remote_group_id": "{sgb}"`),
		404, []string{`Security group {sgb} does not exist`}, "")
	step("no such remote group", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "remote_group_id": "00000000-0000-0000-0000-000000000001"`),
		404, []string{`Security group 00000000-0000-0000-0000-000000000001 does not exist`}, "")
	step("its own group as remote", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "remote_group_id": "{sga}"`),
		201, []string{`"remote_group_id":"{sga}"`}, "")
	step("ports reversed", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "port_range_min": 30, "port_range_max": 20`),
		400, []string{`"SecurityGroupInvalidPortRange"`}, "")
	step("a bad prefix", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "remote_ip_prefix": "garbage"`),
		400, nil, "")
	step("an admin's rule in B's group for A", admin, "POST", "/v2.0/security-group-rules", rule("sgb", `, "project_id": "pa", "protocol": "icmp"`),
		201, []string{`"project_id":"pa"`, `"security_group_id":"{sgb}"`}, "")
	step("B shares its group with A", projB, "POST", "/v2.0/rbac-policies",
		`{"rbac_policy": {"object_type": "security_group", "object_id": "{sgb}", "action": "access_as_shared", "target_tenant": "pa"}}`, 201, nil, "")
	step("A may use B's shared group as remote", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "remote_group_id": "{sgb}"`),
		201, []string{`"remote_group_id":"{sgb}"`}, "")
	step("not change its rules", projA, "POST", "/v2.0/security-group-rules", rule("sgb", `, "protocol": "tcp"`),
		403, []string{`rule:create_security_group_rule is disallowed by policy`}, "")

	// The quota: A's rules are counted, one more fits.
	var list map[string][]any
	_, resp := do(t, srv, "GET", "/v2.0/security-group-rules?project_id=pa&fields=id", nil, admin)
	if err := json.Unmarshal(resp, &list); err != nil {
		t.Fatal(err)
	}
	limit := strconv.Itoa(len(list["security_group_rules"]) + 1)
	step("A's quota", admin, "PUT", "/v2.0/quotas/pa", `{"quota": {"security_group_rule": `+limit+`}}`, 200, nil, "")
	step("the last rule under the quota", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "port_range_min": 80, "port_range_max": 80`),
		201, nil, "")
	step("over the quota", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "port_range_min": 81, "port_range_max": 81`),
		409, []string{`{"NeutronError":{"type":"OverQuota","message":"Quota exceeded for resources: ['security_group_rule'].","detail":""}}`}, "")
	step("over the quota comes before a missing group", projA, "POST", "/v2.0/security-group-rules",
		`{"security_group_rule": {"security_group_id": "00000000-0000-0000-0000-000000000000", "direction": "ingress"}}`,
		409, []string{`"OverQuota"`}, "")
	step("B has its own quota", projB, "POST", "/v2.0/security-group-rules", rule("sgb", `, "protocol": "tcp", "port_range_min": 81, "port_range_max": 81`),
		201, nil, "")
	step("A unlimited", admin, "PUT", "/v2.0/quotas/pa", `{"quota": {"security_group_rule": -1}}`, 200, nil, "")
	step("a rule again", projA, "POST", "/v2.0/security-group-rules", rule("sga", `, "protocol": "tcp", "port_range_min": 81, "port_range_max": 81`),
		201, nil, "")
	return answers
}
