package e2e

// The security-group scenarios with real packets on the nftables backend
// (moat's own bridge/ip/ip6 tables, docs/nftables.md). The iptables
// scenarios (e2e_test.go) read iptables-save counters; these read the
// counters of moat's nft rules by the origin tag in their comments, and
// otherwise assert what the packets do.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/trace"
)

// TestNFTablesSecurityGroups runs the scenarios in one lab of 3 VMs whose
// agent enforces with nftables.
func TestNFTablesSecurityGroups(t *testing.T) {
	needRoot(t)
	e := newEnv(t, "nftables", 3)
	vm1, vm2, vm3 := e.vm[0], e.vm[1], e.vm[2]
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			e.nftBaseline(t)
			f(t)
			t.Logf("%s took %s", name, time.Since(start).Round(time.Millisecond))
		})
	}
	run("default drop", func(t *testing.T) {
		tag := newTag()
		got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
		egress0 := e.nftCounter(t, nftrender.OutChain(vm1.PortID), "sgr ")
		drop0 := e.nftCounter(t, nftrender.ChainFallback, "default-drop")
		sendEcho(t, vm1.Netns, vm2.IP, tag, probes)
		e.waitNFTCounter(t, nftrender.ChainFallback, "default-drop", drop0+probes)
		if d := e.nftCounter(t, nftrender.OutChain(vm1.PortID), "sgr ") - egress0; d < probes {
			t.Errorf("vm1's egress rule counted %d packets, want at least %d", d, probes)
		}
		if n := got.count(); n != 0 {
			t.Errorf("vm2 received %d echo requests without an ingress rule", n)
		}
	})
	run("ingress ICMP rule", func(t *testing.T) {
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "l4proto icmp")
		tag := newTag()
		got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
		delivered(t, probes, got, "ICMP echo vm1 -> vm2", func() { sendEcho(t, vm1.Netns, vm2.IP, tag, probes) })
		if err := ping(vm1.Netns, vm2.IP); err != nil {
			t.Errorf("after the ICMP rule: %v", err)
		}
	})
	run("default group: same-group ingress in a named set", func(t *testing.T) {
		def := e.groupID(t, "default")
		e.setGroups(t, vm1, def)
		e.setGroups(t, vm2, def)
		set := hybrid.IPSetName(hybrid.IPv4, def)
		// The members are in the set and vm3 is not (nft lists adjacent
		// addresses of an interval set as a range: ask element by element).
		member := func(ip string) bool {
			_, err := nsRun(context.Background(), e.host, "nft", "get", "element", "ip", "moat", set, "{", ip, "}")
			return err == nil
		}
		if !poll(applyTimeout, func() bool { return member(vm1.IP) && member(vm2.IP) && !member(vm3.IP) }) {
			t.Fatalf("set %s: vm1 %v, vm2 %v, vm3 %v; want vm1 and vm2 only: %v", set, member(vm1.IP), member(vm2.IP), member(vm3.IP), e.nftElements(t, set))
		}
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "@"+set)
		for _, p := range [][2]lab.VM{{vm1, vm2}, {vm2, vm1}} {
			if err := ping(p[0].Netns, p[1].IP); err != nil {
				t.Errorf("same group: %v", err)
			}
		}
		tag := newTag()
		got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
		drop0 := e.nftCounter(t, nftrender.ChainFallback, "default-drop")
		sendEcho(t, vm3.Netns, vm2.IP, tag, probes)
		e.waitNFTCounter(t, nftrender.ChainFallback, "default-drop", drop0+probes)
		if n := got.count(); n != 0 {
			t.Errorf("vm2 received %d echo requests from vm3, which is not in default", n)
		}
	})
	run("spoofed source IP and MAC dropped", func(t *testing.T) {
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "l4proto icmp")
		tag := newTag()
		got := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
		echo := func(i int) []byte { return icmpEcho(8, uint16(0x5000+i), 1, tag) }
		out := nftrender.OutChain(vm1.PortID)
		d0 := e.nftCounter(t, out, "anti-spoofing")
		sendHdrincl(t, vm1.Netns, vm2.IP, probes, func(i int) []byte { return ipv4(spoofIP, vm2.IP, 1, uint16(i+1), echo(i)) })
		e.waitNFTCounter(t, out, "anti-spoofing", d0+probes)
		sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
			return ether(vm2.MAC, spoofMAC, ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+10)))
		})
		e.waitNFTCounter(t, out, "anti-spoofing", d0+2*probes)
		if n := got.count(); n != 0 {
			t.Errorf("vm2 received %d spoofed packets, want 0", n)
		}
		delivered(t, probes, got, "IP_HDRINCL with vm1's address", func() {
			sendHdrincl(t, vm1.Netns, vm2.IP, probes, func(i int) []byte { return ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+20)) })
		})
		delivered(t, probes, got, "AF_PACKET with vm1's MAC and address", func() {
			sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
				return ether(vm2.MAC, vm1.MAC, ipv4(vm1.IP, vm2.IP, 1, uint16(i+1), echo(i+30)))
			})
		})
		if d := e.nftCounter(t, out, "anti-spoofing") - d0; d != 2*probes {
			t.Errorf("the anti-spoofing drop counted %d packets, want %d", d, 2*probes)
		}
	})
	run("egress allow", func(t *testing.T) {
		egressRule := map[string]any{"security_group_id": e.lab.SecurityGroupID, "direction": "egress", "ethertype": "IPv4"}
		t.Cleanup(func() {
			if _, ok := e.labEgressRule(t); !ok {
				e.cleanupCall(t, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": egressRule})
			}
		})
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "udp", "port_range_min", 5001, "port_range_max", 5001))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "dport 5001")
		tag := newTag()
		got := listenUDP(t, vm2.Netns, vm2.IP, 5001, tag, false)
		src := listenUDP(t, vm1.Netns, vm1.IP, 0, tag, false)
		send := func() { src.send(t, vm2.IP, 5001, tag, probes) }
		out := nftrender.OutChain(vm1.PortID)
		e0 := e.nftCounter(t, out, "sgr ")
		delivered(t, probes, got.counter, "UDP vm1 -> vm2:5001 with the egress rule", send)
		if d := e.nftCounter(t, out, "sgr ") - e0; d != probes {
			t.Errorf("vm1's egress rule counted %d packets, want %d", d, probes)
		}
		id, ok := e.labEgressRule(t)
		if !ok {
			t.Fatal("group lab has no IPv4 egress rule")
		}
		e.deleteRule(t, id)
		e.waitNFTRuleOf(t, v4, out, "sgr "+id, false)
		f0 := e.nftCounter(t, out, "to-default-drop")
		r0 := got.count()
		send()
		e.waitNFTCounter(t, out, "to-default-drop", f0+probes)
		if d := got.count() - r0; d != 0 {
			t.Errorf("%d datagrams delivered without an egress rule", d)
		}
		e.call(t, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": egressRule}, nil)
		e.waitNFTRuleOf(t, v4, out, "sgr ", true)
		delivered(t, probes, got.counter, "UDP vm1 -> vm2:5001 with the egress rule back", send)
	})
	run("DHCP client allowed, DHCP server replies from a VM dropped", func(t *testing.T) {
		tag := newTag()
		left := capture(t, e.host, qvb(vm1), tag)
		out := nftrender.OutChain(vm1.PortID)
		c0 := e.nftCounterOf(t, v4, out, "dhcp-client", "ip saddr 0.0.0.0")
		sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
			return ether("ff:ff:ff:ff:ff:ff", vm1.MAC, ipv4("0.0.0.0", "255.255.255.255", 17, uint16(i+1), udp(68, 67, dhcp(1, vm1.MAC, 1, tag))))
		})
		if n := left.wait(probes, deliverTimeout); n != probes {
			t.Errorf("%d of %d DHCPDISCOVERs left vm1's port, want all", n, probes)
		}
		if d := e.nftCounterOf(t, v4, out, "dhcp-client", "ip saddr 0.0.0.0") - c0; d < probes {
			t.Errorf("the DHCP client rule counted %d packets, want at least %d", d, probes)
		}
		victim := listenUDP(t, vm2.Netns, "0.0.0.0", 68, tag, false)
		s0 := e.nftCounter(t, out, "dhcp-protection")
		sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
			return ether("ff:ff:ff:ff:ff:ff", vm1.MAC, ipv4(vm1.IP, "255.255.255.255", 17, uint16(i+1), udp(67, 68, dhcp(2, vm2.MAC, 2, tag))))
		})
		sendFrames(t, vm1.Netns, "eth0", probes, func(i int) []byte {
			return ether(vm2.MAC, vm1.MAC, ipv4(vm1.IP, vm2.IP, 17, uint16(i+1), udp(67, 68, dhcp(2, vm2.MAC, 2, tag))))
		})
		e.waitNFTCounter(t, out, "dhcp-protection", s0+2*probes)
		if n := left.count(); n != probes {
			t.Errorf("%d frames with the tag left vm1's port, want only the %d DHCPDISCOVERs", n, probes)
		}
		if n := victim.count(); n != 0 {
			t.Errorf("vm2 received %d DHCP server replies from vm1, want 0", n)
		}
	})
	run("IPv6 neighbour discovery", func(t *testing.T) {
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
		in1, in2 := nftrender.InChain(vm1.PortID), nftrender.InChain(vm2.PortID)
		var ns, na uint64
		for _, vm := range []lab.VM{vm1, vm2} {
			if _, err := nsRun(context.Background(), vm.Netns, "ip", "-6", "neigh", "flush", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		ns0 := e.nftCounterOf(t, v6, in2, "icmpv6-nd", "nd-neighbor-solicit")
		na0 := e.nftCounterOf(t, v6, in1, "icmpv6-nd", "nd-neighbor-advert")
		jump0 := e.nftCounterOf(t, v6, in2, "to-default-drop", "")
		if err := ping(vm1.Netns, ll2, "-6", "-I", "eth0"); err == nil {
			t.Errorf("ping6 %s answered without an ingress ICMPv6 rule", ll2)
		}
		if !poll(dropTimeout, func() bool { return e.nftCounterOf(t, v6, in2, "to-default-drop", "") > jump0 }) {
			t.Errorf("the echo request did not reach vm2's fallback jump")
		}
		// An entry learnt between the flush and the ping starts
		// STALE: the unicast solicitation follows after
		// delay_first_probe_time (5 s).
		poll(ndTimeout, func() bool {
			ns = e.nftCounterOf(t, v6, in2, "icmpv6-nd", "nd-neighbor-solicit") - ns0
			na = e.nftCounterOf(t, v6, in1, "icmpv6-nd", "nd-neighbor-advert") - na0
			return ns >= 1 && na >= 1
		})
		if ns < 1 {
			t.Errorf("vm2's neighbour-solicitation rule counted %d packets, want at least 1", ns)
		}
		if na < 1 {
			t.Errorf("vm1's neighbour-advertisement rule counted %d packets, want at least 1", na)
		}
		e.createRule(t, ingress(e.lab.SecurityGroupID, "ethertype", "IPv6", "protocol", "ipv6-icmp"))
		e.waitNFTRuleOf(t, v6, in2, "l4proto ipv6-icmp", true)
		if err := ping(vm1.Netns, ll2, "-6", "-I", "eth0"); err != nil {
			t.Errorf("with an ingress ICMPv6 rule: %v", err)
		}
	})
	run("remote group member added and removed", func(t *testing.T) {
		web := e.createGroup(t, "web", true)
		e.createRule(t, ingress(web, "protocol", "icmp", "remote_group_id", web))
		e.setGroups(t, vm1, e.lab.SecurityGroupID, web)
		set := hybrid.IPSetName(hybrid.IPv4, web)
		in := nftrender.InChain(vm1.PortID)
		e.waitNFTRule(t, in, "@"+set)
		member := func(ip string) bool {
			_, err := nsRun(context.Background(), e.host, "nft", "get", "element", "ip", "moat", set, "{", ip, "}")
			return err == nil
		}
		chain := func() string { return e.hostRun(t, "nft", "-s", "list", "chain", "ip", "moat", in) }
		before := chain()
		tag := newTag()
		got := listenIP(t, vm1.Netns, 1, echoRequestsWith(tag))
		send := func() { sendEcho(t, vm2.Netns, vm1.IP, tag, probes) }
		f0 := e.nftCounter(t, in, "to-default-drop")
		send()
		e.waitNFTCounter(t, in, "to-default-drop", f0+probes)
		if n := got.count(); n != 0 {
			t.Errorf("vm1 got %d echo requests from vm2, not a member of web", n)
		}
		e.setGroups(t, vm2, e.lab.SecurityGroupID, web)
		if !poll(applyTimeout, func() bool { return member(vm2.IP) }) {
			t.Fatalf("vm2 did not join set %s", set)
		}
		r0 := e.nftCounterOf(t, v4, in, "sgr ", "@"+set)
		delivered(t, probes, got, "vm2 (member of web) -> vm1", send)
		if d := e.nftCounterOf(t, v4, in, "sgr ", "@"+set) - r0; d != probes {
			t.Errorf("the remote-group rule counted %d packets, want %d", d, probes)
		}
		if after := chain(); after != before {
			t.Errorf("vm1's chain was rewritten when vm2 joined web:\n%s", lineDiff(before, after))
		}
		e.updatePort(t, vm2, map[string]any{"security_groups": []string{e.lab.SecurityGroupID}}, nil)
		if !poll(applyTimeout, func() bool { return !member(vm2.IP) && member(vm1.IP) }) {
			t.Fatalf("vm2 did not leave set %s", set)
		}
		f0 = e.nftCounter(t, in, "to-default-drop")
		r1 := got.count()
		send()
		e.waitNFTCounter(t, in, "to-default-drop", f0+probes)
		if d := got.count() - r1; d != 0 {
			t.Errorf("vm1 got %d echo requests from vm2 after it left web", d)
		}
		if after := chain(); after != before {
			t.Errorf("vm1's chain was rewritten when vm2 left web:\n%s", lineDiff(before, after))
		}
	})
	run("deleting an allow rule stops an established flow", func(t *testing.T) {
		id := e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		in := nftrender.InChain(vm2.PortID)
		e.waitNFTRule(t, in, "sgr "+id)
		bridge, _ := nftrender.BridgeOf(vm2.Tap)
		zone := e.nftElementMap(t, nftrender.MapZone)[`"`+bridge+`"`]
		if zone == "" {
			t.Fatalf("no zone for %s", bridge)
		}
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
		e.deleteRule(t, id)
		e.waitNFTRuleOf(t, v4, in, "sgr "+id, false)
		if !poll(5*time.Second, func() bool { return !strings.Contains(ct(), flowID) }) {
			t.Fatalf("the flow's conntrack entry is still in zone %s 5 s after the rule went", zone)
		}
		gone := time.Now()
		f0 := e.nftCounter(t, in, "to-default-drop")
		e.waitNFTCounter(t, in, "to-default-drop", f0+10)
		if _, n := p.answers(gone.Add(500 * time.Millisecond)); n != 0 {
			t.Errorf("%d answers after the flow's conntrack entry was deleted, want 0", n)
		}
	})
	run("IPIP (protocol 4) allowed by a rule", func(t *testing.T) {
		tag := newTag()
		got := listenIP(t, vm2.Netns, 4, carrying(tag))
		send := func() {
			sendIP(t, vm1.Netns, 4, vm2.IP, probes, func(i int) []byte { return ipipInner(tag, uint16(i)) })
		}
		in := nftrender.InChain(vm2.PortID)
		f0 := e.nftCounter(t, in, "to-default-drop")
		send()
		e.waitNFTCounter(t, in, "to-default-drop", f0+probes)
		if n := got.count(); n != 0 {
			t.Errorf("vm2 got %d IPIP packets without a rule", n)
		}
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "ipip"))
		e.waitNFTRule(t, in, "l4proto ipencap") // protocol 4, not 94
		delivered(t, probes, got, "IPIP vm1 -> vm2 with --protocol ipip", send)
	})
	run("foreign tables survive changes and a restart", func(t *testing.T) {
		e.hostRun(t, "nft", "add", "table", "inet", "e2e-foreign")
		t.Cleanup(func() { _, _ = nsRun(context.Background(), e.host, "nft", "delete", "table", "inet", "e2e-foreign") })
		e.hostRun(t, "nft", "add", "chain", "inet", "e2e-foreign", "e2echain", "{ type filter hook forward priority -10; policy accept; }")
		e.hostRun(t, "nft", "add", "rule", "inet", "e2e-foreign", "e2echain", "counter", "comment", `"foreign rule"`)
		e.hostRun(t, "iptables-nft", "-w", "-N", "e2e-foreign")
		t.Cleanup(func() { _, _ = nsRun(context.Background(), e.host, "iptables-nft", "-w", "-X", "e2e-foreign") })
		foreign := func() string {
			var ipt []string
			for _, l := range strings.Split(e.hostRun(t, "iptables-nft-save", "-t", "filter"), "\n") {
				if !strings.HasPrefix(l, "#") { // the dates
					ipt = append(ipt, l)
				}
			}
			return e.hostRun(t, "nft", "-s", "list", "table", "inet", "e2e-foreign") + strings.Join(ipt, "\n")
		}
		want := foreign()
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "l4proto icmp")
		if got := foreign(); got != want {
			t.Errorf("a change touched the foreign rules:\n%s", lineDiff(want, got))
		}
		e.stopMoat(t, syscall.SIGTERM)
		e.startMoat(t)
		if err := ping(vm1.Netns, vm2.IP); err != nil {
			t.Errorf("after the restart: %v", err)
		}
		if got := foreign(); got != want {
			t.Errorf("a restart touched the foreign rules:\n%s", lineDiff(want, got))
		}
	})
	run("the nftables tracer agrees with the kernel", func(t *testing.T) {
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "udp", "port_range_min", 5001, "port_range_max", 5001))
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp", "remote_ip_prefix", vm3.IP+"/32"))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "dport 5001")
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "ip saddr "+vm3.IP)
		out := e.hostRun(t, "nft", "-j", "list", "ruleset")
		h, err := trace.LoadNFT(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		verdict := func(q trace.Query) string {
			t.Helper()
			res, err := h.Trace(q)
			if err != nil {
				t.Fatal(err)
			}
			return res.Verdict
		}
		tag := newTag()
		rcv := map[int]*counter{ // by UDP port, 0 for ICMP echo
			5001: listenUDP(t, vm2.Netns, vm2.IP, 5001, tag, false).counter,
			5002: listenUDP(t, vm2.Netns, vm2.IP, 5002, tag, false).counter,
			0:    listenIP(t, vm2.Netns, 1, echoRequestsWith(tag)),
		}
		checked := 0
		for _, from := range []lab.VM{vm1, vm3} {
			src := listenUDP(t, from.Netns, from.IP, 0, tag, false)
			for _, c := range []struct {
				proto string
				port  int
			}{{"udp", 5001}, {"udp", 5002}, {"icmp", 0}} {
				q := trace.Query{Direction: trace.Ingress, Port: vm2.PortID, Protocol: c.proto, Src: from.IP, Dst: vm2.IP}
				qe := trace.Query{Direction: trace.Egress, Port: from.PortID, Protocol: c.proto, Src: from.IP, Dst: vm2.IP}
				if c.proto == "udp" {
					q.DstPort, qe.DstPort = fmt.Sprint(c.port), fmt.Sprint(c.port)
				} else {
					q.ICMPType, qe.ICMPType = "8", "8"
				}
				want := verdict(q) == trace.VerdictAccept && verdict(qe) == trace.VerdictAccept
				got := rcv[c.port]
				r0 := got.count()
				f0 := e.nftCounter(t, nftrender.ChainFallback, "default-drop")
				if c.proto == "udp" {
					src.send(t, vm2.IP, c.port, tag, probes)
				} else {
					sendEcho(t, from.Netns, vm2.IP, tag, probes)
				}
				var n int
				if want {
					n = got.wait(r0+probes, deliverTimeout) - r0
				} else {
					// The default drop counts the probes; none may have arrived.
					e.waitNFTCounter(t, nftrender.ChainFallback, "default-drop", f0+probes)
					time.Sleep(100 * time.Millisecond)
					n = got.count() - r0
				}
				if (n == probes) != want || (n != 0 && n != probes) {
					t.Errorf("%s %s:%d -> %s: the tracer says delivered=%v, the kernel delivered %d of %d", c.proto, from.Name, c.port, vm2.Name, want, n, probes)
				}
				checked++
			}
		}
		t.Logf("%d packets: the tracer on the live ruleset and the kernel agree", checked)
	})
	run("port security disabled passes everything", func(t *testing.T) {
		e.updatePort(t, vm3, map[string]any{"security_groups": []string{}, "port_security_enabled": false},
			map[string]any{"port_security_enabled": true, "security_groups": []string{e.lab.SecurityGroupID}})
		bridge, _ := nftrender.BridgeOf(vm3.Tap)
		if !poll(applyTimeout, func() bool {
			m := e.nftElementMap(t, nftrender.MapForward)
			want := "jump " + nftrender.ChainUnfiltered
			return m[`"`+bridge+`" . 0x00000000`] == want && m[`"`+bridge+`" . 0x10000000`] == want
		}) {
			t.Fatalf("vm3's bridge %s is not accepted in %s: %v", bridge, nftrender.MapForward, e.nftElementMap(t, nftrender.MapForward))
		}
		tag := newTag()
		icmp := listenIP(t, vm3.Netns, 1, echoRequestsWith(tag))
		delivered(t, probes, icmp, "ICMP echo vm1 -> vm3", func() { sendEcho(t, vm1.Netns, vm3.IP, tag, probes) })
		tag2 := newTag()
		left := capture(t, e.host, qvb(vm3), tag2)
		sendHdrincl(t, vm3.Netns, vm1.IP, probes, func(i int) []byte {
			return ipv4(spoofIP, vm1.IP, 1, uint16(i+1), icmpEcho(8, uint16(0x6000+i), 1, tag2))
		})
		if n := left.wait(probes, deliverTimeout); n != probes {
			t.Errorf("%d of %d spoofed packets left the unfiltered port", n, probes)
		}
	})
	run("stateless group", func(t *testing.T) {
		sl := e.createGroup(t, "stateless", false)
		e.createRule(t, ingress(sl, "protocol", "udp", "port_range_min", 7001, "port_range_max", 7001))
		e.setGroups(t, vm2, sl)
		bridge, _ := nftrender.BridgeOf(vm2.Tap)
		if !poll(applyTimeout, func() bool {
			for _, el := range e.nftElements(t, nftrender.SetStateless) {
				if el == `"`+bridge+`"` {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("vm2's bridge is not in %s", nftrender.SetStateless)
		}
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "dport 7001")
		tag := newTag()
		srv2 := listenUDP(t, vm2.Netns, vm2.IP, 7001, tag, true)
		cli1 := listenUDP(t, vm1.Netns, vm1.IP, 7600, tag, false)
		delivered(t, probes, srv2.counter, "UDP vm1 -> stateless vm2:7001", func() { cli1.send(t, vm2.IP, 7001, tag, probes) })
		if n := cli1.wait(probes, deliverTimeout); n != probes {
			t.Errorf("vm1 got %d of %d answers from stateless vm2", n, probes)
		}
		// No connection state: vm1's answers to vm2 are no replies.
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "udp", "port_range_min", 7001, "port_range_max", 7001))
		e.waitNFTRule(t, nftrender.InChain(vm1.PortID), "dport 7001")
		srv1 := listenUDP(t, vm1.Netns, vm1.IP, 7001, tag, true)
		cli2 := listenUDP(t, vm2.Netns, vm2.IP, 7500, tag, false)
		cli2.send(t, vm1.IP, 7001, tag, probes)
		if n := srv1.wait(probes, deliverTimeout); n != probes {
			t.Errorf("stateful vm1 got %d of %d requests from stateless vm2", n, probes)
		}
		time.Sleep(500 * time.Millisecond)
		if n := cli2.count(); n != 0 {
			t.Errorf("stateless vm2 got %d answers without a rule for them, want 0", n)
		}
	})
	run("flushed chain repaired", func(t *testing.T) {
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		chain := nftrender.InChain(vm2.PortID)
		e.waitNFTRule(t, chain, "l4proto icmp")
		e.hostRun(t, "nft", "flush", "chain", "ip", "moat", chain)
		e.waitNFTRule(t, chain, "l4proto icmp") // the agent's drift check
		if err := ping(vm1.Netns, vm2.IP); err != nil {
			t.Errorf("after the repair: %v", err)
		}
	})
	run("SIGKILL and restart keep rules and zones", func(t *testing.T) {
		e.createRule(t, ingress(e.lab.SecurityGroupID, "protocol", "icmp"))
		e.waitNFTRule(t, nftrender.InChain(vm2.PortID), "l4proto icmp")
		zones := e.nftElementMap(t, nftrender.MapZone)
		p := startPinger(t, vm1.Netns, vm2.IP, 100*time.Millisecond)
		if !p.waitAnswers(5, time.Time{}, 10*time.Second) {
			t.Fatalf("the flow vm1 -> vm2 is not answered")
		}
		e.stopMoat(t, syscall.SIGKILL)
		killed := time.Now()
		if !p.waitAnswers(5, killed, 10*time.Second) {
			t.Errorf("the flow stopped while moat was down: the rules must stay")
		}
		tag := newTag()
		got3 := listenIP(t, vm2.Netns, 1, echoRequestsWith(tag))
		sendEcho(t, vm3.Netns, vm2.IP, tag, probes) // vm3 is in lab, which allows ICMP in now
		e.startMoat(t)
		restarted := time.Now()
		if !p.waitAnswers(5, restarted, 10*time.Second) {
			t.Errorf("the flow stopped after the restart")
		}
		if n := got3.wait(probes, deliverTimeout); n != probes {
			t.Errorf("%d of %d echo requests delivered while moat was down", n, probes)
		}
		if after := e.nftElementMap(t, nftrender.MapZone); fmt.Sprint(after) != fmt.Sprint(zones) {
			t.Errorf("zones changed across the restart: %v, then %v", zones, after)
		}
	})
}

// nftBaseline is baseline for the nftables tables: moat's tables without
// counters, back to what they were when the subtest ends.
func (e *env) nftBaseline(t *testing.T) {
	t.Helper()
	want := e.nftState(t)
	t.Cleanup(func() {
		var got string
		if !poll(applyTimeout, func() bool { got = e.nftState(t); return got == want }) {
			t.Errorf("the kernel did not return to the state before the subtest within %s:\n%s", applyTimeout, lineDiff(want, got))
		}
	})
}

func (e *env) nftState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, id := range nft.MoatTables() {
		text := e.hostRun(t, "nft", "-s", "list", "table", string(id.Family), id.Name)
		// Comments name rule ids, which change when a subtest deletes a
		// rule and creates it again: the state is the rules' bodies.
		text = commentRE.ReplaceAllString(text, "")
		b.WriteString(sortBlocks(normalizeElements(text)))
	}
	return b.String()
}

var commentRE = regexp.MustCompile(` comment "[^"]*"`)

// sortBlocks sorts a table listing's chains, sets and maps by name: nft
// lists them in the order they were created, and a chain deleted and
// created again comes last.
func sortBlocks(text string) string {
	var head, blocks []string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "\t\t") && strings.HasSuffix(l, "{"):
			cur = []string{l}
		case cur != nil && l == "\t}":
			blocks = append(blocks, strings.Join(append(cur, l), "\n"))
			cur = nil
		case cur != nil:
			cur = append(cur, l)
		case strings.TrimSpace(l) != "":
			head = append(head, l)
		}
	}
	slices.Sort(blocks)
	return strings.Join(append(head, blocks...), "\n") + "\n"
}

// normalizeElements sorts the elements of each set in an `nft list`
// output, one per line: the kernel lists an interval set's elements in
// the order they were added.
func normalizeElements(text string) string {
	var out, block []string
	in := false
	flush := func() {
		slices.Sort(block)
		for _, el := range block {
			out = append(out, "\t\t\t"+el)
		}
		block = nil
	}
	for _, l := range strings.Split(text, "\n") {
		s := strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(s, "elements = {"); ok {
			out = append(out, "\t\telements = {")
			in, s = true, strings.TrimSpace(rest)
		}
		if !in {
			out = append(out, l)
			continue
		}
		end := strings.HasSuffix(s, "}")
		s = strings.TrimSpace(strings.TrimSuffix(s, "}"))
		for _, el := range strings.Split(s, ",") {
			if el = strings.TrimSpace(el); el != "" {
				block = append(block, el)
			}
		}
		if end {
			flush()
			out = append(out, "\t\t}")
			in = false
		}
	}
	return strings.Join(out, "\n")
}

type nftJSONRule struct {
	Chain   string           `json:"chain"`
	Comment string           `json:"comment"`
	Expr    []map[string]any `json:"expr"`
}

// nftRules lists the rules of one chain of the ip (or ip6) moat table.
func (e *env) nftRules(t *testing.T, f fam, chain string) []nftJSONRule {
	t.Helper()
	out, err := nsRun(context.Background(), e.host, "nft", "-j", "list", "chain", nftFamily(f), "moat", chain)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Nftables []struct {
			Rule *nftJSONRule `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	var rules []nftJSONRule
	for _, o := range doc.Nftables {
		if o.Rule != nil {
			rules = append(rules, *o.Rule)
		}
	}
	return rules
}

func nftFamily(f fam) string {
	if f == v6 {
		return "ip6"
	}
	return "ip"
}

// nftCounter sums the packet counters of an ip moat chain's rules whose
// origin tag starts with origin.
func (e *env) nftCounter(t *testing.T, chain, origin string) uint64 {
	t.Helper()
	return e.nftCounterOf(t, v4, chain, origin, "")
}

// nftCounterOf is nftCounter in a family, of the rules whose origin
// starts with origin and whose listing (`nft list`) contains sub.
func (e *env) nftCounterOf(t *testing.T, f fam, chain, origin, sub string) uint64 {
	t.Helper()
	var n uint64
	found := false
	var listing []string
	if sub != "" {
		out, err := nsRun(context.Background(), e.host, "nft", "-s", "list", "chain", nftFamily(f), "moat", chain)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "comment ") {
				listing = append(listing, l)
			}
		}
	}
	for i, r := range e.nftRules(t, f, chain) {
		if sub != "" && (i >= len(listing) || !strings.Contains(listing[i], sub)) {
			continue
		}
		if !strings.HasPrefix(nft.Origin(r.Comment), origin) {
			continue
		}
		for _, x := range r.Expr {
			if c, ok := x["counter"].(map[string]any); ok {
				p, _ := c["packets"].(float64)
				n += uint64(p)
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("no counted rule of origin %q (%q) in chain %s %s", origin, sub, nftFamily(f), chain)
	}
	return n
}

func (e *env) waitNFTCounter(t *testing.T, chain, origin string, want uint64) {
	t.Helper()
	var got uint64
	if !poll(dropTimeout, func() bool { got = e.nftCounter(t, chain, origin); return got >= want }) {
		t.Fatalf("chain %s, origin %q: %d packets after %s, want at least %d", chain, origin, got, dropTimeout, want)
	}
}

// waitNFTRule waits until the ip moat chain's listing holds sub.
func (e *env) waitNFTRule(t *testing.T, chain, sub string) { e.waitNFTRuleOf(t, v4, chain, sub, true) }

// waitNFTRuleOf waits until the chain's listing holds sub (or, with
// want false, no longer does).
func (e *env) waitNFTRuleOf(t *testing.T, f fam, chain, sub string, want bool) {
	t.Helper()
	var out string
	if !poll(applyTimeout, func() bool {
		out, _ = nsRun(context.Background(), e.host, "nft", "list", "chain", nftFamily(f), "moat", chain)
		return strings.Contains(out, sub) == want
	}) {
		t.Fatalf("chain %s %s: %q present is %v after %s, want %v:\n%s", nftFamily(f), chain, sub, !want, applyTimeout, want, out)
	}
}

// nftElementMap lists a set or map of the ip moat table, element →
// value, as `nft list` prints them.
func (e *env) nftElementMap(t *testing.T, set string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, el := range e.nftElements(t, set) {
		k, v, _ := strings.Cut(el, " : ")
		out[k] = v
	}
	return out
}

// nftElements lists a set's elements as `nft list set` prints them,
// sorted; nil when the set is missing.
func (e *env) nftElements(t *testing.T, set string) []string {
	t.Helper()
	out, err := nsRun(context.Background(), e.host, "nft", "list", "set", "ip", "moat", set)
	if err != nil {
		out, err = nsRun(context.Background(), e.host, "nft", "list", "map", "ip", "moat", set)
		if err != nil {
			return nil
		}
	}
	_, rest, ok := strings.Cut(out, "elements = {")
	if !ok {
		return nil
	}
	rest, _, _ = strings.Cut(rest, "}")
	var els []string
	for _, el := range strings.Split(rest, ",") {
		if el = strings.Join(strings.Fields(el), " "); el != "" {
			els = append(els, el)
		}
	}
	return sorted(els...)
}
