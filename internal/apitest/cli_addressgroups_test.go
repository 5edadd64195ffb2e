package apitest

import (
	"slices"
	"strings"
	"testing"
)

// cliAddressGroup is an address group as `address group create/show -f
// json` prints it.
type cliAddressGroup struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Addresses   []string `json:"addresses"`
	ProjectID   string   `json:"project_id"`
}

// TestOpenstackCLIAddressGroups: the openstack CLI's address group
// commands, and a rule naming an address group, against moat.
func TestOpenstackCLIAddressGroups(t *testing.T) {
	bin := LookCLI(t)
	srv := Start(t, Config{Auth: NoAuth})
	cli := newCLI(t, bin, srv)
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	var ag cliAddressGroup
	wantAddresses := func(t *testing.T, want ...string) {
		t.Helper()
		var got cliAddressGroup
		cli.json(t, &got, "address", "group", "show", "ag1")
		if got.ID != ag.ID || !slices.Equal(got.Addresses, want) {
			t.Errorf("address group show: %+v, want id %s and addresses %q", got, ag.ID, want)
		}
	}
	var rule struct {
		ID                   string  `json:"id"`
		RemoteAddressGroupID *string `json:"remote_address_group_id"`
	}

	step("create", func(t *testing.T) {
		cli.json(t, &ag, "address", "group", "create", "--address", "10.0.0.0/24", "--address", "10.0.1.5",
			"--description", "office", "ag1")
		if ag.ID == "" || ag.Name != "ag1" || ag.Description != "office" || !slices.Equal(ag.Addresses, []string{"10.0.0.0/24", "10.0.1.5/32"}) {
			t.Errorf("created %+v", ag)
		}
	})
	step("set --address adds", func(t *testing.T) {
		cli.ok(t, "address", "group", "set", "--address", "192.0.2.0/24", "ag1")
		wantAddresses(t, "10.0.0.0/24", "10.0.1.5/32", "192.0.2.0/24")
	})
	step("unset --address removes", func(t *testing.T) {
		cli.ok(t, "address", "group", "unset", "--address", "10.0.1.5/32", "ag1")
		wantAddresses(t, "10.0.0.0/24", "192.0.2.0/24")
	})
	step("unset an address it does not hold", func(t *testing.T) {
		if msg := cli.fails(t, "address", "group", "unset", "--address", "203.0.113.0/24", "ag1"); !strings.Contains(msg, "not found in the address group") {
			t.Errorf("stderr %q", msg)
		}
	})
	step("list", func(t *testing.T) {
		var rows []struct{ ID, Name string }
		cli.json(t, &rows, "address", "group", "list")
		if len(rows) != 1 || rows[0].ID != ag.ID || rows[0].Name != "ag1" {
			t.Errorf("list: %+v", rows)
		}
	})
	step("a rule with --remote-address-group", func(t *testing.T) {
		cli.ok(t, "security", "group", "create", "web")
		cli.json(t, &rule, "security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port", "22",
			"--remote-address-group", "ag1")
		if rule.ID == "" || rule.RemoteAddressGroupID == nil || *rule.RemoteAddressGroupID != ag.ID {
			t.Errorf("rule: %+v, want remote address group %s", rule, ag.ID)
		}
	})
	step("delete in use", func(t *testing.T) {
		if msg := cli.fails(t, "address", "group", "delete", "ag1"); !strings.Contains(msg, "in use") {
			t.Errorf("stderr %q", msg)
		}
	})
	step("delete", func(t *testing.T) {
		cli.ok(t, "security", "group", "rule", "delete", rule.ID)
		cli.ok(t, "address", "group", "delete", "ag1")
		if msg := cli.fails(t, "address", "group", "show", "ag1"); !strings.Contains(msg, "ag1") {
			t.Errorf("stderr %q", msg)
		}
	})
}
