package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/lab"
)

// Addresses that belong to no lab port.
const (
	spoofIP  = "192.168.1.250"
	spoofMAC = "fa:16:3e:00:e2:e2"
)

// dropped runs send and asserts that its n packets died in chain (a
// port's i or o chain) at its jump to sg-fallback, and that rcv got none.
func (e *env) dropped(t *testing.T, f fam, chain string, n int, rcv *counter, send func()) {
	t.Helper()
	before := e.counter(t, f, "filter", chain, "-j "+fallback)
	r0 := rcv.count()
	send()
	e.waitCounter(t, f, before+uint64(n), dropTimeout, "filter", chain, "-j "+fallback)
	if d := rcv.count() - r0; d != 0 {
		t.Errorf("%d of %d packets were delivered, want all dropped by %s", d, n, chain)
	}
}

// delivered runs send and asserts that rcv got exactly its n packets.
func delivered(t *testing.T, n int, rcv *counter, what string, send func()) {
	t.Helper()
	r0 := rcv.count()
	send()
	if got := rcv.wait(r0+n, deliverTimeout) - r0; got != n {
		t.Errorf("%s: %d of %d packets delivered within %s, want %d", what, got, n, deliverTimeout, n)
	}
}

// rule creation shorthands (IPv4 unless given).
func ingress(group string, kv ...any) map[string]any {
	m := map[string]any{"security_group_id": group, "direction": "ingress"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// waitSpec waits until the rules of chain matching subs number want.
func (e *env) waitSpec(t *testing.T, f fam, chain string, want int, subs ...string) *saved {
	t.Helper()
	what := fmt.Sprintf("%d rule(s) matching %q in %s", want, subs, chain)
	return e.waitRules(t, f, what, func(s *saved) bool { return len(s.matching("filter", chain, subs...)) == want })
}

var matchSetRE = regexp.MustCompile(`--match-set (\S+) src`)

func setName(t *testing.T, spec string) string {
	t.Helper()
	m := matchSetRE.FindStringSubmatch(spec)
	if m == nil {
		t.Fatalf("no --match-set in %q", spec)
	}
	return m[1]
}

func sorted(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// waitMembers waits until an ipset holds exactly want.
func (e *env) waitMembers(t *testing.T, set string, want ...string) {
	t.Helper()
	want = sorted(want...)
	var got []string
	start := time.Now()
	if !poll(applyTimeout, func() bool { got = e.setMembers(t, set); return slices.Equal(got, want) }) {
		t.Fatalf("ipset %s holds %v after %s, want %v", set, got, applyTimeout, want)
	}
	t.Logf("ipset %s = %v (%s)", set, want, time.Since(start).Round(time.Millisecond))
}

// ---- the scenarios ----

func (e *env) defaultGroup(t *testing.T, vm1, vm2, vm3 lab.VM) {
	def := e.groupID(t, "default")
	e.setGroups(t, vm1, def)
	e.setGroups(t, vm2, def)
	s := e.waitRules(t, v4, "vm1 and vm2 in group default", func(s *saved) bool {
		return len(s.matching("filter", iChain(vm1), "--match-set")) == 1 && len(s.matching("filter", iChain(vm2), "--match-set")) == 1
	})
	rule := s.one(t, "filter", iChain(vm2), "--match-set")
	t.Logf("vm2's rule for the default group's same-group ingress: %s", rule)
	if want := "-m set --match-set " + setName(t, rule.Spec) + " src -j RETURN"; rule.Spec != want {
		t.Errorf("rule %q, want %q (any protocol from the group's members)", rule.Spec, want)
	}
	set := setName(t, rule.Spec)
	if !strings.HasPrefix(set, "NIPv4"+def[:8]) {
		t.Errorf("set %s is not the default group's (%s)", set, def)
	}
	e.waitMembers(t, set, vm1.IP, vm2.IP)

	for _, p := range [][2]lab.VM{{vm1, vm2}, {vm2, vm1}} {
		if err := ping(p[0].Netns, p[1].IP); err != nil {
			t.Errorf("same group: %v", err)
		}
	}
	tag := newTag()
	got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
	r0 := e.counter(t, v4, "filter", iChain(vm2), "--match-set")
	delivered(t, probes, got, "vm1 -> vm2 (both in default)", func() { sendEcho(t, vm1.Netns, vm2.IP, tag, probes) })
	if d := e.counter(t, v4, "filter", iChain(vm2), "--match-set") - r0; d != probes {
		t.Errorf("the same-group rule counted %d packets, want %d", d, probes)
	}
	// vm3 is not in default: its packets die at vm2's fallback.
	e.dropped(t, v4, iChain(vm2), probes, got, func() { sendEcho(t, vm3.Netns, vm2.IP, tag, probes) })
}

func (e *env) cliICMP(t *testing.T, vm1, vm2 lab.VM) {
	apitest.LookCLI(t)
	var r cliRule
	e.cli(t, &r, "security", "group", "rule", "create", "lab", "--ingress", "--protocol", "icmp")
	e.cleanupRule(t, r.ID)
	if r.Direction != "ingress" || r.Protocol == nil || *r.Protocol != "icmp" || r.EtherType != "IPv4" || r.SecurityGroupID != e.lab.SecurityGroupID {
		t.Fatalf("the CLI created %+v, want an ingress IPv4 icmp rule in group lab", r)
	}
	s := e.waitSpec(t, v4, iChain(vm2), 1, "-p icmp")
	rule := s.one(t, "filter", iChain(vm2), "-p icmp")
	t.Logf("moat installed: -A %s %s", rule.Chain, rule.Spec)
	if rule.Spec != "-p icmp -j RETURN" {
		t.Errorf("rule %q, want %q", rule.Spec, "-p icmp -j RETURN")
	}
	if err := ping(vm1.Netns, vm2.IP); err != nil {
		t.Errorf("after the ICMP rule: %v", err)
	}
	tag := newTag()
	got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
	r0 := e.counter(t, v4, "filter", iChain(vm2), "-p icmp")
	delivered(t, probes, got, "ICMP echo vm1 -> vm2", func() { sendEcho(t, vm1.Netns, vm2.IP, tag, probes) })
	if d := e.counter(t, v4, "filter", iChain(vm2), "-p icmp") - r0; d != probes {
		t.Errorf("the ICMP rule counted %d packets, want %d", d, probes)
	}
}

// labEgressRule returns the id of the lab group's IPv4 egress rule.
func (e *env) labEgressRule(t *testing.T) (string, bool) {
	t.Helper()
	var r struct {
		Rules []struct {
			ID       string  `json:"id"`
			Protocol *string `json:"protocol"`
			Remote   *string `json:"remote_ip_prefix"`
		} `json:"security_group_rules"`
	}
	e.call(t, "GET", "/v2.0/security-group-rules?direction=egress&ethertype=IPv4&security_group_id="+e.lab.SecurityGroupID, nil, &r)
	if len(r.Rules) == 0 {
		return "", false
	}
	if len(r.Rules) != 1 || r.Rules[0].Protocol != nil {
		t.Fatalf("group lab's IPv4 egress rules: %+v, want one for any protocol", r.Rules)
	}
	return r.Rules[0].ID, true
}

func (e *env) egress(t *testing.T, vm1, vm2 lab.VM) {
	egressRule := map[string]any{"security_group_id": e.lab.SecurityGroupID, "direction": "egress", "ethertype": "IPv4"}
	t.Cleanup(func() {
		if _, ok := e.labEgressRule(t); !ok {
			e.cleanupCall(t, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": egressRule})
		}
	})
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "udp", "port_range_min", 5001, "port_range_max", 5001))
	e.waitSpec(t, v4, iChain(vm2), 1, "--dport 5001")
	tag := newTag()
	got := listenUDP(t, vm2.Netns, vm2.IP, 5001, tag, false)
	src := listenUDP(t, vm1.Netns, vm1.IP, 0, tag, false)
	send := func() { src.send(t, vm2.IP, 5001, tag, probes) }

	e0 := e.save(t, v4).exact(t, "filter", oChain(vm1), "-j RETURN").Pkts
	delivered(t, probes, got.counter, "UDP vm1 -> vm2:5001 with the egress rule", send)
	if d := e.save(t, v4).exact(t, "filter", oChain(vm1), "-j RETURN").Pkts - e0; d != probes {
		t.Errorf("vm1's egress rule (-j RETURN) counted %d packets, want %d", d, probes)
	}

	id, ok := e.labEgressRule(t)
	if !ok {
		t.Fatal("group lab has no IPv4 egress rule")
	}
	e.deleteRule(t, id)
	e.waitRules(t, v4, "vm1's egress rule gone", func(s *saved) bool {
		return len(s.matching("filter", oChain(vm1), "-j RETURN")) > 0 && !slices.Contains(s.specs("filter", oChain(vm1)), "-j RETURN")
	})
	e.dropped(t, v4, oChain(vm1), probes, got.counter, send)

	e.call(t, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": egressRule}, nil)
	e.waitRules(t, v4, "vm1's egress rule back", func(s *saved) bool { return slices.Contains(s.specs("filter", oChain(vm1)), "-j RETURN") })
	delivered(t, probes, got.counter, "UDP vm1 -> vm2:5001 with the egress rule back", send)
}

func (e *env) spoofing(t *testing.T, vm1, vm2 lab.VM) {
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	e.waitSpec(t, v4, iChain(vm2), 1, "-p icmp")
	tag := newTag()
	got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
	echo := func(i int) []byte { return icmpEcho(8, uint16(0x5000+i), 1, tag) }
	drops := func() uint64 { return e.counter(t, v4, "filter", sChain(vm1), "-j DROP") }
	s := e.save(t, v4)
	t.Logf("vm1's anti-spoofing chain:\n%s", joinRules(s.chain("filter", sChain(vm1))))
	d0 := drops()

	// A spoofed source address with vm1's own MAC (IP_HDRINCL).
	sendHdrincl(t, vm1.Netns, vm2.IP, probes, func(i int) []byte { return ipv4(spoofIP, vm2.IP, 1, uint16(i+1), echo(i)) })
	e.waitCounter(t, v4, d0+probes, dropTimeout, "filter", sChain(vm1), "-j DROP")
	// vm1's address from a spoofed MAC (AF_PACKET).
	sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
		return ether(vm2.MAC, spoofMAC, ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+10)))
	})
	e.waitCounter(t, v4, d0+2*probes, dropTimeout, "filter", sChain(vm1), "-j DROP")
	if n := got.count(); n != 0 {
		t.Errorf("vm2 received %d spoofed packets, want 0", n)
	}

	// The same two ways with vm1's true IP and MAC are delivered.
	delivered(t, probes, got, "IP_HDRINCL with vm1's address", func() {
		sendHdrincl(t, vm1.Netns, vm2.IP, probes, func(i int) []byte { return ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+20)) })
	})
	delivered(t, probes, got, "AF_PACKET with vm1's MAC and address", func() {
		sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
			return ether(vm2.MAC, vm1.MAC, ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+30)))
		})
	})
	if d := drops() - d0; d != 2*probes {
		t.Errorf("the anti-spoofing DROP counted %d packets, want %d", d, 2*probes)
	}
}

func (e *env) dhcp(t *testing.T, vm1, vm2 lab.VM) {
	tag := newTag()
	// What leaves vm1's port (past its chains) crosses its qvb.
	left := capture(t, e.host, qvb(vm1), tag)
	clientRule := []string{"-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67"}
	c0 := e.counter(t, v4, "filter", oChain(vm1), clientRule...)
	// A DHCPDISCOVER: from 0.0.0.0, before the VM has an address (the
	// anti-spoofing chain would drop it if the client rule did not return
	// it first).
	sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
		return ether("ff:ff:ff:ff:ff:ff", vm1.MAC, ipv4("0.0.0.0", "255.255.255.255", 17, uint16(i+1), udp(68, 67, dhcp(1, vm1.MAC, 1, tag))))
	})
	if n := left.wait(probes, deliverTimeout); n != probes {
		t.Errorf("%d of %d DHCPDISCOVERs left vm1's port, want all", n, probes)
	}
	if d := e.counter(t, v4, "filter", oChain(vm1), clientRule...) - c0; d < probes {
		t.Errorf("the DHCP client rule counted %d packets, want at least %d", d, probes)
	}

	// DHCPOFFERs from vm1 (a rogue server), broadcast and to vm2, whose
	// ingress chain accepts DHCP replies: vm1's egress chain drops them.
	victim := listenUDP(t, vm2.Netns, "0.0.0.0", 68, tag, false)
	serverRule := []string{"--sport 67 --dport 68", "-j DROP"}
	s0 := e.counter(t, v4, "filter", oChain(vm1), serverRule...)
	sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
		return ether("ff:ff:ff:ff:ff:ff", vm1.MAC, ipv4(vm1.IP, "255.255.255.255", 17, uint16(i+1), udp(67, 68, dhcp(2, vm2.MAC, 2, tag))))
	})
	sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
		return ether(vm2.MAC, vm1.MAC, ipv4(vm1.IP, vm2.IP, 17, uint16(i+1), udp(67, 68, dhcp(2, vm2.MAC, 2, tag))))
	})
	e.waitCounter(t, v4, s0+2*probes, dropTimeout, "filter", oChain(vm1), serverRule...)
	if n := left.count(); n != probes {
		t.Errorf("%d frames with the tag left vm1's port, want only the %d DHCPDISCOVERs", n, probes)
	}
	if n := victim.count(); n != 0 {
		t.Errorf("vm2 received %d DHCP server replies from vm1, want 0", n)
	}
	if d := e.counter(t, v4, "filter", iChain(vm2), "-d "+vm2.IP+"/32 -p udp -m udp --sport 67 --dport 68"); d != 0 {
		t.Errorf("vm2's DHCP reply rule counted %d packets: the rogue replies reached vm2's chain", d)
	}
}

func (e *env) neighbourDiscovery(t *testing.T, vm1, vm2 lab.VM) {
	ll2 := linkLocal(vm2.MAC)
	// Both ends need a link-local address past duplicate address
	// detection: from a tentative one ping6 sends nothing at all.
	for _, vm := range []lab.VM{vm1, vm2} {
		ll := linkLocal(vm.MAC)
		if !poll(10*time.Second, func() bool {
			out, err := nsRun(context.Background(), vm.Netns, "ip", "-6", "addr", "show", "dev", "eth0")
			return err == nil && strings.Contains(out, ll+"/64") && !strings.Contains(out, "tentative")
		}) {
			t.Fatalf("%s has no usable link-local address %s", vm.Name, ll)
		}
	}
	for _, vm := range []lab.VM{vm1, vm2} {
		if _, err := nsRun(context.Background(), vm.Netns, "ip", "-6", "neigh", "flush", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	s := e.save(t, v6)
	ns0 := s.one(t, "filter", iChain(vm2), "--icmpv6-type 135", "-j RETURN").Pkts
	na0 := s.one(t, "filter", iChain(vm1), "--icmpv6-type 136", "-j RETURN").Pkts
	jump0 := s.one(t, "filter", iChain(vm2), "-j "+fallback).Pkts

	// No ingress ICMPv6 rule: the echo request dies in vm2's chain, but
	// the neighbour solicitation and advertisement before it pass.
	if err := ping(vm1.Netns, ll2, "-6", "-I", "eth0"); err == nil {
		t.Errorf("ping6 %s answered without an ingress ICMPv6 rule", ll2)
	}
	e.waitCounter(t, v6, jump0+1, dropTimeout, "filter", iChain(vm2), "-j "+fallback)
	var neigh []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	out, err := nsRun(context.Background(), vm1.Netns, "ip", "-6", "-j", "neigh", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &neigh); err != nil {
		t.Fatalf("ip -j neigh: %v\n%s", err, out)
	}
	found := false
	for _, n := range neigh {
		if n.Dst != ll2 {
			continue
		}
		found = true
		if n.LLAddr != vm2.MAC || len(n.State) == 0 || !slices.Contains([]string{"REACHABLE", "STALE", "DELAY", "PROBE"}, n.State[0]) {
			t.Errorf("vm1's neighbour entry for %s: %+v, want lladdr %s and a resolved state", ll2, n, vm2.MAC)
		}
		t.Logf("vm1's neighbour entry: %s lladdr %s %v", n.Dst, n.LLAddr, n.State)
	}
	if !found {
		t.Errorf("vm1 has no neighbour entry for %s:\n%s", ll2, out)
	}
	// A neighbour entry vm1 learnt from a stray solicitation of vm2's
	// between the flush and the ping starts STALE: the echo leaves at once
	// and the (unicast) solicitation follows only after
	// delay_first_probe_time (5 s). Wait that long for the counters.
	var ns, na uint64
	poll(ndTimeout, func() bool {
		s = e.save(t, v6)
		ns = s.one(t, "filter", iChain(vm2), "--icmpv6-type 135", "-j RETURN").Pkts - ns0
		na = s.one(t, "filter", iChain(vm1), "--icmpv6-type 136", "-j RETURN").Pkts - na0
		return ns >= 1 && na >= 1
	})
	if ns < 1 {
		t.Errorf("vm2's neighbour-solicitation rule counted %d packets, want at least 1", ns)
	}
	if na < 1 {
		t.Errorf("vm1's neighbour-advertisement rule counted %d packets, want at least 1", na)
	}

	// With an ingress ICMPv6 rule, echo over the link-local address works.
	e.createRule(t, ingress(e.lab.SecurityGroupID, "ethertype", "IPv6", "protocol", "ipv6-icmp"))
	s = e.waitRules(t, v6, "an ICMPv6 rule in vm2's chain", func(s *saved) bool {
		return slices.Contains(s.specs("filter", iChain(vm2)), "-p ipv6-icmp -j RETURN")
	})
	if err := ping(vm1.Netns, ll2, "-6", "-I", "eth0"); err != nil {
		t.Errorf("with an ingress ICMPv6 rule: %v", err)
	}
}

func (e *env) remoteGroup(t *testing.T, vm1, vm2 lab.VM) {
	web := e.createGroup(t, "web", true)
	e.createRule(t, ingress(web, "protocol", "icmp", "remote_group_id", web))
	e.setGroups(t, vm1, e.lab.SecurityGroupID, web)
	s := e.waitSpec(t, v4, iChain(vm1), 1, "--match-set", "-p icmp")
	rule := s.one(t, "filter", iChain(vm1), "--match-set", "-p icmp")
	set := setName(t, rule.Spec)
	t.Logf("vm1's rule for remote group web: %s", rule)
	if !strings.HasPrefix(set, "NIPv4"+web[:8]) {
		t.Errorf("set %s is not group web's (%s)", set, web)
	}
	e.waitMembers(t, set, vm1.IP)
	vm1Chains := func(s *saved) []string {
		var out []string
		for _, c := range []string{iChain(vm1), oChain(vm1), sChain(vm1)} {
			for _, spec := range s.specs("filter", c) {
				out = append(out, c+" "+spec)
			}
		}
		return out
	}
	before := vm1Chains(s)

	tag := newTag()
	got := listenIP(t, vm1.Netns, 1, echoRequestsWith(tag))
	send := func() { sendEcho(t, vm2.Netns, vm1.IP, tag, probes) }
	e.dropped(t, v4, iChain(vm1), probes, got, send)
	jump0 := e.counter(t, v4, "filter", iChain(vm1), "-j "+fallback)

	// vm2 joins web: only the set changes on vm1's side.
	e.setGroups(t, vm2, e.lab.SecurityGroupID, web)
	e.waitMembers(t, set, vm1.IP, vm2.IP)
	r0 := e.counter(t, v4, "filter", iChain(vm1), "--match-set")
	delivered(t, probes, got, "vm2 (member of web) -> vm1", send)
	s = e.save(t, v4)
	if d := s.one(t, "filter", iChain(vm1), "--match-set").Pkts - r0; d != probes {
		t.Errorf("the remote-group rule counted %d packets, want %d", d, probes)
	}
	if after := vm1Chains(s); !reflect.DeepEqual(before, after) {
		t.Errorf("vm1's chains were rewritten when vm2 joined web:\n%s", lineDiff(strings.Join(before, "\n"), strings.Join(after, "\n")))
	}
	if j := s.one(t, "filter", iChain(vm1), "-j "+fallback).Pkts; j < jump0 {
		t.Errorf("vm1's fallback jump counter went from %d to %d: the chain was reloaded", jump0, j)
	}
	if err := ping(vm2.Netns, vm1.IP); err != nil {
		t.Errorf("member of web: %v", err)
	}

	// vm2 leaves web: closed again, still without touching vm1's rules.
	e.updatePort(t, vm2, map[string]any{"security_groups": []string{e.lab.SecurityGroupID}}, nil)
	e.waitMembers(t, set, vm1.IP)
	e.dropped(t, v4, iChain(vm1), probes, got, send)
	if after := vm1Chains(e.save(t, v4)); !reflect.DeepEqual(before, after) {
		t.Errorf("vm1's chains were rewritten when vm2 left web:\n%s", lineDiff(strings.Join(before, "\n"), strings.Join(after, "\n")))
	}
}

// zone returns the conntrack zone of a port (from the raw table).
func (e *env) zone(t *testing.T, v lab.VM) string {
	t.Helper()
	r := e.save(t, v4).matching("raw", chainPrefix+"PREROUTING", "--physdev-in "+v.Tap+" ", "CT --zone")
	if len(r) != 1 {
		t.Fatalf("%d zone rules for %s's tap", len(r), v.Name)
	}
	return strings.Fields(r[0].Spec[strings.Index(r[0].Spec, "--zone"):])[1]
}

func (e *env) established(t *testing.T, vm1, vm2 lab.VM) {
	id := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	e.waitSpec(t, v4, iChain(vm2), 1, "-p icmp")
	zone := e.zone(t, vm2)
	p := startPinger(t, vm1.Netns, vm2.IP, 100*time.Millisecond)
	if !p.waitAnswers(5, time.Time{}, 10*time.Second) {
		t.Fatalf("the flow vm1 -> vm2 is not answered")
	}
	flowID := fmt.Sprintf("id=%d ", p.id)
	ct := func() string {
		out, _ := nsRun(context.Background(), e.host, "conntrack", "-L", "-p", "icmp", "-w", zone)
		return out
	}
	if out := ct(); !strings.Contains(out, flowID) {
		t.Fatalf("no conntrack entry for the flow (%s) in vm2's zone %s:\n%s", flowID, zone, out)
	}

	deleted := time.Now()
	e.deleteRule(t, id)
	e.waitSpec(t, v4, iChain(vm2), 0, "-p icmp")
	if !poll(5*time.Second, func() bool { return !strings.Contains(ct(), flowID) }) {
		t.Fatalf("the flow's conntrack entry is still in zone %s 5 s after the rule went:\n%s", zone, ct())
	}
	gone := time.Now()
	// From now on each request is a new flow, dropped by vm2's chain
	// (an answer already on its way may still arrive: 500 ms of grace).
	jump0 := e.counter(t, v4, "filter", iChain(vm2), "-j "+fallback)
	e.waitCounter(t, v4, jump0+10, dropTimeout, "filter", iChain(vm2), "-j "+fallback)
	if _, n := p.answers(gone.Add(500 * time.Millisecond)); n != 0 {
		t.Errorf("%d answers after the flow's conntrack entry was deleted, want 0", n)
	}
	sent, all := p.answers(time.Time{})
	t.Logf("flow: %d requests, %d answers; the last answer %s after the DELETE", sent, all, p.lastAnswer().Sub(deleted).Round(time.Millisecond))
}

func (e *env) portSecurityOff(t *testing.T, vm1, vm3 lab.VM) {
	e.updatePort(t, vm3, map[string]any{"security_groups": []string{}, "port_security_enabled": false},
		map[string]any{"port_security_enabled": true, "security_groups": []string{e.lab.SecurityGroupID}})
	s := e.waitRules(t, v4, "vm3's port unfiltered", func(s *saved) bool {
		return !s.has("filter", iChain(vm3)) && !s.has("filter", oChain(vm3)) &&
			len(s.matching("filter", chainPrefix+"FORWARD", vm3.Tap, "-j ACCEPT")) == 2
	})
	t.Logf("vm3's rules:\n%s", joinRules(append(s.matching("filter", chainPrefix+"FORWARD", vm3.Tap), s.matching("filter", chainPrefix+"INPUT", vm3.Tap)...)))
	for _, r := range s.rules {
		if r.Table == "filter" && strings.Contains(r.Spec, vm3.Tap) && !strings.HasSuffix(r.Spec, "-j ACCEPT") {
			t.Errorf("rule for unfiltered vm3: %s", r)
		}
	}

	tag := newTag()
	icmp := listenIP(t, vm3.Netns, 1, echoRequestsWith(tag))
	delivered(t, probes, icmp, "ICMP echo vm1 -> vm3", func() { sendEcho(t, vm1.Netns, vm3.IP, tag, probes) })
	u := listenUDP(t, vm3.Netns, vm3.IP, 5555, tag, false)
	src := listenUDP(t, vm1.Netns, vm1.IP, 0, tag, false)
	delivered(t, probes, u.counter, "UDP vm1 -> vm3:5555", func() { src.send(t, vm3.IP, 5555, tag, probes) })
	ipip := listenIP(t, vm3.Netns, 4, carrying(tag))
	delivered(t, probes, ipip, "IP protocol 4 vm1 -> vm3", func() {
		sendIP(t, vm1.Netns, 4, vm3.IP, probes, func(i int) []byte { return ipipInner(tag, uint16(i)) })
	})
	if err := ping(vm1.Netns, vm3.IP); err != nil {
		t.Errorf("to the unfiltered port: %v", err)
	}

	// Nor is vm3's egress filtered: spoofed source IP and MAC leave its port.
	tag2 := newTag()
	left := capture(t, e.host, qvb(vm3), tag2)
	sendHdrincl(t, vm3.Netns, vm1.IP, probes, func(i int) []byte {
		return ipv4(spoofIP, vm1.IP, 1, uint16(i+1), icmpEcho(8, uint16(0x6000+i), 1, tag2))
	})
	sendFrames(t, vm3.Netns, "eth0", probes, func(i int) []byte {
		return ether(vm1.MAC, spoofMAC, ipv4(spoofIP, vm1.IP, 1, uint16(i+1), icmpEcho(8, uint16(0x6100+i), 1, tag2)))
	})
	if n := left.wait(2*probes, deliverTimeout); n != 2*probes {
		t.Errorf("%d of %d spoofed packets left the unfiltered port", n, 2*probes)
	}
}

func (e *env) stateless(t *testing.T, vm1, vm2 lab.VM) {
	sl := e.createGroup(t, "stateless", false)
	e.createRule(t, ingress(sl, "protocol", "udp", "port_range_min", 7001, "port_range_max", 7001))
	e.setGroups(t, vm2, sl)
	s := e.waitRules(t, v4, "vm2 in the stateless group", func(s *saved) bool {
		return len(s.matching("raw", chainPrefix+"PREROUTING", "--physdev-in "+vm2.Tap+" ", "CT --notrack")) == 1 &&
			len(s.matching("filter", iChain(vm2), "--dport 7001")) == 1
	})
	var raw []savedRule
	for _, r := range s.rules {
		if r.Table == "raw" && (strings.Contains(r.Spec, vm2.Tap+" ") || strings.Contains(r.Spec, qvb(vm2)+" ")) {
			raw = append(raw, r)
			if !strings.HasSuffix(r.Spec, "-j CT --notrack") {
				t.Errorf("raw rule of the stateless port does not say notrack: %s", r)
			}
		}
	}
	t.Logf("raw table for vm2's port:\n%s", joinRules(raw))
	if len(raw) < 2 {
		t.Errorf("%d raw rules for vm2's port, want both directions untracked", len(raw))
	}

	tag := newTag()
	srv2 := listenUDP(t, vm2.Netns, vm2.IP, 7001, tag, true)
	cli1 := listenUDP(t, vm1.Netns, vm1.IP, 7600, tag, false)
	// 1. The ingress rule lets vm1's datagrams in; vm2's answers leave by
	//    the group's egress rule (and enter stateful vm1 as replies).
	delivered(t, probes, srv2.counter, "UDP vm1 -> stateless vm2:7001", func() { cli1.send(t, vm2.IP, 7001, tag, probes) })
	if n := cli1.wait(probes, deliverTimeout); n != probes {
		t.Errorf("vm1 got %d of %d answers from stateless vm2", n, probes)
	}
	// 2. No rule, no entry.
	other := listenUDP(t, vm2.Netns, vm2.IP, 7002, tag, false)
	e.dropped(t, v4, iChain(vm2), probes, other.counter, func() { cli1.send(t, vm2.IP, 7002, tag, probes) })

	// 3. No connection state: vm2 asks vm1 (whose group allows it) and
	//    vm1's answers are not replies for vm2's chain: dropped.
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "udp", "port_range_min", 7001, "port_range_max", 7001))
	e.waitSpec(t, v4, iChain(vm1), 1, "--dport 7001")
	srv1 := listenUDP(t, vm1.Netns, vm1.IP, 7001, tag, true)
	cli2 := listenUDP(t, vm2.Netns, vm2.IP, 7500, tag, false)
	ask := func() { cli2.send(t, vm1.IP, 7001, tag, probes) }
	e.dropped(t, v4, iChain(vm2), probes, cli2.counter, ask)
	if n := srv1.count(); n != probes {
		t.Errorf("stateful vm1 got %d of %d requests from stateless vm2", n, probes)
	}
	// 4. A rule for the answers' port lets them in.
	e.createRule(t, ingress(sl, "protocol", "udp", "port_range_min", 7500, "port_range_max", 7500))
	e.waitSpec(t, v4, iChain(vm2), 1, "--dport 7500")
	delivered(t, probes, cli2.counter, "vm1's answers to vm2:7500 with a rule for them", ask)
}

func (e *env) foreign(t *testing.T, vm1, vm2 lab.VM) {
	type fr struct {
		f           fam
		chain, spec string
		args        []string
	}
	var rules []fr
	sets := map[string][]string{}
	var chains []fr
	add := func(f fam, chain string, pos int, spec ...string) {
		args := []string{"-A", chain}
		if pos > 0 {
			args = []string{"-I", chain, fmt.Sprint(pos)}
		}
		e.ipt(t, f, append(args, spec...)...)
		rules = append(rules, fr{f, chain, strings.Join(spec, " "), spec})
	}
	newChain := func(f fam, name string) {
		e.ipt(t, f, "-N", name)
		chains = append(chains, fr{f: f, chain: name})
	}
	newSet := func(name, typ, member string) {
		e.hostRun(t, "ipset", "create", name, typ)
		e.hostRun(t, "ipset", "add", name, member)
		sets[name] = []string{member}
	}
	t.Cleanup(func() {
		for i := len(rules) - 1; i >= 0; i-- {
			r := rules[i]
			_, _ = nsRun(context.Background(), e.host, e.bin(r.f, ""), append([]string{"-w", "30", "-D", r.chain}, r.args...)...)
		}
		for _, c := range chains {
			_, _ = nsRun(context.Background(), e.host, e.bin(c.f, ""), "-w", "30", "-X", c.chain)
		}
		for name := range sets {
			_, _ = nsRun(context.Background(), e.host, "ipset", "destroy", name)
		}
	})
	// Before moat's next change: a chain jumped to from FORWARD (first)
	// and INPUT, an IPv6 one, a set.
	newChain(v4, "e2e-foreign")
	add(v4, "e2e-foreign", 0, "-m", "comment", "--comment", "foreign rule", "-j", "RETURN")
	add(v4, "FORWARD", 1, "-j", "e2e-foreign")
	add(v4, "INPUT", 1, "-j", "e2e-foreign")
	newChain(v6, "e2e-foreign6")
	add(v6, "e2e-foreign6", 0, "-j", "RETURN")
	add(v6, "INPUT", 0, "-j", "e2e-foreign6")
	newSet("e2e-foreign", "hash:ip", "10.99.0.1")

	last := map[string]uint64{}
	check := func(stage string) {
		t.Helper()
		saves := map[fam]*saved{v4: e.save(t, v4), v6: e.save(t, v6)}
		for _, c := range chains {
			if !saves[c.f].has("filter", c.chain) {
				t.Errorf("%s: foreign chain %s (IPv%d) is gone", stage, c.chain, c.f)
			}
		}
		for _, r := range rules {
			var m []savedRule
			for _, x := range saves[r.f].chain("filter", r.chain) {
				if x.Spec == r.spec || strings.ReplaceAll(x.Spec, `"`, "") == r.spec {
					m = append(m, x)
				}
			}
			key := fmt.Sprintf("%d %s %s", r.f, r.chain, r.spec)
			if len(m) != 1 {
				t.Errorf("%s: foreign rule -A %s %s (IPv%d) found %d times, want once; %s:\n%s", stage, r.chain, r.spec, r.f, len(m), r.chain, joinRules(saves[r.f].chain("filter", r.chain)))
				continue
			}
			if m[0].Pkts < last[key] {
				t.Errorf("%s: foreign rule -A %s %s: counter went from %d to %d (deleted and re-added)", stage, r.chain, r.spec, last[key], m[0].Pkts)
			}
			last[key] = m[0].Pkts
		}
		for name, members := range sets {
			if got := e.setMembers(t, name); !slices.Equal(got, members) {
				t.Errorf("%s: foreign ipset %s holds %v, want %v", stage, name, got, members)
			}
		}
	}
	traffic := func() { sendEcho(t, vm1.Netns, vm2.IP, newTag(), probes) } // dropped at vm2, but forwarded twice
	traffic()
	check("before any change")
	fwd := fmt.Sprintf("%d FORWARD -j e2e-foreign", v4)
	if last[fwd] == 0 {
		t.Errorf("the foreign FORWARD jump counted no packets: the counter check proves nothing")
	}

	// 1. A rule is created.
	r1 := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "tcp", "port_range_min", 22, "port_range_max", 22))
	e.waitSpec(t, v4, iChain(vm2), 1, "--dport 22")
	traffic()
	check("after a rule was created")

	// More foreign rules, now that moat's exist: appended after its jumps.
	newChain(v4, "e2e-foreign2")
	add(v4, "e2e-foreign2", 0, "-s", "10.99.0.0/16", "-j", "DROP")
	add(v4, "FORWARD", 0, "-j", "e2e-foreign2")
	add(v4, "OUTPUT", 0, "-j", "e2e-foreign2")
	newSet("e2e-foreign2", "hash:net", "10.99.0.0/16")

	// 2. The rule is deleted.
	e.deleteRule(t, r1)
	e.waitSpec(t, v4, iChain(vm2), 0, "--dport 22")
	traffic()
	check("after a rule was deleted")

	// 3. The agent restarts (stopped the way an operator stops it).
	e.stopMoat(t, syscall.SIGTERM)
	e.startMoat(t)
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "tcp", "port_range_min", 23, "port_range_max", 23))
	e.waitSpec(t, v4, iChain(vm2), 1, "--dport 23") // the restarted agent works
	traffic()
	check("after the agent restarted")
}

func (e *env) flushed(t *testing.T, vm1, vm2 lab.VM) {
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	e.waitSpec(t, v4, iChain(vm2), 1, "-p icmp")
	want := e.save(t, v4).specs("filter", iChain(vm2))
	tag := newTag()
	closed := listenUDP(t, vm2.Netns, vm2.IP, 7003, tag, false)
	src := listenUDP(t, vm1.Netns, vm1.IP, 0, tag, false)
	send := func() { src.send(t, vm2.IP, 7003, tag, probes) }
	e.dropped(t, v4, iChain(vm2), probes, closed.counter, send)

	logFrom := len(e.moatLog(t))
	e.ipt(t, v4, "-F", iChain(vm2))
	flushed := time.Now()
	t.Logf("%s -F %s", e.bin(v4, ""), iChain(vm2))
	// The hole the flush opened (sg-chain accepts what the port's chain
	// returns), while it lasts: shows the probe would see it.
	r0 := closed.count()
	send()
	if closed.wait(r0+probes, time.Second) > r0 {
		t.Logf("while %s was flushed, UDP to vm2:7003 was delivered", iChain(vm2))
	}
	var got []string
	if !poll(10*time.Second, func() bool { got = e.save(t, v4).specs("filter", iChain(vm2)); return slices.Equal(got, want) }) {
		t.Fatalf("%s not repaired 10 s after the flush:\n%s\nwant:\n%s", iChain(vm2), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("%s repaired %s after the flush", iChain(vm2), time.Since(flushed).Round(time.Millisecond))
	if !strings.Contains(e.moatLog(t)[logFrom:], "drift") {
		t.Errorf("moat's log does not mention the drift it repaired")
	}
	e.dropped(t, v4, iChain(vm2), probes, closed.counter, send)
	got2 := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
	delivered(t, probes, got2, "ICMP after the repair", func() { sendEcho(t, vm1.Netns, vm2.IP, tag, probes) })
}

// watcher polls iptables-save while moat restarts: the chains it watches
// must keep their rules, and their counters must never go down (a chain
// flushed or rebuilt restarts its counters at 0).
type watcher struct {
	e      *env
	chains []string
	want   map[string][]string
	mu     sync.Mutex
	last   map[string]uint64
	errs   []string
	polls  int
	stop   chan struct{}
	done   chan struct{}
}

func (e *env) watch(base *saved, chains ...string) *watcher {
	w := &watcher{e: e, chains: chains, want: map[string][]string{}, last: map[string]uint64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, c := range chains {
		w.want[c] = base.specs("filter", c)
	}
	w.observe(base, "before")
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			s, err := e.trySave(context.Background(), v4)
			if err != nil {
				w.fail("%v", err)
				continue
			}
			w.observe(s, "during the restart")
		}
	}()
	return w
}

func (w *watcher) fail(format string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 10 {
		w.errs = append(w.errs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, a...))
	}
}

func (w *watcher) observe(s *saved, stage string) {
	w.mu.Lock()
	w.polls++
	w.mu.Unlock()
	for _, c := range w.chains {
		rs := s.chain("filter", c)
		if specs := s.specs("filter", c); !slices.Equal(specs, w.want[c]) {
			w.fail("%s: %s has %d rules, want the %d it had:\n%s", stage, c, len(specs), len(w.want[c]), joinRules(rs))
			continue
		}
		for i, r := range rs {
			key := fmt.Sprintf("%s #%d", c, i)
			w.mu.Lock()
			prev := w.last[key]
			w.last[key] = r.Pkts
			w.mu.Unlock()
			if r.Pkts < prev {
				w.fail("%s: counter of -A %s %s went from %d to %d (reloaded)", stage, c, r.Spec, prev, r.Pkts)
			}
		}
	}
}

// finish stops the polling, observes a last save (taken after the last
// poll) and returns it.
func (w *watcher) finish(t *testing.T) *saved {
	t.Helper()
	close(w.stop)
	<-w.done
	final := w.e.save(t, v4)
	w.observe(final, "after the restart")
	t.Logf("watched %d chains in %d iptables-saves", len(w.chains), w.polls)
	for _, e := range w.errs {
		t.Error(e)
	}
	return final
}

func (e *env) sigkill(t *testing.T, vm1, vm2, vm3 lab.VM) {
	e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
	e.waitSpec(t, v4, iChain(vm2), 1, "-p icmp")
	tag := newTag()
	closed := listenUDP(t, vm2.Netns, vm2.IP, 7004, tag, false)
	src := listenUDP(t, vm1.Netns, vm1.IP, 0, tag, false)
	probe := func() { src.send(t, vm2.IP, 7004, tag, probes) }
	p := startPinger(t, vm1.Netns, vm2.IP, 100*time.Millisecond)
	if !p.waitAnswers(5, time.Time{}, 10*time.Second) {
		t.Fatal("the flow vm1 -> vm2 is not answered")
	}
	e.dropped(t, v4, iChain(vm2), probes, closed.counter, probe)

	base4, base6 := e.save(t, v4), e.save(t, v6)
	raw0 := base4.specs("raw", chainPrefix+"PREROUTING")
	watched := []string{iChain(vm1), oChain(vm1), sChain(vm1), iChain(vm2), oChain(vm2), sChain(vm2), fallback}
	w := e.watch(base4, watched...)
	// A stream of datagrams to the closed port, through the whole restart.
	var streamed int
	stopStream, streamDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(streamDone)
		for {
			select {
			case <-stopStream:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := src.conn.WriteToUDP(tag, udpAddr(vm2.IP, 7004)); err == nil {
				streamed++
			}
		}
	}()
	stopped := false
	endStream := func() {
		if !stopped {
			stopped = true
			close(stopStream)
			<-streamDone
		}
	}
	t.Cleanup(endStream)

	e.stopMoat(t, syscall.SIGKILL)
	killed := time.Now()
	// Down: the kernel keeps moat's rules.
	if !p.waitAnswers(5, killed, 5*time.Second) {
		t.Errorf("the established flow stopped while moat was down")
	}
	if err := ping(vm1.Netns, vm2.IP); err != nil {
		t.Errorf("new allowed flow while moat was down: %v", err)
	}
	e.dropped(t, v4, iChain(vm2), probes, closed.counter, probe)

	// Up again, the way the lab starts it.
	logFrom := len(e.moatLog(t))
	e.startMoat(t)
	restarted := time.Now()
	if !poll(10*time.Second, func() bool { return strings.Contains(e.moatLog(t)[logFrom:], "taking over from a previous run") }) {
		t.Errorf("the restarted agent did not log that it took over")
	}
	// A change that touches only vm3: applied, it proves the agent's first
	// sync (which comes before it) is over.
	e.setGroups(t, vm3, e.groupID(t, "default"))
	e.waitSpec(t, v4, iChain(vm3), 1, "--match-set")
	endStream()
	final4 := w.finish(t)
	if n := closed.count(); n != 0 {
		t.Errorf("%d datagrams to the closed port were delivered during the restart, want 0", n)
	}
	if j0, j := base4.one(t, "filter", iChain(vm2), "-j "+fallback).Pkts, final4.one(t, "filter", iChain(vm2), "-j "+fallback).Pkts; j-j0 < uint64(streamed+probes) {
		t.Errorf("vm2's fallback jump counted %d packets, want at least the %d streamed and %d probed", j-j0, streamed, probes)
	}
	t.Logf("%d datagrams streamed to the closed port during the restart, none delivered", streamed)
	if raw := final4.specs("raw", chainPrefix+"PREROUTING"); !slices.Equal(raw, raw0) {
		t.Errorf("the raw table (conntrack zones) changed:\n%s", lineDiff(strings.Join(raw0, "\n"), strings.Join(raw, "\n")))
	}
	final6 := e.save(t, v6)
	for _, c := range watched[:6] {
		if !slices.Equal(final6.specs("filter", c), base6.specs("filter", c)) {
			t.Errorf("IPv6 %s changed across the restart", c)
		}
	}
	// The allowed flow never paused for long, and still runs.
	if !p.waitAnswers(5, restarted, 5*time.Second) {
		t.Errorf("the established flow is not answered after the restart")
	}
	p.mu.Lock()
	var gap time.Duration
	for i := 1; i < len(p.got); i++ {
		gap = max(gap, p.got[i].Sub(p.got[i-1]))
	}
	p.mu.Unlock()
	t.Logf("longest pause of the established flow: %s", gap.Round(time.Millisecond))
	if gap > 1500*time.Millisecond {
		t.Errorf("the established flow paused %s across the kill and restart", gap)
	}
	e.dropped(t, v4, iChain(vm2), probes, closed.counter, probe)
}

func udpAddr(ip string, port int) *net.UDPAddr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: port} }
