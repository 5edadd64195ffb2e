package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The openstack CLI (Debian's python3-openstackclient) against moat in
// noauth mode, as an operator would use it: `--os-auth-type none
// --os-endpoint URL`. Every call starts Python (~1 s), so the scenario is
// one test whose steps depend on each other, run in order.

// osCLI runs the openstack binary against one server with a clean
// environment: a private HOME and working directory (no clouds.yaml, no
// cache) and no OS_* variables.
type osCLI struct {
	bin, endpoint, dir string
	env                []string
}

func newCLI(t *testing.T, bin string, srv *Server) *osCLI {
	home := t.TempDir()
	return &osCLI{
		bin: bin, endpoint: srv.URL, dir: home,
		env: CLIEnv(home),
	}
}

// run runs `openstack --os-auth-type none --os-endpoint URL args...`.
func (c *osCLI) run(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	full := append([]string{"--os-auth-type", "none", "--os-endpoint", c.endpoint}, args...)
	cmd := exec.CommandContext(t.Context(), c.bin, full...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		exitCode = exitErr.ExitCode()
	default:
		t.Fatalf("openstack %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), exitCode
}

// ok runs a command that must succeed and returns its stdout.
func (c *osCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("openstack %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// json runs a command with -f json that must succeed and decodes its output.
func (c *osCLI) json(t *testing.T, into any, args ...string) {
	t.Helper()
	out := c.ok(t, append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("openstack %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail and returns what it printed on stderr.
func (c *osCLI) fails(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code == 0 {
		t.Fatalf("openstack %s succeeded, want a failure\nstdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}

// cliRule is a rule as `security group rule create/show -f json` prints it.
type cliRule struct {
	ID              string  `json:"id"`
	SecurityGroupID string  `json:"security_group_id"`
	Direction       string  `json:"direction"`
	EtherType       string  `json:"ether_type"`
	Protocol        *string `json:"protocol"`
	PortRangeMin    *int    `json:"port_range_min"`
	PortRangeMax    *int    `json:"port_range_max"`
	RemoteIPPrefix  *string `json:"remote_ip_prefix"`
	RemoteGroupID   *string `json:"remote_group_id"`
	ProjectID       string  `json:"project_id"`
	Description     string  `json:"description"`
}

// cliGroup is a group as `security group create/show -f json` prints it.
type cliGroup struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Description    string `json:"description"`
	ProjectID      string `json:"project_id"`
	RevisionNumber int    `json:"revision_number"`
	Stateful       bool   `json:"stateful"`
	Rules          []struct {
		ID            string  `json:"id"`
		Direction     string  `json:"direction"`
		EtherType     string  `json:"ethertype"`
		Protocol      *string `json:"protocol"`
		RemoteGroupID *string `json:"remote_group_id"`
	} `json:"rules"`
}

// cliListedRule is a row of `security group rule list --long -f json`.
type cliListedRule struct {
	ID          string  `json:"ID"`
	Protocol    *string `json:"IP Protocol"`
	EtherType   string  `json:"Ethertype"`
	IPRange     string  `json:"IP Range"`
	PortRange   string  `json:"Port Range"`
	Direction   string  `json:"Direction"`
	RemoteGroup *string `json:"Remote Security Group"`
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func num(p *int) string {
	if p == nil {
		return "<null>"
	}
	return strconv.Itoa(*p)
}

func TestOpenstackCLI(t *testing.T) {
	bin := LookCLI(t)
	srv := Start(t, Config{Auth: NoAuth})
	cli := newCLI(t, bin, srv)
	const project = "fake_project_id" // noauth: admin of fake_project_id

	var web, db cliGroup
	rules := map[string]cliRule{} // by what the step created

	// Each step needs the ones before it: stop at the first failure.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	wantRule := func(t *testing.T, r cliRule, direction, ethertype, protocol, min, max, prefix, remoteGroup string) {
		t.Helper()
		got := []string{r.Direction, r.EtherType, str(r.Protocol), num(r.PortRangeMin), num(r.PortRangeMax), str(r.RemoteIPPrefix), str(r.RemoteGroupID)}
		want := []string{direction, ethertype, protocol, min, max, prefix, remoteGroup}
		if !slices.Equal(got, want) {
			t.Errorf("rule [direction ethertype protocol min max remote_ip_prefix remote_group_id]\n got %q\nwant %q", got, want)
		}
		if r.SecurityGroupID != web.ID || r.ProjectID != project {
			t.Errorf("rule in group %s of %s, want %s of %s", r.SecurityGroupID, r.ProjectID, web.ID, project)
		}
	}
	createRule := func(t *testing.T, key string, args ...string) cliRule {
		t.Helper()
		var r cliRule
		cli.json(t, &r, append([]string{"security", "group", "rule", "create", "web2"}, args...)...)
		if r.ID == "" {
			t.Fatalf("rule create printed no id")
		}
		rules[key] = r
		return r
	}

	step("group create", func(t *testing.T) {
		cli.json(t, &web, "security", "group", "create", "web", "--description", "web servers")
		if web.ID == "" || web.Name != "web" || web.Description != "web servers" || web.ProjectID != project || !web.Stateful || web.RevisionNumber != 1 {
			t.Errorf("created %+v", web)
		}
		if len(web.Rules) != 2 || web.Rules[0].Direction != "egress" || web.Rules[1].Direction != "egress" {
			t.Errorf("a new group has %d rules %+v, want 2 egress", len(web.Rules), web.Rules)
		}
		cli.json(t, &db, "security", "group", "create", "db")
		if db.Name != "db" || db.ID == "" || db.ID == web.ID {
			t.Errorf("created %+v", db)
		}
	})

	step("group list", func(t *testing.T) {
		var rows []struct{ ID, Name, Description, Project string }
		cli.json(t, &rows, "security", "group", "list")
		got := map[string]string{}
		for _, r := range rows {
			got[r.Name] = r.ID
			if r.Project != project {
				t.Errorf("group %s listed in project %q", r.Name, r.Project)
			}
			if r.Name == "default" && r.Description != "Default security group" {
				t.Errorf("default group description %q", r.Description)
			}
		}
		if len(rows) != 3 || got["web"] != web.ID || got["db"] != db.ID || got["default"] == "" {
			t.Errorf("listed %+v, want default, web %s and db %s", rows, web.ID, db.ID)
		}
	})

	step("group show by name", func(t *testing.T) {
		var g cliGroup
		cli.json(t, &g, "security", "group", "show", "web")
		if g.ID != web.ID || g.Description != "web servers" || len(g.Rules) != 2 {
			t.Errorf("show web = %+v", g)
		}
	})

	step("group set", func(t *testing.T) {
		if out := cli.ok(t, "security", "group", "set", "web", "--name", "web2", "--description", "front end"); strings.TrimSpace(out) != "" {
			t.Errorf("set printed %q", out)
		}
		var g cliGroup
		cli.json(t, &g, "security", "group", "show", "web2")
		if g.ID != web.ID || g.Name != "web2" || g.Description != "front end" || g.RevisionNumber != 2 {
			t.Errorf("after set: %+v", g)
		}
	})

	step("rule create --protocol 4", func(t *testing.T) {
		r := createRule(t, "ipip", "--protocol", "4")
		wantRule(t, r, "ingress", "IPv4", "4", "<null>", "<null>", "0.0.0.0/0", "<null>")
	})

	step("rule create --protocol ipip is a duplicate of 4", func(t *testing.T) {
		errOut := cli.fails(t, "security", "group", "rule", "create", "web2", "--protocol", "ipip")
		for _, want := range []string{"409", "Security group rule already exists. Rule id is " + rules["ipip"].ID + "."} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q does not contain %q", errOut, want)
			}
		}
	})

	step("rule create icmp type 8 code 0", func(t *testing.T) {
		r := createRule(t, "icmp", "--protocol", "icmp", "--icmp-type", "8", "--icmp-code", "0")
		wantRule(t, r, "ingress", "IPv4", "icmp", "8", "0", "0.0.0.0/0", "<null>")
	})

	step("rule create tcp 22", func(t *testing.T) {
		r := createRule(t, "ssh", "--protocol", "tcp", "--dst-port", "22:22")
		wantRule(t, r, "ingress", "IPv4", "tcp", "22", "22", "0.0.0.0/0", "<null>")
	})

	step("duplicate rules are refused", func(t *testing.T) {
		for _, args := range [][]string{
			{"--protocol", "tcp", "--dst-port", "22:22"},
			{"--protocol", "6", "--dst-port", "22"},
		} {
			errOut := cli.fails(t, append([]string{"security", "group", "rule", "create", "web2"}, args...)...)
			for _, want := range []string{"ConflictException: 409", "Security group rule already exists. Rule id is " + rules["ssh"].ID + "."} {
				if !strings.Contains(errOut, want) {
					t.Errorf("%v: stderr %q does not contain %q", args, errOut, want)
				}
			}
		}
	})

	step("rule create --remote-group by name", func(t *testing.T) {
		r := createRule(t, "postgres", "--protocol", "tcp", "--dst-port", "5432", "--remote-group", "db")
		wantRule(t, r, "ingress", "IPv4", "tcp", "5432", "5432", "<null>", db.ID)
	})

	step("rule create IPv6 egress", func(t *testing.T) {
		r := createRule(t, "https6", "--egress", "--ethertype", "IPv6", "--remote-ip", "::/0", "--protocol", "tcp", "--dst-port", "443")
		wantRule(t, r, "egress", "IPv6", "tcp", "443", "443", "::/0", "<null>")
	})

	step("rule create IPv6 prefix with IPv4 is refused", func(t *testing.T) {
		errOut := cli.fails(t, "security", "group", "rule", "create", "web2", "--remote-ip", "2001:db8::/64", "--protocol", "tcp")
		for _, want := range []string{"BadRequestException: 400", "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q does not contain %q", errOut, want)
			}
		}
	})

	step("rule create bare address becomes /32", func(t *testing.T) {
		r := createRule(t, "dns", "--remote-ip", "10.1.2.3", "--protocol", "udp", "--dst-port", "53")
		wantRule(t, r, "ingress", "IPv4", "udp", "53", "53", "10.1.2.3/32", "<null>")
	})

	step("rule list --long", func(t *testing.T) {
		var rows []cliListedRule
		cli.json(t, &rows, "security", "group", "rule", "list", "web2", "--long")
		byID := map[string]cliListedRule{}
		for _, r := range rows {
			byID[r.ID] = r
		}
		if len(rows) != 2+len(rules) {
			t.Errorf("%d rules listed, want 2 default egress + %d created", len(rows), len(rules))
		}
		tests := []struct {
			key                                           string
			protocol, ethertype, ipRange, ports, dir, rgp string
		}{
			{"ipip", "4", "IPv4", "0.0.0.0/0", "", "ingress", "<null>"},
			{"ssh", "tcp", "IPv4", "0.0.0.0/0", "22:22", "ingress", "<null>"},
			{"postgres", "tcp", "IPv4", "0.0.0.0/0", "5432:5432", "ingress", db.ID},
			{"https6", "tcp", "IPv6", "::/0", "443:443", "egress", "<null>"},
			{"dns", "udp", "IPv4", "10.1.2.3/32", "53:53", "ingress", "<null>"},
			{"icmp", "icmp", "IPv4", "0.0.0.0/0", "", "ingress", "<null>"},
		}
		for _, tc := range tests {
			r, ok := byID[rules[tc.key].ID]
			if !ok {
				t.Errorf("rule %s (%s) not listed", tc.key, rules[tc.key].ID)
				continue
			}
			got := []string{str(r.Protocol), r.EtherType, r.IPRange, r.Direction, str(r.RemoteGroup)}
			want := []string{tc.protocol, tc.ethertype, tc.ipRange, tc.dir, tc.rgp}
			if tc.ports != "" && r.PortRange != tc.ports {
				t.Errorf("rule %s: Port Range %q, want %q", tc.key, r.PortRange, tc.ports)
			}
			if !slices.Equal(got, want) {
				t.Errorf("rule %s [protocol ethertype ip-range direction remote-group]\n got %q\nwant %q", tc.key, got, want)
			}
		}
	})

	step("rule show", func(t *testing.T) {
		var r cliRule
		cli.json(t, &r, "security", "group", "rule", "show", rules["icmp"].ID)
		if r.ID != rules["icmp"].ID {
			t.Errorf("show %s answered %s", rules["icmp"].ID, r.ID)
		}
		wantRule(t, r, "ingress", "IPv4", "icmp", "8", "0", "0.0.0.0/0", "<null>")
	})

	step("rule delete, then show is not found", func(t *testing.T) {
		id := rules["icmp"].ID
		cli.ok(t, "security", "group", "rule", "delete", id)
		delete(rules, "icmp")
		errOut := cli.fails(t, "security", "group", "rule", "show", id)
		if want := "No SecurityGroupRule found for " + id; !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not contain %q", errOut, want)
		}
	})

	step("deleting a group removes the rules that name it as remote", func(t *testing.T) {
		cli.ok(t, "security", "group", "delete", "db")
		errOut := cli.fails(t, "security", "group", "show", "db")
		if want := "No SecurityGroup found for db"; !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not contain %q", errOut, want)
		}
		var g cliGroup
		cli.json(t, &g, "security", "group", "show", web.ID)
		var ids []string
		for _, r := range g.Rules {
			ids = append(ids, r.ID)
		}
		if slices.Contains(ids, rules["postgres"].ID) {
			t.Errorf("the rule with remote group db survived db's deletion")
		}
		// 2 default egress + ipip, ssh, https6, dns.
		if len(g.Rules) != 6 {
			t.Errorf("web2 has %d rules, want 6", len(g.Rules))
		}
		// Every rule added or deleted revised the group: set (2), 6 rules
		// added (8), icmp deleted (9), postgres removed with db (10), as
		// in Neutron 21.
		if g.RevisionNumber != 10 {
			t.Errorf("web2 revision_number = %d, want 10", g.RevisionNumber)
		}
	})

	// Network logs (python3-neutronclient's OSC plugin): create, set
	// --disable/--enable, list, delete; a group's log goes with the group.
	var logID string
	step("network log create, set, list, delete", func(t *testing.T) {
		var lg map[string]any
		cli.json(t, &lg, "network", "log", "create", "--resource-type", "security_group", "--resource", "web2",
			"--event", "DROP", "--enable", "--description", "drops of web2", "web2-drops")
		logID, _ = lg["ID"].(string)
		if logID == "" || lg["Name"] != "web2-drops" || lg["Event"] != "DROP" || lg["Enabled"] != true || lg["Resource"] != web.ID ||
			lg["Type"] != "security_group" || lg["Description"] != "drops of web2" {
			t.Fatalf("created %v", lg)
		}
		cli.ok(t, "network", "log", "set", "--disable", "web2-drops")
		cli.json(t, &lg, "network", "log", "show", logID)
		if lg["Enabled"] != false {
			t.Errorf("after set --disable: %v", lg)
		}
		cli.ok(t, "network", "log", "set", "--enable", "--name", "web2-log", logID)
		var rows []map[string]any
		cli.json(t, &rows, "network", "log", "list")
		if len(rows) != 1 || rows[0]["ID"] != logID || rows[0]["Name"] != "web2-log" || rows[0]["Enabled"] != true {
			t.Errorf("log list: %v", rows)
		}
		var types []map[string]any
		cli.json(t, &types, "network", "loggable", "resources", "list")
		if len(types) != 1 || types[0]["Supported types"] != "security_group" {
			t.Errorf("loggable resources: %v", types)
		}
		cli.ok(t, "network", "log", "delete", "web2-log")
		if errOut := cli.fails(t, "network", "log", "show", logID); !strings.Contains(errOut, "Unable to find log with name or id '"+logID+"'") {
			t.Errorf("show after delete: %s", errOut)
		}
		cli.json(t, &lg, "network", "log", "create", "--resource-type", "security_group", "--resource", "web2", "web2-all")
		logID = lg["ID"].(string)
		if lg["Event"] != "ALL" {
			t.Errorf("default event: %v", lg)
		}
	})

	step("group delete", func(t *testing.T) {
		cli.ok(t, "security", "group", "delete", "web2")
		var logs []map[string]any
		cli.json(t, &logs, "network", "log", "list")
		if len(logs) != 0 {
			t.Errorf("logs left after their group's delete: %v", logs)
		}
		var rows []struct{ Name string }
		cli.json(t, &rows, "security", "group", "list")
		if len(rows) != 1 || rows[0].Name != "default" {
			t.Errorf("groups left: %+v, want only default", rows)
		}
	})
}
