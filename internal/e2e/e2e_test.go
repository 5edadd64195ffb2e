package e2e

import (
	"testing"
	"time"
)

// probes is how many packets each probe sends.
const probes = 3

// dropTimeout bounds the wait for a DROP counter to show a dropped probe.
const dropTimeout = 5 * time.Second

// deliverTimeout bounds the wait for a probe to arrive.
const deliverTimeout = 5 * time.Second

// ndTimeout covers a neighbour entry's DELAY state (delay_first_probe_time,
// 5 s) before its unicast probe.
const ndTimeout = 8 * time.Second

// TestSecurityGroups runs the scenarios with real packets in one
// lab of 3 VMs per iptables backend. Every subtest starts from the lab's
// state (every port in group "lab": egress only) and puts it back.
func TestSecurityGroups(t *testing.T) {
	needRoot(t)
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			e := newEnv(t, backend, 3)
			t.Cleanup(func() { t.Logf("%s: %s in all", backend, time.Since(start).Round(time.Millisecond)) })
			e.securityGroups(t)
		})
	}
}

func (e *env) securityGroups(t *testing.T) {
	vm1, vm2, vm3 := e.vm[0], e.vm[1], e.vm[2]
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			e.baseline(t)
			f(t)
			t.Logf("%s took %s", name, time.Since(start).Round(time.Millisecond))
		})
	}

	run("default drop", func(t *testing.T) {
		// vm1 -> vm2: the packets leave vm1 (egress allowed by the lab
		// group) and die in vm2's ingress chain, at sg-fallback.
		icmpTag, udpTag := newTag(), newTag()
		gotICMP := listenIP(t, vm2.Netns, 1, echoRequestsWith(icmpTag))
		gotUDP := listenUDP(t, vm2.Netns, vm2.IP, 5000, udpTag, false)
		s := e.save(t, v4)
		egress0 := s.exact(t, "filter", oChain(vm1), "-j RETURN").Pkts // the lab group's egress rule
		jump0 := s.one(t, "filter", iChain(vm2), "-j "+fallback).Pkts
		drop0 := s.one(t, "filter", fallback, "-j DROP").Pkts
		sendEcho(t, vm1.Netns, vm2.IP, icmpTag, probes)
		src := listenUDP(t, vm1.Netns, vm1.IP, 0, newTag(), false)
		src.send(t, vm2.IP, 5000, udpTag, probes)
		e.waitCounter(t, v4, jump0+2*probes, dropTimeout, "filter", iChain(vm2), "-j "+fallback)
		if d := e.fallbackDrops(t, v4) - drop0; d < 2*probes {
			t.Errorf("sg-fallback DROP counted %d packets, want at least %d", d, 2*probes)
		}
		if d := e.save(t, v4).exact(t, "filter", oChain(vm1), "-j RETURN").Pkts - egress0; d < 2*probes {
			t.Errorf("vm1's egress rule counted %d packets, want at least %d", d, 2*probes)
		}
		if n, m := gotICMP.count(), gotUDP.count(); n != 0 || m != 0 {
			t.Errorf("vm2 received %d ICMP echo requests and %d UDP datagrams without an ingress rule, want 0", n, m)
		}
		if err := ping(vm1.Netns, vm2.IP); err == nil {
			t.Errorf("ping %s -> %s answered without an ingress rule", vm1.Name, vm2.Name)
		}
	})

	run("default group: same-group ingress", func(t *testing.T) { e.defaultGroup(t, vm1, vm2, vm3) })
	run("ingress ICMP rule from the openstack CLI", func(t *testing.T) { e.cliICMP(t, vm1, vm2) })
	run("egress allow", func(t *testing.T) { e.egress(t, vm1, vm2) })
	run("spoofed source IP and MAC dropped", func(t *testing.T) { e.spoofing(t, vm1, vm2) })
	run("DHCP client allowed, DHCP server replies from a VM dropped", func(t *testing.T) { e.dhcp(t, vm1, vm2) })
	run("IPv6 neighbour discovery", func(t *testing.T) { e.neighbourDiscovery(t, vm1, vm2) })
	run("remote group member added and removed", func(t *testing.T) { e.remoteGroup(t, vm1, vm2) })
	run("deleting an allow rule stops an established flow", func(t *testing.T) { e.established(t, vm1, vm2) })
	run("port security disabled passes everything", func(t *testing.T) { e.portSecurityOff(t, vm1, vm3) })
	run("stateless group", func(t *testing.T) { e.stateless(t, vm1, vm2) })
	run("foreign rules survive changes and a restart", func(t *testing.T) { e.foreign(t, vm1, vm2) })
	run("flushed chain repaired", func(t *testing.T) { e.flushed(t, vm1, vm2) })
	run("SIGKILL and restart leave no open window", func(t *testing.T) { e.sigkill(t, vm1, vm2, vm3) })
}
