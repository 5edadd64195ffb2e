package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/netlog"
)

// TestNetworkLogs: a network log made with the openstack CLI in a lab
// (moat allinone, nftables): vm1's dropped pings to vm2 are DROP events
// of vm2's port in the agent's file, and once a rule allows them an
// ACCEPT event names that rule; deleting the log takes its rules away.
func TestNetworkLogs(t *testing.T) {
	needRoot(t)
	apitest.LookCLI(t)
	e := newEnv(t, "nftables", 2)
	vm1, vm2 := e.vm[0], e.vm[1]
	file := filepath.Join(e.lab.StateDir, lab.LogEventsFile)
	events := func() []netlog.Event {
		b, _ := os.ReadFile(file)
		var out []netlog.Event
		for _, l := range strings.Split(string(b), "\n") {
			var ev netlog.Event
			if json.Unmarshal([]byte(l), &ev) == nil && ev.PortID == vm2.PortID && ev.Ethertype == "IPv4" && ev.Src == vm1.IP {
				out = append(out, ev)
			}
		}
		return out
	}
	waitEvent := func(what string, ok func(netlog.Event) bool) netlog.Event {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			_, _ = nsRun(t.Context(), vm1.Netns, "ping", "-n", "-q", "-c", "1", "-W", "1", vm2.IP)
			for _, ev := range events() {
				if ok(ev) {
					return ev
				}
			}
		}
		t.Fatalf("no %s event in %s", what, file)
		return netlog.Event{}
	}

	var lg map[string]any
	e.cli(t, &lg, "network", "log", "create", "--resource-type", "security_group", "--resource", e.lab.SecurityGroupID,
		"--event", "ALL", "e2e-log")
	logID, _ := lg["ID"].(string)
	if logID == "" {
		t.Fatalf("log create printed %v", lg)
	}
	drop := waitEvent("DROP", func(ev netlog.Event) bool { return ev.Verdict == "DROP" })
	if drop.Protection != "default-drop" || drop.Direction != "ingress" || drop.Protocol != 1 || drop.Dst != vm2.IP ||
		len(drop.LogIDs) != 1 || drop.LogIDs[0] != logID {
		t.Errorf("drop event %+v", drop)
	}
	rule := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	accept := waitEvent("ACCEPT", func(ev netlog.Event) bool { return ev.Verdict == "ACCEPT" })
	if accept.SecurityGroupRuleID != rule || accept.Direction != "ingress" {
		t.Errorf("accept event %+v, want rule %s", accept, rule)
	}
	t.Logf("events: DROP by %s, ACCEPT by rule %s", drop.Protection, accept.SecurityGroupRuleID)

	// moat logs reads the file.
	out, err := nsRun(t.Context(), e.host, moatbin.Build(t), "logs", "--file", file, "--port", vm2.PortID)
	if err != nil || !strings.Contains(out, "ACCEPT rule "+rule) || !strings.Contains(out, "DROP by default-drop") {
		t.Errorf("moat logs: %v\n%s", err, out)
	}

	// Without the log, no log rule is left.
	e.call(t, "DELETE", "/v2.0/log/logs/"+logID, nil, nil)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rs := e.hostRun(t, "nft", "list", "ruleset")
		if !strings.Contains(rs, "log prefix") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log rules left after the log's delete:\n%s", rs)
		}
	}
}
