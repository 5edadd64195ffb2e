package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
)

// TestAddressGroupPackets: a rule naming an address group of two
// prefixes lets exactly those addresses in, on every backend (Neutron 21's
// iptables drivers leave such a rule wide open). Adding an address opens
// it to that address; removing it closes it again and stops the flow it
// had established (its conntrack entry goes, as for a remote group's
// member). The port's chains are not rewritten: only the set changes.
func TestAddressGroupPackets(t *testing.T) {
	needRoot(t)
	for _, backend := range append(backends(), "nftables") {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, 3)
			e.addressGroup(t, e.vm[0], e.vm[1], e.vm[2])
		})
	}
}

func (e *env) addressGroup(t *testing.T, vm1, vm2, vm3 lab.VM) {
	var ag struct {
		AG struct {
			ID        string   `json:"id"`
			Addresses []string `json:"addresses"`
		} `json:"address_group"`
	}
	// vm2's address and a prefix no VM is in.
	e.call(t, "POST", "/v2.0/address-groups", map[string]any{"address_group": map[string]any{
		"name": "e2e", "addresses": []string{vm2.IP + "/32", "10.250.99.0/24"}}}, &ag)
	id := ag.AG.ID
	t.Cleanup(func() { e.cleanupCall(t, "DELETE", "/v2.0/address-groups/"+id, nil) })
	web := e.createGroup(t, "ag-web", true)
	e.createRule(t, ingress(web, "protocol", "icmp", "remote_address_group_id", id))
	e.setGroups(t, vm1, e.lab.SecurityGroupID, web)
	change := func(action, addr string) {
		t.Helper()
		e.call(t, "PUT", "/v2.0/address-groups/"+id+"/"+action, map[string]any{"addresses": []string{addr}}, nil)
	}
	chains := func() string {
		if e.backend == "nftables" {
			return e.hostRun(t, "nft", "-s", "list", "chain", "ip", "moat", nftrender.InChain(vm1.PortID))
		}
		return strings.Join(e.save(t, v4).specs("filter", iChain(vm1)), "\n")
	}

	if !poll(applyTimeout, func() bool { return ping(vm2.Netns, vm1.IP) == nil }) {
		t.Fatalf("vm2 (in the address group) cannot ping vm1")
	}
	if err := ping(vm3.Netns, vm1.IP); err == nil {
		t.Fatalf("vm3 (not in the address group) can ping vm1")
	}
	before := chains()
	if !strings.Contains(before, "NIPv4"+id[:8]) {
		t.Fatalf("vm1's ingress chain does not name the address group's set:\n%s", before)
	}
	// moat trace on the live host names the address group that let vm2 in.
	trace := exec.CommandContext(t.Context(), moatbin.Build(t), "trace", "--netns", e.host, "--db", lab.DBURL(e.lab.StateDir),
		"--port", vm1.PortID, "--direction", "ingress", "--protocol", "icmp", "--icmp-type", "8", "--src", vm2.IP)
	out, err := trace.Output()
	if err != nil || !strings.Contains(string(out), "verdict: ACCEPT") || !strings.Contains(string(out), `address group `+id+` "e2e"`) {
		t.Errorf("moat trace: %v, want an ACCEPT naming address group %s \"e2e\":\n%s", err, id, out)
	}

	// vm3 joins: it passes, and the chain is the same.
	change("add_addresses", vm3.IP+"/32")
	if !poll(applyTimeout, func() bool { return ping(vm3.Netns, vm1.IP) == nil }) {
		t.Fatalf("vm3 cannot ping vm1 after its address joined the address group")
	}
	if after := chains(); after != before {
		t.Errorf("vm1's chain was rewritten when an address joined:\n%s", lineDiff(before, after))
	}

	// vm3's flow is established; its address leaves: the flow stops.
	p := startPinger(t, vm3.Netns, vm1.IP, 100*time.Millisecond)
	if !p.waitAnswers(5, time.Time{}, 10*time.Second) {
		t.Fatalf("vm3's flow to vm1 is not answered")
	}
	change("remove_addresses", vm3.IP+"/32")
	if !poll(applyTimeout, func() bool { return ping(vm3.Netns, vm1.IP) != nil }) {
		t.Fatalf("vm3 still reaches vm1 after its address left the address group")
	}
	closed := time.Now()
	time.Sleep(2 * time.Second)
	if _, n := p.answers(closed); n != 0 {
		t.Errorf("vm3's established flow got %d answers after its address left the address group, want 0", n)
	}
	if err := ping(vm2.Netns, vm1.IP); err != nil {
		t.Errorf("vm2 (still in the address group): %v", err)
	}
	if after := chains(); after != before {
		t.Errorf("vm1's chain was rewritten when an address left:\n%s", lineDiff(before, after))
	}
}
