package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
)

// TestDropStory is the mission's story with real packets in a lab: IPIP
// from vm1 to vm2 is dropped; `moat trace` on the live rules names the
// default drop and suggests the rule; running that exact suggestion with
// the openstack CLI makes the packets arrive; `moat explain` shows the new
// rule's counters moving; `moat capture` first saw where they stopped.
func TestDropStory(t *testing.T) {
	needRoot(t)
	apitest.LookCLI(t)
	e := newEnv(t, string(iptables.NFT), 2)
	vm1, vm2 := e.vm[0], e.vm[1]
	bin := moatbin.Build(t)
	db := lab.DBURL(e.lab.StateDir)
	tag := newTag()
	got := listenIP(t, vm2.Netns, 4, carrying(tag))
	send := func() {
		sendIP(t, vm1.Netns, 4, vm2.IP, probes, func(i int) []byte { return ipipInner(tag, uint16(i)) })
	}
	moat := func(args ...string) []byte {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), bin, args...).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				t.Fatalf("moat %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("moat %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	// 1. Dropped, and trace says why.
	e.dropped(t, v4, iChain(vm2), probes, got, send)
	var res struct {
		Verdict   string `json:"verdict"`
		DecidedBy struct {
			Chain      string `json:"chain"`
			OriginKind string `json:"origin_kind"`
		} `json:"decided_by"`
		Suggestion string `json:"suggestion"`
	}
	out := moat("trace", "--netns", e.host, "--db", db, "--port", vm2.PortID, "--direction", "ingress",
		"--protocol", "ipip", "--src", vm1.IP, "--json")
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("trace --json: %v\n%s", err, out)
	}
	if res.Verdict != "DROP" || !strings.HasSuffix(res.DecidedBy.Chain, "sg-fallback") {
		t.Fatalf("trace: %+v, want DROP by sg-fallback\n%s", res, out)
	}
	// The group is named by id: with provenance trace knows the port's
	// groups by id, and ids (unlike names) are unique.
	wantCmd := "openstack security group rule create " + e.lab.SecurityGroupID + " --ingress --ethertype IPv4 --protocol 4 --remote-ip " + vm1.IP + "/32"
	if res.Suggestion != wantCmd {
		t.Fatalf("suggestion %q, want %q", res.Suggestion, wantCmd)
	}
	t.Logf("trace: %s by %s (%s); suggests: %s", res.Verdict, res.DecidedBy.Chain, res.DecidedBy.OriginKind, res.Suggestion)

	// 2. The suggestion, run as is, fixes it.
	var r cliRule
	e.cli(t, &r, strings.Fields(strings.TrimPrefix(res.Suggestion, "openstack "))...)
	e.cleanupRule(t, r.ID)
	e.waitRules(t, v4, "the suggested rule in vm2's chain", func(s *saved) bool {
		for _, x := range s.chain("filter", iChain(vm2)) {
			if strings.HasPrefix(x.Spec, "-s "+vm1.IP+"/32 -p ") && strings.HasSuffix(x.Spec, "-j RETURN") {
				return true
			}
		}
		return false
	})
	delivered(t, probes, got, "IPIP after the suggested rule", send)

	// 3. explain names the rule (by id) and shows its counters.
	var ex struct {
		Rows []struct {
			Chain   string `json:"chain"`
			Pkts    uint64 `json:"packets"`
			Rule    string `json:"rule"`
			Meaning string `json:"meaning"`
		} `json:"rules"`
	}
	out = moat("explain", "--netns", e.host, "--db", db, "--port", vm2.PortID, "--json")
	if err := json.Unmarshal(out, &ex); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	found := false
	for _, row := range ex.Rows {
		if strings.Contains(row.Meaning, r.ID) {
			found = true
			if row.Pkts < probes {
				t.Errorf("explain: the rule counted %d packets, want at least %d: %+v", row.Pkts, probes, row)
			}
		}
	}
	if !found {
		t.Fatalf("explain does not name rule %s:\n%s", r.ID, out)
	}

	// 4. The server asks the agent (over its watch stream) for the same
	// counters: the suggested rule's, in vm2's i chain.
	var cs struct {
		Counters hostview.CountersAnswer `json:"counters"`
	}
	e.call(t, "GET", "/v2.0/moat/hosts/"+e.host+"/counters?port_id="+vm2.PortID, nil, &cs)
	found = false
	for _, rc := range cs.Counters.Ports[vm2.PortID] {
		if rc.Chain == iChain(vm2) && strings.HasPrefix(rc.Rule, "-s "+vm1.IP+"/32 -p ") {
			found = true
			if rc.Packets < probes {
				t.Errorf("counters: the rule counted %d packets, want at least %d: %+v", rc.Packets, probes, rc)
			}
		}
	}
	if !found {
		t.Fatalf("counters do not hold the suggested rule: %+v", cs.Counters)
	}
}
